// Package keyring holds each scope's key hierarchy and encrypts and
// decrypts data with it.
//
// Every scope has a KEK (key-encryption key) and one DEK (data-encryption
// key) per data purpose, each with numbered versions. A KEK version is 32
// random bytes wrapped by the external root key (RootKMS), with the scope
// id and version bound as additional data. A DEK version is 32 random
// bytes encrypted in-core with AES-256-GCM by a KEK version, bound to the
// scope, purpose, DEK version and KEK version. The store holds only these
// wrapped forms.
//
// Data is sealed into envelopes (package envelope) by the newest DEK
// version of its purpose; any live version opens. Unwrapped keys are kept
// in a bounded LRU cache of scopes with ready AEADs, so encrypting and
// decrypting on a warm scope calls neither the root KMS nor the store. A
// cold scope is read and unwrapped once however many callers want it
// (singleflight), and no lock is held across a root KMS or store call.
//
// Several brokers may share one store. A broker notices another's changes
// to a scope (rotation, rewrap, destruction) the first time it uses the
// scope after Options.StaleAfter has passed since its last check, with one
// cheap read of the scope's generation counter; until then it may encrypt
// with a version that is no longer the newest (which stays decryptable)
// and decrypt with a version destroyed elsewhere. An envelope naming a
// version newer than any it knows triggers that check at once.
package keyring

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
	"google.golang.org/protobuf/proto"

	"github.com/kmsbroker/kmsbroker/broker/store"
)

// RootKMS is the external root purpose as the keyring sees it. The keyring
// passes the additional data to bind (scope id and KEK version); the
// implementation must bind it or fail, never ignore it.
type RootKMS interface {
	// WrapRoot encrypts a KEK with the current root key.
	WrapRoot(ctx context.Context, key, aad []byte) (*wrapping.BlobInfo, error)
	// UnwrapRoot decrypts a KEK with the root key, or with previous-root
	// for KEKs wrapped by a root key being retired.
	UnwrapRoot(ctx context.Context, blob *wrapping.BlobInfo, aad []byte) ([]byte, error)
	// RootKeyID returns the key id that WrapRoot's blobs carry in
	// KeyInfo.KeyId now. It should not call the KMS.
	RootKeyID(ctx context.Context) (string, error)
}

// Errors callers handle. Every error the keyring returns either is or
// wraps one of these, or comes from the caller's context.
var (
	// ErrScopeNotFound means no scope has the given id.
	ErrScopeNotFound = errors.New("scope not found")
	// ErrScopeExists means CreateScope was given an id already in use.
	ErrScopeExists = errors.New("scope already exists")
	// ErrInvalidScopeID means a scope id is not 1 to 64 characters of
	// A-Z, a-z, 0-9, '_' and '-'.
	ErrInvalidScopeID = errors.New("invalid scope id")
	// ErrInvalidScopeName means a scope name is longer than
	// MaxScopeNameLen bytes, not UTF-8, or holds control characters.
	ErrInvalidScopeName = errors.New("invalid scope name")
	// ErrUnknownDataPurpose means a data purpose is not one of database,
	// oplog, tokens, sessions.
	ErrUnknownDataPurpose = errors.New("unknown data purpose")
	// ErrEmptyPlaintext means Encrypt was given nothing to encrypt.
	ErrEmptyPlaintext = errors.New("empty plaintext")
	// ErrPlaintextTooLarge means Encrypt was given more than
	// MaxPlaintextLen bytes.
	ErrPlaintextTooLarge = errors.New("plaintext too large")
	// ErrDecrypt is the one error for every envelope that does not open:
	// malformed, truncated, altered, made for another scope or purpose,
	// an unknown key version, or a different AAD. It never says which;
	// the reason is logged at Debug level.
	ErrDecrypt = errors.New("decrypt failed: envelope does not open with this scope, purpose and aad")
	// ErrKeyVersionDestroyed means the envelope was made by a key version
	// that has been destroyed: its data is gone for good.
	ErrKeyVersionDestroyed = errors.New("key version destroyed")
	// ErrStore wraps a failure of the key store; the store's error is
	// wrapped too. It is the broker's fault, not the request's.
	ErrStore = errors.New("key store failed")
	// ErrRootKMS wraps a failure of the root KMS to wrap or unwrap a KEK;
	// the KMS's error is wrapped too. It is the broker's fault, not the
	// request's.
	ErrRootKMS = errors.New("root kms failed")
	// ErrClosed means the keyring was closed.
	ErrClosed = errors.New("keyring closed")
)

