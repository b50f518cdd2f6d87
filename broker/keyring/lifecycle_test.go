package keyring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmsbroker/kmsbroker/broker/store/storetest"
)

// sealed is an envelope and what it must open to.
type sealed struct {
	scope   string
	p       DataPurpose
	env     []byte
	aad     []byte
	pt      []byte
	version uint32
}

func (f *fixture) seal(t testing.TB, scope string, p DataPurpose, pt string) sealed {
	t.Helper()
	aad := []byte("aad/" + scope + "/" + string(p))
	env, v := f.mustEncrypt(t, scope, p, []byte(pt), aad)
	return sealed{scope: scope, p: p, env: env, aad: aad, pt: []byte(pt), version: v}
}

func (f *fixture) mustOpenAll(t testing.TB, all []sealed) {
	t.Helper()
	for _, s := range all {
		if v := f.mustDecrypt(t, s.scope, s.p, s.env, s.aad, s.pt); v != s.version {
			t.Fatalf("Decrypt version = %d, want %d", v, s.version)
		}
	}
}

func (f *fixture) keyVersions(t testing.TB, scope string) []KeyVersion {
	t.Helper()
	kvs, err := f.kr.KeyVersions(context.Background(), scope)
	if err != nil {
		t.Fatalf("KeyVersions(%q): %v", scope, err)
	}
	return kvs
}

func findVersion(t testing.TB, kvs []KeyVersion, kind KeyKind, p DataPurpose, v uint32) KeyVersion {
	t.Helper()
	for _, kv := range kvs {
		if kv.Kind == kind && kv.Purpose == p && kv.Version == v {
			return kv
		}
	}
	t.Fatalf("no %s %s key version %d", kind, p, v)
	return KeyVersion{}
}

// TestHundredRotations rotates a scope 100 times, decrypts data made under
// version 1, rewraps, and decrypts it again on a cold keyring that then
// needs only the newest KEK.
func TestHundredRotations(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		root := newTestRoot(t, "root-1")
		f := newFixture(t, fixtureOpts{backend: b, root: root})
		f.mustCreate(t, "o_1")
		var v1 []sealed
		for _, p := range DataPurposes() {
			v1 = append(v1, f.seal(t, "o_1", p, "made under version 1 for "+string(p)))
		}

		const rotations = 100
		for i := range rotations {
			info, err := f.kr.RotateKeys(ctx, "o_1", false)
			if err != nil {
				t.Fatalf("rotation %d: %v", i+1, err)
			}
			if info.RootKeyVersion != uint32(i+2) || info.DataKeys[Database] != uint32(i+2) {
				t.Fatalf("after rotation %d: root %d, database %d; want %d", i+1, info.RootKeyVersion, info.DataKeys[Database], i+2)
			}
		}
		newest := f.seal(t, "o_1", Oplog, "made under the newest version")
		if newest.version != rotations+1 {
			t.Fatalf("Encrypt after %d rotations used version %d, want %d", rotations, newest.version, rotations+1)
		}
		f.mustOpenAll(t, append(v1, newest))

		cold := newFixture(t, fixtureOpts{backend: b, root: root})
		cold.mustOpenAll(t, v1)

		res, err := f.kr.RewrapKeys(ctx, "o_1")
		if err != nil {
			t.Fatalf("RewrapKeys: %v", err)
		}
		want := RewrapResult{Scopes: 1, RootKeyVersions: rotations + 1, DataKeyVersions: rotations * numPurposes, KeyVersion: rotations + 1}
		if res != want {
			t.Errorf("RewrapKeys = %+v, want %+v", res, want)
		}
		for _, kv := range f.keyVersions(t, "o_1") {
			if kv.Kind == DataKey && kv.RootKeyVersion != rotations+1 {
				t.Fatalf("after rewrap %s v%d is under root key version %d, want %d", kv.Purpose, kv.Version, kv.RootKeyVersion, rotations+1)
			}
		}

		cold2 := newFixture(t, fixtureOpts{backend: b, root: root})
		cold2.mustOpenAll(t, append(v1, newest))
		if n := cold2.croot.unwraps.Load(); n != 1 {
			t.Errorf("cold decrypts after rewrap made %d root unwraps, want 1 (the newest KEK)", n)
		}
	})
}

