package keyring

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/kmsbroker/kmsbroker/broker/keyring/envelope"
	"github.com/kmsbroker/kmsbroker/broker/store/storetest"
)

func TestRoundTrip(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.mustCreate(t, "o_1")

	sizes := []int{1, 64, 1024, 64 << 10}
	aads := [][]byte{nil, []byte("row 7 of table users")}
	for _, p := range DataPurposes() {
		for _, n := range sizes {
			for _, aad := range aads {
				t.Run(fmt.Sprintf("%s/%dB/aad%d", p, n, len(aad)), func(t *testing.T) {
					pt := bytes.Repeat([]byte{byte(n)}, n)
					env, v := f.mustEncrypt(t, "o_1", p, pt, aad)
					if v != 1 {
						t.Errorf("Encrypt version = %d, want 1", v)
					}
					if len(env) != n+envelope.Overhead {
						t.Errorf("envelope length = %d, want %d", len(env), n+envelope.Overhead)
					}
					if got := f.mustDecrypt(t, "o_1", p, env, aad, pt); got != 1 {
						t.Errorf("Decrypt version = %d, want 1", got)
					}
				})
			}
		}
	}

	t.Run("nonces differ", func(t *testing.T) {
		a, _ := f.mustEncrypt(t, "o_1", Database, []byte("same"), nil)
		b, _ := f.mustEncrypt(t, "o_1", Database, []byte("same"), nil)
		if bytes.Equal(a, b) {
			t.Error("two encryptions of the same plaintext are identical")
		}
	})
}

func TestScopeInfo(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	created, err := f.kr.CreateScope(ctx, "o_b", "Org B")
	if err != nil {
		t.Fatal(err)
	}
	f.mustCreate(t, "o_a")

	want := map[DataPurpose]uint32{Database: 1, Oplog: 1, Tokens: 1, Sessions: 1}
	got, err := f.kr.Scope(ctx, "o_b")
	if err != nil {
		t.Fatalf("Scope: %v", err)
	}
	if got.ID != "o_b" || got.Name != "Org B" || got.RootKeyVersion != 1 || !got.CreateTime.Equal(created.CreateTime) || !equalVersions(got.DataKeys, want) {
		t.Errorf("Scope = %+v, want o_b / Org B / root 1 / %v / created %v", got, want, created.CreateTime)
	}
	if !equalVersions(created.DataKeys, want) || created.RootKeyVersion != 1 {
		t.Errorf("CreateScope = %+v, want root 1 and %v", created, want)
	}

	list, err := f.kr.ListScopes(ctx)
	if err != nil {
		t.Fatalf("ListScopes: %v", err)
	}
	if len(list) != 2 || list[0].ID != "o_a" || list[1].ID != "o_b" || !equalVersions(list[0].DataKeys, want) {
		t.Errorf("ListScopes = %+v, want o_a then o_b with version 1 keys", list)
	}
}

