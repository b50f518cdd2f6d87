package e2e

import (
	"bytes"
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
	"testing"
	"time"

	"github.com/kmsbroker/kmsbroker/e2e/binaries"
	"github.com/kmsbroker/kmsbroker/e2e/loopback"
	"github.com/kmsbroker/kmsbroker/e2e/proc"
)

// startTimeout bounds how long a broker may take to answer on its
// listener: plugin starts (10 s each at most, in parallel) plus a root
// probe through a KMS, on a loaded two-core machine.
const startTimeout = 45 * time.Second

// cliTimeout bounds one CLI command. A command starts at most one local
// plugin and makes one call with the client's retries.
const cliTimeout = 60 * time.Second

// broker is a view of one installation from one test: failures go to t,
// which may be a subtest of the test that owns the installation.
type broker struct {
	t *testing.T
	*installation
}

// installation is one `brokerd server` installation: a config file and a
// store that survive restarts, and the process running now. Its processes
// and files belong to owner and live until owner ends.
type installation struct {
	owner   *testing.T
	layout  binaries.Layout
	dir     string
	cfg     brokerConfig
	cfgPath string
	// env is brokerd's environment on top of baseEnv.
	env []string
	// flags are extra flags of `brokerd server`.
	flags []string
	proc  *proc.Process
	// logs are the output files of every brokerd process run so far.
	logs []string
}

// newBroker writes a config with blocks, a free loopback address and a
// SQLite store in a temporary directory, owned by t. It does not start
// the broker.
func newBroker(t *testing.T, layout binaries.Layout, blocks ...kmsBlock) *broker {
	t.Helper()
	dir := t.TempDir()
	b := &broker{t: t, installation: &installation{owner: t, layout: layout, dir: dir, cfg: brokerConfig{
		Address: loopback.Addr(t),
		DBPath:  filepath.Join(dir, "broker.db"),
		Blocks:  blocks,
	}}}
	b.writeConfig()
	return b
}

// in returns the same installation seen from t, a subtest of its owner,
// so that a failed check stops t and not its parent. Processes started
// through the view still belong to the owner.
func (b *broker) in(t *testing.T) *broker { return &broker{t: t, installation: b.installation} }

func (b *broker) writeConfig() {
	b.t.Helper()
	b.cfgPath = writeFile(b.t, b.dir, "broker.hcl", b.cfg.hcl(b.t))
}

// url is the broker's API address as clients take it.
func (b *broker) url() string { return "http://" + b.cfg.Address }

// baseEnv is what every brokerd and CLI process gets: enough to run, and
// a private HOME so no AWS or Vault config file of the machine leaks in.
// Nothing else of the test's environment is passed on.
//
// TMPDIR is a short directory of its own: go-plugin puts its unix sockets
// there, and a socket path over 107 bytes cannot be bound, which a
// t.TempDir() named after a long subtest easily exceeds.
func baseEnv(t testing.TB) []string {
	t.Helper()
	tmp, err := os.MkdirTemp("", "kmsb")
	if err != nil {
		t.Fatalf("make TMPDIR: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + tmp}
}

// start runs `brokerd server` and waits until its listener answers
// /v1/sys/health, ready or not. It fails the test if brokerd exits first.
func (b *broker) start() {
	b.t.Helper()
	if err := b.startErr(); err != nil {
		b.t.Fatal(err)
	}
}

// startErr is start that returns the failure, wrapping proc.ErrExited
// when brokerd exited before it answered.
func (b *broker) startErr() error {
	b.t.Helper()
	cmd := exec.Command(b.layout.Brokerd, append([]string{"server", "-config=" + b.cfgPath}, b.flags...)...)
	cmd.Env = append(baseEnv(b.owner), b.env...)
	b.proc = proc.Start(b.owner, "brokerd", cmd)
	b.logs = append(b.logs, b.proc.LogPath())

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return b.proc.WaitReady(ctx, func(ctx context.Context) error {
		_, _, err := b.health(ctx)
		return err
	})
}

// stop ends the running brokerd with SIGTERM, as an operator does.
func (b *broker) stop() {
	b.t.Helper()
	b.proc.Stop()
	<-b.proc.Done()
}

// restart stops brokerd, writes the config with blocks and starts it
// again on the same store and address.
func (b *broker) restart(blocks ...kmsBlock) {
	b.t.Helper()
	b.stop()
	b.cfg.Blocks = blocks
	b.writeConfig()
	b.start()
}

// health calls GET /v1/sys/health and returns the status code and the
// ready field of the answer.
func (b *broker) health(ctx context.Context) (int, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url()+"/v1/sys/health", nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	var body struct {
		Ready bool `json:"ready"`
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return resp.StatusCode, false, err
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return resp.StatusCode, false, fmt.Errorf("health answer %q is not JSON: %w", raw, err)
	}
	return resp.StatusCode, body.Ready, nil
}

// mustHealth returns the health status code and ready field, failing the
// test if the endpoint does not answer.
func (b *broker) mustHealth() (int, bool) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, ready, err := b.health(ctx)
	if err != nil {
		b.t.Fatalf("GET /v1/sys/health: %v", err)
	}
	return code, ready
}

// log returns what the running (or last) brokerd process wrote.
func (b *broker) log() string {
	b.t.Helper()
	return readLog(b.t, b.proc.LogPath())
}

// allLogs returns what every brokerd process of this broker wrote.
func (b *broker) allLogs() string {
	b.t.Helper()
	var all strings.Builder
	for _, path := range b.logs {
		all.WriteString(readLog(b.t, path))
	}
	return all.String()
}

func readLog(t testing.TB, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read brokerd log: %v", err)
	}
	return string(raw)
}