// Limits.
const (
	// MaxScopeIDLen bounds scope ids: long enough for any prefixed random
	// id, short enough to bind cheaply into every envelope's AAD.
	MaxScopeIDLen = 64
	// MaxScopeNameLen bounds a scope's display name, an operator label.
	MaxScopeNameLen = 256
	// DefaultCacheSize is how many scopes stay unwrapped when
	// Options.CacheSize is 0: a few MiB of keys, and the working set of a
	// typical deployment.
	DefaultCacheSize = 1000
	// DefaultStaleAfter is how long a cached scope is used before its
	// generation is checked again when Options.StaleAfter is 0: one
	// indexed read per active scope per second, and a second is as long
	// as another broker's rotation can go unseen.
	DefaultStaleAfter = time.Second
	// minDestroyGrace is the shortest destroy grace (see
	// destroyGrace): on a single broker it still covers a data call that
	// picked the old version just before a rotation and is sealing with it.
	minDestroyGrace = time.Second
	// sharedCallTimeout bounds a root KMS or store call that several
	// callers wait on together: it runs detached from the first caller's
	// context, so one caller giving up does not fail the others. The
	// plugin host's own shorter per-call deadline applies inside it.
	sharedCallTimeout = 30 * time.Second
	// maxEntryRetries bounds how often one call looks a scope up again
	// after its cache entry was replaced under it (each replacement is a
	// committed key change or a refresh, and the successor inherits the
	// keys, so a retry is cheap). Running out takes that many changes to
	// one scope during a single call: a rotation storm, reported as
	// ErrConcurrentChange.
	maxEntryRetries = 16
)

// Options tunes a Keyring. The zero value is usable.
type Options struct {
	// CacheSize is how many scopes keep unwrapped keys; 0 means
	// DefaultCacheSize. The least recently used scope is evicted and its
	// key material zeroed.
	CacheSize int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// StaleAfter is how long a cached scope is trusted before its
	// generation is checked against the store; 0 means DefaultStaleAfter,
	// a negative value means never (a single broker that owns its store).
	StaleAfter time.Duration
	// Registerer, if set, receives the keyring's metrics: cache hits,
	// misses, root KMS calls and cached scopes.
	Registerer prometheus.Registerer
}

// Keyring holds the scopes' key hierarchy. It is safe for concurrent use.
type Keyring struct {
	st           store.KeyStore
	root         RootKMS
	now          func() time.Time
	staleAfter   time.Duration
	destroyGrace time.Duration
	log          hclog.Logger
	cache        *cache
	flight       singleflight.Group
	closed       atomic.Bool
	stats        stats
}