func TestRotateWithRewrapFreesOldRootVersions(t *testing.T) {
	b := storetest.SQLite(t)
	f := newFixture(t, fixtureOpts{backend: b})
	ctx := context.Background()
	f.mustCreate(t, "o_1")
	old := f.seal(t, "o_1", Tokens, "old")
	if _, err := f.kr.RotateKeys(ctx, "o_1", false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.kr.RotateKeys(ctx, "o_1", true); err != nil {
		t.Fatal(err)
	}
	kvs := f.keyVersions(t, "o_1")
	if got := len(kvs); got != 3+3*numPurposes {
		t.Fatalf("KeyVersions has %d entries, want %d", got, 3+3*numPurposes)
	}
	for _, kv := range kvs {
		if kv.Kind == DataKey && kv.RootKeyVersion != 3 {
			t.Errorf("%s v%d under root version %d after rotate with rewrap, want 3", kv.Purpose, kv.Version, kv.RootKeyVersion)
		}
		if kv.Active != (kv.Version == 3) {
			t.Errorf("%s %s v%d Active = %v", kv.Kind, kv.Purpose, kv.Version, kv.Active)
		}
	}
	for _, v := range []uint32{1, 2} {
		if _, err := f.kr.DestroyKeyVersion(ctx, "o_1", findVersion(t, kvs, RootKey, "", v).ID); err != nil {
			t.Fatalf("destroy root key version %d: %v", v, err)
		}
	}
	f.mustOpenAll(t, []sealed{old})
	// A cold keyring needs only the surviving root version.
	cold := newFixture(t, fixtureOpts{backend: b, root: f.root})
	cold.mustOpenAll(t, []sealed{old})
}

func TestDestroyKeyVersion(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	f.mustCreate(t, "o_1")
	f.mustCreate(t, "o_2")
	v1 := f.seal(t, "o_1", Database, "under v1")
	if _, err := f.kr.RotateKeys(ctx, "o_1", false); err != nil {
		t.Fatal(err)
	}
	kvs := f.keyVersions(t, "o_1")
	other := f.keyVersions(t, "o_2")

	tests := []struct {
		name string
		id   string
		want error
	}{
		{"active root", findVersion(t, kvs, RootKey, "", 2).ID, ErrKeyVersionActive},
		{"root still wrapping data keys", findVersion(t, kvs, RootKey, "", 1).ID, ErrKeyVersionInUse},
		{"active data key", findVersion(t, kvs, DataKey, Oplog, 2).ID, ErrKeyVersionActive},
		{"data key replaced just now", findVersion(t, kvs, DataKey, Oplog, 1).ID, ErrKeyVersionRecent},
		{"unknown id", "dek_doesnotexist", ErrKeyVersionNotFound},
		{"another scope's version", findVersion(t, other, DataKey, Oplog, 1).ID, ErrKeyVersionNotFound},
		{"empty id", "", ErrKeyVersionNotFound},
		{"over-long id", string(bytes.Repeat([]byte("x"), 1000)), ErrKeyVersionNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.kr.DestroyKeyVersion(ctx, "o_1", tt.id)
			if !errors.Is(err, tt.want) {
				t.Fatalf("DestroyKeyVersion = %v, want %v", err, tt.want)
			}
		})
	}
	if got := f.keyVersions(t, "o_1"); fmt.Sprint(got) != fmt.Sprint(kvs) {
		t.Fatalf("refused destructions changed the key versions:\n got %v\nwant %v", got, kvs)
	}

	f.clock.Advance(2 * DefaultStaleAfter)
	dbV1 := findVersion(t, kvs, DataKey, Database, 1).ID
	if _, err := f.kr.DestroyKeyVersion(ctx, "o_1", dbV1); err != nil {
		t.Fatalf("destroy database v1: %v", err)
	}
	if _, err := f.kr.DestroyKeyVersion(ctx, "o_1", dbV1); err != nil {
		t.Errorf("destroying a destroyed version = %v, want nil", err)
	}
	if kv := findVersion(t, f.keyVersions(t, "o_1"), DataKey, Database, 1); kv.DestroyTime.IsZero() {
		t.Error("database v1 not marked destroyed")
	}
	_, _, err := f.kr.Decrypt(ctx, "o_1", Database, v1.env, v1.aad)
	if !errors.Is(err, ErrKeyVersionDestroyed) {
		t.Fatalf("Decrypt under a destroyed version = %v, want ErrKeyVersionDestroyed", err)
	}
	if _, _, err := f.kr.ReEncrypt(ctx, "o_1", Database, v1.env, v1.aad); !errors.Is(err, ErrKeyVersionDestroyed) {
		t.Errorf("ReEncrypt under a destroyed version = %v, want ErrKeyVersionDestroyed", err)
	}

	// The other purposes still wrap under root v1, so it stays refused
	// until a rewrap.
	if _, err := f.kr.DestroyKeyVersion(ctx, "o_1", findVersion(t, kvs, RootKey, "", 1).ID); !errors.Is(err, ErrKeyVersionInUse) {
		t.Fatalf("destroy root v1 before rewrap = %v, want ErrKeyVersionInUse", err)
	}
	if _, err := f.kr.RewrapKeys(ctx, "o_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.kr.DestroyKeyVersion(ctx, "o_1", findVersion(t, kvs, RootKey, "", 1).ID); err != nil {
		t.Fatalf("destroy root v1 after rewrap: %v", err)
	}
}