// cred is how a CLI command authenticates: its credential flags.
type cred []string

func tokenCred(token string) cred { return cred{"-token=" + token} }

func recoveryCred(path string) cred { return cred{"-recovery-config=" + path} }

func workerCred(path, name string) cred {
	return cred{"-worker-auth-config=" + path, "-worker-name=" + name}
}

// noCred sends no credential at all.
var noCred = cred{}

// result is what one CLI command did.
type result struct {
	args   []string
	stdout string
	stderr string
	code   int
}

func (r result) String() string {
	return fmt.Sprintf("brokerd %s: exit %d\nstdout: %s\nstderr: %s",
		strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// cli runs the client command (one or two words, e.g. "scopes create")
// against the broker with credential c and args (flags first, then any
// positional value), from a clean environment.
func (b *broker) cli(c cred, command string, args ...string) result {
	b.t.Helper()
	full := strings.Fields(command)
	full = append(full, "-address="+b.url())
	full = append(full, c...)
	full = append(full, args...)
	return runBrokerd(b.t, b.layout, nil, full...)
}

// runBrokerd runs brokerd with args and extra environment and returns
// what it did. It fails the test only if brokerd cannot run or hangs.
func runBrokerd(t testing.TB, layout binaries.Layout, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, layout.Brokerd, args...)
	cmd.Env = append(baseEnv(t), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("brokerd %s: no answer within %s\n%s", strings.Join(args, " "), cliTimeout, r)
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run brokerd %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ok runs a command that must succeed and returns its standard output.
func (b *broker) ok(c cred, command string, args ...string) string {
	b.t.Helper()
	r := b.cli(c, command, args...)
	if r.code != 0 {
		b.t.Fatalf("want success, got\n%s", r)
	}
	return r.stdout
}

// fails runs a command that must fail with exit status 1 and returns its
// standard error.
func (b *broker) fails(c cred, command string, args ...string) string {
	b.t.Helper()
	r := b.cli(c, command, args...)
	if r.code != 1 {
		b.t.Fatalf("want exit 1, got\n%s", r)
	}
	if r.stdout != "" {
		b.t.Errorf("failed command printed to stdout: %q", r.stdout)
	}
	return r.stderr
}

// okJSON runs a command with -format=json that must succeed and decodes
// its output into out.
func (b *broker) okJSON(out any, c cred, command string, args ...string) {
	b.t.Helper()
	stdout := b.ok(c, command, append([]string{"-format=json"}, args...)...)
	if err := json.Unmarshal([]byte(stdout), out); err != nil {
		b.t.Fatalf("brokerd %s -format=json: output is not the expected JSON: %v\n%s", command, err, stdout)
	}
}

// wantContains fails the test unless got contains every one of want.
func wantContains(t testing.TB, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s: got %q, want it to contain %q", what, got, w)
		}
	}
}
