package load

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one sample", ms(7), 0.99, 7 * time.Millisecond},
		{"median of odd", ms(1, 2, 3), 0.5, 2 * time.Millisecond},
		{"median of even takes lower", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 0.99, 99 * time.Millisecond},
		{"p50 of 100", ms(hundred...), 0.50, 50 * time.Millisecond},
		{"p100 is max", ms(hundred...), 1, 100 * time.Millisecond},
		{"tiny q is min", ms(hundred...), 0.0001, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.q); got != tt.want {
				t.Errorf("Percentile(q=%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestRunMeasuresWindowOnly(t *testing.T) {
	var calls atomic.Int64
	op := func(context.Context, int) error {
		calls.Add(1)
		time.Sleep(time.Millisecond)
		return nil
	}
	res, err := Run(context.Background(), Config{Workers: 4, Duration: 200 * time.Millisecond, Warmup: 100 * time.Millisecond}, op)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Workers != 4 {
		t.Errorf("Workers = %d, want 4", res.Workers)
	}
	if res.Ops <= 0 || int64(res.Ops) >= calls.Load() {
		t.Errorf("Ops = %d of %d calls, want some but fewer than all (warmup is not measured)", res.Ops, calls.Load())
	}
	if res.P50 < time.Millisecond || res.P99 < res.P50 {
		t.Errorf("P50 = %v, P99 = %v, want P50 >= 1ms and P99 >= P50", res.P50, res.P99)
	}
	// The window ends when the last call started in it returns, which
	// on a loaded machine can be well after 200ms.
	if res.Elapsed < 150*time.Millisecond || res.Elapsed > time.Second {
		t.Errorf("Elapsed = %v, want about the 200ms window", res.Elapsed)
	}
	// Four workers sleeping 1ms each cannot exceed 4,000 calls a second.
	if got := res.PerSecond(); got <= 0 || got > 4000 {
		t.Errorf("PerSecond = %v, want in (0, 4000]", got)
	}
}

func TestRunGivesEachWorkerItsIndex(t *testing.T) {
	var seen [3]atomic.Bool
	op := func(_ context.Context, w int) error {
		seen[w].Store(true)
		return nil
	}
	// Long enough for every goroutine to be scheduled on a busy machine.
	if _, err := Run(context.Background(), Config{Workers: 3, Duration: 500 * time.Millisecond}, op); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for i := range seen {
		if !seen[i].Load() {
			t.Errorf("worker %d never called", i)
		}
	}
}

func TestRunStopsAtFirstError(t *testing.T) {
	boom := errors.New("boom")
	var calls atomic.Int64
	op := func(context.Context, int) error {
		if calls.Add(1) == 5 {
			return boom
		}
		return nil
	}
	_, err := Run(context.Background(), Config{Workers: 2, Duration: 10 * time.Second}, op)
	if !errors.Is(err, boom) {
		t.Fatalf("Run error = %v, want it to wrap %v", err, boom)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	op := func(context.Context, int) error { return nil }
	for _, cfg := range []Config{
		{Workers: 0, Duration: time.Second},
		{Workers: 1, Duration: 0},
		{Workers: 1, Duration: time.Second, Warmup: -1},
	} {
		if _, err := Run(context.Background(), cfg, op); err == nil {
			t.Errorf("Run(%+v) succeeded, want an error", cfg)
		}
	}
}

func TestRunHonoursParentContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	op := func(context.Context, int) error {
		cancel()
		return nil
	}
	if _, err := Run(ctx, Config{Workers: 1, Duration: 10 * time.Second}, op); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v, want context.Canceled", err)
	}
}
