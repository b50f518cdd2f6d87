package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kmsbroker/kmsbroker/client"
)

// load runs data operations against a broker from goroutines until
// stopped, and records every failure.
type load struct {
	c        *client.Client
	stop     chan struct{}
	wg       sync.WaitGroup
	ops      atomic.Int64 // successful operations
	mu       sync.Mutex
	failures []string
}

func (l *load) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, fmt.Sprintf(format, args...))
}

func (l *load) running() bool {
	select {
	case <-l.stop:
		return false
	default:
		return true
	}
}

// roundTrips encrypts and decrypts in scope until stopped: the scope's
// keys are in the broker's cache.
func (l *load) roundTrips(ctx context.Context, scope string) {
	defer l.wg.Done()
	for l.running() {
		pt := make([]byte, 24)
		_, _ = rand.Read(pt)
		env, _, err := l.c.Encrypt(ctx, scope, "database", pt, []byte("row"))
		if err != nil {
			l.fail("encrypt in %s: %v", scope, err)
			continue
		}
		got, err := l.c.Decrypt(ctx, scope, "database", env, []byte("row"))
		if err != nil || !bytes.Equal(got, pt) {
			l.fail("decrypt in %s: %v", scope, err)
			continue
		}
		l.ops.Add(1)
		time.Sleep(2 * time.Millisecond)
	}
}

// newScopes creates scopes and encrypts in each until stopped: every
// scope's key is wrapped by the root KMS block's plugin.
func (l *load) newScopes(ctx context.Context) {
	defer l.wg.Done()
	for i := 0; l.running(); i++ {
		id := fmt.Sprintf("o_load_%d", i)
		if _, err := l.c.CreateScope(ctx, id, ""); err != nil {
			l.fail("create scope %s: %v", id, err)
			continue
		}
		if _, _, err := l.c.Encrypt(ctx, id, "tokens", []byte("x"), nil); err != nil {
			l.fail("encrypt in new scope %s: %v", id, err)
			continue
		}
		l.ops.Add(1)
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReloadOnSIGHUP changes the root block of a running `brokerd server`
// through SIGHUP while data operations run from several goroutines: to a
// broken key and to another key (both refused, the old process serves on),
// then to a working change (a new process takes over). No operation may
// fail throughout.
func TestReloadOnSIGHUP(t *testing.T) {
	b := newBroker(t)
	rootKey, _ := secretKey(t)
	otherKey, _ := secretKey(t)
	recoveryKey, _ := secretKey(t)
	configKey, _ := secretKey(t)
	vars := map[string]string{"LEVEL": "info", "ADDR": b.addr, "DB": filepath.Join(b.dataDir, "broker.db"),
		"ROOT_KEY": rootKey, "ROOT_KEY_ID": "root-1", "RECOVERY_KEY": recoveryKey, "CONFIG_KEY": configKey}
	with := func(kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range vars {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	// write renders the config and encrypts its root key in place, so
	// every reload decrypts it again.
	write := func(v map[string]string) string {
		t.Helper()
		path := render(t, b.dataDir, "reload.hcl", v)
		b.mustCLI(t, "", "config", "encrypt", "-overwrite", "-config="+path)
		return path
	}
	cfgPath := write(vars)
	b.start(t, "server", "-config="+cfgPath)
	b.waitReady(t, "broker started")

	recovery := writeFile(t, filepath.Join(b.dataDir, "recovery.hcl"),
		"kms \"aead\" {\n  purpose = [\"recovery\"]\n  key = \""+recoveryKey+"\"\n}\n")
	token := lastLine(b.mustCLI(t, "", "tokens", "create", "-name=load", "-role=admin", "-recovery-config="+recovery))
	// No client retries: every failed call counts.
	c, err := client.New(client.Config{Address: "http://" + b.addr, Credentials: client.Token(token), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.CreateScope(ctx, "o_steady", ""); err != nil {
		t.Fatal(err)
	}

	root := func() (int, string, string) {
		t.Helper()
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		for _, p := range st.GetPurposes() {
			if p.GetPurpose() == "root" {
				return int(p.GetPid()), p.GetKeyId(), p.GetState()
			}
		}
		t.Fatal("status has no root purpose")
		return 0, "", ""
	}
	// hup rewrites the config, sends SIGHUP and waits for want in the
	// broker's output after the signal.
	hup := func(v map[string]string, want string) string {
		t.Helper()
		write(v)
		mark := len(b.logs.String())
		if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			out := b.logs.String()[mark:]
			if strings.Contains(out, want) {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q after SIGHUP:\n%s", want, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// progress waits until the load has made n more operations.
	l := &load{c: c, stop: make(chan struct{})}
	progress := func(n int64) {
		t.Helper()
		target := l.ops.Load() + n
		deadline := time.Now().Add(30 * time.Second)
		for l.ops.Load() < target {
			if time.Now().After(deadline) {
				t.Fatalf("load stalled at %d operations", l.ops.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	l.wg.Add(3)
	go l.roundTrips(ctx, "o_steady")
	go l.roundTrips(ctx, "o_steady")
	go l.newScopes(ctx)
	stopLoad := sync.OnceFunc(func() { close(l.stop); l.wg.Wait() })
	defer stopLoad()
	progress(20)

	pid0, keyID0, _ := root()
	if keyID0 != "root-1" {
		t.Fatalf("root key id = %q, want root-1", keyID0)
	}

	t.Run("broken key keeps the old process", func(t *testing.T) {
		out := hup(with("ROOT_KEY", "not base64"), "kms block reload failed")
		if !strings.Contains(out, `setting \"key\": is not valid base64`) {
			t.Errorf("the reload error does not name the setting:\n%s", out)
		}
		if pid, _, state := root(); pid != pid0 || state != "ready" {
			t.Errorf("root pid %d state %s, want the old %d ready", pid, state, pid0)
		}
		progress(20)
	})

	t.Run("another root key is refused", func(t *testing.T) {
		out := hup(with("ROOT_KEY", otherKey), "kms block reload failed")
		if !strings.Contains(out, "cannot decrypt what the running one encrypts") {
			t.Errorf("the refusal does not say why:\n%s", out)
		}
		if pid, _, state := root(); pid != pid0 || state != "ready" {
			t.Errorf("root pid %d state %s, want the old %d ready", pid, state, pid0)
		}
		progress(20)
	})

	t.Run("working change starts a new process", func(t *testing.T) {
		out := hup(with("ROOT_KEY_ID", "root-2", "LEVEL", "debug"), "kms block reloaded")
		if !strings.Contains(out, "log level changed: from=info to=debug") {
			t.Errorf("log level not reloaded:\n%s", out)
		}
		pid, keyID, state := root()
		if pid == pid0 || keyID != "root-2" || state != "ready" {
			t.Fatalf("root pid %d key id %q state %s, want a new pid with root-2 ready", pid, keyID, state)
		}
		deadline := time.Now().Add(15 * time.Second)
		for syscall.Kill(pid0, 0) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("old root plugin %d still runs", pid0)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The old process is gone: the root wraps from here on are the
		// new one's.
		progress(50)
	})

	stopLoad()
	if len(l.failures) > 0 {
		t.Errorf("%d data operations failed during the reloads, first: %s", len(l.failures), l.failures[0])
	}
	logs := b.logs.String()
	for name, s := range map[string]string{"root key": rootKey, "other key": otherKey, "config key": configKey, "token": token} {
		if strings.Contains(logs, s) {
			t.Errorf("broker log holds the %s", name)
		}
	}
}