func equalVersions(a, b map[DataPurpose]uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestScopeIDs(t *testing.T) {
	raw, err := os.ReadFile("testdata/scope_ids.json")
	if err != nil {
		t.Fatal(err)
	}
	var ids struct{ Valid, Invalid []string }
	if err := json.Unmarshal(raw, &ids); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids.Valid {
		t.Run("valid/"+id, func(t *testing.T) {
			if err := validateID(id); err != nil {
				t.Errorf("validateID(%q) = %v, want nil", id, err)
			}
		})
	}
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	for i, id := range ids.Invalid {
		t.Run(fmt.Sprintf("invalid/%d", i), func(t *testing.T) {
			_, err := f.kr.CreateScope(ctx, id, "")
			if !errors.Is(err, ErrInvalidScopeID) {
				t.Fatalf("CreateScope(%q) = %v, want ErrInvalidScopeID", id, err)
			}
			if id != "" && strings.Contains(err.Error(), id) {
				t.Errorf("error echoes the invalid id: %v", err)
			}
			if _, _, err := f.kr.Encrypt(ctx, id, Database, []byte("x"), nil); !errors.Is(err, ErrInvalidScopeID) {
				t.Errorf("Encrypt(%q) = %v, want ErrInvalidScopeID", id, err)
			}
			if _, _, err := f.kr.Decrypt(ctx, id, Database, []byte("x"), nil); !errors.Is(err, ErrInvalidScopeID) {
				t.Errorf("Decrypt(%q) = %v, want ErrInvalidScopeID", id, err)
			}
		})
	}
	if n := f.croot.calls(); n != 0 {
		t.Errorf("invalid ids made %d root calls, want 0", n)
	}
}

func TestParseDataPurpose(t *testing.T) {
	tests := []struct {
		in   string
		want DataPurpose
		err  error
	}{
		{"database", Database, nil},
		{"oplog", Oplog, nil},
		{"tokens", Tokens, nil},
		{"sessions", Sessions, nil},
		{"Database", "", ErrUnknownDataPurpose},
		{"", "", ErrUnknownDataPurpose},
		{"root", "", ErrUnknownDataPurpose},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDataPurpose(tt.in)
			if got != tt.want || !errors.Is(err, tt.err) {
				t.Errorf("ParseDataPurpose(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}

// TestRequestErrors covers every bad request with its sentinel.
func TestRequestErrors(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	f.mustCreate(t, "o_1")
	env, _ := f.mustEncrypt(t, "o_1", Database, []byte("x"), nil)

	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"create existing", func() error { _, err := f.kr.CreateScope(ctx, "o_1", ""); return err }, ErrScopeExists},
		{"create long name", func() error {
			_, err := f.kr.CreateScope(ctx, "o_2", strings.Repeat("n", MaxScopeNameLen+1))
			return err
		}, ErrInvalidScopeName},
		{"create name with newline", func() error { _, err := f.kr.CreateScope(ctx, "o_2", "a\nb"); return err }, ErrInvalidScopeName},
		{"create name not utf-8", func() error { _, err := f.kr.CreateScope(ctx, "o_2", "\xff"); return err }, ErrInvalidScopeName},
		{"read missing", func() error { _, err := f.kr.Scope(ctx, "o_404"); return err }, ErrScopeNotFound},
		{"encrypt missing scope", func() error { _, _, err := f.kr.Encrypt(ctx, "o_404", Database, []byte("x"), nil); return err }, ErrScopeNotFound},
		{"decrypt missing scope", func() error { _, _, err := f.kr.Decrypt(ctx, "o_404", Database, env, nil); return err }, ErrScopeNotFound},
		{"encrypt unknown purpose", func() error { _, _, err := f.kr.Encrypt(ctx, "o_1", "root", []byte("x"), nil); return err }, ErrUnknownDataPurpose},
		{"decrypt unknown purpose", func() error { _, _, err := f.kr.Decrypt(ctx, "o_1", "", env, nil); return err }, ErrUnknownDataPurpose},
		{"encrypt nil", func() error { _, _, err := f.kr.Encrypt(ctx, "o_1", Database, nil, nil); return err }, ErrEmptyPlaintext},
		{"encrypt empty", func() error { _, _, err := f.kr.Encrypt(ctx, "o_1", Database, []byte{}, nil); return err }, ErrEmptyPlaintext},
		{"encrypt too large", func() error {
			_, _, err := f.kr.Encrypt(ctx, "o_1", Database, make([]byte, MaxPlaintextLen+1), nil)
			return err
		}, ErrPlaintextTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if errors.Is(err, ErrStore) || errors.Is(err, ErrRootKMS) {
				t.Errorf("bad request reported as a backend failure: %v", err)
			}
		})
	}
}

// TestDecryptFailures checks that every envelope that must not open gets
// the one opaque ErrDecrypt, and that neither the errors nor the Debug
// log carry the plaintext, the aad or any key.
func TestDecryptFailures(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	f.mustCreate(t, "o_1")
	f.mustCreate(t, "o_2")
	secret := []byte("the plaintext nobody may see")
	aad := []byte("aad-marker-1234")
	env, _ := f.mustEncrypt(t, "o_1", Database, secret, aad)
	otherPurpose, _ := f.mustEncrypt(t, "o_1", Oplog, secret, aad)

	mutate := func(fn func([]byte) []byte) []byte { return fn(bytes.Clone(env)) }
	tests := []struct {
		name  string
		scope string
		p     DataPurpose
		env   []byte
		aad   []byte
	}{
		{"wrong aad", "o_1", Database, env, []byte("aad-marker-1235")},
		{"missing aad", "o_1", Database, env, nil},
		{"other scope", "o_2", Database, env, aad},
		{"other purpose", "o_1", Oplog, env, aad},
		{"envelope of another purpose", "o_1", Database, otherPurpose, aad},
		{"empty", "o_1", Database, nil, aad},
		{"garbage", "o_1", Database, []byte("not an envelope at all, just some bytes"), aad},
		{"truncated", "o_1", Database, env[:len(env)-1], aad},
		{"header only", "o_1", Database, env[:envelope.HeaderLen], aad},
		{"format version", "o_1", Database, mutate(func(b []byte) []byte { b[0] = 2; return b }), aad},
		{"purpose code", "o_1", Database, mutate(func(b []byte) []byte { b[1] = 9; return b }), aad},
		{"version zero", "o_1", Database, mutate(func(b []byte) []byte { b[5] = 0; b[4] = 0; b[3] = 0; b[2] = 0; return b }), aad},
		{"future version", "o_1", Database, mutate(func(b []byte) []byte { b[5] = 9; return b }), aad},
		{"nonce bit", "o_1", Database, mutate(func(b []byte) []byte { b[envelope.HeaderLen] ^= 1; return b }), aad},
		{"ciphertext bit", "o_1", Database, mutate(func(b []byte) []byte { b[envelope.HeaderLen+envelope.NonceLen] ^= 1; return b }), aad},
		{"tag bit", "o_1", Database, mutate(func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }), aad},
		{"appended byte", "o_1", Database, append(bytes.Clone(env), 0), aad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, v, err := f.kr.Decrypt(ctx, tt.scope, tt.p, tt.env, tt.aad)
			if err != ErrDecrypt {
				t.Fatalf("Decrypt = %v, want exactly ErrDecrypt", err)
			}
			if got != nil || v != 0 {
				t.Errorf("Decrypt returned %q, version %d alongside the error", got, v)
			}
		})
	}

	logs := f.logs.String()
	if !strings.Contains(logs, "decrypt failed") {
		t.Fatalf("no Debug log of the failures; logs:\n%s", logs)
	}
	for _, s := range [][]byte{secret, aad} {
		for _, form := range []string{string(s), hex.EncodeToString(s), base64.StdEncoding.EncodeToString(s)} {
			if strings.Contains(logs, form) {
				t.Errorf("logs contain a secret %q", form)
			}
		}
	}
	assertNoKeyInLogs(t, f, "o_1")
}

