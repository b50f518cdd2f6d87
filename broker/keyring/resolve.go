package keyring

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/kmsbroker/kmsbroker/broker/store"
)

// errRetired means a cache entry left the cache while a call used it; the
// call looks the scope up again. It wraps ErrConcurrentChange, which is
// what a caller sees if the retries run out.
var errRetired = fmt.Errorf("%w: scope cache entry replaced", ErrConcurrentChange)

// entry returns the scope's cache entry, loading it on a miss and checking
// its generation once it is older than staleAfter.
func (k *Keyring) entry(ctx context.Context, id string) (*scopeEntry, error) {
	if e := k.cache.get(id); e != nil {
		k.stats.hits.Add(1)
		if k.staleAfter < 0 {
			return e, nil
		}
		// A negative age means the wall clock stepped back since the
		// check; treat the entry as stale rather than trusting it until
		// the clock catches up.
		if age := k.now().UnixNano() - e.checked.Load(); age >= 0 && age < int64(k.staleAfter) {
			return e, nil
		}
		return k.revalidate(ctx, e, false)
	}
	k.stats.misses.Add(1)
	v, err := k.shared(ctx, "load\x00"+id, func(ctx context.Context) (any, error) {
		// A flight that ended just before this one began may have
		// loaded the scope already.
		if e := k.cache.get(id); e != nil {
			return e, nil
		}
		return k.load(ctx, id)
	})
	if err != nil {
		return nil, err
	}
	return v.(*scopeEntry), nil
}

// load reads the scope's keys and publishes a new entry, which inherits
// the unwrapped keys of the entry it replaces.
func (k *Keyring) load(ctx context.Context, id string) (*scopeEntry, error) {
	keys, err := k.st.ScopeKeys(ctx, id)
	if err != nil {
		return nil, storeErr(err)
	}
	e := k.cache.put(newEntry(keys, k.now()))
	if k.closed.Load() {
		// Close ran while we read: leave no key material behind.
		k.cache.purge()
		return nil, ErrClosed
	}
	return e, nil
}

// revalidate compares e's generation with the store's and returns the
// entry to use: e if nothing changed, a fresh one if something did. If the
// store cannot answer, a routine check (strict false) keeps e serving, as
// its keys are still valid for every envelope it knows, and the next check
// waits another staleAfter; a check a request depends on (strict) fails
// with ErrStore.
func (k *Keyring) revalidate(ctx context.Context, e *scopeEntry, strict bool) (*scopeEntry, error) {
	v, err := k.shared(ctx, "gen\x00"+strconv.FormatUint(e.uid, 10),
		func(ctx context.Context) (any, error) {
			gen, err := k.st.ScopeGeneration(ctx, e.id)
			if err != nil {
				return nil, err
			}
			if gen == e.gen {
				e.checked.Store(k.now().UnixNano())
				return e, nil
			}
			return k.load(ctx, e.id)
		})
	switch {
	case err == nil:
		return v.(*scopeEntry), nil
	case errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrScopeNotFound):
		k.cache.remove(e.id, e)
		return nil, ErrScopeNotFound
	case ctx.Err() != nil || errors.Is(err, ErrClosed):
		return nil, err
	case strict && errors.Is(err, ErrStore):
		return nil, err
	case strict:
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	}
	e.checked.Store(k.now().UnixNano())
	k.log.Warn("cannot check scope for key changes; using cached keys", "scope", e.id, "error", err)
	return e, nil
}

// shared runs fn once for all concurrent callers with the same key. fn
// runs detached from the first caller's cancellation, bounded by
// sharedCallTimeout; each caller stops waiting when its own context ends.
func (k *Keyring) shared(ctx context.Context, key string,
	fn func(context.Context) (any, error)) (any, error) {
	ch := k.flight.DoChan(key, func() (any, error) {
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedCallTimeout)
		defer cancel()
		return fn(c)
	})
	select {
	case r := <-ch:
		return r.Val, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// kekFor returns KEK version v of e's scope, unwrapping it with the root
// KMS once if e does not have it yet.
func (k *Keyring) kekFor(ctx context.Context, e *scopeEntry, v uint32) (*secretKey, error) {
	if sk, retired := e.kek(v); retired {
		return nil, errRetired
	} else if sk != nil {
		return sk, nil
	}
	r, ok := e.roots[v]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: key version %d missing", ErrStore, v)
	case !r.DestroyTime.IsZero():
		return nil, fmt.Errorf("key version %d: %w", v, ErrKeyVersionDestroyed)
	}
	key := "kek\x00" + strconv.FormatUint(e.uid, 10) + "\x00" + strconv.FormatUint(uint64(v), 10)
	res, err := k.shared(ctx, key, func(ctx context.Context) (any, error) {
		if sk, retired := e.kek(v); retired {
			return nil, errRetired
		} else if sk != nil {
			return sk, nil
		}
		sk, err := k.unwrapRoot(ctx, e.id, r)
		if err != nil {
			return nil, err
		}
		kept, ok := e.addKEK(v, sk)
		if !ok {
			return nil, errRetired
		}
		return kept, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*secretKey), nil
}

// dataKey returns DEK version v of purpose p of e's scope, unwrapping it
// (and its KEK, if needed) once if e does not have it yet.
func (k *Keyring) dataKey(ctx context.Context, e *scopeEntry, p DataPurpose,
	v uint32) (*secretKey, error) {
	ref := dataRef{p.code(), v}
	if sk, retired := e.dek(ref); retired {
		return nil, errRetired
	} else if sk != nil {
		return sk, nil
	}
	row, ok := e.data[ref]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: %s key version %d missing", ErrStore, p, v)
	case !row.DestroyTime.IsZero():
		return nil, fmt.Errorf("%s key version %d: %w", p, v, ErrKeyVersionDestroyed)
	}
	kek, err := k.kekFor(ctx, e, row.RootVersion)
	if err != nil {
		return nil, err
	}
	raw, err := unwrapDEK(kek.aead, row.Wrapped, dekAAD(e.id, p, v, row.RootVersion))
	if err != nil {
		return nil, fmt.Errorf("%w: %s key version %d: %w", ErrStore, p, v, err)
	}
	sk, err := newSecretKey(row.ID, raw)
	if err != nil {
		clear(raw)
		return nil, fmt.Errorf("%w: %s key version %d: %w", ErrStore, p, v, err)
	}
	kept, ok := e.addDEK(ref, sk)
	if !ok {
		return nil, errRetired
	}
	return kept, nil
}
