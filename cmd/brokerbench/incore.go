package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/kmsbroker/kmsbroker/broker/keyring"
	"github.com/kmsbroker/kmsbroker/broker/pluginhost"
	"github.com/kmsbroker/kmsbroker/broker/purpose"
	"github.com/kmsbroker/kmsbroker/broker/store"
	"github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/report"
)

// In-core measurement: each size and operation runs inCoreRounds rounds
// of inCoreRound for the keyring and the raw cipher in turn, and the
// median round counts, so a burst of load on the machine hits both and
// is voted out.
const (
	inCoreRounds = 7
	inCoreRound  = 300 * time.Millisecond
	// inCoreBatch calls run between clock reads, so reading the clock
	// costs nothing next to a 64-byte seal.
	inCoreBatch = 64
)

// inCoreSizes are the plaintext sizes of section 1.
var inCoreSizes = []int{64, 1 << 10, 64 << 10}

// callerAAD is the additional data a caller binds, the same for the
// keyring and the raw cipher.
var callerAAD = []byte("row 42")

// rootPlugin starts the real aead plugin as a root KMS, the way brokerd
// does, with the given base64 key.
func (b *bench) rootPlugin(ctx context.Context, name, key string) (*pluginhost.Plugin, *purpose.Router, error) {
	p, err := pluginhost.Start(ctx, pluginhost.Config{
		Name:      name,
		Type:      "aead",
		Directory: b.bin,
		Settings:  map[string]string{"key": key, "key_id": name},
		Logger:    b.logger,
	})
	if err != nil {
		return nil, nil, err
	}
	r := purpose.NewRouter(map[purpose.Purpose]purpose.Wrapper{purpose.Root: p}, func(err error) bool {
		return errors.Is(err, pluginhost.ErrUnavailable)
	})
	if err := r.ProbeRoot(ctx); err != nil {
		p.Stop()
		return nil, nil, err
	}
	return p, r, nil
}

func newKey() string {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // never fails on supported platforms (Go 1.24+)
	return base64.StdEncoding.EncodeToString(k)
}

// inCore is section 1: the keyring on a warm scope, with a real SQLite
// store and the real aead plugin as root, against crypto/cipher.
func (b *bench) inCore(ctx context.Context) error {
	st, err := store.Open(ctx, store.KindSQLite, filepath.Join(b.dir, "incore.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	p, root, err := b.rootPlugin(ctx, "incore-root", newKey())
	if err != nil {
		return err
	}
	defer p.Stop()
	kr := keyring.New(st, root, keyring.Options{}, b.logger)
	defer kr.Close()
	const scope = "o_bench"
	if _, err := kr.CreateScope(ctx, scope, "bench"); err != nil {
		return err
	}

	raw, err := rawGCM()
	if err != nil {
		return err
	}
	before := kr.Stats()
	for _, op := range []string{"encrypt", "decrypt"} {
		for _, n := range inCoreSizes {
			pt := make([]byte, n)
			var ours, theirs func() error
			if op == "encrypt" {
				ours = func() error {
					_, _, err := kr.Encrypt(ctx, scope, keyring.Database, pt, callerAAD)
					return err
				}
				theirs = func() error {
					nonce := make([]byte, raw.NonceSize())
					_, _ = rand.Read(nonce)
					raw.Seal(make([]byte, 0, n+raw.Overhead()), nonce, pt, callerAAD)
					return nil
				}
			} else {
				env, _, err := kr.Encrypt(ctx, scope, keyring.Database, pt, callerAAD)
				if err != nil {
					return err
				}
				nonce := make([]byte, raw.NonceSize())
				ct := raw.Seal(nil, nonce, pt, callerAAD)
				ours = func() error {
					_, _, err := kr.Decrypt(ctx, scope, keyring.Database, env, callerAAD)
					return err
				}
				theirs = func() error {
					_, err := raw.Open(nil, nonce, ct, callerAAD)
					return err
				}
			}
			var oursRates, rawRates []float64
			for range inCoreRounds {
				r, err := throughput(ctx, ours)
				if err != nil {
					return fmt.Errorf("keyring %s %d B: %w", op, n, err)
				}
				oursRates = append(oursRates, r)
				if r, err = throughput(ctx, theirs); err != nil {
					return fmt.Errorf("raw %s %d B: %w", op, n, err)
				}
				rawRates = append(rawRates, r)
			}
			o, t := median(oursRates), median(rawRates)
			row := report.Row{
				Section:  "1 in-core",
				Measure:  fmt.Sprintf("keyring %s %s, ops/s (1 goroutine)", op, fmtSize(n)),
				Value:    fmtRate(o),
				Baseline: "crypto/cipher AES-256-GCM " + map[string]string{"encrypt": "Seal", "decrypt": "Open"}[op],
				BaseFig:  fmtRate(t),
				Ratio:    fmtRatio(o / t),
			}
			if op == "encrypt" && n == 1<<10 {
				row.Goal = fmt.Sprintf("≥ %.1f×", goalInCore)
				b.goal.inCore1KiB = o / t
			}
			b.row(row)
		}
	}
	if after := kr.Stats(); after.RootCalls != before.RootCalls || after.CacheMisses != before.CacheMisses {
		return fmt.Errorf("the scope was not warm: %d root calls and %d cache misses during the run",
			after.RootCalls-before.RootCalls, after.CacheMisses-before.CacheMisses)
	}
	return nil
}

// rawGCM is the baseline cipher: AES-256-GCM with a random key, set up
// once, as a caller of crypto/cipher would.
func rawGCM() (cipher.AEAD, error) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// throughput calls fn back to back for inCoreRound and returns calls per
// second.
func throughput(ctx context.Context, fn func() error) (float64, error) {
	start := time.Now()
	deadline := start.Add(inCoreRound)
	n := 0
	for {
		for range inCoreBatch {
			if err := fn(); err != nil {
				return 0, err
			}
		}
		n += inCoreBatch
		if now := time.Now(); !now.Before(deadline) {
			return float64(n) / now.Sub(start).Seconds(), nil
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
}

func fmtSize(n int) string {
	switch {
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d B", n)
	}
}