func TestReEncrypt(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	f.mustCreate(t, "o_1")
	old := f.seal(t, "o_1", Sessions, "migrate me")
	if _, err := f.kr.RotateKeys(ctx, "o_1", false); err != nil {
		t.Fatal(err)
	}
	env, v, err := f.kr.ReEncrypt(ctx, "o_1", Sessions, old.env, old.aad)
	if err != nil || v != 2 {
		t.Fatalf("ReEncrypt = version %d, %v; want 2, nil", v, err)
	}
	f.mustDecrypt(t, "o_1", Sessions, env, old.aad, old.pt)

	for name, call := range map[string]func() error{
		"wrong aad":       func() error { _, _, err := f.kr.ReEncrypt(ctx, "o_1", Sessions, old.env, nil); return err },
		"wrong purpose":   func() error { _, _, err := f.kr.ReEncrypt(ctx, "o_1", Tokens, old.env, old.aad); return err },
		"garbage":         func() error { _, _, err := f.kr.ReEncrypt(ctx, "o_1", Sessions, []byte("zz"), old.aad); return err },
		"unknown purpose": func() error { _, _, err := f.kr.ReEncrypt(ctx, "o_1", "x", old.env, old.aad); return err },
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrUnknownDataPurpose) {
				t.Errorf("ReEncrypt = %v, want ErrDecrypt or ErrUnknownDataPurpose", err)
			}
		})
	}
}

// TestRootKeyMigration moves every scope from one root key to another
// with previous-root and RewrapAll, removes previous-root, restarts, and
// decrypts everything.
func TestRootKeyMigration(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		root := newTestRoot(t, "root-old")
		f := newFixture(t, fixtureOpts{backend: b, root: root})
		var all []sealed
		for i := range 5 {
			id := fmt.Sprintf("o_%d", i)
			f.mustCreate(t, id)
			for r := range i {
				if _, err := f.kr.RotateKeys(ctx, id, r%2 == 0); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range DataPurposes() {
				all = append(all, f.seal(t, id, p, "data of "+id))
			}
		}
		live := 5 + (1 + 2 + 3 + 4) // KEK versions
		assertRootStatus(t, f, "root-old", 0, live)

		root.rotate(newAEADWrapper(t, "root-new"), "root-new")
		assertRootStatus(t, f, "root-new", live, live)

		res, err := f.kr.RewrapAll(ctx)
		if err != nil {
			t.Fatalf("RewrapAll: %v", err)
		}
		if res.Scopes != 5 || res.RootKeyVersions != live {
			t.Errorf("RewrapAll = %+v, want 5 scopes and %d root key versions", res, live)
		}
		assertRootStatus(t, f, "root-new", 0, live)

		root.dropPrevious()
		restarted := newFixture(t, fixtureOpts{backend: b, root: root})
		restarted.mustOpenAll(t, all)
	})
}

