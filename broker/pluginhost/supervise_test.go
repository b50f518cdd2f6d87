package pluginhost

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmsbroker/kmsbroker/broker/internal/metricstest"
)

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRestartUnderLoad SIGKILLs the plugin while 8 goroutines encrypt and
// decrypt for 5 seconds: the plugin comes back, calls succeed again within
// 2 seconds, and every failed call returned ErrUnavailable within its
// deadline.
func TestRestartUnderLoad(t *testing.T) {
	const (
		workers  = 8
		duration = 5 * time.Second
		timeout  = 2 * time.Second
		// slack covers scheduling under the race detector on two cores.
		slack = 500 * time.Millisecond
	)
	reg := prometheus.NewRegistry()
	p := startAEAD(t, func(c *Config) { c.Timeout = timeout; c.Registerer = reg })
	ctx := context.Background()
	blob, err := p.Encrypt(ctx, []byte("kek"), []byte("o_1"))
	if err != nil {
		t.Fatal(err)
	}
	oldPid := p.Info().Pid

	var (
		mu           sync.Mutex
		calls        int
		failures     int
		killedAt     time.Time
		firstSuccess time.Time // first success that started after the kill
	)
	stop := time.Now().Add(duration)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				start := time.Now()
				var err error
				if (w+i)%2 == 0 {
					_, err = p.Encrypt(ctx, []byte("payload"), []byte("o_1"))
				} else {
					var got []byte
					got, err = p.Decrypt(ctx, blob, []byte("o_1"))
					if err == nil && string(got) != "kek" {
						t.Errorf("Decrypt = %q; want kek", got)
					}
				}
				took := time.Since(start)
				mu.Lock()
				calls++
				if err != nil {
					failures++
					if !errors.Is(err, ErrUnavailable) {
						t.Errorf("call failed with a non-retryable error: %v", err)
					}
					if took > timeout+slack {
						t.Errorf("failed call took %s; deadline %s", took, timeout)
					}
				} else if !killedAt.IsZero() && start.After(killedAt) && firstSuccess.IsZero() {
					firstSuccess = time.Now()
				}
				mu.Unlock()
			}
		}(w)
	}

	time.Sleep(time.Second)
	mu.Lock()
	killedAt = time.Now()
	mu.Unlock()
	if err := syscall.Kill(oldPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	t.Logf("%d calls, %d failed, first success %s after the kill", calls, failures, firstSuccess.Sub(killedAt))
	if firstSuccess.IsZero() {
		t.Fatal("no call succeeded after the kill")
	}
	if d := firstSuccess.Sub(killedAt); d > 2*time.Second {
		t.Errorf("calls succeeded again %s after the kill; want within 2s", d)
	}
	info := p.Info()
	if info.Pid == oldPid || !alive(info.Pid) || info.State != StateReady || info.Restarts != 1 {
		t.Errorf("after restart: pid %d (old %d), state %s, restarts %d; want a new live pid, ready, 1 restart",
			info.Pid, oldPid, info.State, info.Restarts)
	}
	if !strings.Contains(info.LastError, "exited") {
		t.Errorf("LastError = %q; want the exit", info.LastError)
	}
	if got := metricValue(t, reg, metricRestarts, map[string]string{"block": "aead"}); got != 1 {
		t.Errorf("%s = %v; want 1", metricRestarts, got)
	}
}

// TestHungPluginReplaced stops the plugin process (SIGSTOP): the liveness
// call notices and the host replaces it.
func TestHungPluginReplaced(t *testing.T) {
	p := startAEAD(t, func(c *Config) {
		c.Timeout = 300 * time.Millisecond
		c.LivenessInterval = 200 * time.Millisecond
	})
	oldPid := p.Info().Pid
	if err := syscall.Kill(oldPid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(oldPid, syscall.SIGKILL) })

	start := time.Now()
	_, err := p.Encrypt(context.Background(), []byte("x"), nil)
	if err != nil && (!errors.Is(err, ErrUnavailable) || time.Since(start) > time.Second) {
		t.Errorf("call to the hung plugin: %v after %s; want success or ErrUnavailable within the deadline", err, time.Since(start))
	}
	waitFor(t, 10*time.Second, "a new process", func() bool {
		info := p.Info()
		return info.Pid != oldPid && info.State == StateReady
	})
	if _, err := p.Encrypt(context.Background(), []byte("x"), nil); err != nil {
		t.Errorf("Encrypt on the new process: %v", err)
	}
	if alive(oldPid) {
		t.Errorf("hung process %d still alive", oldPid)
	}
	if got := p.Info().LastError; !strings.Contains(got, "health") {
		t.Errorf("LastError = %q; want the failed health calls", got)
	}
}