// assertNoKeyInLogs checks that no cached key of the scope appears in the
// fixture's logs in raw, hex or base64 form.
func assertNoKeyInLogs(t *testing.T, f *fixture, scope string) {
	t.Helper()
	e := f.kr.cache.get(scope)
	if e == nil {
		t.Fatalf("scope %s not cached", scope)
	}
	logs := f.logs.String()
	e.mu.Lock()
	defer e.mu.Unlock()
	var keys []*secretKey
	for _, k := range e.keks {
		keys = append(keys, k)
	}
	for _, k := range e.deks {
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		t.Fatal("no keys cached to check for")
	}
	for _, k := range keys {
		for _, form := range []string{string(k.raw), hex.EncodeToString(k.raw), base64.StdEncoding.EncodeToString(k.raw)} {
			if strings.Contains(logs, form) {
				t.Errorf("logs contain key version %s", k.id)
			}
		}
	}
}

func TestSecretKeyDoesNotPrint(t *testing.T) {
	raw := bytes.Repeat([]byte{0xab}, keyLen)
	k, err := newSecretKey("kek_test", bytes.Clone(raw))
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb, k)
		if strings.Contains(out, "abab") || strings.Contains(out, string(raw)) || strings.Contains(out, "171") {
			t.Errorf("Sprintf(%q) = %q shows key bytes", verb, out)
		}
	}
}

