// Package storetest gives tests real databases to run against: a fresh
// SQLite file, and, when BROKER_TEST_POSTGRES_URL is set, a fresh
// PostgreSQL schema that is dropped when the test ends.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/kmsbroker/kmsbroker/broker/store"
)

// PostgresURLEnv names the environment variable that points the tests at
// a PostgreSQL server, e.g.
// postgres://root@127.0.0.1:5432/test?sslmode=disable.
const PostgresURLEnv = "BROKER_TEST_POSTGRES_URL"

// Backend is one database a test can open any number of stores on.
type Backend struct {
	Kind string
	DSN  string
}

// SQLite returns a backend on a new SQLite file in t.TempDir().
func SQLite(t testing.TB) Backend {
	t.Helper()
	return Backend{Kind: store.KindSQLite, DSN: filepath.Join(t.TempDir(), "broker.db")}
}

// Postgres returns a backend on a new, empty schema of the server named
// by BROKER_TEST_POSTGRES_URL, dropped when the test ends, so parallel
// and repeated runs never see each other's rows. It skips the test when
// the variable is unset.
func Postgres(t testing.TB) Backend {
	t.Helper()
	base := os.Getenv(PostgresURLEnv)
	if base == "" {
		t.Skipf("PostgreSQL tests skipped: set %s to a postgres:// URL to run them", PostgresURLEnv)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("%s must be a postgres:// URL", PostgresURLEnv)
	}

	var b [8]byte
	rand.Read(b[:])
	schema := "kbtest_" + hex.EncodeToString(b[:])

	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open postgres admin connection: %v", err)
	}
	if _, err := admin.ExecContext(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("create test schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
		}
		admin.Close()
	})

	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return Backend{Kind: store.KindPostgres, DSN: u.String()}
}

// Run runs fn as two subtests, "sqlite" on a fresh SQLite backend and
// "postgres" on a fresh PostgreSQL one (skipped with a message when
// BROKER_TEST_POSTGRES_URL is unset).
func Run(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Helper()
	t.Run(store.KindSQLite, func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run(store.KindPostgres, func(t *testing.T) { fn(t, Postgres(t)) })
}

// Open opens a store on b and closes it when the test ends.
func Open(t testing.TB, b Backend) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), b.Kind, b.DSN)
	if err != nil {
		t.Fatalf("open %s store: %v", b.Kind, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
