package brokerd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kmsbroker/kmsbroker/client"
)

// CLITimeout bounds one CLI command: it may start one local plugin and
// makes one call with the client's retries.
const CLITimeout = 60 * time.Second

// Result is what one CLI command did.
type Result struct {
	Args   []string
	Stdout string
	Stderr string
	Code   int
}

func (r Result) String() string {
	return "brokerd " + strings.Join(r.Args, " ") + ": exit " + strconv.Itoa(r.Code) +
		"\nstdout: " + r.Stdout + "\nstderr: " + r.Stderr
}

// CLI runs a brokerd client command against the broker: words such as
// "scopes", "create", then flags. It adds -address; credentials are the
// caller's flags. It fails the test if brokerd cannot run or hangs, and
// must therefore be called from the test's goroutine.
func (b *Broker) CLI(args ...string) Result {
	b.t.Helper()
	r, err := b.RunCLI(args...)
	if err != nil {
		b.t.Fatal(err)
	}
	return r
}

// RunCLI is CLI for any goroutine: it returns an error if brokerd cannot
// run or gives no answer within CLITimeout. A command that runs and fails
// is a Result with a non-zero Code, not an error.
func (b *Broker) RunCLI(args ...string) (Result, error) {
	return b.run(withAddress(args, b.URL()))
}

// Command runs brokerd with args as given, for commands that talk to no
// broker, such as `config encrypt`. It fails the test if brokerd cannot
// run or hangs.
func (b *Broker) Command(args ...string) Result {
	b.t.Helper()
	r, err := b.run(args)
	if err != nil {
		b.t.Fatal(err)
	}
	return r
}

func (b *Broker) run(full []string) (Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CLITimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.Layout.Brokerd, full...)
	cmd.Env = b.cliEnv
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Args: full, Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return r, fmt.Errorf("brokerd: no answer within %s\n%s", CLITimeout, r)
	case errors.As(err, &exit):
		r.Code = exit.ExitCode()
	case err != nil:
		return r, fmt.Errorf("brokerd: run %s: %w", strings.Join(full, " "), err)
	}
	return r, nil
}

// withAddress puts -address after the command words, before the
// first flag, where brokerd's flag parsing takes it.
func withAddress(args []string, url string) []string {
	i := 0
	for i < len(args) && !strings.HasPrefix(args[i], "-") {
		i++
	}
	out := append([]string{}, args[:i]...)
	out = append(out, "-address="+url)
	return append(out, args[i:]...)
}

// Status is the part of `brokerd status -format=json` the tests read.
type Status struct {
	Ready    bool            `json:"ready"`
	Purposes []PurposeStatus `json:"purposes"`
	Store    struct {
		Type  string `json:"type"`
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"store"`
}

// PurposeStatus is one purpose's plugin in Status.
type PurposeStatus struct {
	Purpose    string `json:"purpose"`
	Block      string `json:"block"`
	PluginType string `json:"plugin_type"`
	Pid        int    `json:"pid"`
	State      string `json:"state"`
	LastError  string `json:"last_error"`
	Restarts   int    `json:"restarts"`
}

// Purpose returns the status of purpose p, failing the test if status
// does not list it.
func (s Status) Purpose(t testing.TB, p string) PurposeStatus {
	t.Helper()
	for _, ps := range s.Purposes {
		if ps.Purpose == p {
			return ps
		}
	}
	t.Fatalf("status lists no purpose %q: %+v", p, s.Purposes)
	return PurposeStatus{}
}

// Status runs `brokerd status -format=json` with token and decodes it.
// It returns the command's result too, for tests that search its output.
// It fails the test on any error, so call it from the test's goroutine.
func (b *Broker) Status(token string) (Status, Result) {
	b.t.Helper()
	st, r, err := b.StatusErr(token)
	if err != nil {
		b.t.Fatal(err)
	}
	return st, r
}

// StatusErr is Status for any goroutine.
func (b *Broker) StatusErr(token string) (Status, Result, error) {
	r, err := b.RunCLI("status", "-format=json", "-token="+token)
	if err != nil {
		return Status{}, r, err
	}
	// Exit 3 is a broker that answered but is not ready; its status is
	// printed all the same.
	if r.Code != 0 && r.Code != 3 {
		return Status{}, r, fmt.Errorf("brokerd: want success or not ready (exit 3), got\n%s", r)
	}
	var st Status
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		return Status{}, r, fmt.Errorf("brokerd: status -format=json is not the expected JSON: %w\n%s", err, r.Stdout)
	}
	return st, r, nil
}

// WriteRecoveryFile writes blk, the recovery block, into a client file
// and returns its path.
func (b *Broker) WriteRecoveryFile(blk Block) string {
	b.t.Helper()
	path := filepath.Join(b.Dir, "recovery.hcl")
	if err := os.WriteFile(path, []byte(blk.HCL(b.t)), 0o600); err != nil {
		b.t.Fatalf("brokerd: write recovery file: %v", err)
	}
	return path
}

// Bootstrap mints the first admin token of a fresh broker with a recovery
// token made from the client file at recoveryPath, through the Go SDK.
func (b *Broker) Bootstrap(recoveryPath string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), CLITimeout)
	defer cancel()
	creds, err := client.RecoveryCredentials(ctx, recoveryPath, client.OneTimeOptions{PluginDirectory: b.Layout.Dir})
	if err != nil {
		b.t.Fatalf("brokerd: recovery credentials: %v", err)
	}
	defer creds.Close()
	rc := b.Client(creds)
	tok, secret, err := rc.CreateToken(ctx, "admin", "admin", nil, 0)
	if err != nil {
		b.t.Fatalf("brokerd: create the first admin token with a recovery token: %v", err)
	}
	if tok.GetRole() != "admin" || !strings.HasPrefix(secret, "kmsb.") {
		b.t.Fatalf("brokerd: tokens create: got role %q and a secret starting %.5q, want admin and kmsb.", tok.GetRole(), secret)
	}
	return secret
}

// Client returns an SDK client for the broker with creds, closed when the
// test ends. Failed calls are not retried, so each error a test sees is
// that of one call.
func (b *Broker) Client(creds client.Credentials) *client.Client {
	b.t.Helper()
	c, err := client.New(client.Config{Address: b.URL(), Credentials: creds, MaxRetries: -1})
	if err != nil {
		b.t.Fatalf("brokerd: client: %v", err)
	}
	b.t.Cleanup(func() { c.Close() })
	return c
}