// TestBackendFailures checks that a failing store or root KMS surfaces
// as ErrStore or ErrRootKMS, never as a bad-request error.
func TestBackendFailures(t *testing.T) {
	ctx := context.Background()
	b := storetest.SQLite(t)
	root := newTestRoot(t, "root-1")
	seed := newFixture(t, fixtureOpts{backend: b, root: root})
	seed.mustCreate(t, "o_1")
	env, _ := seed.mustEncrypt(t, "o_1", Database, []byte("x"), nil)

	tests := []struct {
		name      string
		breakRoot bool
		call      func(f *fixture) error
		want      error
	}{
		{"create, root down", true, func(f *fixture) error { _, err := f.kr.CreateScope(ctx, "o_new", ""); return err }, ErrRootKMS},
		{"create, store down", false, func(f *fixture) error { _, err := f.kr.CreateScope(ctx, "o_new", ""); return err }, ErrStore},
		{"cold encrypt, root down", true, func(f *fixture) error { _, _, err := f.kr.Encrypt(ctx, "o_1", Database, []byte("x"), nil); return err }, ErrRootKMS},
		{"cold decrypt, root down", true, func(f *fixture) error { _, _, err := f.kr.Decrypt(ctx, "o_1", Database, env, nil); return err }, ErrRootKMS},
		{"cold encrypt, store down", false, func(f *fixture) error { _, _, err := f.kr.Encrypt(ctx, "o_1", Database, []byte("x"), nil); return err }, ErrStore},
		{"cold decrypt, store down", false, func(f *fixture) error { _, _, err := f.kr.Decrypt(ctx, "o_1", Database, env, nil); return err }, ErrStore},
		{"read, store down", false, func(f *fixture) error { _, err := f.kr.Scope(ctx, "o_1"); return err }, ErrStore},
		{"list, store down", false, func(f *fixture) error { _, err := f.kr.ListScopes(ctx); return err }, ErrStore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{backend: b, root: root})
			if tt.breakRoot {
				f.croot.fail.Store(true)
			} else {
				f.cst.fail.Store(true)
			}
			err := tt.call(f)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			for _, bad := range []error{ErrScopeNotFound, ErrScopeExists, ErrDecrypt, ErrInvalidScopeID} {
				if errors.Is(err, bad) {
					t.Errorf("backend failure %v also matches %v", err, bad)
				}
			}
			cause := errStoreDown
			if tt.breakRoot {
				cause = errRootDown
			}
			if !errors.Is(err, cause) {
				t.Errorf("error %v does not wrap the backend's own error", err)
			}
		})
	}
}

// TestWarmOperationsMakeNoCalls runs 10,000 data operations on warm
// scopes and checks that they reached neither the root KMS nor the store.
func TestWarmOperationsMakeNoCalls(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	scopes := []string{"o_1", "o_2", "o_3"}
	envs := map[string][]byte{}
	for _, s := range scopes {
		f.mustCreate(t, s)
		for _, p := range DataPurposes() {
			env, _ := f.mustEncrypt(t, s, p, []byte("warm-up "+s), []byte(p))
			envs[s+string(p)] = env
		}
	}
	rootBefore, storeBefore := f.croot.calls(), f.cst.calls.Load()

	const ops = 10000
	for i := range ops {
		s := scopes[i%len(scopes)]
		p := DataPurposes()[i%numPurposes]
		if i%2 == 0 {
			if _, _, err := f.kr.Encrypt(ctx, s, p, []byte("payload"), []byte(p)); err != nil {
				t.Fatalf("op %d: Encrypt: %v", i, err)
			}
		} else {
			f.mustDecrypt(t, s, p, envs[s+string(p)], []byte(p), []byte("warm-up "+s))
		}
	}

	if n := f.croot.calls() - rootBefore; n != 0 {
		t.Errorf("%d warm operations made %d root KMS calls, want 0", ops, n)
	}
	if n := f.cst.calls.Load() - storeBefore; n != 0 {
		t.Errorf("%d warm operations made %d store calls, want 0", ops, n)
	}
	if st := f.kr.Stats(); st.RootCalls != uint64(f.croot.calls()) {
		t.Errorf("Stats().RootCalls = %d, the root saw %d", st.RootCalls, f.croot.calls())
	}
}

