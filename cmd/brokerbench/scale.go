package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the driver the store uses, for the bare baseline

	"github.com/kmsbroker/kmsbroker/broker/auth"
	"github.com/kmsbroker/kmsbroker/broker/keyring"
	"github.com/kmsbroker/kmsbroker/broker/store"
	"github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/report"
	"github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/sysinfo"
)

const (
	// scaleWriters create scopes concurrently: SQLite takes one writer at
	// a time, so more only queue, but several keep a root KMS call and a
	// commit overlapping.
	scaleWriters = 8
	// scaleFirst is the smaller store restart time is compared at.
	scaleFirst = 1000
	// restartRuns is how many restarts each restart figure is the
	// median of; the two stores take turns.
	restartRuns = 5
	// touchScopes is how many distinct scopes are used before RSS is
	// read: ten times the default cache, so the cache is full and has
	// evicted.
	touchScopes = 10_000
	// touchClients are the concurrent gRPC clients that touch them.
	touchClients = 8
)

// scopeID names the i-th benchmark scope.
func scopeID(i int) string { return fmt.Sprintf("s_%06d", i) }

// scale is section 6: create many scopes through the keyring (with the
// real aead plugin as root and the real SQLite store, which is what the
// API's CreateScope does minus the network), restart brokerd at 1,000 and
// at all of them, and read its RSS after touching 10,000 scopes.
func (b *bench) scale(ctx context.Context) error {
	dbPath := filepath.Join(b.dir, "scale.db")
	keys := [3]string{newKey(), newKey(), newKey()}
	token, _, err := auth.NewToken()
	if err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}

	took1, err := b.createScopes(ctx, dbPath, keys[0], 0, scaleFirst, token)
	if err != nil {
		return err
	}
	// Keep the small store: restarts on the two stores take turns, so a
	// burst of load on the machine hits both.
	smallPath := filepath.Join(b.dir, "scale-small.db")
	if err := copyFile(dbPath, smallPath); err != nil {
		return err
	}
	took2, err := b.createScopes(ctx, dbPath, keys[0], scaleFirst, b.scopes, "")
	if err != nil {
		return err
	}
	smallCfg, err := b.writeServerConfig("scale-small", addr, smallPath, keys)
	if err != nil {
		return err
	}
	bigCfg, err := b.writeServerConfig("scale", addr, dbPath, keys)
	if err != nil {
		return err
	}
	times, br, err := b.restarts(ctx, addr, token, []restartCase{{smallCfg, scaleFirst}, {bigCfg, b.scopes}})
	if err != nil {
		return err
	}
	defer br.stop()
	restart1k, restartN := times[0], times[1]
	rate := float64(b.scopes) / (took1 + took2).Seconds()

	bare, err := bareSQLite(ctx, filepath.Join(b.dir, "bare.db"), b.cell)
	if err != nil {
		return err
	}
	b.row(report.Row{
		Section:  "6 scale",
		Measure:  fmt.Sprintf("create %s scopes on SQLite through the keyring (aead plugin root, %d writers), scopes/s", fmtInt(b.scopes), scaleWriters),
		Value:    fmtRate(rate),
		Baseline: fmt.Sprintf("bare SQLite, same pragmas: one transaction of 6 inserts (scope, KEK, 4 DEKs), %d writers", scaleWriters),
		BaseFig:  fmtRate(bare),
		Ratio:    fmtRatio(rate / bare),
	})

	idle, idleHeap, err := b.memory(ctx, br)
	if err != nil {
		return err
	}
	if err := b.touch(ctx, br, b.scopes); err != nil {
		return err
	}
	busy, busyHeap, err := b.memory(ctx, br)
	if err != nil {
		return err
	}
	b.row(report.Row{
		Section:  "6 scale",
		Measure:  fmt.Sprintf("brokerd RSS (Go heap in use) after touching %s scopes, default cache of %s scopes", fmtInt(min(touchScopes, b.scopes)), fmtInt(keyring.DefaultCacheSize)),
		Value:    fmt.Sprintf("%s (%s)", fmtMiB(busy), fmtMiB(busyHeap)),
		Baseline: "the same brokerd just after ready, before any request",
		BaseFig:  fmt.Sprintf("%s (%s)", fmtMiB(idle), fmtMiB(idleHeap)),
		Ratio:    fmtRatio(float64(busy) / float64(idle)),
	})

	b.goal.restart1k, b.goal.restartMax = restart1k, restartN
	b.row(report.Row{
		Section:  "6 scale",
		Measure:  fmt.Sprintf("brokerd server restart → ready with %s scopes: median of %d", fmtInt(b.scopes), restartRuns),
		Value:    fmtDur(restartN),
		Baseline: fmt.Sprintf("the same with %s scopes", fmtInt(scaleFirst)),
		BaseFig:  fmtDur(restart1k),
		Ratio:    fmtRatio(float64(restartN) / float64(restart1k)),
		Goal:     fmt.Sprintf("flat (≤ %.2f×)", goalFlat),
	})
	return nil
}