// TestFailedStateAndRecovery removes the binary and kills the process: the
// restart fails for good reason (failed state, calls fail fast), and
// putting the binary back brings the block back.
func TestFailedStateAndRecovery(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, ExecutablePrefix+"aead")
	copyFile(t, filepath.Join(testBin, ExecutablePrefix+"aead"), exe)
	p := startAEAD(t, func(c *Config) { c.Directory = dir })

	if err := os.Rename(exe, exe+".away"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(p.Info().Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the failed state", func() bool { return p.Info().State == StateFailed })
	if got := p.Info().LastError; !strings.Contains(got, "plugin not found") || !strings.Contains(got, exe) {
		t.Errorf("LastError = %q; want plugin not found naming %s", got, exe)
	}
	start := time.Now()
	if _, err := p.Encrypt(context.Background(), []byte("x"), nil); !errors.Is(err, ErrUnavailable) || time.Since(start) > 500*time.Millisecond {
		t.Errorf("Encrypt while failed: %v after %s; want ErrUnavailable at once", err, time.Since(start))
	}

	if err := os.Rename(exe+".away", exe); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "recovery", func() bool { return p.Info().State == StateReady })
	if _, err := p.Encrypt(context.Background(), []byte("x"), nil); err != nil {
		t.Errorf("Encrypt after recovery: %v", err)
	}
}

// TestKMSCheck: the opt-in KMS check marks the block degraded during an
// outage the process survives, and ready again after it.
func TestKMSCheck(t *testing.T) {
	failFile := filepath.Join(t.TempDir(), "outage")
	reg := prometheus.NewRegistry()
	p := startPlugin(t, Config{
		Name: "flaky", Type: "flaky", Directory: testBin, Logger: testLogger(t), Registerer: reg,
		Settings:            map[string]string{"key": testKey, "fail_file": failFile},
		HealthCheckInterval: 100 * time.Millisecond,
	})
	pid := p.Info().Pid
	if err := os.WriteFile(failFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The plugin answers that its KMS is out: retryable, and no reason
	// to replace a live process.
	if _, err := p.Encrypt(context.Background(), []byte("x"), nil); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "test outage") {
		t.Errorf("Encrypt during the outage: %v; want ErrUnavailable naming the outage", err)
	}
	waitFor(t, 5*time.Second, "degraded", func() bool { return p.Info().State == StateDegraded })
	// The failed call alone marks the block degraded; wait until the KMS
	// check has seen the outage too.
	waitFor(t, 5*time.Second, "a failed kms check", func() bool {
		return metricValue(t, reg, metricCalls, map[string]string{"operation": opCheck, "result": "unavailable"}) >= 1
	})
	if info := p.Info(); info.Pid != pid || info.Restarts != 0 {
		t.Errorf("a KMS outage replaced the process: pid %d -> %d, %d restarts", pid, info.Pid, info.Restarts)
	}
	if got := p.Info().LastError; !strings.Contains(got, "test outage") {
		t.Errorf("LastError = %q; want the outage", got)
	}
	if err := p.Health(context.Background()); err != nil {
		t.Errorf("Health (liveness) while the KMS is out: %v; want nil", err)
	}
	if got := metricValue(t, reg, metricState, map[string]string{"state": StateDegraded}); got != 1 {
		t.Errorf("state gauge degraded = %v; want 1", got)
	}
	if err := os.Remove(failFile); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "ready", func() bool { return p.Info().State == StateReady })
}

