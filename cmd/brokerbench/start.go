package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/noop"
	"github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/report"
	pluginv1 "github.com/kmsbroker/kmsbroker/proto/plugin/v1"
)

// startRuns is how many starts each start-up figure is the median of.
const startRuns = 5

// startBlocks is the number of plugin blocks the start is measured with.
const startBlocks = 3

// start is section 5: from `brokerd server` process start to
// /v1/sys/health 200, with root, worker-auth and config each on an aead
// plugin block, against starting as many bare go-plugin plugins.
func (b *bench) start(ctx context.Context) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	keys := [3]string{newKey(), newKey(), newKey()}
	cfg, err := b.writeServerConfig("start", addr, filepath.Join(b.dir, "start.db"), keys)
	if err != nil {
		return err
	}
	br, first, err := b.startBroker(ctx, "start", addr, "server", "-config="+cfg)
	if err != nil {
		return err
	}
	br.stop()
	var again []time.Duration
	for range startRuns {
		br, d, err := b.startBroker(ctx, "start", addr, "server", "-config="+cfg)
		if err != nil {
			return err
		}
		br.stop()
		again = append(again, d)
	}
	var base []time.Duration
	for range startRuns {
		d, err := b.startNoops(ctx, startBlocks)
		if err != nil {
			return err
		}
		base = append(base, d)
	}

	baseline := fmt.Sprintf("%d bare go-plugin no-op plugins started at once, to their first answer", startBlocks)
	baseFig := fmt.Sprintf("%s (max %s)", fmtDur(median(base)), fmtDur(maxOf(base)))
	b.goal.ready = median(again)
	b.row(report.Row{
		Section:  "5 start",
		Measure:  fmt.Sprintf("brokerd server start → /v1/sys/health 200, %d aead blocks, existing store: median of %d", startBlocks, startRuns),
		Value:    fmt.Sprintf("%s (max %s)", fmtDur(median(again)), fmtDur(maxOf(again))),
		Baseline: baseline,
		BaseFig:  baseFig,
		Ratio:    fmtRatio(float64(median(again)) / float64(median(base))),
		Goal:     "≤ " + fmtDur(goalReady),
	})
	b.row(report.Row{
		Section:  "5 start",
		Measure:  "the same, first start on an empty store (creates the schema)",
		Value:    fmtDur(first),
		Baseline: baseline,
		BaseFig:  baseFig,
		Ratio:    fmtRatio(float64(first) / float64(median(base))),
	})
	return nil
}

// startNoops starts n no-op plugins at once and returns the time until
// every one has answered a call, which is the least a host that starts n
// go-plugin processes in parallel can take.
func (b *bench) startNoops(ctx context.Context, n int) (time.Duration, error) {
	t0 := time.Now()
	var wg sync.WaitGroup
	clients := make([]*noop.Client, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			c, err := noop.Start(b.noopPlugin)
			if err != nil {
				errs[i] = err
				return
			}
			clients[i] = c
			_, errs[i] = c.RPC.Health(ctx, &pluginv1.HealthRequest{})
		})
	}
	wg.Wait()
	d := time.Since(t0)
	for _, c := range clients {
		if c != nil {
			c.Kill()
		}
	}
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return d, nil
}

func maxOf(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