func assertRootStatus(t *testing.T, f *fixture, current string, other, total int) {
	t.Helper()
	st, err := f.kr.RootKeyStatus(context.Background())
	if err != nil {
		t.Fatalf("RootKeyStatus: %v", err)
	}
	sum := 0
	for _, n := range st.KeyVersions {
		sum += n
	}
	if st.CurrentKeyID != current || st.OnOtherKeys != other || sum != total {
		t.Errorf("RootKeyStatus = %+v, want current %s, %d on other keys, %d in all", st, current, other, total)
	}
}

// TestWithoutPreviousRootOldKEKsFail shows the migration test can fail:
// dropping previous-root before the rewrap loses access to the scope.
func TestWithoutPreviousRootOldKEKsFail(t *testing.T) {
	b := storetest.SQLite(t)
	root := newTestRoot(t, "root-old")
	f := newFixture(t, fixtureOpts{backend: b, root: root})
	f.mustCreate(t, "o_1")
	s := f.seal(t, "o_1", Database, "x")

	root.rotate(newAEADWrapper(t, "root-new"), "root-new")
	root.dropPrevious()
	cold := newFixture(t, fixtureOpts{backend: b, root: root})
	if _, _, err := cold.kr.Decrypt(context.Background(), "o_1", Database, s.env, s.aad); !errors.Is(err, ErrRootKMS) {
		t.Fatalf("Decrypt without previous-root = %v, want ErrRootKMS", err)
	}
}

// TestTwoBrokersOneStore runs two keyrings on one database: a rotation on
// one is used by the other for its next encrypt once StaleAfter has
// passed, envelopes of a version it has not seen open at once, and a
// destruction reaches it within StaleAfter.
func TestTwoBrokersOneStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		root := newTestRoot(t, "root-1")
		opts := Options{StaleAfter: time.Second}
		a := newFixture(t, fixtureOpts{backend: b, root: root, opts: opts})
		bb := newFixture(t, fixtureOpts{backend: b, root: root, opts: opts})
		a.mustCreate(t, "o_1")
		first := bb.seal(t, "o_1", Database, "from b at v1")

		if _, err := a.kr.RotateKeys(ctx, "o_1", false); err != nil {
			t.Fatal(err)
		}
		fromA := a.seal(t, "o_1", Database, "from a at v2")
		if fromA.version != 2 {
			t.Fatalf("a encrypts with version %d after its rotation, want 2", fromA.version)
		}
		// b has not looked yet, but an envelope naming a newer version
		// makes it look now.
		bb.mustOpenAll(t, []sealed{fromA, first})

		// Once StaleAfter passes, b's next encrypt uses version 2.
		if _, err := a.kr.RotateKeys(ctx, "o_1", false); err != nil {
			t.Fatal(err)
		}
		stale := bb.seal(t, "o_1", Database, "b before its check")
		if stale.version != 2 {
			t.Fatalf("b within StaleAfter encrypts with version %d, want 2 (its cached newest)", stale.version)
		}
		bb.clock.Advance(time.Second)
		fresh := bb.seal(t, "o_1", Database, "b after its check")
		if fresh.version != 3 {
			t.Fatalf("b after StaleAfter encrypts with version %d, want 3", fresh.version)
		}
		a.mustOpenAll(t, []sealed{first, stale, fresh})

		// A destruction on a reaches b within StaleAfter.
		if _, err := a.kr.RewrapKeys(ctx, "o_1"); err != nil {
			t.Fatal(err)
		}
		a.clock.Advance(2 * DefaultStaleAfter)
		id := findVersion(t, a.keyVersions(t, "o_1"), DataKey, Database, 1).ID
		if _, err := a.kr.DestroyKeyVersion(ctx, "o_1", id); err != nil {
			t.Fatal(err)
		}
		bb.clock.Advance(time.Second)
		if _, _, err := bb.kr.Decrypt(ctx, "o_1", Database, first.env, first.aad); !errors.Is(err, ErrKeyVersionDestroyed) {
			t.Fatalf("b decrypt of a version destroyed on a = %v, want ErrKeyVersionDestroyed", err)
		}
		bb.mustOpenAll(t, []sealed{stale, fresh})
	})
}

