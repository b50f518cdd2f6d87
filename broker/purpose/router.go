package purpose

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
)

// Wrapper is what serves an external purpose: in the broker, a running
// plugin. Implementations must be safe for concurrent use.
type Wrapper interface {
	Encrypt(ctx context.Context, plaintext, aad []byte) (*wrapping.BlobInfo, error)
	Decrypt(ctx context.Context, blob *wrapping.BlobInfo, aad []byte) ([]byte, error)
}

// ErrNotConfigured means no KMS block serves the purpose.
var ErrNotConfigured = errors.New("purpose not configured")

// Router sends each external purpose's calls to the wrapper serving it.
// Wrappers must bind aad; the plugin host does so itself for plugins that
// cannot (Vault transit).
type Router struct {
	mu       sync.RWMutex
	wrappers map[Purpose]Wrapper
	retry    func(error) bool

	// rootKeyID is the key id the root wrapper's newest blob carried. A
	// KMS may resolve an alias to a key at encrypt time, so this is the
	// only reliable name of the key that wraps now.
	rootKeyID atomic.Pointer[string]
}

// NewRouter returns a router over the given wrappers. retry reports whether
// a failed call may be repeated once (the plugin was restarted under it);
// nil means never.
func NewRouter(wrappers map[Purpose]Wrapper, retry func(error) bool) *Router {
	m := make(map[Purpose]Wrapper, len(wrappers))
	for p, w := range wrappers {
		m[p] = w
	}
	if retry == nil {
		retry = func(error) bool { return false }
	}
	return &Router{wrappers: m, retry: retry}
}

// Set replaces the wrapper serving p; a nil w removes it. It is how a
// reloaded KMS block takes over.
func (r *Router) Set(p Purpose, w Wrapper) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w == nil {
		delete(r.wrappers, p)
		return
	}
	r.wrappers[p] = w
}

// Has reports whether a wrapper serves p.
func (r *Router) Has(p Purpose) bool {
	_, ok := r.wrapper(p)
	return ok
}

func (r *Router) wrapper(p Purpose) (Wrapper, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	w, ok := r.wrappers[p]
	return w, ok
}

// Encrypt encrypts plaintext with the wrapper serving p, bound to aad.
// PreviousRoot never encrypts.
func (r *Router) Encrypt(ctx context.Context, p Purpose, plaintext, aad []byte) (*wrapping.BlobInfo, error) {
	if p == PreviousRoot {
		return nil, fmt.Errorf("encrypt with %s: the purpose only decrypts", p)
	}
	w, ok := r.wrapper(p)
	if !ok {
		return nil, fmt.Errorf("encrypt with %s: %w", p, ErrNotConfigured)
	}

	blob, err := w.Encrypt(ctx, plaintext, aad)
	if err != nil && r.retry(err) {
		blob, err = w.Encrypt(ctx, plaintext, aad)
	}
	if err != nil {
		return nil, fmt.Errorf("encrypt with %s: %w", p, err)
	}
	return blob, nil
}

// Decrypt opens a blob made by Encrypt for purpose p with the same aad.
func (r *Router) Decrypt(ctx context.Context, p Purpose, blob *wrapping.BlobInfo, aad []byte) ([]byte, error) {
	w, ok := r.wrapper(p)
	if !ok {
		return nil, fmt.Errorf("decrypt with %s: %w", p, ErrNotConfigured)
	}

	plaintext, err := w.Decrypt(ctx, blob, aad)
	if err != nil && r.retry(err) {
		plaintext, err = w.Decrypt(ctx, blob, aad)
	}
	if err != nil {
		return nil, fmt.Errorf("decrypt with %s: %w", p, err)
	}
	return plaintext, nil
}

// WrapRoot wraps a scope key with the root purpose.
func (r *Router) WrapRoot(ctx context.Context, key, aad []byte) (*wrapping.BlobInfo, error) {
	blob, err := r.Encrypt(ctx, Root, key, aad)
	if err != nil {
		return nil, err
	}
	id := blob.GetKeyInfo().GetKeyId()
	r.rootKeyID.Store(&id)
	return blob, nil
}

// ErrRootKeyUnknown means no root blob has been made yet; ProbeRoot
// makes one.
var ErrRootKeyUnknown = errors.New("root key id not yet known")

// RootKeyID returns the key id of the root wrapper's newest blob without
// calling the KMS.
func (r *Router) RootKeyID(context.Context) (string, error) {
	id := r.rootKeyID.Load()
	if id == nil {
		return "", ErrRootKeyUnknown
	}
	return *id, nil
}

// ProbeRoot wraps and unwraps a random value with the root purpose. It
// proves the root KMS works and learns the key id it wraps with. The
// broker calls it once at start and after a reload of the root block.
func (r *Router) ProbeRoot(ctx context.Context) error {
	probe := make([]byte, 32)
	if _, err := rand.Read(probe); err != nil {
		return fmt.Errorf("probe root: %w", err)
	}
	aad := []byte("kmsbroker root probe")
	blob, err := r.WrapRoot(ctx, probe, aad)
	if err != nil {
		return fmt.Errorf("probe root: %w", err)
	}
	got, err := r.Decrypt(ctx, Root, blob, aad)
	if err != nil {
		return fmt.Errorf("probe root: %w", err)
	}
	if subtle.ConstantTimeCompare(got, probe) != 1 {
		return errors.New("probe root: the root wrapper returned a different value")
	}
	return nil
}

// UnwrapRoot unwraps a scope key with the root purpose, falling back to
// previous-root when root cannot open it. That fallback is what lets an
// operator move every scope to a new root key: configure the old key as
// previous-root, rewrap, then remove it.
func (r *Router) UnwrapRoot(ctx context.Context, blob *wrapping.BlobInfo, aad []byte) ([]byte, error) {
	key, err := r.Decrypt(ctx, Root, blob, aad)
	if err == nil || !r.Has(PreviousRoot) {
		return key, err
	}
	key, prevErr := r.Decrypt(ctx, PreviousRoot, blob, aad)
	if prevErr != nil {
		return nil, errors.Join(err, prevErr)
	}
	return key, nil
}
