// Package load drives a closed-loop load against an operation: a fixed
// number of workers call it back to back for a fixed time, and the run is
// summed up as throughput and latency percentiles.
//
// A closed loop measures what a caller sees when each client waits for its
// answer before asking again, which is how applications use a KMS. Its
// throughput is bounded by latency times workers, so a slow tail shows up
// in both figures.
package load

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// Op is one call. worker is 0..Workers-1, so a worker can use its own
// client or connection.
type Op func(ctx context.Context, worker int) error

// Config describes a run. Zero Warmup means none.
type Config struct {
	// Workers is the number of concurrent callers; at least 1.
	Workers int
	// Duration is the measured window; it must be positive.
	Duration time.Duration
	// Warmup runs before the window and is not measured: it fills caches,
	// opens connections and lets the scheduler settle.
	Warmup time.Duration
}

// Result sums up a run's measured window.
type Result struct {
	Workers int
	// Ops is the number of calls that started inside the window and
	// succeeded.
	Ops int
	// Elapsed is from the window's start to the last measured call's end.
	Elapsed time.Duration
	// P50 and P99 are latency percentiles over the measured calls.
	P50, P99 time.Duration
}

// PerSecond is the throughput of the window.
func (r Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// ErrNoOps means no call finished inside the window, so there is nothing
// to report.
var ErrNoOps = errors.New("load: no call completed in the measured window")

// Run calls op from cfg.Workers goroutines until cfg.Warmup plus
// cfg.Duration have passed, then returns the window's summary. The first
// failing call stops the run, and Run returns its error naming the worker.
func Run(ctx context.Context, cfg Config, op Op) (Result, error) {
	if cfg.Workers < 1 || cfg.Duration <= 0 || cfg.Warmup < 0 {
		return Result{}, fmt.Errorf("load: need at least one worker and a positive duration, got %d workers for %v", cfg.Workers, cfg.Duration)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	start := time.Now()
	windowStart := start.Add(cfg.Warmup)
	end := windowStart.Add(cfg.Duration)

	type worker struct {
		lat  []time.Duration
		last time.Time
	}
	workers := make([]worker, cfg.Workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			w := &workers[i]
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				if err := op(ctx, i); err != nil {
					if ctx.Err() == nil {
						cancel(fmt.Errorf("load: worker %d: %w", i, err))
					}
					return
				}
				if t0.Before(windowStart) {
					continue
				}
				t1 := time.Now()
				w.lat = append(w.lat, t1.Sub(t0))
				w.last = t1
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return Result{}, err
	}

	var all []time.Duration
	var last time.Time
	for _, w := range workers {
		all = append(all, w.lat...)
		if w.last.After(last) {
			last = w.last
		}
	}
	if len(all) == 0 {
		return Result{}, ErrNoOps
	}
	slices.Sort(all)
	return Result{
		Workers: cfg.Workers,
		Ops:     len(all),
		Elapsed: last.Sub(windowStart),
		P50:     Percentile(all, 0.50),
		P99:     Percentile(all, 0.99),
	}, nil
}

// Percentile returns the nearest-rank q-quantile (0 < q <= 1) of sorted,
// which must be in ascending order: the smallest sample that at least a
// fraction q of the samples do not exceed. It returns 0 for no samples.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}
