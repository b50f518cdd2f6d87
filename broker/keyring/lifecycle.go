package keyring

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/kmsbroker/kmsbroker/broker/store"
)

// Lifecycle errors callers handle.
var (
	// ErrKeyVersionNotFound means no key version of the scope has the
	// given id or number.
	ErrKeyVersionNotFound = errors.New("key version not found")
	// ErrKeyVersionActive means the version is the newest of its key,
	// the one that encrypts; rotate first.
	ErrKeyVersionActive = errors.New("key version is active")
	// ErrKeyVersionInUse means a root key (KEK) version still wraps live
	// data key versions; rewrap them (RewrapKeys, or RotateKeys with
	// rewrap) first.
	ErrKeyVersionInUse = errors.New("key version still wraps data keys")
	// ErrKeyVersionRecent means a data key version was replaced as the
	// active one less than twice Options.StaleAfter (at least a second)
	// ago, so a broker sharing the store may still be encrypting with
	// it; retry after that.
	ErrKeyVersionRecent = errors.New("key version replaced too recently to destroy")
	// ErrConcurrentChange means the scope's keys kept changing under the
	// operation (other rotations or rewraps) until it gave up; retry.
	ErrConcurrentChange = errors.New("scope keys changed concurrently")
)

const (
	// maxChangeAttempts bounds the read-modify-write retries of one
	// lifecycle operation. Each conflict means another change committed,
	// so running out takes a dozen-plus changes to one scope inside one
	// operation, which is an operator loop gone wrong, not load.
	maxChangeAttempts = 16
	// maxVersionIDLen bounds a version id from a request; ours are 20
	// characters, so anything much longer cannot match and is not echoed.
	maxVersionIDLen = 64
	// changeBackoff and maxChangeBackoff shape the pause between attempts:
	// doubling from 2 ms, capped at 200 ms, and randomized (full jitter) so
	// that colliding rotations spread out instead of colliding again. The
	// whole budget of attempts then spans a few seconds.
	changeBackoff    = 2 * time.Millisecond
	maxChangeBackoff = 200 * time.Millisecond
)

// backoff returns a random pause before attempt+1 of a lifecycle change.
func backoff(attempt int) time.Duration {
	d := min(changeBackoff<<min(attempt, 16), maxChangeBackoff)
	return d/2 + rand.N(d/2+1)
}

// errNoChange lets a change function finish without writing.
var errNoChange = errors.New("no change")

// change runs one read-modify-write of a scope's keys. fn sees a working
// entry built from a fresh snapshot of the store, with the keys the cache
// already has copied in, and returns the changes to apply at the
// snapshot's generation. Keys fn unwraps or creates into the working entry
// carry over to the cache. If another change commits first, everything is
// redone on a new snapshot. The working entry's copies are zeroed in the
// end.
func (k *Keyring) change(ctx context.Context, id string,
	fn func(w *scopeEntry) (store.KeyChanges, error)) error {
	if err := k.check(id); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		keys, err := k.st.ScopeKeys(ctx, id)
		if err != nil {
			return storeErr(err)
		}
		w := newEntry(keys, k.now())
		if cur := k.cache.get(id); cur != nil {
			cur.copyKeysInto(w)
		}

		ch, err := fn(w)
		if errors.Is(err, errNoChange) {
			w.retire(nil)
			return nil
		}
		if err != nil {
			w.retire(nil)
			return err
		}
		_, err = k.st.UpdateKeys(ctx, id, keys.Scope.Generation, ch)
		if errors.Is(err, store.ErrConflict) && attempt < maxChangeAttempts {
			w.retire(nil)
			k.log.Debug("scope keys changed concurrently; retrying", "scope", id, "attempt", attempt)
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			w.retire(nil)
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("%w: gave up after %d attempts", ErrConcurrentChange, attempt)
			}
			return storeErr(err)
		}

		k.publish(ctx, id, w)
		return nil
	}
}

