package keyring

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"github.com/hashicorp/go-kms-wrapping/v2/aead"

	"github.com/kmsbroker/kmsbroker/broker/store"
	"github.com/kmsbroker/kmsbroker/broker/store/storetest"
)

// newAEADWrapper returns a real go-kms-wrapping AES-GCM wrapper with a
// fresh random key.
func newAEADWrapper(t testing.TB, keyID string) *aead.Wrapper {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	return aeadWrapperWithKey(t, key, keyID)
}

// aeadWrapperWithKey returns a real go-kms-wrapping AES-GCM wrapper with
// the given key.
func aeadWrapperWithKey(t testing.TB, key []byte, keyID string) *aead.Wrapper {
	t.Helper()
	w := aead.NewWrapper()
	if err := w.SetAesGcmKeyBytes(key); err != nil {
		t.Fatalf("set aead key: %v", err)
	}
	if _, err := w.SetConfig(context.Background(), wrapping.WithKeyId(keyID)); err != nil {
		t.Fatalf("configure aead wrapper: %v", err)
	}
	return w
}

// testRoot adapts real wrappers to RootKMS the way the broker's purpose
// router does: WrapRoot uses the root wrapper; UnwrapRoot picks root or
// previous-root by the blob's key id.
type testRoot struct {
	mu       sync.Mutex
	root     wrapping.Wrapper
	rootID   string
	previous map[string]wrapping.Wrapper
}

func newTestRoot(t testing.TB, keyID string) *testRoot {
	return &testRoot{root: newAEADWrapper(t, keyID), rootID: keyID}
}

// rotate makes w the root and the old root the previous-root.
func (r *testRoot) rotate(w wrapping.Wrapper, keyID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.previous = map[string]wrapping.Wrapper{r.rootID: r.root}
	r.root, r.rootID = w, keyID
}

// dropPrevious removes previous-root.
func (r *testRoot) dropPrevious() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.previous = nil
}

func (r *testRoot) WrapRoot(ctx context.Context, key, aad []byte) (*wrapping.BlobInfo, error) {
	r.mu.Lock()
	w := r.root
	r.mu.Unlock()
	return w.Encrypt(ctx, key, wrapping.WithAad(aad))
}

func (r *testRoot) UnwrapRoot(ctx context.Context, blob *wrapping.BlobInfo, aad []byte) ([]byte, error) {
	r.mu.Lock()
	w := r.root
	if id := blob.GetKeyInfo().GetKeyId(); id != r.rootID {
		w = r.previous[id]
	}
	r.mu.Unlock()
	if w == nil {
		return nil, fmt.Errorf("no root or previous-root key %q", blob.GetKeyInfo().GetKeyId())
	}
	// The aead wrapper slices the ciphertext without checking its length.
	if len(blob.GetCiphertext()) < 12+16 {
		return nil, errors.New("blob too short")
	}
	return w.Decrypt(ctx, blob, wrapping.WithAad(aad))
}

func (r *testRoot) RootKeyID(context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rootID, nil
}

// countingRoot counts calls to a RootKMS and can be switched to fail.
type countingRoot struct {
	RootKMS
	wraps, unwraps atomic.Int64
	fail           atomic.Bool
}

var errRootDown = errors.New("test root kms switched off")

func (c *countingRoot) WrapRoot(ctx context.Context, key, aad []byte) (*wrapping.BlobInfo, error) {
	c.wraps.Add(1)
	if c.fail.Load() {
		return nil, errRootDown
	}
	return c.RootKMS.WrapRoot(ctx, key, aad)
}

func (c *countingRoot) UnwrapRoot(ctx context.Context, blob *wrapping.BlobInfo, aad []byte) ([]byte, error) {
	c.unwraps.Add(1)
	if c.fail.Load() {
		return nil, errRootDown
	}
	return c.RootKMS.UnwrapRoot(ctx, blob, aad)
}

func (c *countingRoot) calls() int64 { return c.wraps.Load() + c.unwraps.Load() }

// countingStore counts calls to a KeyStore and can be switched to fail.
type countingStore struct {
	store.KeyStore
	calls atomic.Int64
	reads atomic.Int64 // ScopeKeys only
	fail  atomic.Bool
}

