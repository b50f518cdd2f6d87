package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The integration tests run the real binaries: brokerd and the aead plugin,
// built by the test into a temporary directory, talking over go-plugin and
// the real API.

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// binaries builds brokerd and the built-in plugins once per test binary.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "brokerd-it-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		for pkg, out := range map[string]string{
			"./cmd/brokerd":     "brokerd",
			"./plugins/aead":    "kmsbroker-plugin-aead",
			"./plugins/awskms":  "kmsbroker-plugin-awskms",
			"./plugins/transit": "kmsbroker-plugin-transit",
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
			cmd.Dir = filepath.Join("..", "..")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// devBroker is a running `brokerd dev` process.
type devBroker struct {
	bin     string
	addr    string
	token   string
	dataDir string
	cmd     *exec.Cmd
	logs    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// devToken is a fixed admin token, so the test can search output for it.
const devToken = "kmsb.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"

func startDev(t *testing.T) *devBroker {
	t.Helper()
	b := newBroker(t)
	b.token = devToken
	b.start(t, "dev", "-listen="+b.addr, "-dev-token="+b.token, "-data-dir="+b.dataDir, "-log-level=debug")
	b.waitReady(t, "BROKER_TOKEN")
	return b
}

// newBroker prepares a broker on a free port with a fresh data directory.
func newBroker(t *testing.T) *devBroker {
	t.Helper()
	dir := binaries(t)
	return &devBroker{
		bin:     filepath.Join(dir, "brokerd"),
		addr:    freeAddr(t),
		dataDir: t.TempDir(),
		logs:    &syncBuffer{},
	}
}

// start runs brokerd with args and stops it when the test ends.
func (b *devBroker) start(t *testing.T, args ...string) {
	t.Helper()
	b.cmd = exec.Command(b.bin, args...)
	b.cmd.Stdout = b.logs
	b.cmd.Stderr = b.logs
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = b.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = b.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("brokerd output:\n%s", b.logs.String())
		}
	})
}

