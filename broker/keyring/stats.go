package keyring

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// stats counts cache and root KMS activity.
type stats struct {
	hits, misses, rootCalls atomic.Uint64
}

func (s *stats) rootCall() { s.rootCalls.Add(1) }

// Stats is a snapshot of the keyring's counters since New.
type Stats struct {
	// CacheHits counts lookups of a scope that found it cached.
	CacheHits uint64
	// CacheMisses counts lookups that had to read the scope from the
	// store.
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

// registerMetrics exposes the counters to Prometheus. The collectors read
// the same atomics as Stats, so the two never disagree.
func (k *Keyring) registerMetrics(r prometheus.Registerer) {
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "kmsbroker", Subsystem: "keyring", Name: name, Help: help,
		}, func() float64 { return float64(v.Load()) })
	}
	cs := []prometheus.Collector{
		counter("cache_hits_total", "Scope lookups served from the key cache.", &k.stats.hits),
		counter("cache_misses_total", "Scope lookups that read the store.", &k.stats.misses),
		counter("root_calls_total",
			"Calls to the root KMS (wraps and unwraps of scope KEKs).", &k.stats.rootCalls),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "kmsbroker", Subsystem: "keyring", Name: "cached_scopes",
			Help: "Scopes whose keys are cached.",
		}, func() float64 { return float64(k.cache.len()) }),
	}
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			k.log.Warn("keyring metric not registered", "error", err)
		}
	}
}