// TestColdScopeUnwrappedOnce has many callers hit one cold scope at once
// and checks the scope was read and its KEK unwrapped exactly once.
func TestColdScopeUnwrappedOnce(t *testing.T) {
	b := storetest.SQLite(t)
	root := newTestRoot(t, "root-1")
	seed := newFixture(t, fixtureOpts{backend: b, root: root})
	seed.mustCreate(t, "o_1")
	env, _ := seed.mustEncrypt(t, "o_1", Database, []byte("cold"), nil)

	f := newFixture(t, fixtureOpts{backend: b, root: root})
	const callers = 64
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			got, _, err := f.kr.Decrypt(context.Background(), "o_1", Database, env, nil)
			if err == nil && string(got) != "cold" {
				err = fmt.Errorf("got %q", got)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Decrypt: %v", err)
		}
	}
	if n := f.croot.unwraps.Load(); n != 1 {
		t.Errorf("%d concurrent cold decrypts made %d root unwraps, want 1", callers, n)
	}
	if n := f.cst.reads.Load(); n != 1 {
		t.Errorf("%d concurrent cold decrypts read the scope %d times, want 1", callers, n)
	}
}

// TestEvictionZeroesKeys fills a two-scope cache with three scopes and
// checks that the evicted scope's key bytes were zeroed, that it still
// works after a reload, and that Close zeroes the rest.
func TestEvictionZeroesKeys(t *testing.T) {
	f := newFixture(t, fixtureOpts{opts: Options{CacheSize: 2}})
	ctx := context.Background()
	f.mustCreate(t, "o_1")
	env, _ := f.mustEncrypt(t, "o_1", Tokens, []byte("evicted"), nil)
	first := cachedKeys(t, f, "o_1")

	f.mustCreate(t, "o_2")
	f.mustCreate(t, "o_3")
	if f.kr.cache.get("o_1") != nil {
		t.Fatal("o_1 still cached after two newer scopes in a cache of 2")
	}
	assertZeroed(t, first, true)

	unwraps := f.croot.unwraps.Load()
	f.mustDecrypt(t, "o_1", Tokens, env, nil, []byte("evicted"))
	if n := f.croot.unwraps.Load() - unwraps; n != 1 {
		t.Errorf("reloading an evicted scope made %d unwraps, want 1", n)
	}
	if got := f.kr.Stats().CachedScopes; got != 2 {
		t.Errorf("CachedScopes = %d, want 2", got)
	}

	live := append(cachedKeys(t, f, "o_1"), cachedKeys(t, f, "o_3")...)
	assertZeroed(t, live, false)
	f.kr.Close()
	assertZeroed(t, live, true)
	if _, _, err := f.kr.Encrypt(ctx, "o_1", Tokens, []byte("x"), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Encrypt after Close = %v, want ErrClosed", err)
	}
}

func cachedKeys(t *testing.T, f *fixture, scope string) []*secretKey {
	t.Helper()
	e := f.kr.cache.get(scope)
	if e == nil {
		t.Fatalf("scope %s not cached", scope)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*secretKey
	for _, k := range e.keks {
		out = append(out, k)
	}
	for _, k := range e.deks {
		out = append(out, k)
	}
	if len(out) == 0 {
		t.Fatalf("scope %s has no unwrapped keys", scope)
	}
	return out
}

func assertZeroed(t *testing.T, keys []*secretKey, want bool) {
	t.Helper()
	for _, k := range keys {
		zero := bytes.Equal(k.raw, make([]byte, len(k.raw)))
		if zero != want {
			t.Errorf("key version %s zeroed = %v, want %v", k.id, zero, want)
		}
	}
}

// TestSecondKeyringDecrypts checks that an envelope made by one keyring
// opens with another on the same store, the way a second broker or a
// restarted one would.
func TestSecondKeyringDecrypts(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		root := newTestRoot(t, "root-1")
		a := newFixture(t, fixtureOpts{backend: b, root: root})
		other := newFixture(t, fixtureOpts{backend: b, root: root})
		a.mustCreate(t, "o_1")
		for _, p := range DataPurposes() {
			env, _ := a.mustEncrypt(t, "o_1", p, []byte("shared "+p), []byte("aad"))
			other.mustDecrypt(t, "o_1", p, env, []byte("aad"), []byte("shared "+p))
		}
		if _, err := other.kr.CreateScope(context.Background(), "o_1", ""); !errors.Is(err, ErrScopeExists) {
			t.Errorf("second keyring CreateScope of an existing scope = %v, want ErrScopeExists", err)
		}
	})
}