// memory returns brokerd's RSS and the Go heap in use that its metrics
// report, which tells the process's own memory from what the runtime has
// not yet given back.
func (b *bench) memory(ctx context.Context, br *broker) (rss, heap uint64, err error) {
	if rss, err = sysinfo.ProcessRSS(br.proc.Pid()); err != nil {
		return 0, 0, err
	}
	h, err := br.metric(ctx, b.http, "go_memstats_heap_inuse_bytes")
	if err != nil {
		return 0, 0, err
	}
	return rss, uint64(h), nil
}

// createScopes creates scopes from..to-1 in the store at dbPath. A
// non-empty token is also stored as an admin client token, so brokerd
// can be called later. It returns the time the scopes took.
func (b *bench) createScopes(ctx context.Context, dbPath, rootKey string, from, to int, token string) (time.Duration, error) {
	st, err := store.Open(ctx, store.KindSQLite, dbPath)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	if token != "" {
		if _, _, err := auth.NewTokens(st).Create(ctx, token, "brokerbench", auth.RoleAdmin, nil, 0); err != nil {
			return 0, err
		}
	}
	p, root, err := b.rootPlugin(ctx, "bench-root", rootKey)
	if err != nil {
		return 0, err
	}
	defer p.Stop()
	kr := keyring.New(st, root, keyring.Options{}, b.logger)
	defer kr.Close()

	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	t0 := time.Now()
	for range scaleWriters {
		wg.Go(func() {
			for firstErr.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if _, err := kr.CreateScope(ctx, scopeID(i), ""); err != nil {
					err = fmt.Errorf("create scope %s: %w", scopeID(i), err)
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				if done := i + 1 - from; done%10_000 == 0 {
					b.say("created %s of %s scopes", fmtInt(i+1), fmtInt(to))
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(t0)
	if err := firstErr.Load(); err != nil {
		return 0, *err
	}
	return took, nil
}

// restartCase is a config to restart brokerd with and the number of
// scopes in its store.
type restartCase struct {
	config string
	scopes int
}

// restarts starts brokerd restartRuns times on each case's store, the
// cases taking turns, and returns each case's median time to ready. The
// broker of the last case is left running. Each case's first start
// proves its store's newest scope opens with the configured root key.
func (b *bench) restarts(ctx context.Context, addr, token string, cases []restartCase) ([]time.Duration, *broker, error) {
	times := make([][]time.Duration, len(cases))
	var br *broker
	for run := range restartRuns {
		for i, c := range cases {
			if br != nil {
				br.stop()
			}
			var d time.Duration
			var err error
			br, d, err = b.startBroker(ctx, "scale", addr, "server", "-config="+c.config)
			if err != nil {
				return nil, nil, err
			}
			br.token = token
			times[i] = append(times[i], d)
			if run > 0 {
				continue
			}
			if err := b.probe(ctx, br, scopeID(c.scopes-1)); err != nil {
				br.stop()
				return nil, nil, err
			}
		}
	}
	medians := make([]time.Duration, len(cases))
	for i, c := range cases {
		b.say("restart with %s scopes: %v", fmtInt(c.scopes), times[i])
		medians[i] = median(times[i])
	}
	return medians, br, nil
}

// probe encrypts once with scope through the API.
func (b *bench) probe(ctx context.Context, br *broker, scope string) error {
	cs, err := br.clients(1)
	if err != nil {
		return err
	}
	defer closeClients(cs)
	if _, _, err := cs[0].Encrypt(ctx, scope, "database", []byte("probe"), nil); err != nil {
		return fmt.Errorf("encrypt with scope %s after restart: %w", scope, err)
	}
	return nil
}

// copyFile copies a closed SQLite database, with its WAL and shared-memory
// files when they exist.
func copyFile(from, to string) error {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(from + suffix)
		if errors.Is(err, os.ErrNotExist) && suffix != "" {
			continue
		}
		if err != nil {
			return err
		}
		if err := os.WriteFile(to+suffix, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// touch encrypts once with each of touchScopes scopes spread over all
// scopes, so each is loaded and its KEK unwrapped.
func (b *bench) touch(ctx context.Context, br *broker, scopes int) error {
	cs, err := br.clients(touchClients)
	if err != nil {
		return err
	}
	defer closeClients(cs)
	stride := max(scopes/touchScopes, 1)
	pt := make([]byte, 64)
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	for _, c := range cs {
		wg.Go(func() {
			for firstErr.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= touchScopes || i*stride >= scopes {
					return
				}
				if _, _, err := c.Encrypt(ctx, scopeID(i*stride), "database", pt, nil); err != nil {
					err = fmt.Errorf("touch scope %s: %w", scopeID(i*stride), err)
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		return *err
	}
	return nil
}

// bareSQLite is the baseline of scope creation: SQLite with the store's
// connection settings doing the same number of row inserts per
// transaction, with blobs of the same size, and nothing else. It returns
// transactions per second over d.
func bareSQLite(ctx context.Context, path string, d time.Duration) (float64, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(scaleWriters)
	for _, stmt := range []string{
		`CREATE TABLE scopes (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at INTEGER NOT NULL)`,
		`CREATE TABLE keys (scope_id TEXT NOT NULL REFERENCES scopes(id), n INTEGER NOT NULL, blob BLOB NOT NULL, PRIMARY KEY (scope_id, n))`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return 0, err
		}
	}
	// A wrapped KEK is about 100 bytes of BlobInfo; a wrapped DEK is 60.
	kek, dek := make([]byte, 100), make([]byte, 60)
	_, _ = rand.Read(kek)
	_, _ = rand.Read(dek)

	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	t0 := time.Now()
	deadline := t0.Add(d)
	for range scaleWriters {
		wg.Go(func() {
			for firstErr.Load() == nil && time.Now().Before(deadline) {
				id := scopeID(int(next.Add(1)))
				err := func() error {
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						return err
					}
					defer tx.Rollback()
					if _, err := tx.ExecContext(ctx, `INSERT INTO scopes VALUES (?, '', ?)`, id, time.Now().UnixNano()); err != nil {
						return err
					}
					for n := range 5 {
						blob := dek
						if n == 0 {
							blob = kek
						}
						if _, err := tx.ExecContext(ctx, `INSERT INTO keys VALUES (?, ?, ?)`, id, n, blob); err != nil {
							return err
						}
					}
					return tx.Commit()
				}()
				if err != nil {
					err = fmt.Errorf("bare sqlite: %w", err)
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		return 0, *err
	}
	return float64(next.Load()) / time.Since(t0).Seconds(), nil
}
