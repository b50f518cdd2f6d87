package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kmsbroker/kmsbroker/client"
)

// pluginPids returns the pid serving each purpose, from brokerd status
// run with the extra flags given.
func (b *devBroker) pluginPids(t *testing.T, flags ...string) map[string]int {
	t.Helper()
	var st struct {
		Purposes []struct {
			Purpose string `json:"purpose"`
			Pid     int    `json:"pid"`
			State   string `json:"state"`
		} `json:"purposes"`
	}
	if err := json.Unmarshal([]byte(b.mustCLI(t, "", append([]string{"status", "-format=json"}, flags...)...)), &st); err != nil {
		t.Fatal(err)
	}
	pids := map[string]int{}
	for _, p := range st.Purposes {
		pids[p.Purpose] = p.Pid
	}
	return pids
}

// TestPluginKilledUnderLoad SIGKILLs the broker's recovery plugin while 8
// goroutines, alternating encrypt and decrypt, call the API with recovery
// tokens, each of which the broker must decrypt through that plugin. The
// plugin comes back, calls succeed again within 2 seconds, and every call
// that failed meanwhile failed within its deadline with Unavailable: the
// one code the API promises for a backend that may come back (see
// broker/server/errors.go). DeadlineExceeded does not count, as the
// block's 2s timeout must answer before the caller's 3s deadline, and
// pluginhost.Retryable does not repeat a call that ran out of time.
func TestPluginKilledUnderLoad(t *testing.T) {
	b := newBroker(t)
	rootKey, _ := secretKey(t)
	recoveryKey, _ := secretKey(t)
	cfg := writeFile(t, filepath.Join(b.dataDir, "broker.hcl"), fmt.Sprintf(`
listener "tcp" {
  address     = %q
  tls_disable = true
}
storage "sqlite" { path = %q }
kms "aead" {
  purpose = ["root"]
  key     = %q
}
kms "aead" {
  purpose = ["recovery"]
  key     = %q
  timeout = "2s"
}
`, b.addr, filepath.Join(b.dataDir, "broker.db"), rootKey, recoveryKey))
	recovery := writeFile(t, filepath.Join(b.dataDir, "recovery.hcl"),
		fmt.Sprintf("kms \"aead\" {\n  purpose = [\"recovery\"]\n  key = %q\n}\n", recoveryKey))
	b.start(t, "server", "-config="+cfg)
	b.waitReady(t, "broker started")

	ctx := context.Background()
	creds, err := client.RecoveryCredentials(ctx, recovery, client.OneTimeOptions{PluginDirectory: filepath.Dir(b.bin)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { creds.Close() })
	// No client retries: the test counts every failure the broker returns.
	c, err := client.New(client.Config{Address: "http://" + b.addr, Credentials: creds, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.CreateScope(ctx, "o_load", ""); err != nil {
		t.Fatal(err)
	}
	plaintext := []byte("v")
	envelope, _, err := c.Encrypt(ctx, "o_load", "database", plaintext, nil)
	if err != nil {
		t.Fatal(err)
	}

	pid := b.pluginPids(t, "-recovery-config="+recovery)["recovery"]
	if pid <= 0 {
		t.Fatalf("no recovery plugin pid")
	}

	const (
		workers  = 8
		duration = 5 * time.Second
		deadline = 3 * time.Second // the block's 2s timeout and the call around it
	)
	type tally struct{ ok, failed atomic.Int64 }
	var (
		tallies            = map[string]*tally{"encrypt": {}, "decrypt": {}}
		notRetryable, late atomic.Int64
		lastFailure        atomic.Int64 // unix nanos
		slowest            atomic.Int64 // nanos, of any call
		killedAt           time.Time
		wg                 sync.WaitGroup
	)
	// call makes the n-th call of a worker: an encrypt or a decrypt in
	// turn.
	call := func(ctx context.Context, n int) (string, error) {
		if n%2 == 0 {
			_, _, err := c.Encrypt(ctx, "o_load", "database", plaintext, nil)
			return "encrypt", err
		}
		got, err := c.Decrypt(ctx, "o_load", "database", envelope, nil)
		if err == nil && !bytes.Equal(got, plaintext) {
			t.Errorf("decrypt returned %q; want %q", got, plaintext)
		}
		return "decrypt", err
	}
	start := time.Now()
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half the workers start with a decrypt, so both kinds of
			// call are in flight at every moment.
			for n := i; time.Since(start) < duration; n++ {
				callCtx, cancel := context.WithTimeout(ctx, deadline)
				t0 := time.Now()
				op, err := call(callCtx, n)
				cancel()
				storeMax(&slowest, int64(time.Since(t0)))
				if err == nil {
					tallies[op].ok.Add(1)
					continue
				}
				tallies[op].failed.Add(1)
				lastFailure.Store(time.Now().UnixNano())
				if time.Since(t0) > deadline+500*time.Millisecond {
					late.Add(1)
				}
				if status.Code(err) != codes.Unavailable {
					notRetryable.Add(1)
					t.Logf("%s failed with a non-retryable error: %v", op, err)
				}
			}
		}()
	}
	time.Sleep(time.Second)
	killedAt = time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill recovery plugin %d: %v", pid, err)
	}
	wg.Wait()

	enc, dec := tallies["encrypt"], tallies["decrypt"]
	t.Logf("plugin %d killed; %d calls failed: encrypt %d succeeded, %d failed; decrypt %d succeeded, %d failed; slowest call %s",
		pid, enc.failed.Load()+dec.failed.Load(), enc.ok.Load(), enc.failed.Load(), dec.ok.Load(), dec.failed.Load(),
		time.Duration(slowest.Load()).Round(time.Millisecond))
	if enc.ok.Load() == 0 || dec.ok.Load() == 0 {
		t.Errorf("encrypt succeeded %d times, decrypt %d times; want both under load", enc.ok.Load(), dec.ok.Load())
	}
	if notRetryable.Load() != 0 {
		t.Errorf("%d calls failed with a non-retryable error", notRetryable.Load())
	}
	if late.Load() != 0 {
		t.Errorf("%d failed calls took longer than their deadline", late.Load())
	}
	if lf := lastFailure.Load(); lf != 0 {
		if recovered := time.Unix(0, lf).Sub(killedAt); recovered > 2*time.Second {
			t.Errorf("calls still failing %s after the kill, want success within 2s", recovered)
		}
	}
	for n := range 2 {
		if op, err := call(ctx, n); err != nil {
			t.Errorf("%s after the kill: %v", op, err)
		}
	}
	if now := b.pluginPids(t, "-recovery-config="+recovery)["recovery"]; now == pid || now <= 0 {
		t.Errorf("recovery plugin pid after the kill = %d, want a new process (was %d)", now, pid)
	}
}