// TestConcurrentRotations rotates one scope from many goroutines on two
// keyrings sharing a database, while others encrypt, and checks that no
// version was lost and every envelope opens.
func TestConcurrentRotations(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		root := newTestRoot(t, "root-1")
		brokers := []*fixture{
			newFixture(t, fixtureOpts{backend: b, root: root}),
			newFixture(t, fixtureOpts{backend: b, root: root}),
		}
		brokers[0].mustCreate(t, "o_1")

		const rotators, each, writers = 6, 4, 4
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			all  []sealed
			errs = make(chan error, rotators+writers)
		)
		for r := range rotators {
			wg.Go(func() {
				for i := range each {
					if _, err := brokers[r%2].kr.RotateKeys(ctx, "o_1", i%2 == 1); err != nil {
						errs <- fmt.Errorf("rotator %d: %w", r, err)
						return
					}
				}
			})
		}
		for w := range writers {
			wg.Go(func() {
				f := brokers[w%2]
				for i := range 20 {
					p := DataPurposes()[i%numPurposes]
					pt, aad := []byte(fmt.Sprintf("w%d-%d", w, i)), []byte("aad/o_1/"+string(p))
					env, v, err := f.kr.Encrypt(ctx, "o_1", p, pt, aad)
					if err != nil {
						errs <- fmt.Errorf("writer %d: %w", w, err)
						return
					}
					mu.Lock()
					all = append(all, sealed{scope: "o_1", p: p, env: env, aad: aad, pt: pt, version: v})
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}

		kvs := brokers[0].keyVersions(t, "o_1")
		want := uint32(1 + rotators*each)
		roots := 0
		for _, kv := range kvs {
			if kv.Kind == RootKey {
				roots++
				if uint32(roots) != kv.Version {
					t.Fatalf("root versions not contiguous at %d: %v", roots, kv.Version)
				}
			}
		}
		if uint32(roots) != want || len(kvs) != int(want)*(1+numPurposes) {
			t.Fatalf("%d root versions and %d in all, want %d and %d", roots, len(kvs), want, int(want)*(1+numPurposes))
		}
		for _, f := range brokers {
			f.clock.Advance(time.Hour)
			f.mustOpenAll(t, all)
		}
	})
}

