package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kmsbroker/kmsbroker/broker/store"
	"github.com/kmsbroker/kmsbroker/broker/store/storetest"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

// newScope returns a scope with one root version and one data version of
// each of two purposes, all with ids derived from the scope id.
func newScope(id string) store.ScopeKeys {
	return store.ScopeKeys{
		Scope: store.Scope{ID: id, Name: "name of " + id, CreateTime: t0},
		Root: []store.RootKeyVersion{
			{Version: 1, ID: id + "-r1", Blob: []byte("blob-1"), WrappingKeyID: "root-a", CreateTime: t0},
		},
		Data: []store.DataKeyVersion{
			{Purpose: "database", Version: 1, ID: id + "-database-1", RootVersion: 1, Wrapped: []byte("w-db-1"), CreateTime: t0},
			{Purpose: "tokens", Version: 1, ID: id + "-tokens-1", RootVersion: 1, Wrapped: []byte("w-tok-1"), CreateTime: t0},
		},
	}
}

func mustCreate(t *testing.T, st store.Store, keys store.ScopeKeys) {
	t.Helper()
	if err := st.CreateScope(context.Background(), keys); err != nil {
		t.Fatalf("CreateScope(%q): %v", keys.Scope.ID, err)
	}
}

func mustKeys(t *testing.T, st store.Store, id string) store.ScopeKeys {
	t.Helper()
	keys, err := st.ScopeKeys(context.Background(), id)
	if err != nil {
		t.Fatalf("ScopeKeys(%q): %v", id, err)
	}
	return keys
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, kind, dsn string
		want            error
	}{
		{"unknown kind", "mysql", "x", store.ErrUnknownKind},
		{"empty sqlite path", store.KindSQLite, "", nil},
		{"memory", store.KindSQLite, ":memory:", nil},
		{"uri", store.KindSQLite, "file:" + filepath.Join(dir, "a.db"), nil},
		{"question mark", store.KindSQLite, filepath.Join(dir, "a?.db"), nil},
		{"missing directory", store.KindSQLite, filepath.Join(dir, "no", "such", "dir", "a.db"), nil},
		{"empty postgres url", store.KindPostgres, "", nil},
		{"bad postgres url", store.KindPostgres, "postgres://%zz", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := store.Open(context.Background(), tt.kind, tt.dsn)
			if err == nil {
				st.Close()
				t.Fatalf("Open(%q, %q) = nil error, want an error", tt.kind, tt.dsn)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Open(%q, %q) = %v, want %v", tt.kind, tt.dsn, err, tt.want)
			}
		})
	}
}

func TestOpenDoesNotEchoPassword(t *testing.T) {
	const secret = "s3cr3t-pa55"
	// Port 1 on loopback refuses the connection at once.
	dsn := "postgres://user:" + secret + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2"
	_, err := store.Open(context.Background(), store.KindPostgres, dsn)
	if err == nil {
		t.Fatal("Open to a closed port succeeded")
	}
	if bytes.Contains([]byte(err.Error()), []byte(secret)) {
		t.Errorf("Open error contains the password: %v", err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		st := storetest.Open(t, b)
		mustCreate(t, st, newScope("s1"))
		st.Close()

		st2 := storetest.Open(t, b)
		got := mustKeys(t, st2, "s1")
		if got.Scope.Name != "name of s1" || len(got.Root) != 1 || len(got.Data) != 2 {
			t.Errorf("after reopen ScopeKeys = %+v, want the scope as created", got)
		}
	})
}

