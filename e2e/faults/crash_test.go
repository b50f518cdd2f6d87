package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kmsbroker/kmsbroker/broker/store/storetest"
	"github.com/kmsbroker/kmsbroker/client"
	"github.com/kmsbroker/kmsbroker/e2e/brokerd"
)

// crashScopes are the scopes the crash loop works on; more than one, so
// that rewrapping all scopes is a multi-scope operation.
var crashScopes = []string{"o_1", "o_2"}

// maxKillDelay is the longest a crash round runs before the kill: long
// enough for several rotations to complete, short enough that most kills
// land in the middle of one.
const maxKillDelay = 400 * time.Millisecond

// pluginsDieWithin bounds how long a killed brokerd's plugins may live
// on: the kernel kills them at once (Pdeathsig), reaping takes a moment.
const pluginsDieWithin = 5 * time.Second

// TestBrokerCrash SIGKILLs brokerd at random points while it rotates,
// rotates with rewrap, rewraps one scope and all scopes, re-encrypts and
// encrypts; restarts it on the same store each time; and checks after
// every restart that no rotation was left half done and that the
// envelopes of the last round decrypt, and at the end that every
// envelope the broker ever returned decrypts. The killed broker's
// plugins must die with it.
func TestBrokerCrash(t *testing.T) {
	kills := 20
	if testing.Short() {
		kills = 5
	}
	t.Run("sqlite", func(t *testing.T) {
		crashLoopBroker(t, brokerd.Config{Storage: brokerd.SQLite}, kills)
	})
	t.Run("postgres", func(t *testing.T) {
		crashLoopBroker(t, brokerd.Config{Storage: brokerd.Postgres, PostgresURL: storetest.Postgres(t).DSN}, kills)
	})
}

func crashLoopBroker(t *testing.T, cfg brokerd.Config, kills int) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("random seed %d", seed)

	f := newFixture(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := f.c.CreateScope(ctx, "o_2", ""); err != nil {
		t.Fatalf("CreateScope o_2: %v", err)
	}

	var issued []envelope
	stats := map[string]int{}
	for round := range kills {
		plugins := pluginPids(t, f.c)
		w := startCrashWorkers(f.c, issued, round)
		delay := time.Duration(rng.Int64N(int64(maxKillDelay)))
		time.Sleep(delay)
		f.b.Kill()
		got := w.stop()
		issued = append(issued, got.issued...)
		for k, v := range got.done {
			stats[k] += v
		}
		wantGone(t, plugins)

		f.restart()
		for _, scope := range crashScopes {
			checkKeys(t, fmt.Sprintf("of %s after kill %d (%s into the round)", scope, round+1, delay.Round(time.Millisecond)),
				mustReadKeys(t, f.c, scope))
		}
		decryptAll(t, f.c, got.issued)
		if t.Failed() {
			t.Fatalf("kill %d of %d broke the broker; random seed %d", round+1, kills, seed)
		}
	}

	decryptAll(t, f.c, issued)
	rotated := 0
	for _, scope := range crashScopes {
		rotated += mustReadKeys(t, f.c, scope).rotations()
	}
	t.Logf("%d kills; calls that succeeded: %v; %d rotations in the store; %d envelopes issued, all decrypt",
		kills, stats, rotated, len(issued))
	if stats["rotate"]+stats["rotate+rewrap"] == 0 || len(issued) == 0 {
		t.Errorf("the loop never completed a rotation or an encryption between kills; the test proves nothing")
	}
}

// crashWorkers run the operations a crash interrupts until the broker
// dies.
type crashWorkers struct {
	quit chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	issued []envelope
	done   map[string]int // successful calls by kind
}

type crashResult struct {
	issued []envelope
	done   map[string]int
}

