package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/kmsbroker/kmsbroker/broker/pluginhost"
	"github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/load"
	"github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/noop"
	"github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/report"
	"github.com/kmsbroker/kmsbroker/plugins/sdk"
	pluginv1 "github.com/kmsbroker/kmsbroker/proto/plugin/v1"
)

// pluginRounds is how many times the three plugin calls are measured in
// turn; the median round's percentiles count.
const pluginRounds = 5

// pluginPayload is section 3's plaintext: a 32-byte key, which is what a
// root purpose wraps.
const pluginPayload = 32

// kekAAD stands in for the additional data the keyring binds to a KEK.
var kekAAD = []byte("kmsbroker/kek/v1 o_bench 1")

// pluginRoundTrip is section 3: one encrypt of 32 bytes through the aead
// plugin as brokerd makes it, against the bare go-plugin call.
func (b *bench) pluginRoundTrip(ctx context.Context) error {
	key := newKey()
	hosted, err := pluginhost.Start(ctx, pluginhost.Config{
		Name:      "rt",
		Type:      "aead",
		Directory: b.bin,
		Settings:  map[string]string{"key": key, "key_id": "rt"},
		Logger:    b.logger,
	})
	if err != nil {
		return err
	}
	defer hosted.Stop()

	// The same aead plugin program, called without the host: its
	// difference from the hosted call is the host's own cost.
	raw, err := noop.Dial(exec.Command(filepath.Join(b.bin, "kmsbroker-plugin-aead")), sdk.Handshake, sdk.PluginSet(), sdk.PluginName)
	if err != nil {
		return err
	}
	defer raw.Kill()
	if _, err := raw.RPC.Configure(ctx, &pluginv1.ConfigureRequest{Settings: map[string]string{"key": key, "key_id": "rt-raw"}}); err != nil {
		return fmt.Errorf("configure aead plugin: %w", err)
	}

	bare, err := noop.Start(b.noopPlugin)
	if err != nil {
		return err
	}
	defer bare.Kill()

	pt := make([]byte, pluginPayload)
	variants := []struct {
		name string
		op   load.Op
	}{
		{"hosted", func(ctx context.Context, _ int) error {
			_, err := hosted.Encrypt(ctx, pt, kekAAD)
			return err
		}},
		{"raw", func(ctx context.Context, _ int) error {
			_, err := raw.RPC.Encrypt(ctx, &pluginv1.EncryptRequest{Plaintext: pt, Aad: kekAAD})
			return err
		}},
		{"bare", func(ctx context.Context, _ int) error {
			_, err := bare.RPC.Encrypt(ctx, &pluginv1.EncryptRequest{Plaintext: pt, Aad: kekAAD})
			return err
		}},
	}
	p50 := map[string][]time.Duration{}
	p99 := map[string][]time.Duration{}
	for range pluginRounds {
		for _, v := range variants {
			res, err := load.Run(ctx, load.Config{Workers: 1, Duration: b.cell / pluginRounds, Warmup: b.warmup / pluginRounds}, v.op)
			if err != nil {
				return fmt.Errorf("%s plugin call: %w", v.name, err)
			}
			p50[v.name] = append(p50[v.name], res.P50)
			p99[v.name] = append(p99[v.name], res.P99)
		}
	}
	fig := func(name string) string {
		return fmtDur(median(p50[name])) + " · " + fmtDur(median(p99[name]))
	}
	ratio := func(name string) (float64, float64) {
		return float64(median(p50[name])) / float64(median(p50["bare"])),
			float64(median(p99[name])) / float64(median(p99["bare"]))
	}
	baseline := "bare go-plugin gRPC call, no-op service, AutoMTLS (cmd/brokerbench/noopplugin)"
	r50, r99 := ratio("hosted")
	b.goal.pluginP50Ratio, b.goal.pluginP99Ratio = r50, r99
	b.row(report.Row{
		Section:  "3 plugin round trip",
		Measure:  "aead plugin encrypt 32 B through pluginhost (as brokerd calls it), 1 caller: p50 · p99",
		Value:    fig("hosted"),
		Baseline: baseline,
		BaseFig:  fig("bare"),
		Ratio:    fmtRatio(r50) + " · " + fmtRatio(r99),
		Goal:     fmt.Sprintf("≤ %.1f×", goalPluginFactor),
	})
	r50, r99 = ratio("raw")
	b.row(report.Row{
		Section:  "3 plugin round trip",
		Measure:  "the same call straight to the plugin's gRPC client, without pluginhost: p50 · p99",
		Value:    fig("raw"),
		Baseline: baseline,
		BaseFig:  fig("bare"),
		Ratio:    fmtRatio(r50) + " · " + fmtRatio(r99),
	})
	return nil
}
