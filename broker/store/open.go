package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

const (
	// sqliteBusyTimeoutMS is how long a SQLite write waits for another
	// connection's write lock before failing. Our write transactions last
	// milliseconds, so ten seconds rides out any burst; a lock held longer
	// is a stuck process that should surface as an error.
	sqliteBusyTimeoutMS = 10000
	// sqliteMaxConns caps the SQLite pool. WAL lets readers run in
	// parallel but writers take turns, and each connection carries its own
	// page cache; more connections than this only add memory.
	sqliteMaxConns = 8
	// postgresMaxConns caps the PostgreSQL pool per broker, leaving room
	// for several brokers and tools under the server's default
	// max_connections of 100.
	postgresMaxConns = 10
	// migrationLockKey is the PostgreSQL advisory lock that serializes
	// migrations when several brokers start at once. Any fixed number
	// works; this one spells "kmsb".
	migrationLockKey = 0x6b6d7362
)

// dialect is what differs between the two backends. Everything else,
// including the SQL text (both accept $N placeholders), is shared.
type dialect struct {
	kind   string
	driver string
	// readTx are the options of multi-statement read snapshots.
	readTx sql.TxOptions
	// lockMigrations, if set, runs first in the migration transaction.
	lockMigrations string
	// isUnique reports whether err is a unique or primary key violation.
	isUnique func(error) bool
	maxConns int
}

var (
	sqliteDialect = dialect{
		kind:   KindSQLite,
		driver: "sqlite",
		// A deferred read transaction in WAL mode reads one snapshot and
		// takes no write lock.
		readTx:   sql.TxOptions{ReadOnly: true},
		isUnique: sqliteIsUnique,
		maxConns: sqliteMaxConns,
	}
	postgresDialect = dialect{
		kind:           KindPostgres,
		driver:         "pgx",
		readTx:         sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead},
		lockMigrations: fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", migrationLockKey),
		isUnique:       postgresIsUnique,
		maxConns:       postgresMaxConns,
	}
)

// Open connects to the database of the given kind, applies any pending
// migrations and returns the store.
//
// For KindSQLite, dsn is a file path; the file is created if missing and
// opened in WAL mode with foreign keys on, synchronous=FULL (a committed
// key version must survive power loss, or envelopes made with it become
// undecryptable), a busy timeout, and write transactions that take the
// write lock at BEGIN. In-memory databases are not supported: every pooled
// connection would see a different one.
//
// For KindPostgres, dsn is a pgx connection string; a search_path
// parameter selects the schema.
//
// The DSN is never echoed in errors: it may hold a password.
func Open(ctx context.Context, kind, dsn string) (Store, error) {
	var (
		d      dialect
		source string
	)
	switch kind {
	case KindSQLite:
		src, err := sqliteSource(dsn)
		if err != nil {
			return nil, fmt.Errorf("open sqlite store: %w", err)
		}
		d, source = sqliteDialect, src
	case KindPostgres:
		if dsn == "" {
			return nil, errors.New("open postgres store: empty connection url")
		}
		d, source = postgresDialect, dsn
	default:
		return nil, fmt.Errorf("open store: %w %q (valid: %s, %s)", ErrUnknownKind,
			kind, KindSQLite, KindPostgres)
	}

	db, err := sql.Open(d.driver, source)
	if err != nil {
		return nil, fmt.Errorf("open %s store: %w", d.kind, err)
	}
	db.SetMaxOpenConns(d.maxConns)
	db.SetMaxIdleConns(d.maxConns)

	s := &sqlStore{db: db, d: d}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s store: connect: %w", d.kind, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s store: %w", d.kind, err)
	}
	return s, nil
}

// sqliteSource turns a file path into a modernc.org/sqlite DSN with the
// connection settings the store relies on.
func sqliteSource(path string) (string, error) {
	switch {
	case path == "":
		return "", errors.New("empty database path")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return "", errors.New("database path must be a file path, not a URI or :memory:")
	case strings.ContainsRune(path, '?'):
		// The driver splits its DSN at the first '?'.
		return "", errors.New("database path must not contain '?'")
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeoutMS))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	return path + "?" + q.Encode(), nil
}

func sqliteIsUnique(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// pgUniqueViolation is PostgreSQL's SQLSTATE for unique_violation.
const pgUniqueViolation = "23505"

func postgresIsUnique(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == pgUniqueViolation
}
