package keyring

import "sync/atomic"

// stats counts cache and root KMS activity.
type stats struct {
	hits, misses, rootCalls atomic.Uint64
}

func (s *stats) rootCall() { s.rootCalls.Add(1) }

// Stats is a snapshot of the keyring's counters since New.
type Stats struct {
	// CacheHits counts data operations that found their scope cached.
	CacheHits uint64
	// CacheMisses counts data operations that had to read their scope
	// from the store.
	CacheMisses uint64
	// RootCalls counts calls to the root KMS, wraps and unwraps.
	RootCalls uint64
	// CachedScopes is how many scopes are cached now.
	CachedScopes int
}

// Stats returns the keyring's counters.
func (k *Keyring) Stats() Stats {
	return Stats{
		CacheHits:    k.stats.hits.Load(),
		CacheMisses:  k.stats.misses.Load(),
		RootCalls:    k.stats.rootCalls.Load(),
		CachedScopes: k.cache.len(),
	}
}
