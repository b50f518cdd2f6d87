package faults

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmsbroker/kmsbroker/e2e/brokerd"
)

// recoverWithin bounds how long the broker may take to write again once
// the store's fault is gone: SQLite's busy timeout (10 s) plus a retry.
const recoverWithin = 30 * time.Second

// TestSQLiteReadOnly makes the SQLite database and its directory
// read-only under a running broker: every write fails with a clear,
// retryable error and leaves no partial rotation, reads and warm data
// operations go on, and writes work again once the files are writable.
func TestSQLiteReadOnly(t *testing.T) {
	dbDir := t.TempDir()
	f := newFixture(t, brokerd.Config{Storage: brokerd.SQLite, DBPath: filepath.Join(dbDir, "broker.db")})
	prepareData(t, f)
	before := mustReadKeys(t, f.c, "o_1")
	checkKeys(t, "before the fault", before)

	restore := makeReadOnly(t, dbDir)
	wantUnavailable(t, writesFail(t, f, before, "key store failed: update keys of scope"))

	t.Run("reads and warm data operations go on", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := f.c.ListScopes(ctx); err != nil {
			t.Errorf("ListScopes on a read-only store: %v", err)
		}
		if err := f.encrypt(ctx); err != nil {
			t.Errorf("Encrypt in a warm scope on a read-only store: %v", err)
		}
		decryptAll(t, f.c, f.issued)
	})

	restore()
	resumes(t, f, before)
}

// TestSQLiteDiskFull puts the SQLite database on a small tmpfs and fills
// it: writes fail with a clear, retryable error, no rotation is left
// half done, and writes work again once space is freed.
func TestSQLiteDiskFull(t *testing.T) {
	dir := mountTmpfs(t, 16<<20)
	f := newFixture(t, brokerd.Config{Storage: brokerd.SQLite, DBPath: filepath.Join(dir, "broker.db")})
	prepareData(t, f)
	before := mustReadKeys(t, f.c, "o_1")
	checkKeys(t, "before the fault", before)

	filler := fill(t, dir)

	// SQLite may still fit a write or two into pages its files already
	// hold; rotate until the disk really is full.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var err error
	for i := 0; i < 50 && err == nil; i++ {
		_, err = f.c.RotateKeys(ctx, "o_1", i%2 == 0)
	}
	if err == nil {
		t.Fatalf("50 rotations on a full disk all succeeded; the fault never happened")
	}
	wantCleanError(t, "RotateKeys", err)
	full := mustReadKeys(t, f.c, "o_1")
	checkKeys(t, "after a rotation failed on a full disk", full)
	errs := writesFail(t, f, full, "database or disk is full")
	errs["first failed RotateKeys"] = err
	wantUnavailable(t, errs)

	t.Run("warm data operations go on", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := f.encrypt(ctx); err != nil {
			t.Errorf("Encrypt in a warm scope on a full disk: %v", err)
		}
		decryptAll(t, f.c, f.issued)
	})

	if err := os.Remove(filler); err != nil {
		t.Fatalf("free the disk: %v", err)
	}
	resumes(t, f, full)
}

// prepareData encrypts under two key versions of o_1.
func prepareData(t *testing.T, f *fixture) {
	t.Helper()
	for range 4 {
		f.mustEncrypt()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := f.c.RotateKeys(ctx, "o_1", false); err != nil {
		t.Fatalf("RotateKeys: %v", err)
	}
	for range 4 {
		f.mustEncrypt()
	}
}

// writesFail checks that every kind of write fails with a clean error
// while the store cannot be written, that the broker log says why
// (holds wantLog), and that o_1's keys stay as in before. It returns the
// errors by call.
func writesFail(t *testing.T, f *fixture, before keyState, wantLog string) map[string]error {
	t.Helper()
	errs := map[string]error{}
	t.Run("writes fail", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			call func(ctx context.Context) error
		}{
			{"RotateKeys", func(ctx context.Context) error { _, err := f.c.RotateKeys(ctx, "o_1", false); return err }},
			{"RotateKeys with rewrap", func(ctx context.Context) error { _, err := f.c.RotateKeys(ctx, "o_1", true); return err }},
			{"RewrapKeys", func(ctx context.Context) error { _, err := f.c.RewrapKeys(ctx, "o_1"); return err }},
			{"CreateScope", func(ctx context.Context) error { _, err := f.c.CreateScope(ctx, "o_2", ""); return err }},
			{"CreateToken", func(ctx context.Context) error {
				_, _, err := f.c.CreateToken(ctx, "app", "app", nil, time.Hour)
				return err
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				err := tc.call(ctx)
				errs[tc.name] = err
				wantCleanError(t, tc.name, err)
			})
		}
		if !strings.Contains(f.b.Logs(), wantLog) {
			t.Errorf("broker log does not say why writes fail: no %q in it", wantLog)
		}
		after := mustReadKeys(t, f.c, "o_1")
		checkKeys(t, "after failed writes", after)
		if after.String() != before.String() {
			t.Errorf("key versions after failed writes: %s, want them unchanged: %s", after, before)
		}
	})
	return errs
}

// resumes checks that, the fault gone, a rotation succeeds within
// recoverWithin and adds exactly one version to before, and that every
// envelope decrypts, also after a restart.
func resumes(t *testing.T, f *fixture, before keyState) {
	t.Helper()
	t.Run("service resumes", func(t *testing.T) {
		deadline := time.Now().Add(recoverWithin)
		var err error
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err = f.c.RotateKeys(ctx, "o_1", true)
			cancel()
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("RotateKeys %s after the fault cleared: %v", recoverWithin, err)
		}
		after := mustReadKeys(t, f.c, "o_1")
		checkKeys(t, "after the fault cleared", after)
		if after.rotations() != before.rotations()+1 {
			t.Errorf("key versions after one rotation: %s, want one more than before the fault: %s", after, before)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := f.c.CreateScope(ctx, "o_2", ""); err != nil {
			t.Errorf("CreateScope after the fault cleared: %v", err)
		}
		if err := f.encrypt(ctx); err != nil {
			t.Fatalf("Encrypt after the fault cleared: %v", err)
		}
		if v := f.issued[len(f.issued)-1].version; int(v) != after.rotations()+1 {
			t.Errorf("Encrypt after the fault cleared used key version %d, want the newest, %d", v, after.rotations()+1)
		}
		decryptAll(t, f.c, f.issued)

		f.b.Stop()
		f.restart()
		checkKeys(t, "after a restart", mustReadKeys(t, f.c, "o_1"))
		decryptAll(t, f.c, f.issued)
	})
}
