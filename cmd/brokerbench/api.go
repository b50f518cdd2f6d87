package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/kmsbroker/kmsbroker/broker/auth"
	"github.com/kmsbroker/kmsbroker/client"
	"github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/load"
	"github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/promtext"
	"github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/report"
	"github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/vaultdev"
)

// apiConcurrency are the numbers of concurrent clients of section 2.
var apiConcurrency = []int{1, 8, 64}

// apiPayload is the plaintext size of sections 2 and 4.
const apiPayload = 1 << 10

// steadyOps is the number of warm data operations section 7 counts
// plugin calls over.
const steadyOps = 10_000

// maxMetrics bounds a /metrics read; brokerd's is tens of KiB.
const maxMetrics = 16 << 20

// maxAnswer bounds an HTTP answer the benchmark reads: a 1 KiB envelope
// in JSON is under 2 KiB.
const maxAnswer = 1 << 20

// The API transports of section 2: gRPC and HTTP/JSON on the one
// listener, and gRPC on the gRPC-only listener (grpc_address).
const (
	grpcShared = "gRPC"
	httpJSON   = "HTTP/JSON"
	grpcOnly   = "gRPC-only"
)

var apiTransports = []string{grpcShared, httpJSON, grpcOnly}

var transportNames = map[string]string{
	grpcShared: "gRPC (shared listener)",
	httpJSON:   "HTTP/JSON",
	grpcOnly:   "gRPC (grpc_address listener)",
}

// cell is one measured API combination.
type cell struct {
	transport, op string
	clients       int
}

// api runs sections 2, 4 and 7: a brokerd dev server is measured over
// gRPC and HTTP/JSON, then its plugin calls are counted over warm
// operations; then a Vault dev server's transit engine is measured with
// the same payload and concurrency, and becomes the API rows' baseline.
func (b *bench) api(ctx context.Context) error {
	ours, err := b.apiBroker(ctx)
	if err != nil {
		return err
	}
	var theirs map[cell]load.Result
	var missing string
	if b.want[2] || b.want[4] {
		theirs, missing, err = b.vault(ctx)
		if err != nil {
			return err
		}
	}
	if !b.want[2] && !b.want[4] {
		return nil
	}
	b.goal.vaultMissing = missing
	for _, transport := range apiTransports {
		for _, op := range []string{"encrypt", "decrypt"} {
			for _, n := range apiConcurrency {
				c := cell{transport, op, n}
				res := ours[c]
				row := report.Row{
					Section:  "2 API · 4 Vault",
					Measure:  fmt.Sprintf("%s %s 1 KiB, %d client%s: ops/s · p50 · p99", transportNames[transport], op, n, plural(n)),
					Value:    fmtCell(res),
					Baseline: fmt.Sprintf("Vault transit %s 1 KiB (HTTP), %d client%s", op, n, plural(n)),
					BaseFig:  "not available",
				}
				if v, ok := theirs[cell{"vault", op, n}]; ok {
					row.BaseFig = fmtCell(v)
					row.Ratio = fmtRatio(res.PerSecond() / v.PerSecond())
				}
				if transport == grpcOnly && op == "encrypt" && n == 64 {
					row.Goal = fmt.Sprintf("≥ %.0f× Vault, p99 < %s", goalVaultFactor, fmtDur(goalP99))
					b.goal.grpc64, b.goal.grpc64P99 = res.PerSecond(), res.P99
					b.goal.vault64 = theirs[cell{"vault", op, n}].PerSecond()
				}
				b.row(row)
			}
		}
	}
	return nil
}

