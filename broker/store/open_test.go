package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

func openSQLite(t *testing.T, path string) *sqlStore {
	t.Helper()
	st, err := Open(context.Background(), KindSQLite, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st.(*sqlStore)
}

func TestSQLiteSettings(t *testing.T) {
	st := openSQLite(t, filepath.Join(t.TempDir(), "b.db"))
	ctx := context.Background()

	tests := []struct {
		pragma, want string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"synchronous", "2"}, // FULL
		{"busy_timeout", "10000"},
	}
	for _, tt := range tests {
		t.Run(tt.pragma, func(t *testing.T) {
			var got string
			if err := st.db.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
				t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
			}
			if got != tt.want {
				t.Errorf("PRAGMA %s = %q, want %q", tt.pragma, got, tt.want)
			}
		})
	}
}

func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	ctx := context.Background()

	st := openSQLite(t, path)
	want, err := loadMigrations(KindSQLite)
	if err != nil {
		t.Fatalf("loadMigrations: %v", err)
	}
	var got int
	if err := st.db.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_version").Scan(&got); err != nil {
		t.Fatalf("read schema_version: %v", err)
	}
	if got != len(want) {
		t.Fatalf("schema version = %d, want %d", got, len(want))
	}

	// Opening again applies nothing new.
	st.Close()
	st = openSQLite(t, path)
	var n int
	if err := st.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_version").Scan(&n); err != nil {
		t.Fatalf("count schema_version: %v", err)
	}
	if n != len(want) {
		t.Errorf("after reopen schema_version has %d rows, want %d", n, len(want))
	}

	// A database from a newer binary is refused.
	if _, err := st.db.ExecContext(ctx, "INSERT INTO schema_version (version, applied_at) VALUES (999, 0)"); err != nil {
		t.Fatalf("insert future version: %v", err)
	}
	st.Close()
	if _, err := Open(ctx, KindSQLite, path); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Open of a newer schema = %v, want ErrSchemaTooNew", err)
	}
}

func TestBothKindsHaveTheSameMigrations(t *testing.T) {
	lite, err := loadMigrations(KindSQLite)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := loadMigrations(KindPostgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) != len(pg) {
		t.Fatalf("sqlite has %d migrations, postgres %d", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].name != pg[i].name {
			t.Errorf("migration %d: sqlite %q, postgres %q", i+1, lite[i].name, pg[i].name)
		}
	}
}
