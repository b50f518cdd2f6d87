// Package brokerd runs `brokerd server` for the fault and hygiene
// end-to-end tests: it writes the config file, starts the built binary as
// a child process that dies with the test, kills and restarts it on the
// same store, mints the first admin token through a recovery token, and
// reads what an operator can see of a running broker: health, status,
// /metrics and the process's resident memory.
//
// Everything goes through the built binaries and the Go SDK; nothing here
// imports the broker's own packages.
package brokerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kmsbroker/kmsbroker/e2e/binaries"
	"github.com/kmsbroker/kmsbroker/e2e/loopback"
	"github.com/kmsbroker/kmsbroker/e2e/proc"
)

// StartTimeout bounds how long a broker may take to become ready: its
// plugins start in parallel (10 s each at most by default), then one root
// probe, on a loaded two-core machine running the race detector.
const StartTimeout = 60 * time.Second

// Broker is one brokerd installation: a config file and a store that
// survive restarts, and the process running now.
type Broker struct {
	t      testing.TB
	Layout binaries.Layout
	// Dir holds the config file and, for SQLite, the database.
	Dir    string
	Config Config
	// Flags are extra flags of `brokerd server`, e.g. -log-level=debug.
	Flags []string
	// Env is brokerd's environment on top of BaseEnv.
	Env []string
	// RawConfig, when set, is written as the config file instead of
	// Config's rendering, e.g. a config whose values `brokerd config
	// encrypt` has encrypted. Config still gives the address.
	RawConfig string

	// cliEnv is the environment of every CLI command.
	cliEnv  []string
	cfgPath string
	proc    *proc.Process
	logs    []string
}

// New prepares a broker with cfg. An empty Address gets a free loopback
// port, and an empty SQLite DBPath a file in a new temporary directory.
// It does not start the broker.
func New(t testing.TB, layout binaries.Layout, cfg Config) *Broker {
	t.Helper()
	b := &Broker{t: t, Layout: layout, Dir: t.TempDir(), Config: cfg, cliEnv: BaseEnv(t)}
	if b.Config.Address == "" {
		b.Config.Address = loopback.Addr(t)
	}
	if b.Config.Storage == "" {
		b.Config.Storage = SQLite
	}
	if b.Config.Storage == SQLite && b.Config.DBPath == "" {
		b.Config.DBPath = filepath.Join(b.Dir, "broker.db")
	}
	return b
}

// URL is the broker's API address as clients take it.
func (b *Broker) URL() string { return "http://" + b.Config.Address }

// BaseEnv is what every brokerd process, server or CLI, gets: PATH, a
// private HOME so no AWS or Vault file of the machine leaks in, and a
// short TMPDIR of its own. go-plugin puts its unix sockets in TMPDIR, and
// a socket path over 107 bytes cannot be bound, which a t.TempDir() named
// after a long subtest easily exceeds.
func BaseEnv(t testing.TB) []string {
	t.Helper()
	tmp, err := os.MkdirTemp("", "kmsb")
	if err != nil {
		t.Fatalf("brokerd: make TMPDIR: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + tmp}
}

// WriteConfig writes the config file: RawConfig, or else Config rendered.
func (b *Broker) WriteConfig() {
	b.t.Helper()
	b.cfgPath = filepath.Join(b.Dir, "broker.hcl")
	text := b.RawConfig
	if text == "" {
		text = b.Config.HCL(b.t)
	}
	if err := os.WriteFile(b.cfgPath, []byte(text), 0o600); err != nil {
		b.t.Fatalf("brokerd: write config: %v", err)
	}
}

// Start writes the config, runs `brokerd server` and waits until health
// answers 200. It fails the test if brokerd exits or is not ready within
// StartTimeout.
func (b *Broker) Start() {
	b.t.Helper()
	if err := b.StartErr(); err != nil {
		b.t.Fatal(err)
	}
}

// StartErr is Start returning the failure instead.
func (b *Broker) StartErr() error {
	b.t.Helper()
	b.WriteConfig()
	cmd := exec.Command(b.Layout.Brokerd, append([]string{"server", "-config=" + b.cfgPath}, b.Flags...)...)
	cmd.Env = append(BaseEnv(b.t), b.Env...)
	b.proc = proc.Start(b.t, "brokerd", cmd)
	b.logs = append(b.logs, b.proc.LogPath())

	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	return b.proc.WaitReady(ctx, func(ctx context.Context) error {
		code, err := b.Health(ctx)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("health answered %d", code)
		}
		return nil
	})
}

// Pid is the running brokerd's process id.
func (b *Broker) Pid() int { return b.proc.Pid() }

// Done is closed when the running brokerd has exited.
func (b *Broker) Done() <-chan struct{} { return b.proc.Done() }

// Kill sends SIGKILL to brokerd alone, not to its process group, as a
// crash or the OOM killer would, and waits until it has exited. Its
// plugins must then die on their own.
func (b *Broker) Kill() {
	b.t.Helper()
	if err := syscall.Kill(b.proc.Pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		b.t.Fatalf("brokerd: kill %d: %v", b.proc.Pid(), err)
	}
	select {
	case <-b.proc.Done():
	case <-time.After(10 * time.Second):
		b.t.Fatalf("brokerd: pid %d still running 10s after SIGKILL", b.proc.Pid())
	}
}

// Stop ends brokerd with SIGTERM, as an operator does, and waits.
func (b *Broker) Stop() {
	b.t.Helper()
	b.proc.Stop()
}

// Health calls GET /v1/sys/health and returns its status code.
func (b *Broker) Health(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.URL()+"/v1/sys/health", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Ready *bool `json:"ready"`
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.Ready == nil {
		return resp.StatusCode, fmt.Errorf("health answer %q is not {\"ready\": bool}", raw)
	}
	return resp.StatusCode, nil
}

// Logs returns what every brokerd process of this broker wrote so far,
// in order.
func (b *Broker) Logs() string {
	b.t.Helper()
	var all strings.Builder
	for _, path := range b.logs {
		raw, err := os.ReadFile(path)
		if err != nil {
			b.t.Fatalf("brokerd: read log: %v", err)
		}
		all.Write(raw)
	}
	return all.String()
}