func TestScopeRoundTrip(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := storetest.Open(t, b)
		want := newScope("o_1")
		mustCreate(t, st, want)
		mustCreate(t, st, newScope("a_0"))

		got := mustKeys(t, st, "o_1")
		if got.Scope.ID != "o_1" || got.Scope.Name != want.Scope.Name || !got.Scope.CreateTime.Equal(t0) || got.Scope.Generation != 1 {
			t.Errorf("scope = %+v, want id o_1, name %q, created %v, generation 1", got.Scope, want.Scope.Name, t0)
		}
		if len(got.Root) != 1 {
			t.Fatalf("got %d root versions, want 1", len(got.Root))
		}
		r := got.Root[0]
		if r.Version != 1 || r.ID != "o_1-r1" || string(r.Blob) != "blob-1" || r.WrappingKeyID != "root-a" || !r.CreateTime.Equal(t0) || !r.DestroyTime.IsZero() {
			t.Errorf("root version = %+v, want the one created", r)
		}
		if len(got.Data) != 2 || got.Data[0].Purpose != "database" || got.Data[1].Purpose != "tokens" {
			t.Fatalf("data versions = %+v, want database then tokens", got.Data)
		}
		d := got.Data[1]
		if d.Version != 1 || d.ID != "o_1-tokens-1" || d.RootVersion != 1 || string(d.Wrapped) != "w-tok-1" || !d.DestroyTime.IsZero() {
			t.Errorf("tokens data version = %+v, want the one created", d)
		}

		sc, err := st.Scope(ctx, "o_1")
		if err != nil {
			t.Fatalf("Scope: %v", err)
		}
		if sc.RootVersion != 1 || sc.DataVersions["database"] != 1 || sc.DataVersions["tokens"] != 1 || len(sc.DataVersions) != 2 {
			t.Errorf("Scope newest versions = root %d, data %v; want 1 and database:1 tokens:1", sc.RootVersion, sc.DataVersions)
		}

		list, err := st.ListScopes(ctx)
		if err != nil {
			t.Fatalf("ListScopes: %v", err)
		}
		if len(list) != 2 || list[0].ID != "a_0" || list[1].ID != "o_1" {
			t.Fatalf("ListScopes = %+v, want a_0 then o_1", list)
		}
		if list[1].RootVersion != 1 || list[1].DataVersions["tokens"] != 1 {
			t.Errorf("ListScopes newest versions of o_1 = %d %v, want 1 and tokens:1", list[1].RootVersion, list[1].DataVersions)
		}

		gen, err := st.ScopeGeneration(ctx, "o_1")
		if err != nil || gen != 1 {
			t.Errorf("ScopeGeneration = %d, %v; want 1, nil", gen, err)
		}
	})
}

func TestScopeErrors(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := storetest.Open(t, b)
		mustCreate(t, st, newScope("s1"))

		dupVersionID := newScope("s2")
		dupVersionID.Data[1].ID = "s1-tokens-1"

		tests := []struct {
			name string
			call func() error
			want error
		}{
			{"create existing scope", func() error { return st.CreateScope(ctx, newScope("s1")) }, store.ErrConflict},
			{"create with a used version id", func() error { return st.CreateScope(ctx, dupVersionID) }, store.ErrConflict},
			{"scope not found", func() error { _, err := st.Scope(ctx, "nope"); return err }, store.ErrNotFound},
			{"keys not found", func() error { _, err := st.ScopeKeys(ctx, "nope"); return err }, store.ErrNotFound},
			{"generation not found", func() error { _, err := st.ScopeGeneration(ctx, "nope"); return err }, store.ErrNotFound},
			{"update not found", func() error { _, err := st.UpdateKeys(ctx, "nope", 1, store.KeyChanges{}); return err }, store.ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := tt.call(); !errors.Is(err, tt.want) {
					t.Errorf("got %v, want %v", err, tt.want)
				}
			})
		}

		// The failed create of s2 must not have left anything behind.
		if _, err := st.Scope(ctx, "s2"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after failed create, Scope(s2) = %v, want ErrNotFound", err)
		}
	})
}