func TestDeriveKey(t *testing.T) {
	b := storetest.SQLite(t)
	f := newFixture(t, fixtureOpts{backend: b})
	ctx := context.Background()
	f.mustCreate(t, "o_1")
	f.mustCreate(t, "o_2")

	derive := func(scope, user, session string, length int, version uint32) []byte {
		t.Helper()
		k, _, err := f.kr.DeriveKey(ctx, scope, user, session, length, version)
		if err != nil {
			t.Fatalf("DeriveKey(%s, %s, %s, %d, %d): %v", scope, user, session, length, version, err)
		}
		if len(k) != length {
			t.Fatalf("DeriveKey gave %d bytes, want %d", len(k), length)
		}
		return k
	}
	base, v, err := f.kr.DeriveKey(ctx, "o_1", "u_1", "s_1", 32, 0)
	if err != nil || v != 1 {
		t.Fatalf("DeriveKey = version %d, %v; want 1, nil", v, err)
	}
	if !bytes.Equal(base, derive("o_1", "u_1", "s_1", 32, 1)) {
		t.Error("deriving again with the version used gave different bytes")
	}
	for name, other := range map[string][]byte{
		"other scope":         derive("o_2", "u_1", "s_1", 32, 0),
		"other user":          derive("o_1", "u_2", "s_1", 32, 0),
		"other session":       derive("o_1", "u_1", "s_2", 32, 0),
		"ids shifted":         derive("o_1", "u_1s", "_1", 32, 0),
		"longer, same prefix": derive("o_1", "u_1", "s_1", 64, 0)[:32],
	} {
		if bytes.Equal(base, other) {
			t.Errorf("%s derived the same bytes", name)
		}
	}

	if _, err := f.kr.RotateKeys(ctx, "o_1", false); err != nil {
		t.Fatal(err)
	}
	if _, v, _ := f.kr.DeriveKey(ctx, "o_1", "u_1", "s_1", 32, 0); v != 2 {
		t.Errorf("after rotation DeriveKey used version %d, want 2", v)
	}
	if !bytes.Equal(base, derive("o_1", "u_1", "s_1", 32, 1)) {
		t.Error("version 1 derives differently after a rotation")
	}
	other := newFixture(t, fixtureOpts{backend: b, root: f.root})
	if k, _, err := other.kr.DeriveKey(ctx, "o_1", "u_1", "s_1", 32, 1); err != nil || !bytes.Equal(k, base) {
		t.Errorf("another keyring on the store derived differently (err %v)", err)
	}

	if _, err := f.kr.RewrapKeys(ctx, "o_1"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2 * DefaultStaleAfter)
	if _, err := f.kr.DestroyKeyVersion(ctx, "o_1", findVersion(t, f.keyVersions(t, "o_1"), DataKey, Sessions, 1).ID); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name          string
		scope         string
		user, session string
		length        int
		version       uint32
		want          error
	}{
		{"empty user", "o_1", "", "s", 32, 0, ErrInvalidDeriveInput},
		{"empty session", "o_1", "u", "", 32, 0, ErrInvalidDeriveInput},
		{"long user", "o_1", string(make([]byte, MaxDeriveIDLen+1)), "s", 32, 0, ErrInvalidDeriveInput},
		{"too short", "o_1", "u", "s", MinDerivedKeyLen - 1, 0, ErrInvalidDeriveInput},
		{"too long", "o_1", "u", "s", MaxDerivedKeyLen + 1, 0, ErrInvalidDeriveInput},
		{"destroyed version", "o_1", "u", "s", 32, 1, ErrKeyVersionDestroyed},
		{"unknown version", "o_1", "u", "s", 32, 99, ErrKeyVersionNotFound},
		{"unknown scope", "o_404", "u", "s", 32, 0, ErrScopeNotFound},
		{"invalid scope", "o 1", "u", "s", 32, 0, ErrInvalidScopeID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := f.kr.DeriveKey(ctx, tt.scope, tt.user, tt.session, tt.length, tt.version)
			if !errors.Is(err, tt.want) {
				t.Errorf("DeriveKey = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestLifecycleFailures checks that lifecycle operations against a broken
// backend fail as backend failures and change nothing.
func TestLifecycleFailures(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{})
	f.mustCreate(t, "o_1")
	before := f.keyVersions(t, "o_1")

	f.croot.fail.Store(true)
	if _, err := f.kr.RotateKeys(ctx, "o_1", false); !errors.Is(err, ErrRootKMS) {
		t.Errorf("RotateKeys with root down = %v, want ErrRootKMS", err)
	}
	if _, err := f.kr.RewrapKeys(ctx, "o_1"); !errors.Is(err, ErrRootKMS) {
		t.Errorf("RewrapKeys with root down = %v, want ErrRootKMS", err)
	}
	f.croot.fail.Store(false)

	f.cst.fail.Store(true)
	for name, call := range map[string]func() error{
		"rotate":       func() error { _, err := f.kr.RotateKeys(ctx, "o_1", true); return err },
		"rewrap":       func() error { _, err := f.kr.RewrapKeys(ctx, "o_1"); return err },
		"rewrap all":   func() error { _, err := f.kr.RewrapAll(ctx); return err },
		"key versions": func() error { _, err := f.kr.KeyVersions(ctx, "o_1"); return err },
		"destroy":      func() error { _, err := f.kr.DestroyKeyVersion(ctx, "o_1", before[1].ID); return err },
	} {
		t.Run(name, func(t *testing.T) {
			if err := call(); !errors.Is(err, ErrStore) || !errors.Is(err, errStoreDown) {
				t.Errorf("got %v, want ErrStore wrapping the store's error", err)
			}
		})
	}
	f.cst.fail.Store(false)

	if after := f.keyVersions(t, "o_1"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("failed operations changed the key versions:\n got %v\nwant %v", after, before)
	}
	for name, call := range map[string]func() error{
		"rotate unknown":  func() error { _, err := f.kr.RotateKeys(ctx, "o_404", false); return err },
		"rewrap unknown":  func() error { _, err := f.kr.RewrapKeys(ctx, "o_404"); return err },
		"versions":        func() error { _, err := f.kr.KeyVersions(ctx, "o_404"); return err },
		"destroy unknown": func() error { _, err := f.kr.DestroyKeyVersion(ctx, "o_404", before[1].ID); return err },
	} {
		t.Run(name, func(t *testing.T) {
			if err := call(); !errors.Is(err, ErrScopeNotFound) {
				t.Errorf("got %v, want ErrScopeNotFound", err)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := storetest.SQLite(t)
	seed := newFixture(t, fixtureOpts{backend: b})
	seed.mustCreate(t, "o_1")
	s := seed.seal(t, "o_1", Database, "x")

	f := newFixture(t, fixtureOpts{backend: b, root: seed.root, opts: Options{Registerer: reg}})
	f.mustOpenAll(t, []sealed{s, s, s})

	st := f.kr.Stats()
	if st.CacheMisses != 1 || st.CacheHits != 2 || st.RootCalls != 1 || st.CachedScopes != 1 {
		t.Errorf("Stats = %+v, want 1 miss, 2 hits, 1 root call, 1 cached scope", st)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"kmsbroker_keyring_cache_hits_total":   2,
		"kmsbroker_keyring_cache_misses_total": 1,
		"kmsbroker_keyring_root_calls_total":   1,
		"kmsbroker_keyring_cached_scopes":      1,
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %v, want %v", name, got[name], w)
		}
	}
}

// TestDestroyWaitsForOtherBrokers is the regression test for destroying a
// data key version right after a rotation on another broker: b, which has
// not looked since, still encrypts with the old version, so the destroy
// must be refused until every broker has moved on.
func TestDestroyWaitsForOtherBrokers(t *testing.T) {
	ctx := context.Background()
	a, bb := twoBrokers(t)
	bb.clock = a.clock
	bb.kr.now = a.clock.Now
	a.mustCreate(t, "o_1")
	bb.seal(t, "o_1", Database, "warms b's cache at v1")

	if _, err := a.kr.RotateKeys(ctx, "o_1", true); err != nil {
		t.Fatal(err)
	}
	v1 := findVersion(t, a.keyVersions(t, "o_1"), DataKey, Database, 1).ID
	stale := bb.seal(t, "o_1", Database, "b has not seen the rotation")
	if stale.version != 1 {
		t.Fatalf("b encrypted with version %d, want its cached 1", stale.version)
	}
	_, err := a.kr.DestroyKeyVersion(ctx, "o_1", v1)
	if !errors.Is(err, ErrKeyVersionRecent) {
		t.Fatalf("destroy right after the rotation = %v, want ErrKeyVersionRecent", err)
	}
	bb.mustOpenAll(t, []sealed{stale})

	a.clock.Advance(2 * time.Second)
	if after := bb.seal(t, "o_1", Database, "b after its check"); after.version != 2 {
		t.Fatalf("b encrypted with version %d after the grace, want 2", after.version)
	}
	if _, err := a.kr.DestroyKeyVersion(ctx, "o_1", v1); err != nil {
		t.Fatalf("destroy after the grace: %v", err)
	}
}

// TestClockStepBackRechecks is the regression test for a wall clock that
// steps back: the cached scope must be checked again, not trusted until
// the clock catches up.
func TestClockStepBackRechecks(t *testing.T) {
	ctx := context.Background()
	a, bb := twoBrokers(t)
	a.mustCreate(t, "o_1")
	bb.seal(t, "o_1", Database, "warms b's cache at v1")
	if _, err := a.kr.RotateKeys(ctx, "o_1", false); err != nil {
		t.Fatal(err)
	}
	bb.clock.Advance(-time.Hour)
	if got := bb.seal(t, "o_1", Database, "after the step"); got.version != 2 {
		t.Fatalf("after the clock stepped back b encrypted with version %d, want 2", got.version)
	}
}

// twoBrokers returns two keyrings on one SQLite store and root key, each
// with its own clock and a one-second StaleAfter.
func twoBrokers(t *testing.T) (a, b *fixture) {
	t.Helper()
	backend := storetest.SQLite(t)
	root := newTestRoot(t, "root-1")
	opts := Options{StaleAfter: time.Second}
	return newFixture(t, fixtureOpts{backend: backend, root: root, opts: opts}),
		newFixture(t, fixtureOpts{backend: backend, root: root, opts: opts})
}