var errStoreDown = errors.New("test store switched off")

func (c *countingStore) count() error {
	c.calls.Add(1)
	if c.fail.Load() {
		return errStoreDown
	}
	return nil
}

func (c *countingStore) CreateScope(ctx context.Context, keys store.ScopeKeys) error {
	if err := c.count(); err != nil {
		return err
	}
	return c.KeyStore.CreateScope(ctx, keys)
}

func (c *countingStore) Scope(ctx context.Context, id string) (store.Scope, error) {
	if err := c.count(); err != nil {
		return store.Scope{}, err
	}
	return c.KeyStore.Scope(ctx, id)
}

func (c *countingStore) ListScopes(ctx context.Context) ([]store.Scope, error) {
	if err := c.count(); err != nil {
		return nil, err
	}
	return c.KeyStore.ListScopes(ctx)
}

func (c *countingStore) ScopeKeys(ctx context.Context, id string) (store.ScopeKeys, error) {
	c.reads.Add(1)
	if err := c.count(); err != nil {
		return store.ScopeKeys{}, err
	}
	return c.KeyStore.ScopeKeys(ctx, id)
}

func (c *countingStore) ScopeGeneration(ctx context.Context, id string) (uint64, error) {
	if err := c.count(); err != nil {
		return 0, err
	}
	return c.KeyStore.ScopeGeneration(ctx, id)
}

func (c *countingStore) UpdateKeys(ctx context.Context, id string, gen uint64, ch store.KeyChanges) (uint64, error) {
	if err := c.count(); err != nil {
		return 0, err
	}
	return c.KeyStore.UpdateKeys(ctx, id, gen, ch)
}

// fakeClock is a settable clock, for staleness tests.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// fixture is a keyring on a real store with counting decorators.
type fixture struct {
	kr    *Keyring
	root  *testRoot
	croot *countingRoot
	cst   *countingStore
	st    store.Store
	clock *fakeClock
	logs  *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixtureOpts struct {
	backend storetest.Backend
	root    *testRoot
	opts    Options
}

func newFixture(t testing.TB, fo fixtureOpts) *fixture {
	t.Helper()
	if fo.backend.Kind == "" {
		fo.backend = storetest.SQLite(t)
	}
	if fo.root == nil {
		fo.root = newTestRoot(t, "root-1")
	}
	f := &fixture{root: fo.root, clock: newFakeClock(), logs: &syncBuffer{}}
	f.st = storetest.Open(t, fo.backend)
	f.croot = &countingRoot{RootKMS: fo.root}
	f.cst = &countingStore{KeyStore: f.st}
	if fo.opts.Now == nil {
		fo.opts.Now = f.clock.Now
	}
	logger := hclog.New(&hclog.LoggerOptions{Output: f.logs, Level: hclog.Debug})
	f.kr = New(f.cst, f.croot, fo.opts, logger)
	t.Cleanup(f.kr.Close)
	return f
}

func (f *fixture) mustCreate(t testing.TB, id string) {
	t.Helper()
	if _, err := f.kr.CreateScope(context.Background(), id, "scope "+id); err != nil {
		t.Fatalf("CreateScope(%q): %v", id, err)
	}
}

func (f *fixture) mustEncrypt(t testing.TB, scope string, p DataPurpose, pt, aad []byte) ([]byte, uint32) {
	t.Helper()
	env, v, err := f.kr.Encrypt(context.Background(), scope, p, pt, aad)
	if err != nil {
		t.Fatalf("Encrypt(%q, %s): %v", scope, p, err)
	}
	return env, v
}

func (f *fixture) mustDecrypt(t testing.TB, scope string, p DataPurpose, env, aad, want []byte) uint32 {
	t.Helper()
	got, v, err := f.kr.Decrypt(context.Background(), scope, p, env, aad)
	if err != nil {
		t.Fatalf("Decrypt(%q, %s): %v", scope, p, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Decrypt(%q, %s) = %q, want %q", scope, p, got, want)
	}
	return v
}