func TestUpdateKeys(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := storetest.Open(t, b)
		mustCreate(t, st, newScope("s"))
		t1 := t0.Add(time.Hour)

		// Rotate: a second root version and new data versions.
		gen, err := st.UpdateKeys(ctx, "s", 1, store.KeyChanges{
			AddRoot: []store.RootKeyVersion{{Version: 2, ID: "s-r2", Blob: []byte("blob-2"), WrappingKeyID: "root-a", CreateTime: t1}},
			AddData: []store.DataKeyVersion{{Purpose: "database", Version: 2, ID: "s-database-2", RootVersion: 2, Wrapped: []byte("w-db-2"), CreateTime: t1}},
		})
		if err != nil || gen != 2 {
			t.Fatalf("rotate: UpdateKeys = %d, %v; want 2, nil", gen, err)
		}

		// Stale generation: nothing may change.
		_, err = st.UpdateKeys(ctx, "s", 1, store.KeyChanges{
			AddRoot: []store.RootKeyVersion{{Version: 3, ID: "s-r3", Blob: []byte("x"), WrappingKeyID: "root-a", CreateTime: t1}},
		})
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("stale generation: UpdateKeys = %v, want ErrConflict", err)
		}

		// A duplicate version fails the whole change, including the
		// insert before it.
		_, err = st.UpdateKeys(ctx, "s", 2, store.KeyChanges{
			AddRoot: []store.RootKeyVersion{{Version: 3, ID: "s-r3", Blob: []byte("x"), WrappingKeyID: "root-a", CreateTime: t1}},
			AddData: []store.DataKeyVersion{{Purpose: "database", Version: 2, ID: "s-database-2b", RootVersion: 3, Wrapped: []byte("x"), CreateTime: t1}},
		})
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate version: UpdateKeys = %v, want ErrConflict", err)
		}
		if keys := mustKeys(t, st, "s"); len(keys.Root) != 2 || keys.Scope.Generation != 2 {
			t.Fatalf("after failed change: %d root versions, generation %d; want 2 and 2", len(keys.Root), keys.Scope.Generation)
		}

		// Destroying root version 1 while database v1 and tokens v1 still
		// depend on it would orphan them.
		_, err = st.UpdateKeys(ctx, "s", 2, store.KeyChanges{Destroy: []string{"s-r1"}, DestroyTime: t1})
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("orphaning destroy: UpdateKeys = %v, want ErrConflict", err)
		}

		// Rewrap both under root version 2 and the root under a new key,
		// then the destroy goes through.
		gen, err = st.UpdateKeys(ctx, "s", 2, store.KeyChanges{
			RewrapRoot: []store.RootKeyVersion{{Version: 1, Blob: []byte("blob-1b"), WrappingKeyID: "root-b"}},
			RewrapData: []store.DataKeyVersion{
				{Purpose: "database", Version: 1, RootVersion: 2, Wrapped: []byte("w-db-1b")},
				{Purpose: "tokens", Version: 1, RootVersion: 2, Wrapped: []byte("w-tok-1b")},
			},
		})
		if err != nil || gen != 3 {
			t.Fatalf("rewrap: UpdateKeys = %d, %v; want 3, nil", gen, err)
		}
		t2 := t1.Add(time.Hour)
		gen, err = st.UpdateKeys(ctx, "s", 3, store.KeyChanges{Destroy: []string{"s-r1", "s-database-1"}, DestroyTime: t2})
		if err != nil || gen != 4 {
			t.Fatalf("destroy: UpdateKeys = %d, %v; want 4, nil", gen, err)
		}

		counts, err := st.RootKeyCounts(ctx)
		if err != nil {
			t.Fatalf("RootKeyCounts: %v", err)
		}
		if len(counts) != 1 || counts["root-a"] != 1 {
			t.Errorf("RootKeyCounts = %v, want only root-a:1 (v1, on root-b, is destroyed)", counts)
		}

		keys := mustKeys(t, st, "s")
		r1 := keys.Root[0]
		if r1.Blob != nil || !r1.DestroyTime.Equal(t2) || r1.WrappingKeyID != "root-b" {
			t.Errorf("destroyed root v1 = %+v, want nil blob, destroy time %v, wrapping key root-b", r1, t2)
		}
		for _, d := range keys.Data {
			switch {
			case d.Purpose == "database" && d.Version == 1:
				if d.Wrapped != nil || !d.DestroyTime.Equal(t2) {
					t.Errorf("destroyed database v1 = %+v, want nil wrapped and destroy time", d)
				}
			case d.Purpose == "tokens" && d.Version == 1:
				if string(d.Wrapped) != "w-tok-1b" || d.RootVersion != 2 || !d.DestroyTime.IsZero() {
					t.Errorf("rewrapped tokens v1 = %+v, want w-tok-1b under root 2, live", d)
				}
			}
		}

		// Destroyed versions can be neither destroyed again nor rewrapped.
		for _, tt := range []struct {
			name string
			ch   store.KeyChanges
		}{
			{"destroy twice", store.KeyChanges{Destroy: []string{"s-r1"}, DestroyTime: t2}},
			{"destroy unknown", store.KeyChanges{Destroy: []string{"no-such-id"}, DestroyTime: t2}},
			{"rewrap destroyed", store.KeyChanges{RewrapRoot: []store.RootKeyVersion{{Version: 1, Blob: []byte("z"), WrappingKeyID: "root-b"}}}},
			{"rewrap unknown data", store.KeyChanges{RewrapData: []store.DataKeyVersion{{Purpose: "oplog", Version: 9, RootVersion: 2, Wrapped: []byte("z")}}}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := st.UpdateKeys(ctx, "s", 4, tt.ch); !errors.Is(err, store.ErrConflict) {
					t.Errorf("UpdateKeys = %v, want ErrConflict", err)
				}
			})
		}
	})
}

