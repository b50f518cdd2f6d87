package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// migrations holds one directory per backend kind. Files are named
// NNNN_what.sql; the number is the schema version the file produces, and
// both directories hold the same numbers with the same tables.
//
//go:embed migrations
var migrations embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations returns the migrations of one backend kind in order.
func loadMigrations(kind string) ([]migration, error) {
	dir := path.Join("migrations", kind)
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("embedded migration %q: name must be NNNN_name.sql", e.Name())
		}
		b, err := fs.ReadFile(migrations, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read embedded migration %q: %w", e.Name(), err)
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("embedded migrations: want version %d, found %q", i+1, m.name)
		}
	}
	return out, nil
}

// migrate brings the schema to the newest embedded version in one
// transaction, so a failed migration leaves the schema as it was. Brokers
// starting together take turns: SQLite's write lock or PostgreSQL's
// advisory lock serializes them, and the later ones find nothing to do.
func (s *sqlStore) migrate(ctx context.Context) error {
	ms, err := loadMigrations(s.d.kind)
	if err != nil {
		return err
	}

	return s.inTx(ctx, func(tx *sql.Tx) error {
		if s.d.lockMigrations != "" {
			if _, err := tx.ExecContext(ctx, s.d.lockMigrations); err != nil {
				return fmt.Errorf("migrate: take lock: %w", err)
			}
		}
		const create = `CREATE TABLE IF NOT EXISTS schema_version (
			version    BIGINT NOT NULL PRIMARY KEY,
			applied_at BIGINT NOT NULL
		)`
		if _, err := tx.ExecContext(ctx, create); err != nil {
			return fmt.Errorf("migrate: create schema_version: %w", err)
		}

		var current sql.NullInt64
		if err := tx.QueryRowContext(ctx,
			`SELECT MAX(version) FROM schema_version`).Scan(&current); err != nil {
			return fmt.Errorf("migrate: read schema version: %w", err)
		}
		if int(current.Int64) > len(ms) {
			return fmt.Errorf("migrate: %w: database has version %d, this binary knows up to %d",
				ErrSchemaTooNew, current.Int64, len(ms))
		}

		for _, m := range ms[current.Int64:] {
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("migrate: apply %s: %w", m.name, err)
			}
			const record = `INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)`
			if _, err := tx.ExecContext(ctx, record, m.version, time.Now().UnixNano()); err != nil {
				return fmt.Errorf("migrate: record %s: %w", m.name, err)
			}
		}
		return nil
	})
}