// TestFailingCallsDegrade: without the KMS check, calls that the KMS
// cannot serve mark the block degraded, and a served call marks it ready.
func TestFailingCallsDegrade(t *testing.T) {
	failFile := filepath.Join(t.TempDir(), "outage")
	p := startPlugin(t, Config{
		Name: "flaky", Type: "flaky", Directory: testBin, Logger: testLogger(t),
		Settings: map[string]string{"key": testKey, "fail_file": failFile},
	})
	ctx := context.Background()
	if err := os.WriteFile(failFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Encrypt(ctx, []byte("x"), nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Encrypt during the outage: %v; want ErrUnavailable", err)
	}
	if info := p.Info(); info.State != StateDegraded || !strings.Contains(info.LastError, "test outage") {
		t.Errorf("after a failed call: state %q, last error %q; want degraded naming the outage", info.State, info.LastError)
	}
	if err := os.Remove(failFile); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Encrypt(ctx, []byte("x"), nil); err != nil {
		t.Fatalf("Encrypt after the outage: %v", err)
	}
	if got := p.Info().State; got != StateReady {
		t.Errorf("after a served call: state %q, want ready", got)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := startAEAD(t, func(c *Config) { c.Registerer = reg })
	b := startAEAD(t, func(c *Config) { c.Name = "aead#2"; c.Registerer = reg })
	ctx := context.Background()
	blob, err := a.Encrypt(ctx, []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Decrypt(ctx, blob, []byte("wrong")); !errors.Is(err, ErrDecrypt) {
		t.Fatal(err)
	}
	if _, err := b.Encrypt(ctx, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{metricCalls, map[string]string{"block": "aead", "operation": "encrypt", "result": "ok"}, 1},
		{metricCalls, map[string]string{"block": "aead", "operation": "decrypt", "result": "decrypt_failed"}, 1},
		{metricCalls, map[string]string{"block": "aead#2", "operation": "encrypt", "result": "ok"}, 1},
		{metricState, map[string]string{"block": "aead", "state": StateReady}, 1},
		{metricState, map[string]string{"block": "aead", "state": StateRestarting}, 0},
		{metricRestarts, map[string]string{"block": "aead#2"}, 0},
		{metricDuration, map[string]string{"block": "aead", "operation": "encrypt"}, 1},
	}
	for _, tt := range tests {
		if got := metricValue(t, reg, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v; want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}

// metricValue returns the value (a histogram's sample count) of the one
// series of name whose labels include labels; -1 if there is none.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	if v, ok := metricstest.Value(t, reg, name, labels); ok {
		return v
	}
	return -1
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRestartRechecksPin replaces a pinned binary while its process runs:
// the restart refuses the new file, naming both digests.
func TestRestartRechecksPin(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, ExecutablePrefix+"aead")
	copyFile(t, filepath.Join(testBin, ExecutablePrefix+"aead"), exe)
	pin := sha256File(t, exe)
	p := startAEAD(t, func(c *Config) { c.Directory = dir; c.SHA256 = pin })

	other := filepath.Join(dir, "other")
	copyFile(t, filepath.Join(testBin, ExecutablePrefix+"transit"), other)
	if err := os.Rename(other, exe); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(p.Info().Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the failed state", func() bool { return p.Info().State == StateFailed })
	got := p.Info().LastError
	for _, want := range []string{"plugin checksum mismatch", pin, sha256File(t, exe)} {
		if !strings.Contains(got, want) {
			t.Errorf("LastError = %q; want it to contain %q", got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	const maxDelay = DefaultMaxRestartBackoff
	tests := []struct {
		attempt  int
		cap      time.Duration
		min, max time.Duration
	}{
		{0, maxDelay, backoffBase / 2, backoffBase},
		{1, maxDelay, backoffBase, 2 * backoffBase},
		{4, maxDelay, 8 * backoffBase, 16 * backoffBase},
		{9, maxDelay, maxDelay / 2, maxDelay},
		{1000, maxDelay, maxDelay / 2, maxDelay},
		{9, time.Second, time.Second / 2, time.Second},
	}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for i := 0; i < 50; i++ {
			d := backoff(tt.attempt, tt.cap)
			if d < tt.min || d > tt.max {
				t.Fatalf("backoff(%d) = %s; want within [%s, %s]", tt.attempt, d, tt.min, tt.max)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("backoff(%d) returned one value 50 times; want jitter", tt.attempt)
		}
	}
}

// A caller that gives up says nothing about the plugin: the call ends
// with the caller's own error and the block stays ready. (It used to be
// reported as the plugin's timeout and degrade the block, which for root
// made the broker unready.)
func TestCallerGivingUpDoesNotDegrade(t *testing.T) {
	hangFile := filepath.Join(t.TempDir(), "hang")
	p := startPlugin(t, Config{
		Name: "flaky", Type: "flaky", Directory: testBin, Logger: testLogger(t),
		Settings: map[string]string{"key": testKey, "hang_file": hangFile},
	})
	if err := os.WriteFile(hangFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, giveUp := range map[string]func() (context.Context, context.CancelFunc){
		"deadline": func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 200*time.Millisecond)
		},
		"cancel": func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			return ctx, cancel
		},
	} {
		ctx, cancel := giveUp()
		_, err := p.Encrypt(ctx, []byte("x"), nil)
		cancel()
		if err == nil || errors.Is(err, ErrUnavailable) || ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
			t.Errorf("%s: Encrypt = %v; want the caller's %v, not ErrUnavailable", name, err, ctx.Err())
		}
		if info := p.Info(); info.State != StateReady {
			t.Errorf("%s: state %q (last error %q) after the caller gave up; want ready", name, info.State, info.LastError)
		}
	}
}

// A degraded plugin is checked again on its own and turns ready when its
// KMS answers, with no call needed to reach it.
func TestDegradedPluginRechecked(t *testing.T) {
	failFile := filepath.Join(t.TempDir(), "outage")
	p := startPlugin(t, Config{
		Name: "flaky", Type: "flaky", Directory: testBin, Logger: testLogger(t),
		Settings:        map[string]string{"key": testKey, "fail_file": failFile},
		RecheckInterval: 100 * time.Millisecond,
	})
	if err := os.WriteFile(failFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Encrypt(context.Background(), []byte("x"), nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Encrypt during the outage: %v; want ErrUnavailable", err)
	}
	// Rechecks during the outage keep it degraded.
	time.Sleep(500 * time.Millisecond)
	if got := p.Info().State; got != StateDegraded {
		t.Fatalf("during the outage: state %q, want degraded", got)
	}
	if err := os.Remove(failFile); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.Info().State != StateReady {
		if time.Now().After(deadline) {
			t.Fatalf("still %q 10s after the outage ended; want ready from a recheck", p.Info().State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