// waitReady waits until health answers 200 and the output holds marker.
func (b *devBroker) waitReady(t *testing.T, marker string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + b.addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(b.logs.String(), marker) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("brokerd not ready after 30s:\n%s", b.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cli runs a brokerd client command against b and returns stdout, stderr
// and the exit code.
func (b *devBroker) cli(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(b.bin, args...)
	cmd.Env = append(os.Environ(), "BROKER_ADDR=http://"+b.addr)
	if b.token != "" {
		cmd.Env = append(cmd.Env, "BROKER_TOKEN="+b.token)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run brokerd %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

func (b *devBroker) mustCLI(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := b.cli(t, stdin, args...)
	if code != 0 {
		t.Fatalf("brokerd %s: exit %d\nstderr: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func TestDevEncryptDecrypt(t *testing.T) {
	b := startDev(t)
	const secret = "s3cret-plaintext-7f3a"

	b.mustCLI(t, "", "scopes", "create", "-id=o_demo")
	b.mustCLI(t, "", "scopes", "create", "-id=o_other")
	envelope := strings.TrimSpace(b.mustCLI(t, secret, "encrypt", "-scope=o_demo", "-purpose=database", "-aad=row-1", "-"))
	if _, err := base64.StdEncoding.DecodeString(envelope); err != nil {
		t.Fatalf("encrypt printed %q, not base64: %v", envelope, err)
	}

	got := b.mustCLI(t, envelope, "decrypt", "-scope=o_demo", "-purpose=database", "-aad=row-1", "-")
	if got != secret {
		t.Fatalf("decrypt = %q, want %q", got, secret)
	}

	raw, _ := base64.StdEncoding.DecodeString(envelope)
	corrupt := append([]byte(nil), raw...)
	corrupt[len(corrupt)-1] ^= 0x01
	truncated := raw[:len(raw)/2]

	failures := []struct {
		name    string
		args    []string
		input   string
		wantErr string
	}{
		{"wrong aad", []string{"-scope=o_demo", "-purpose=database", "-aad=row-2"}, envelope, "decrypt failed"},
		{"no aad", []string{"-scope=o_demo", "-purpose=database"}, envelope, "decrypt failed"},
		{"other scope", []string{"-scope=o_other", "-purpose=database", "-aad=row-1"}, envelope, "decrypt failed"},
		{"other purpose", []string{"-scope=o_demo", "-purpose=oplog", "-aad=row-1"}, envelope, "decrypt failed"},
		{"corrupted", []string{"-scope=o_demo", "-purpose=database", "-aad=row-1"}, base64.StdEncoding.EncodeToString(corrupt), "decrypt failed"},
		{"truncated", []string{"-scope=o_demo", "-purpose=database", "-aad=row-1"}, base64.StdEncoding.EncodeToString(truncated), "decrypt failed"},
		{"not base64", []string{"-scope=o_demo", "-purpose=database"}, "!!!", "not valid base64"},
		{"unknown scope", []string{"-scope=o_missing", "-purpose=database", "-aad=row-1"}, envelope, "not found"},
		{"unknown purpose", []string{"-scope=o_demo", "-purpose=backups"}, envelope, "purpose"},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := b.cli(t, tc.input, append(append([]string{"decrypt"}, tc.args...), "-")...)
			if code != 1 {
				t.Fatalf("exit code = %d, want 1; stdout %q stderr %q", code, out, errOut)
			}
			if out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
			if !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", errOut, tc.wantErr)
			}
			if strings.Contains(errOut, secret) || strings.Contains(strings.ToLower(errOut), "panic") {
				t.Errorf("stderr leaks the plaintext or a panic: %q", errOut)
			}
		})
	}

	// Nothing secret reached the broker's own log: not the plaintext, not
	// the token, not the dev recovery key it wrote to recovery.hcl.
	recovery, err := os.ReadFile(filepath.Join(b.dataDir, "recovery.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	recoveryKey := between(string(recovery), `key     = "`, `"`)
	if recoveryKey == "" {
		t.Fatalf("no key in recovery.hcl:\n%s", recovery)
	}
	logs := b.logs.String()
	if strings.Contains(logs, "panic") {
		t.Errorf("broker log has a panic:\n%s", logs)
	}
	for name, s := range map[string]string{"plaintext": secret, "recovery key": recoveryKey} {
		if strings.Contains(logs, s) {
			t.Errorf("broker log contains the %s", name)
		}
	}
	// The token is printed once on stdout by design; it must appear
	// exactly there and nowhere else.
	if n := strings.Count(logs, devToken); n != 1 {
		t.Errorf("dev token appears %d times in the output, want once (the banner)", n)
	}
}

func TestDevStatusJSON(t *testing.T) {
	b := startDev(t)
	out := b.mustCLI(t, "", "status", "-format=json")
	var st struct {
		Ready    bool `json:"ready"`
		Purposes []struct {
			Purpose    string `json:"purpose"`
			PluginType string `json:"plugin_type"`
			Pid        int    `json:"pid"`
			State      string `json:"state"`
		} `json:"purposes"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status is not JSON: %v\n%s", err, out)
	}
	if !st.Ready {
		t.Errorf("ready = false, want true")
	}
	want := map[string]bool{"root": true, "worker-auth": true, "recovery": true, "config": true}
	pids := map[int]bool{}
	for _, p := range st.Purposes {
		if !want[p.Purpose] {
			t.Errorf("unexpected purpose %q", p.Purpose)
			continue
		}
		delete(want, p.Purpose)
		if p.PluginType != "aead" {
			t.Errorf("%s: plugin_type = %q, want aead", p.Purpose, p.PluginType)
		}
		if p.Pid <= 0 || p.Pid == b.cmd.Process.Pid {
			t.Errorf("%s: pid = %d, want a plugin's pid (brokerd is %d)", p.Purpose, p.Pid, b.cmd.Process.Pid)
		}
		if err := syscall.Kill(p.Pid, 0); err != nil {
			t.Errorf("%s: pid %d is not alive: %v", p.Purpose, p.Pid, err)
		}
		if p.State != "ready" {
			t.Errorf("%s: state = %q, want ready", p.Purpose, p.State)
		}
		pids[p.Pid] = true
	}
	if len(want) != 0 {
		t.Errorf("missing purposes: %v", want)
	}
	if len(pids) != 4 {
		t.Errorf("got %d distinct plugin pids, want 4 (one per dev block)", len(pids))
	}
}

func TestUnauthenticated(t *testing.T) {
	b := startDev(t)
	cases := []struct {
		name, token, want string
	}{
		{"garbage token", "nope", "not a client token"},
		{"unknown token", "kmsb.BBECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "unknown token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := b.cli(t, "", "scopes", "list", "-token="+tc.token)
			if code != 1 || !strings.Contains(errOut, "not authenticated") || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 1 and %q", code, errOut, tc.want)
			}
		})
	}

	// Over HTTP: health needs no token; everything else does.
	resp, err := http.Get("http://" + b.addr + "/v1/scopes")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/scopes without a token = %d, want 401", resp.StatusCode)
	}
}

func between(s, start, end string) string {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, end)
	return v
}