// apiBroker measures a brokerd dev server (section 2) and counts its
// plugin calls (section 7).
func (b *bench) apiBroker(ctx context.Context) (map[cell]load.Result, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	token, _, err := auth.NewToken()
	if err != nil {
		return nil, err
	}
	grpcAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	br, _, err := b.startBroker(ctx, "dev", addr, "dev", "-listen="+addr, "-grpc-listen="+grpcAddr,
		"-dev-token="+token, "-data-dir="+filepath.Join(b.dir, "dev"), "-log-level=warn")
	if err != nil {
		return nil, err
	}
	defer br.stop()
	br.token = token
	clients, err := br.clients(apiConcurrency[len(apiConcurrency)-1])
	if err != nil {
		return nil, err
	}
	defer closeClients(clients)
	grpcClients, err := br.clientsAt("http://"+grpcAddr, apiConcurrency[len(apiConcurrency)-1])
	if err != nil {
		return nil, err
	}
	defer closeClients(grpcClients)

	const scope = "o_api"
	if _, err := clients[0].CreateScope(ctx, scope, "bench"); err != nil {
		return nil, fmt.Errorf("create scope: %w", err)
	}
	pt := make([]byte, apiPayload)
	_, _ = rand.Read(pt)
	env, _, err := clients[0].Encrypt(ctx, scope, "database", pt, nil)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	encBody, _ := json.Marshal(map[string]string{"purpose": "database", "plaintext": base64.StdEncoding.EncodeToString(pt)})
	decBody, _ := json.Marshal(map[string]string{"purpose": "database", "ciphertext": base64.StdEncoding.EncodeToString(env)})
	// Prove the HTTP path round-trips before timing it.
	var viaHTTP struct {
		Ciphertext []byte `json:"ciphertext"`
		Plaintext  []byte `json:"plaintext"`
	}
	if err := br.post(ctx, b.http, "/v1/scopes/"+scope+"/encrypt", encBody, &viaHTTP); err != nil {
		return nil, err
	}
	decCheck, _ := json.Marshal(map[string]string{"purpose": "database", "ciphertext": base64.StdEncoding.EncodeToString(viaHTTP.Ciphertext)})
	if err := br.post(ctx, b.http, "/v1/scopes/"+scope+"/decrypt", decCheck, &viaHTTP); err != nil {
		return nil, err
	}
	if !bytes.Equal(viaHTTP.Plaintext, pt) {
		return nil, errors.New("HTTP/JSON encrypt then decrypt did not return the plaintext")
	}

	// Prove the gRPC-only listener round-trips before timing it.
	if got, err := grpcClients[0].Decrypt(ctx, scope, "database", env, nil); err != nil || !bytes.Equal(got, pt) {
		return nil, fmt.Errorf("decrypt on the gRPC-only listener did not return the plaintext (err %v)", err)
	}

	ops := map[cell]load.Op{}
	for _, n := range apiConcurrency {
		for transport, cs := range map[string][]*client.Client{grpcShared: clients, grpcOnly: grpcClients} {
			ops[cell{transport, "encrypt", n}] = func(ctx context.Context, w int) error {
				_, _, err := cs[w].Encrypt(ctx, scope, "database", pt, nil)
				return err
			}
			ops[cell{transport, "decrypt", n}] = func(ctx context.Context, w int) error {
				_, err := cs[w].Decrypt(ctx, scope, "database", env, nil)
				return err
			}
		}
		ops[cell{"HTTP/JSON", "encrypt", n}] = func(ctx context.Context, _ int) error {
			var out struct {
				Ciphertext []byte `json:"ciphertext"`
			}
			return br.post(ctx, b.http, "/v1/scopes/"+scope+"/encrypt", encBody, &out)
		}
		ops[cell{"HTTP/JSON", "decrypt", n}] = func(ctx context.Context, _ int) error {
			var out struct {
				Plaintext []byte `json:"plaintext"`
			}
			return br.post(ctx, b.http, "/v1/scopes/"+scope+"/decrypt", decBody, &out)
		}
	}
	results := map[cell]load.Result{}
	if b.want[2] || b.want[4] {
		for _, transport := range apiTransports {
			for _, op := range []string{"encrypt", "decrypt"} {
				for _, n := range apiConcurrency {
					c := cell{transport, op, n}
					res, err := load.Run(ctx, load.Config{Workers: n, Duration: b.cell, Warmup: b.warmup}, ops[c])
					if err != nil {
						return nil, fmt.Errorf("%s %s, %d clients: %w", transport, op, n, err)
					}
					b.say("brokerd %s %s ×%d: %s", transport, op, n, fmtCell(res))
					results[c] = res
				}
			}
		}
	}
	if b.want[7] {
		if err := b.steady(ctx, br, clients[:8]); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// steady is section 7: plugin calls, read from brokerd's own metrics,
// over steadyOps warm operations on a fresh scope.
func (b *bench) steady(ctx context.Context, br *broker, clients []*client.Client) error {
	const scope = "o_steady"
	before, err := br.pluginCalls(ctx, b.http)
	if err != nil {
		return err
	}
	if _, err := clients[0].CreateScope(ctx, scope, "steady"); err != nil {
		return err
	}
	pt := make([]byte, apiPayload)
	env, _, err := clients[0].Encrypt(ctx, scope, "database", pt, nil)
	if err != nil {
		return err
	}
	cold, err := br.pluginCalls(ctx, b.http)
	if err != nil {
		return err
	}

	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(clients))
	for _, c := range clients {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > steadyOps {
					return
				}
				var err error
				if i%2 == 0 {
					_, _, err = c.Encrypt(ctx, scope, "database", pt, nil)
				} else {
					_, err = c.Decrypt(ctx, scope, "database", env, nil)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("warm operations: %w", err)
	}
	after, err := br.pluginCalls(ctx, b.http)
	if err != nil {
		return err
	}
	b.goal.steadyCalls, b.goal.steadyMeasured = after-cold, true
	b.row(report.Row{
		Section:  "7 steady state",
		Measure:  fmt.Sprintf("plugin calls during %s warm ops (half encrypt, half decrypt, gRPC)", fmtInt(steadyOps)),
		Value:    fmt.Sprintf("%.0f", after-cold),
		Baseline: "plugin calls to create the scope and make its first envelope",
		BaseFig:  fmt.Sprintf("%.0f", cold-before),
		Goal:     "0",
	})
	return nil
}

// pluginCalls is the sum of brokerd's kmsbroker_plugin_calls_total over
// every block, operation and result.
func (br *broker) pluginCalls(ctx context.Context, hc *http.Client) (float64, error) {
	return br.metric(ctx, hc, "kmsbroker_plugin_calls_total")
}

// metric reads brokerd's /metrics, which needs a token, and sums the
// counter or gauge name.
func (br *broker) metric(ctx context.Context, hc *http.Client, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, br.url+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+br.token)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("read metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("read metrics: HTTP %d", resp.StatusCode)
	}
	return promtext.Sum(io.LimitReader(resp.Body, maxMetrics), name, nil)
}

// post sends a JSON body to brokerd's HTTP API with the bearer token and
// decodes the JSON answer into out.
func (br *broker) post(ctx context.Context, hc *http.Client, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, br.url+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+br.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: HTTP %d: %s", path, resp.StatusCode, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}

// vault measures Vault transit at the API cells' concurrency. When no
// Vault can be had it returns no results and the reason.
func (b *bench) vault(ctx context.Context) (map[cell]load.Result, string, error) {
	s, err := vaultdev.Start(ctx, b.dir, b.http)
	if errors.Is(err, vaultdev.ErrNotAvailable) {
		b.note("Vault transit: not available: " + err.Error())
		return nil, err.Error(), nil
	}
	if err != nil {
		return nil, "", err
	}
	defer s.Close()
	b.note(fmt.Sprintf("Vault transit: %s, key type aes256-gcm96, same machine", s.Kind))

	pt := make([]byte, apiPayload)
	_, _ = rand.Read(pt)
	ct, err := s.Encrypt(ctx, pt)
	if err != nil {
		return nil, "", err
	}
	if got, err := s.Decrypt(ctx, ct); err != nil || !bytes.Equal(got, pt) {
		return nil, "", fmt.Errorf("vault transit round trip failed: %v", err)
	}
	results := map[cell]load.Result{}
	for _, op := range []string{"encrypt", "decrypt"} {
		for _, n := range apiConcurrency {
			fn := func(ctx context.Context, _ int) error {
				_, err := s.Encrypt(ctx, pt)
				return err
			}
			if op == "decrypt" {
				fn = func(ctx context.Context, _ int) error {
					_, err := s.Decrypt(ctx, ct)
					return err
				}
			}
			res, err := load.Run(ctx, load.Config{Workers: n, Duration: b.cell, Warmup: b.warmup}, fn)
			if err != nil {
				return nil, "", fmt.Errorf("vault %s, %d clients: %w", op, n, err)
			}
			b.say("vault %s ×%d: %s", op, n, fmtCell(res))
			results[cell{"vault", op, n}] = res
		}
	}
	return results, "", nil
}

func fmtCell(r load.Result) string {
	if r.Ops == 0 {
		return "–"
	}
	return fmt.Sprintf("%s/s · %s · %s", fmtRate(r.PerSecond()), fmtDur(r.P50), fmtDur(r.P99))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