// publish replaces the scope's cache entry after a committed change with
// one read back from the store, handing it the working entry's keys. If
// the read fails, the scope is dropped from the cache instead, so no stale
// entry survives.
func (k *Keyring) publish(ctx context.Context, id string, w *scopeEntry) {
	keys, err := k.st.ScopeKeys(ctx, id)
	if err != nil {
		w.retire(nil)
		k.cache.remove(id, nil)
		k.log.Warn("cannot reload scope after a key change; dropped it from the cache",
			"scope", id, "error", err)
		return
	}
	fresh := newEntry(keys, k.now())
	w.retire(fresh)
	k.cache.put(fresh)
	if k.closed.Load() {
		k.cache.purge()
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RotateKeys adds a new KEK version and a new version of every DEK, wrapped
// by the new KEK, in one transaction; the new versions encrypt from now on
// and every older one keeps decrypting. With rewrap, every older live DEK
// version is also re-encrypted under the new KEK in the same transaction,
// so older KEK versions stop protecting anything and can be destroyed.
// It costs one root KMS wrap, plus an unwrap for each older KEK version
// that rewrap needs and the cache lacks.
func (k *Keyring) RotateKeys(ctx context.Context, scopeID string, rewrap bool) (ScopeInfo, error) {
	var (
		rootV   uint32
		dataV   map[DataPurpose]uint32
		rewraps int
	)
	err := k.change(ctx, scopeID, func(w *scopeEntry) (store.KeyChanges, error) {
		now := k.now().UTC()
		rootV = w.newestRoot + 1
		dataV = make(map[DataPurpose]uint32, len(purposes))
		kek, root, err := k.newKEK(ctx, scopeID, rootV, now)
		if err != nil {
			return store.KeyChanges{}, err
		}
		if _, ok := w.addKEK(rootV, kek); !ok {
			return store.KeyChanges{}, errRetired
		}
		ch := store.KeyChanges{AddRoot: []store.RootKeyVersion{root}}
		for _, p := range purposes {
			v := w.newest[p.code()] + 1
			dek, row, err := newDEK(scopeID, p, v, kek, rootV, now)
			if err != nil {
				return store.KeyChanges{}, err
			}
			w.addDEK(dataRef{p.code(), v}, dek)
			ch.AddData = append(ch.AddData, row)
			dataV[p] = v
		}
		if rewrap {
			if ch.RewrapData, err = k.rewrapData(ctx, w, kek, rootV); err != nil {
				return store.KeyChanges{}, err
			}
		}
		rewraps = len(ch.RewrapData)
		return ch, nil
	})
	if err != nil {
		return ScopeInfo{}, fmt.Errorf("rotate keys of scope %q: %w", scopeID, err)
	}
	k.log.Info("scope keys rotated", "scope", scopeID, "key_version", rootV,
		"rewrapped_data_keys", rewraps)
	info, err := k.Scope(ctx, scopeID)
	if err != nil {
		return ScopeInfo{}, err
	}
	// Report the versions this rotation made, even if another broker
	// has rotated again since.
	info.RootKeyVersion, info.DataKeys = rootV, dataV
	return info, nil
}

// rewrapData re-encrypts every live DEK version of w that kekVersion does
// not already wrap under that KEK.
func (k *Keyring) rewrapData(ctx context.Context, w *scopeEntry, kek *secretKey,
	kekVersion uint32) ([]store.DataKeyVersion, error) {
	var out []store.DataKeyVersion
	for ref, row := range w.data {
		if !row.DestroyTime.IsZero() || row.RootVersion == kekVersion {
			continue
		}
		p := purposes[ref.code-1]
		dek, err := k.dataKey(ctx, w, p, ref.version)
		if err != nil {
			return nil, err
		}
		row.RootVersion = kekVersion
		row.Wrapped = wrapDEK(kek.aead, dek.raw, dekAAD(w.id, p, ref.version, kekVersion))
		out = append(out, row)
	}
	return out, nil
}

// RewrapResult counts what a rewrap re-encrypted.
type RewrapResult struct {
	// Scopes is how many scopes were rewrapped (1 for RewrapKeys).
	Scopes int
	// RootKeyVersions were re-encrypted under the current root key.
	RootKeyVersions int
	// DataKeyVersions were re-encrypted under the scope's newest KEK.
	DataKeyVersions int
	// KeyVersion is that newest KEK version (RewrapKeys only; 0 from
	// RewrapAll).
	KeyVersion uint32
}

// RewrapKeys re-encrypts, in one transaction, every live KEK version of the
// scope under the current root key, and every live DEK version under the
// scope's newest KEK. It is how a scope moves off a root key being retired
// (configured as previous-root) and how older KEK versions are freed for
// destruction. Key material does not change, so every envelope keeps
// opening. It costs one root KMS wrap per KEK version, plus an unwrap for
// each one the cache lacks.
func (k *Keyring) RewrapKeys(ctx context.Context, scopeID string) (RewrapResult, error) {
	res := RewrapResult{Scopes: 1}
	err := k.change(ctx, scopeID, func(w *scopeEntry) (store.KeyChanges, error) {
		var ch store.KeyChanges
		for v, r := range w.roots {
			if !r.DestroyTime.IsZero() {
				continue
			}
			kek, err := k.kekFor(ctx, w, v)
			if err != nil {
				return store.KeyChanges{}, err
			}
			blob, keyID, err := k.wrapRoot(ctx, scopeID, v, kek.raw)
			if err != nil {
				return store.KeyChanges{}, err
			}
			ch.RewrapRoot = append(ch.RewrapRoot, store.RootKeyVersion{Version: v,
				Blob: blob, WrappingKeyID: keyID})
		}
		newest, err := k.kekFor(ctx, w, w.newestRoot)
		if err != nil {
			return store.KeyChanges{}, err
		}
		if ch.RewrapData, err = k.rewrapData(ctx, w, newest, w.newestRoot); err != nil {
			return store.KeyChanges{}, err
		}
		res.RootKeyVersions, res.DataKeyVersions = len(ch.RewrapRoot), len(ch.RewrapData)
		res.KeyVersion = w.newestRoot
		return ch, nil
	})
	if err != nil {
		return RewrapResult{}, fmt.Errorf("rewrap keys of scope %q: %w", scopeID, err)
	}
	k.log.Info("scope keys rewrapped", "scope", scopeID, "root_key_versions",
		res.RootKeyVersions, "data_key_versions", res.DataKeyVersions)
	return res, nil
}

// RewrapAll runs RewrapKeys on every scope, one after another. It goes on
// past a scope that fails and returns the totals of those that succeeded
// with every failure joined; a context error stops it.
//
// TODO: scopes are rewrapped one at a time; a very large deployment may
// want bounded parallelism.
func (k *Keyring) RewrapAll(ctx context.Context) (RewrapResult, error) {
	scopes, err := k.ListScopes(ctx)
	if err != nil {
		return RewrapResult{}, fmt.Errorf("rewrap all scopes: %w", err)
	}
	var (
		total RewrapResult
		errs  []error
	)
	for _, sc := range scopes {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("rewrap all scopes: %w", err)
		}
		res, err := k.RewrapKeys(ctx, sc.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		total.Scopes++
		total.RootKeyVersions += res.RootKeyVersions
		total.DataKeyVersions += res.DataKeyVersions
	}
	if len(errs) > 0 {
		return total, fmt.Errorf("rewrap all scopes: %d of %d failed: %w",
			len(errs), len(scopes), errors.Join(errs...))
	}
	return total, nil
}

// KeyKind says whether a key version is a KEK or a DEK version.
type KeyKind string

// The key kinds.
const (
	RootKey KeyKind = "root"
	DataKey KeyKind = "data"
)

// KeyVersion describes one key version of a scope.
type KeyVersion struct {
	// ID is the version's stable id, used to destroy it.
	ID      string
	Kind    KeyKind
	Purpose DataPurpose // data keys only
	Version uint32
	// RootKeyVersion is the KEK version wrapping a data key version.
	RootKeyVersion uint32
	// WrappingKeyID is the external root key wrapping a root key version.
	WrappingKeyID string
	CreateTime    time.Time
	// DestroyTime is zero while the version is live.
	DestroyTime time.Time
	// Active marks the newest version of its key, the one that encrypts.
	Active bool
}

// KeyVersions lists the scope's key versions, destroyed ones included:
// root key versions first, then data key versions by purpose, each in
// version order.
func (k *Keyring) KeyVersions(ctx context.Context, scopeID string) ([]KeyVersion, error) {
	if err := k.check(scopeID); err != nil {
		return nil, fmt.Errorf("list key versions: %w", err)
	}
	keys, err := k.st.ScopeKeys(ctx, scopeID)
	if err != nil {
		return nil, fmt.Errorf("list key versions of scope %q: %w", scopeID, storeErr(err))
	}
	e := newEntry(keys, k.now())
	out := make([]KeyVersion, 0, len(keys.Root)+len(keys.Data))
	for _, r := range keys.Root {
		out = append(out, KeyVersion{
			ID: r.ID, Kind: RootKey, Version: r.Version, WrappingKeyID: r.WrappingKeyID,
			CreateTime: r.CreateTime, DestroyTime: r.DestroyTime, Active: r.Version == e.newestRoot,
		})
	}
	for _, p := range purposes {
		for _, d := range keys.Data {
			if d.Purpose != string(p) {
				continue
			}
			out = append(out, KeyVersion{
				ID: d.ID, Kind: DataKey, Purpose: p, Version: d.Version, RootKeyVersion: d.RootVersion,
				CreateTime: d.CreateTime, DestroyTime: d.DestroyTime, Active: d.Version == e.newest[p.code()],
			})
		}
	}
	return out, nil
}

// DestroyKeyVersion erases the wrapped key of one version, by stable id,
// for good: envelopes it made then fail with ErrKeyVersionDestroyed. It
// refuses the active version of a key (ErrKeyVersionActive), a data key
// version replaced less than twice Options.StaleAfter (at least a second)
// ago, which another broker may still encrypt with (ErrKeyVersionRecent),
// and a root key version that still wraps live data key versions
// (ErrKeyVersionInUse).
// Destroying a destroyed version does nothing. It returns the version
// number of the key version the id names, also with a refusal.
// Other brokers on the same store stop using the version within
// Options.StaleAfter.
func (k *Keyring) DestroyKeyVersion(ctx context.Context, scopeID, versionID string) (uint32, error) {
	if versionID == "" || len(versionID) > maxVersionIDLen {
		return 0, fmt.Errorf("destroy key version of scope %q: %w", scopeID, ErrKeyVersionNotFound)
	}
	var (
		desc    []any
		version uint32
	)
	err := k.change(ctx, scopeID, func(w *scopeEntry) (store.KeyChanges, error) {
		ch := store.KeyChanges{Destroy: []string{versionID}, DestroyTime: k.now().UTC()}
		for v, r := range w.roots {
			if r.ID != versionID {
				continue
			}
			version = v
			if !r.DestroyTime.IsZero() {
				return ch, errNoChange
			}
			if v == w.newestRoot {
				return ch, fmt.Errorf("root key version %d: %w", v, ErrKeyVersionActive)
			}
			n := 0
			for _, d := range w.data {
				if d.RootVersion == v && d.DestroyTime.IsZero() {
					n++
				}
			}
			if n > 0 {
				return ch, fmt.Errorf("root key version %d: %w: %d live data key versions; rewrap first",
					v, ErrKeyVersionInUse, n)
			}
			desc = []any{"purpose", RootKey, "key_version", v}
			return ch, nil
		}
		for ref, d := range w.data {
			if d.ID != versionID {
				continue
			}
			p := purposes[ref.code-1]
			version = ref.version
			if !d.DestroyTime.IsZero() {
				return ch, errNoChange
			}
			if ref.version == w.newest[ref.code] {
				return ch, fmt.Errorf("%s key version %d: %w", p, ref.version, ErrKeyVersionActive)
			}
			if age := w.replacedFor(ref, ch.DestroyTime); age < k.destroyGrace {
				return ch, fmt.Errorf("%s key version %d: %w: replaced %s ago, wait until %s have passed",
					p, ref.version, ErrKeyVersionRecent, max(age, 0).Round(time.Millisecond), k.destroyGrace)
			}
			desc = []any{"purpose", p, "key_version", ref.version}
			return ch, nil
		}
		return ch, ErrKeyVersionNotFound
	})
	if err != nil {
		return version, fmt.Errorf("destroy key version %q of scope %q: %w", versionID, scopeID, err)
	}
	if desc != nil {
		k.log.Info("key version destroyed", append([]any{"scope", scopeID}, desc...)...)
	}
	return version, nil
}

// ReEncrypt opens an envelope and seals its plaintext again under the
// newest key version of the same purpose, so callers can migrate stored
// data off old versions before destroying them. It returns the new
// envelope and its key version; errors are those of Decrypt and Encrypt.
func (k *Keyring) ReEncrypt(ctx context.Context, scopeID string, p DataPurpose, env,
	aad []byte) ([]byte, uint32, error) {
	pt, _, err := k.Decrypt(ctx, scopeID, p, env, aad)
	if err != nil {
		return nil, 0, err
	}
	defer clear(pt)
	return k.Encrypt(ctx, scopeID, p, pt, aad)
}
