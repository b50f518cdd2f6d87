package faults

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kmsbroker/kmsbroker/client"
	"github.com/kmsbroker/kmsbroker/e2e/binaries"
	"github.com/kmsbroker/kmsbroker/e2e/brokerd"
)

// hangTimeout is the hanging block's per-call deadline (its timeout
// setting): long enough to tell a call that waited for it from one that
// did not, short enough to keep the test quick.
const hangTimeout = 3 * time.Second

// hangCallBound is the longest a call to the hanging block may take: the
// router retries a call that failed as unavailable once, so two
// deadlines, plus scheduling on a loaded machine.
const hangCallBound = 2*hangTimeout + 2*time.Second

// unblockedBound is the longest a call that does not need the hanging
// block may take meanwhile. It is below hangTimeout, so a call that
// queued behind the hang cannot pass.
const unblockedBound = 2 * time.Second

// degradedWithin bounds how long the hanging block may look ready: a few
// health check periods, each ending at the deadline.
const degradedWithin = 30 * time.Second

// TestHangingPlugin configures worker-auth on a plugin whose Encrypt and
// Decrypt never return, and checks that worker calls end at the block's
// deadline with a retryable error, the block turns degraded in status,
// and meanwhile root data operations and /v1/sys/health answer at once;
// with and without the opt-in KMS health check.
func TestHangingPlugin(t *testing.T) {
	for _, tc := range []struct {
		name        string
		healthCheck string // the block's health_check_interval; "" for none
	}{
		{name: "with health_check_interval", healthCheck: "1s"},
		{name: "without health_check_interval"},
	} {
		t.Run(tc.name, func(t *testing.T) { hangingPlugin(t, tc.healthCheck) })
	}
}