// New returns a keyring over st whose KEKs the root KMS protects. It makes
// no calls until used.
func New(st store.KeyStore, root RootKMS, opts Options, logger hclog.Logger) *Keyring {
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.StaleAfter == 0 {
		opts.StaleAfter = DefaultStaleAfter
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	k := &Keyring{
		st:           st,
		root:         root,
		now:          opts.Now,
		staleAfter:   opts.StaleAfter,
		destroyGrace: destroyGrace(opts.StaleAfter),
		log:          logger.Named("keyring"),
		cache:        newCache(opts.CacheSize),
	}
	if opts.Registerer != nil {
		k.registerMetrics(opts.Registerer)
	}
	return k
}

// destroyGrace is how long a data key version must have been replaced by
// a newer one before DestroyKeyVersion accepts it. A broker that has not
// yet seen a rotation made elsewhere encrypts with the old version for up
// to staleAfter, and destroying it then would leave those envelopes
// undecryptable. Twice staleAfter lets brokers' clocks disagree by up to
// staleAfter; it is never less than minDestroyGrace.
func destroyGrace(staleAfter time.Duration) time.Duration {
	return max(2*staleAfter, minDestroyGrace)
}

// Close zeroes all cached key material. Calls after Close fail with
// ErrClosed. It does not close the store.
func (k *Keyring) Close() {
	k.closed.Store(true)
	k.cache.purge()
}

// ScopeInfo describes a scope.
type ScopeInfo struct {
	ID         string
	Name       string
	CreateTime time.Time
	// RootKeyVersion is the scope's newest KEK version.
	RootKeyVersion uint32
	// DataKeys is the newest DEK version of each data purpose.
	DataKeys map[DataPurpose]uint32
}

// CreateScope creates a scope with a new KEK and one DEK per data purpose,
// all at version 1, and caches them, so the first data operation on the
// scope calls no KMS. name is a display label, empty allowed.
func (k *Keyring) CreateScope(ctx context.Context, id, name string) (ScopeInfo, error) {
	if err := k.check(id); err != nil {
		return ScopeInfo{}, fmt.Errorf("create scope: %w", err)
	}
	if err := validateName(name); err != nil {
		return ScopeInfo{}, fmt.Errorf("create scope %q: %w", id, err)
	}
	// Spend no root KMS call on a scope that exists; the insert below
	// catches a scope created in between.
	switch _, err := k.st.ScopeGeneration(ctx, id); {
	case err == nil:
		return ScopeInfo{}, fmt.Errorf("create scope %q: %w", id, ErrScopeExists)
	case !errors.Is(err, store.ErrNotFound):
		return ScopeInfo{}, fmt.Errorf("create scope %q: %w: %w", id, ErrStore, err)
	}

	now := k.now().UTC()
	kek, root, err := k.newKEK(ctx, id, 1, now)
	if err != nil {
		return ScopeInfo{}, fmt.Errorf("create scope %q: %w", id, err)
	}
	keys := store.ScopeKeys{
		Scope: store.Scope{ID: id, Name: name, CreateTime: now, Generation: 1},
		Root:  []store.RootKeyVersion{root},
	}
	deks := make([]*secretKey, 0, numPurposes)
	for _, p := range purposes {
		dek, row, err := newDEK(id, p, 1, kek, 1, now)
		if err != nil {
			kek.zero()
			zeroAll(deks)
			return ScopeInfo{}, fmt.Errorf("create scope %q: %w", id, err)
		}
		deks = append(deks, dek)
		keys.Data = append(keys.Data, row)
	}

	if err := k.st.CreateScope(ctx, keys); err != nil {
		kek.zero()
		zeroAll(deks)
		if errors.Is(err, store.ErrConflict) {
			return ScopeInfo{}, fmt.Errorf("create scope %q: %w", id, ErrScopeExists)
		}
		return ScopeInfo{}, fmt.Errorf("create scope %q: %w: %w", id, ErrStore, err)
	}

	e := newEntry(keys, k.now())
	e.keks[1] = kek
	for i, p := range purposes {
		e.deks[dataRef{p.code(), 1}] = deks[i]
	}
	k.cache.put(e)
	k.log.Info("scope created", "scope", id)

	info := ScopeInfo{ID: id, Name: name, CreateTime: now, RootKeyVersion: 1,
		DataKeys: map[DataPurpose]uint32{}}
	for _, p := range purposes {
		info.DataKeys[p] = 1
	}
	return info, nil
}

// Scope describes one scope, read from the store.
func (k *Keyring) Scope(ctx context.Context, id string) (ScopeInfo, error) {
	if err := k.check(id); err != nil {
		return ScopeInfo{}, fmt.Errorf("read scope: %w", err)
	}
	sc, err := k.st.Scope(ctx, id)
	if err != nil {
		return ScopeInfo{}, fmt.Errorf("read scope %q: %w", id, storeErr(err))
	}
	return scopeInfo(sc), nil
}

// ListScopes describes every scope, ordered by id.
//
// TODO: no pagination; 100,000 scopes come back in one slice.
func (k *Keyring) ListScopes(ctx context.Context) ([]ScopeInfo, error) {
	if k.closed.Load() {
		return nil, fmt.Errorf("list scopes: %w", ErrClosed)
	}
	scs, err := k.st.ListScopes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list scopes: %w: %w", ErrStore, err)
	}
	out := make([]ScopeInfo, len(scs))
	for i, sc := range scs {
		out[i] = scopeInfo(sc)
	}
	return out, nil
}

func scopeInfo(sc store.Scope) ScopeInfo {
	info := ScopeInfo{
		ID:             sc.ID,
		Name:           sc.Name,
		CreateTime:     sc.CreateTime,
		RootKeyVersion: sc.RootVersion,
		DataKeys:       make(map[DataPurpose]uint32, len(sc.DataVersions)),
	}
	for p, v := range sc.DataVersions {
		info.DataKeys[DataPurpose(p)] = v
	}
	return info
}

// check fails if the keyring is closed or id is not a valid scope id.
func (k *Keyring) check(id string) error {
	if k.closed.Load() {
		return ErrClosed
	}
	return validateID(id)
}