// TestConcurrentRotationsLoseNothing has many writers each add the next
// root version of one scope, retrying on conflict, and checks that every
// one of them landed exactly once.
func TestConcurrentRotationsLoseNothing(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		// Two stores on one database, as two brokers would have.
		stores := []store.Store{storetest.Open(t, b), storetest.Open(t, b)}
		mustCreate(t, stores[0], newScope("s"))

		const writers, each = 8, 5
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Go(func() {
				st := stores[w%2]
				for i := range each {
					if err := addRootVersion(ctx, st, fmt.Sprintf("w%d-%d", w, i)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}

		keys := mustKeys(t, stores[0], "s")
		if want := 1 + writers*each; len(keys.Root) != want || keys.Scope.Generation != uint64(want) {
			t.Fatalf("got %d root versions at generation %d, want %d of each", len(keys.Root), keys.Scope.Generation, want)
		}
		for i, r := range keys.Root {
			if r.Version != uint32(i+1) {
				t.Fatalf("root versions not contiguous: index %d has version %d", i, r.Version)
			}
		}
	})
}

func addRootVersion(ctx context.Context, st store.Store, id string) error {
	for attempt := 0; attempt < 1000; attempt++ {
		keys, err := st.ScopeKeys(ctx, "s")
		if err != nil {
			return err
		}
		next := keys.Root[len(keys.Root)-1].Version + 1
		_, err = st.UpdateKeys(ctx, "s", keys.Scope.Generation, store.KeyChanges{
			AddRoot: []store.RootKeyVersion{{Version: next, ID: id, Blob: []byte(id), WrappingKeyID: "k", CreateTime: t0}},
		})
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("add root version %s: still conflicting after 1000 attempts", id)
}

func TestTokens(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := storetest.Open(t, b)
		h := func(s string) []byte { return bytes.Repeat([]byte(s), 32)[:32] }
		tokA := store.Token{ID: "tok_a", Name: "admin", Role: "admin", Scopes: []string{"*"}, Hash: h("a"), CreateTime: t0}
		tokB := store.Token{ID: "tok_b", Name: "app", Role: "client", Scopes: []string{"o_1", "o_2"}, Hash: h("b"),
			CreateTime: t0.Add(time.Second), ExpireTime: t0.Add(time.Hour)}
		for _, tok := range []store.Token{tokB, tokA} {
			if err := st.CreateToken(ctx, tok); err != nil {
				t.Fatalf("CreateToken(%s): %v", tok.ID, err)
			}
		}

		got, err := st.TokenByHash(ctx, h("b"))
		if err != nil {
			t.Fatalf("TokenByHash: %v", err)
		}
		if got.ID != "tok_b" || got.Role != "client" || len(got.Scopes) != 2 || got.Scopes[1] != "o_2" ||
			!got.ExpireTime.Equal(tokB.ExpireTime) || !got.RevokeTime.IsZero() {
			t.Errorf("TokenByHash = %+v, want %+v", got, tokB)
		}

		list, err := st.ListTokens(ctx)
		if err != nil {
			t.Fatalf("ListTokens: %v", err)
		}
		if len(list) != 2 || list[0].ID != "tok_a" || list[1].ID != "tok_b" || !list[0].ExpireTime.IsZero() {
			t.Errorf("ListTokens = %+v, want tok_a (no expiry) then tok_b", list)
		}

		revokedAt := t0.Add(2 * time.Hour)
		if err := st.RevokeToken(ctx, "tok_b", revokedAt); err != nil {
			t.Fatalf("RevokeToken: %v", err)
		}
		if err := st.RevokeToken(ctx, "tok_b", revokedAt.Add(time.Hour)); err != nil {
			t.Fatalf("RevokeToken again: %v", err)
		}
		if got, _ := st.TokenByHash(ctx, h("b")); !got.RevokeTime.Equal(revokedAt) {
			t.Errorf("revoke time = %v, want the first revocation %v", got.RevokeTime, revokedAt)
		}

		tests := []struct {
			name string
			call func() error
			want error
		}{
			{"duplicate id", func() error { return st.CreateToken(ctx, store.Token{ID: "tok_a", Hash: h("c"), CreateTime: t0}) }, store.ErrConflict},
			{"duplicate hash", func() error { return st.CreateToken(ctx, store.Token{ID: "tok_c", Hash: h("a"), CreateTime: t0}) }, store.ErrConflict},
			{"unknown hash", func() error { _, err := st.TokenByHash(ctx, h("z")); return err }, store.ErrNotFound},
			{"revoke unknown", func() error { return st.RevokeToken(ctx, "tok_z", t0) }, store.ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := tt.call(); !errors.Is(err, tt.want) {
					t.Errorf("got %v, want %v", err, tt.want)
				}
			})
		}
	})
}