func hangingPlugin(t *testing.T, healthCheck string) {
	layout := binaries.Product(t)
	hangPath := binaries.Program(t, "./e2e/faults/testdata/hangplugin", "kmsbroker-plugin-hang")

	root, _ := brokerd.AEAD(t, "root-1", "root")
	recovery, _ := brokerd.AEAD(t, "recovery-1", "recovery")
	worker, _ := brokerd.AEAD(t, "worker-1", "worker-auth")
	hung := brokerd.Block{Type: "hang", Purposes: []string{"worker-auth"}, Settings: map[string]string{
		"plugin_path": hangPath,
		"key":         worker.Settings["key"],
		"key_id":      "worker-1",
		"hang":        "encrypt,decrypt",
		"timeout":     hangTimeout.String(),
	}}
	if healthCheck != "" {
		hung.Settings["health_check_interval"] = healthCheck
	}
	b := brokerd.New(t, layout, brokerd.Config{WorkerScopes: []string{"o_1"}, Blocks: []brokerd.Block{root, recovery, hung}})
	b.Start()
	admin := b.Bootstrap(b.WriteRecoveryFile(recovery))
	c := b.Client(client.Token(admin))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.CreateScope(ctx, "o_1", ""); err != nil {
		t.Fatalf("CreateScope: %v", err)
	}
	env, _, err := c.Encrypt(ctx, "o_1", "database", []byte("row-1"), nil)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}

	// The worker holds the same key on a working plugin, so its tokens are
	// good: only the broker's side hangs.
	workerFile := filepath.Join(b.Dir, "worker.hcl")
	if err := os.WriteFile(workerFile, []byte(worker.HCL(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	creds, err := client.WorkerCredentials(ctx, workerFile, "edge-1", client.OneTimeOptions{PluginDirectory: layout.Dir})
	if err != nil {
		t.Fatalf("WorkerCredentials: %v", err)
	}
	t.Cleanup(func() { creds.Close() })
	wc := b.Client(creds)

	// Keep several worker calls hanging while the rest is checked.
	const hangers = 6
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[codes.Code]int{}
	var longest time.Duration
	for range hangers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, _, err := wc.DeriveKey(ctx, "o_1", "u_1", "s_1", 32, 0)
				cancel()
				took := time.Since(start)
				mu.Lock()
				outcomes[status.Code(err)]++
				longest = max(longest, took)
				mu.Unlock()
				switch {
				case err == nil:
					t.Errorf("worker call through a hanging worker-auth KMS succeeded")
				case took > hangCallBound:
					t.Errorf("worker call took %s, want it to end at the block's deadline, within %s: %v", took, hangCallBound, err)
				case took < hangTimeout:
					t.Errorf("worker call failed after %s, before the block's %s deadline: %v", took, hangTimeout, err)
				}
			}
		})
	}

	t.Run("other purposes and health are not blocked", func(t *testing.T) {
		time.Sleep(hangTimeout / 2) // the worker calls are in the plugin now
		for i := range 10 {
			timed(t, "GET /v1/sys/health", func(ctx context.Context) error {
				code, err := b.Health(ctx)
				if err == nil && code != http.StatusOK {
					err = fmt.Errorf("status %d, want 200", code)
				}
				return err
			})
			timed(t, "Decrypt", func(ctx context.Context) error {
				got, err := c.Decrypt(ctx, "o_1", "database", env, nil)
				if err == nil && string(got) != "row-1" {
					err = fmt.Errorf("got %q, want row-1", got)
				}
				return err
			})
			timed(t, "Encrypt", func(ctx context.Context) error {
				_, _, err := c.Encrypt(ctx, "o_1", "database", []byte("row-2"), nil)
				return err
			})
			// These call the root plugin.
			timed(t, "CreateScope", func(ctx context.Context) error {
				_, err := c.CreateScope(ctx, fmt.Sprintf("o_new_%d", i), "")
				return err
			})
			timed(t, "RotateKeys", func(ctx context.Context) error {
				_, err := c.RotateKeys(ctx, "o_1", false)
				return err
			})
		}
	})

	t.Run("the block turns degraded", func(t *testing.T) {
		deadline := time.Now().Add(degradedWithin)
		var ps brokerd.PurposeStatus
		for time.Now().Before(deadline) {
			st, _ := b.Status(admin)
			ps = st.Purpose(t, "worker-auth")
			if ps.State == "degraded" {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if ps.State != "degraded" {
			t.Fatalf("status of worker-auth after %s: state %q, want degraded", degradedWithin, ps.State)
		}
		if ps.LastError == "" {
			t.Errorf("status of degraded worker-auth has no last_error")
		}
		if ps.Pid <= 0 {
			t.Errorf("status of degraded worker-auth: pid %d, want the live process", ps.Pid)
		}
		st, _ := b.Status(admin)
		if !st.Ready || st.Purpose(t, "root").State != "ready" {
			t.Errorf("status: ready=%t, root %q; want the broker ready and root ready", st.Ready, st.Purpose(t, "root").State)
		}
		if strings.Contains(ps.LastError, worker.Settings["key"]) {
			t.Errorf("last_error of worker-auth holds its key")
		}
	})

	close(stop)
	wg.Wait()
	t.Logf("worker calls through the hanging block, by code: %v; the longest took %s",
		outcomes, longest.Round(10*time.Millisecond))

	t.Run("a worker call ends at the deadline as unavailable", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		_, _, err := wc.DeriveKey(ctx, "o_1", "u_1", "s_1", 32, 0)
		took := time.Since(start)
		if status.Code(err) != codes.Unavailable {
			t.Errorf("worker call through a hanging worker-auth KMS: got %v, want code Unavailable (a backend down, retryable)", err)
		}
		if took > hangTimeout+unblockedBound {
			t.Errorf("worker call through a hanging worker-auth KMS took %s, want it to end at the block's %s timeout",
				took, hangTimeout)
		}
		if strings.Contains(err.Error(), base64.StdEncoding.EncodeToString([]byte(worker.Settings["key"]))) ||
			strings.Contains(err.Error(), worker.Settings["key"]) {
			t.Errorf("error of a worker call holds the worker-auth key")
		}
	})
}

// timed runs call with a deadline of unblockedBound and fails the test
// if it errs or runs out of time.
func timed(t *testing.T, what string, call func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := call(ctx)
	took := time.Since(start)
	if err != nil {
		t.Errorf("%s while worker-auth hangs: %v (after %s)", what, err, took)
	} else if took > unblockedBound {
		t.Errorf("%s while worker-auth hangs took %s, want under %s", what, took, unblockedBound)
	}
}