// validateID checks a scope id: 1 to MaxScopeIDLen characters of A-Z,
// a-z, 0-9, '_' and '-'. The id is echoed in errors only once valid.
func validateID(id string) error {
	if id == "" || len(id) > MaxScopeIDLen {
		return fmt.Errorf("%w: length %d, want 1 to %d", ErrInvalidScopeID, len(id), MaxScopeIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%w: character %d is not one of A-Z a-z 0-9 _ -", ErrInvalidScopeID, i+1)
		}
	}
	return nil
}

func validateName(name string) error {
	if len(name) > MaxScopeNameLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidScopeName, len(name), MaxScopeNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: not UTF-8", ErrInvalidScopeName)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: control character", ErrInvalidScopeName)
		}
	}
	return nil
}

// storeErr maps store.ErrNotFound to ErrScopeNotFound and marks anything
// else as a store failure.
func storeErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return ErrScopeNotFound
	}
	return fmt.Errorf("%w: %w", ErrStore, err)
}

// newKEK makes and root-wraps a new KEK version.
func (k *Keyring) newKEK(ctx context.Context, scopeID string, version uint32,
	now time.Time) (*secretKey, store.RootKeyVersion, error) {
	id := newVersionID("kek_")
	sk, err := newSecretKey(id, randomKey())
	if err != nil {
		return nil, store.RootKeyVersion{}, err
	}
	blob, keyID, err := k.wrapRoot(ctx, scopeID, version, sk.raw)
	if err != nil {
		sk.zero()
		return nil, store.RootKeyVersion{}, err
	}
	return sk, store.RootKeyVersion{Version: version, ID: id, Blob: blob,
		WrappingKeyID: keyID, CreateTime: now}, nil
}

// newDEK makes a DEK version wrapped by the given KEK version.
func newDEK(scopeID string, p DataPurpose, version uint32, kek *secretKey,
	kekVersion uint32, now time.Time) (*secretKey, store.DataKeyVersion, error) {
	id := newVersionID("dek_")
	sk, err := newSecretKey(id, randomKey())
	if err != nil {
		return nil, store.DataKeyVersion{}, err
	}
	row := store.DataKeyVersion{
		Purpose:     string(p),
		Version:     version,
		ID:          id,
		RootVersion: kekVersion,
		Wrapped:     wrapDEK(kek.aead, sk.raw, dekAAD(scopeID, p, version, kekVersion)),
		CreateTime:  now,
	}
	return sk, row, nil
}

func zeroAll(keys []*secretKey) {
	for _, k := range keys {
		k.zero()
	}
}

// wrapRoot wraps a KEK with the root KMS and returns the proto-encoded
// blob and the wrapping key's id.
func (k *Keyring) wrapRoot(ctx context.Context, scopeID string, version uint32,
	raw []byte) ([]byte, string, error) {
	k.stats.rootCall()
	blob, err := k.root.WrapRoot(ctx, raw, kekAAD(scopeID, version))
	if err != nil {
		return nil, "", fmt.Errorf("wrap key version %d: %w: %w", version, ErrRootKMS, err)
	}
	if blob == nil {
		return nil, "", fmt.Errorf("wrap key version %d: %w: no blob returned", version, ErrRootKMS)
	}
	b, err := proto.Marshal(blob)
	if err != nil {
		return nil, "", fmt.Errorf("wrap key version %d: encode blob: %w", version, err)
	}
	return b, blob.GetKeyInfo().GetKeyId(), nil
}

// unwrapRoot unwraps a stored KEK version with the root KMS.
func (k *Keyring) unwrapRoot(ctx context.Context, scopeID string,
	r store.RootKeyVersion) (*secretKey, error) {
	var blob wrapping.BlobInfo
	if err := proto.Unmarshal(r.Blob, &blob); err != nil {
		return nil, fmt.Errorf("unwrap key version %d: %w: stored blob does not decode: %w",
			r.Version, ErrRootKMS, err)
	}
	k.stats.rootCall()
	raw, err := k.root.UnwrapRoot(ctx, &blob, kekAAD(scopeID, r.Version))
	if err != nil {
		return nil, fmt.Errorf("unwrap key version %d: %w: %w", r.Version, ErrRootKMS, err)
	}
	sk, err := newSecretKey(r.ID, raw)
	if err != nil {
		clear(raw)
		return nil, fmt.Errorf("unwrap key version %d: %w: %w", r.Version, ErrRootKMS, err)
	}
	return sk, nil
}