func TestUseNonce(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := storetest.Open(t, b)
		later := time.Now().Add(time.Hour)

		if err := st.UseNonce(ctx, []byte("nonce-1"), later); err != nil {
			t.Fatalf("first use: %v", err)
		}
		if err := st.UseNonce(ctx, []byte("nonce-1"), later); !errors.Is(err, store.ErrNonceUsed) {
			t.Fatalf("replay: got %v, want ErrNonceUsed", err)
		}
		if err := st.UseNonce(ctx, []byte("nonce-2"), later); err != nil {
			t.Fatalf("other nonce: %v", err)
		}

		// A nonce recorded with an expiry in the past is pruned by the
		// next call, so the same bytes are accepted again (the caller's
		// time window is what rejects such old tokens).
		past := time.Now().Add(-time.Minute)
		if err := st.UseNonce(ctx, []byte("nonce-3"), past); err != nil {
			t.Fatalf("expired use: %v", err)
		}
		if err := st.UseNonce(ctx, []byte("nonce-3"), later); err != nil {
			t.Fatalf("use after expiry: got %v, want nil", err)
		}

		// Concurrent uses of one nonce: exactly one wins.
		var wg sync.WaitGroup
		results := make(chan error, 8)
		for range 8 {
			wg.Go(func() { results <- st.UseNonce(ctx, []byte("race"), later) })
		}
		wg.Wait()
		close(results)
		var ok, replay int
		for err := range results {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrNonceUsed):
				replay++
			default:
				t.Errorf("concurrent use: %v", err)
			}
		}
		if ok != 1 || replay != 7 {
			t.Errorf("concurrent uses: %d accepted, %d replays; want 1 and 7", ok, replay)
		}
	})
}