// startCrashWorkers starts one goroutine that changes keys (rotate,
// rotate with rewrap, rewrap a scope, rewrap all) and one that makes
// envelopes (encrypt, re-encrypt an earlier envelope).
func startCrashWorkers(c *client.Client, earlier []envelope, round int) *crashWorkers {
	w := &crashWorkers{quit: make(chan struct{}), done: map[string]int{}}
	w.wg.Go(func() {
		for i := 0; !w.stopped(); i++ {
			scope := crashScopes[i%len(crashScopes)]
			kind, call := "", func(ctx context.Context) error { return nil }
			switch i % 4 {
			case 0:
				kind, call = "rotate", func(ctx context.Context) error { _, err := c.RotateKeys(ctx, scope, false); return err }
			case 1:
				kind, call = "rotate+rewrap", func(ctx context.Context) error { _, err := c.RotateKeys(ctx, scope, true); return err }
			case 2:
				kind, call = "rewrap", func(ctx context.Context) error { _, err := c.RewrapKeys(ctx, scope); return err }
			case 3:
				kind, call = "rewrap all", func(ctx context.Context) error { _, err := c.RewrapAllKeys(ctx); return err }
			}
			w.call(kind, call)
		}
	})
	w.wg.Go(func() {
		for i := 0; !w.stopped(); i++ {
			e := envelope{scope: crashScopes[i%len(crashScopes)], purpose: dataPurposes[i%len(dataPurposes)],
				plaintext: fmt.Sprintf("round %d value %d", round, i), aad: fmt.Sprintf("r%d/%d", round, i)}
			if i%5 == 4 && len(earlier) > 0 {
				prev := earlier[(i*7919)%len(earlier)]
				w.call("reencrypt", func(ctx context.Context) error {
					ct, v, err := c.ReEncrypt(ctx, prev.scope, prev.purpose, prev.ciphertext, []byte(prev.aad))
					if err == nil {
						w.add(envelope{scope: prev.scope, purpose: prev.purpose, plaintext: prev.plaintext,
							aad: prev.aad, ciphertext: ct, version: v})
					}
					return err
				})
				continue
			}
			w.call("encrypt", func(ctx context.Context) error {
				ct, v, err := c.Encrypt(ctx, e.scope, e.purpose, []byte(e.plaintext), []byte(e.aad))
				if err == nil {
					e.ciphertext, e.version = ct, v
					w.add(e)
				}
				return err
			})
		}
	})
	return w
}

func (w *crashWorkers) stopped() bool {
	select {
	case <-w.quit:
		return true
	default:
		return false
	}
}

// call runs one operation and counts it if it succeeded; once the broker
// is dead calls fail until stop, and the pause keeps that from spinning.
func (w *crashWorkers) call(kind string, call func(ctx context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := call(ctx); err != nil {
		time.Sleep(10 * time.Millisecond)
		return
	}
	w.mu.Lock()
	w.done[kind]++
	w.mu.Unlock()
}

func (w *crashWorkers) add(e envelope) {
	w.mu.Lock()
	w.issued = append(w.issued, e)
	w.mu.Unlock()
}

// stop ends the workers and returns what they did.
func (w *crashWorkers) stop() crashResult {
	close(w.quit)
	w.wg.Wait()
	return crashResult{issued: w.issued, done: w.done}
}

// pluginPids returns the plugin processes of the running broker.
func pluginPids(t *testing.T, c *client.Client) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	var pids []int
	for _, p := range st.GetPurposes() {
		if p.GetPid() > 0 {
			pids = append(pids, int(p.GetPid()))
		}
	}
	if len(pids) == 0 {
		t.Fatalf("Status lists no plugin process")
	}
	return pids
}

// wantGone fails the test unless every process in pids has died (or is a
// zombie waiting for init) within pluginsDieWithin.
func wantGone(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(pluginsDieWithin)
	for _, pid := range pids {
		for !dead(pid) {
			if time.Now().After(deadline) {
				t.Errorf("plugin process %d outlived its SIGKILLed brokerd by %s", pid, pluginsDieWithin)
				syscall.Kill(pid, syscall.SIGKILL)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func dead(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	for i := len(raw) - 1; i >= 0; i-- {
		if raw[i] == ')' {
			return i+2 < len(raw) && raw[i+2] == 'Z'
		}
	}
	return false
}