// storeMax raises m to v if v is larger.
func storeMax(m *atomic.Int64, v int64) {
	for {
		was := m.Load()
		if v <= was || m.CompareAndSwap(was, v) {
			return
		}
	}
}

// TestKilledBrokerLeavesNothing SIGKILLs brokerd while it runs four
// plugins and finds no plugin process left and nothing new in its
// temporary directory.
func TestKilledBrokerLeavesNothing(t *testing.T) {
	b := newBroker(t)
	b.token = devToken
	tmp := t.TempDir()
	b.cmd = exec.Command(b.bin, "dev", "-listen="+b.addr, "-dev-token="+b.token, "-data-dir="+b.dataDir)
	b.cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	b.cmd.Stdout, b.cmd.Stderr = b.logs, b.logs
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.cmd.Process.Kill(); _ = b.cmd.Wait() })
	b.waitReady(t, "BROKER_TOKEN")

	pids := b.pluginPids(t)
	if len(pids) != 4 {
		t.Fatalf("plugin pids = %v, want 4", pids)
	}
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = b.cmd.Wait()

	deadline := time.Now().Add(5 * time.Second)
	for purpose, pid := range pids {
		for syscall.Kill(pid, 0) == nil {
			if time.Now().After(deadline) {
				t.Errorf("plugin %d (%s) outlived brokerd", pid, purpose)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left in the temporary directory: %s", e.Name())
	}
}