// TestStoredKeysAreBound checks that a KEK or DEK row copied to another
// scope does not unwrap there: the aad binds each to its place.
func TestStoredKeysAreBound(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	f.mustCreate(t, "o_1")
	keys, err := f.st.ScopeKeys(ctx, "o_1")
	if err != nil {
		t.Fatal(err)
	}
	kek, err := f.kr.unwrapRoot(ctx, "o_1", keys.Root[0])
	if err != nil {
		t.Fatalf("unwrap KEK in its own scope: %v", err)
	}
	if _, err := f.kr.unwrapRoot(ctx, "o_2", keys.Root[0]); !errors.Is(err, ErrRootKMS) {
		t.Errorf("unwrap KEK as another scope's = %v, want ErrRootKMS", err)
	}
	moved := keys.Root[0]
	moved.Version = 2
	if _, err := f.kr.unwrapRoot(ctx, "o_1", moved); !errors.Is(err, ErrRootKMS) {
		t.Errorf("unwrap KEK as another version = %v, want ErrRootKMS", err)
	}

	d := keys.Data[0]
	p := DataPurpose(d.Purpose)
	if _, err := unwrapDEK(kek.aead, d.Wrapped, dekAAD("o_1", p, d.Version, d.RootVersion)); err != nil {
		t.Fatalf("unwrap DEK in place: %v", err)
	}
	for name, ad := range map[string][]byte{
		"other scope":   dekAAD("o_2", p, d.Version, d.RootVersion),
		"other purpose": dekAAD("o_1", Sessions, d.Version, d.RootVersion),
		"other version": dekAAD("o_1", p, d.Version+1, d.RootVersion),
		"other kek":     dekAAD("o_1", p, d.Version, d.RootVersion+1),
	} {
		if _, err := unwrapDEK(kek.aead, d.Wrapped, ad); err == nil {
			t.Errorf("DEK unwrapped as %s", name)
		}
	}
}

// TestStoreOutageKeepsWarmScopesServing checks that a store that stops
// answering does not stop data operations on cached scopes: the staleness
// check fails, is logged once per StaleAfter, and the cached keys serve.
func TestStoreOutageKeepsWarmScopesServing(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	f.mustCreate(t, "o_1")
	before := f.seal(t, "o_1", Database, "before the outage")

	f.cst.fail.Store(true)
	f.clock.Advance(2 * DefaultStaleAfter)
	during := f.seal(t, "o_1", Database, "during the outage")
	f.mustOpenAll(t, []sealed{before, during})
	if n := strings.Count(f.logs.String(), "cannot check scope"); n != 1 {
		t.Errorf("outage logged %d times, want once per StaleAfter", n)
	}
	if _, _, err := f.kr.Encrypt(ctx, "o_2", Database, []byte("x"), nil); !errors.Is(err, ErrStore) {
		t.Errorf("Encrypt on an uncached scope during the outage = %v, want ErrStore", err)
	}

	f.cst.fail.Store(false)
	f.clock.Advance(2 * DefaultStaleAfter)
	calls := f.cst.calls.Load()
	f.mustOpenAll(t, []sealed{before, during})
	if f.cst.calls.Load() == calls {
		t.Error("no staleness check after the store came back")
	}
}

// TestForcedCheckDuringOutage checks that an envelope naming a version
// newer than any cached, which needs the store to be judged, fails as a
// store failure while the store is down, not as a bad envelope.
func TestForcedCheckDuringOutage(t *testing.T) {
	b := storetest.SQLite(t)
	a := newFixture(t, fixtureOpts{backend: b})
	other := newFixture(t, fixtureOpts{backend: b, root: a.root})
	a.mustCreate(t, "o_1")
	other.seal(t, "o_1", Database, "warm other up")
	if _, err := a.kr.RotateKeys(context.Background(), "o_1", false); err != nil {
		t.Fatal(err)
	}
	newer := a.seal(t, "o_1", Database, "v2")

	other.cst.fail.Store(true)
	_, _, err := other.kr.Decrypt(context.Background(), "o_1", Database, newer.env, newer.aad)
	if !errors.Is(err, ErrStore) || errors.Is(err, ErrDecrypt) {
		t.Fatalf("Decrypt of a newer version with the store down = %v, want ErrStore", err)
	}
	other.cst.fail.Store(false)
	other.mustOpenAll(t, []sealed{newer})
}
