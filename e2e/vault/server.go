// Package vault gives end-to-end tests a Vault server with the transit
// engine: the one named by VAULT_ADDR and VAULT_TOKEN, or a `vault server
// -dev` or `bao server -dev` started per test on a loopback port. Mounts,
// keys, policies and tokens are made over the HTTP API.
package vault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmsbroker/kmsbroker/e2e/loopback"
	"github.com/kmsbroker/kmsbroker/e2e/proc"
)

// Environment variables that name an existing server, as the vault CLI
// reads them.
const (
	EnvAddr  = "VAULT_ADDR"
	EnvToken = "VAULT_TOKEN"
)

// serverPrograms are the programs Start looks for on PATH, in order.
var serverPrograms = []string{"vault", "bao"}

// SkipMessage is the one line a test skips with when no server is
// available.
const SkipMessage = "e2e: SKIP Vault transit: no Vault server: " +
	"put `vault` (HashiCorp) or `bao` (OpenBao) on PATH, or set VAULT_ADDR and VAULT_TOKEN"

// startTimeout bounds how long Start waits for a dev server to report
// itself healthy. One is up in about a second; the margin covers a loaded
// two-core machine.
const startTimeout = 60 * time.Second

// callTimeout bounds each API call the helpers make, so a wedged server
// fails the test instead of hanging it.
const callTimeout = 30 * time.Second

// Server is a Vault server for one test.
type Server struct {
	// Addr is the base URL, e.g. http://127.0.0.1:38211.
	Addr string
	// Kind says what is serving, for test logs and summaries, e.g.
	// "bao server -dev (v2.4.0)" or "external VAULT_ADDR (v1.17.2)".
	Kind string
	// External is true when the server came from VAULT_ADDR and outlives
	// the test; the helpers then remove what they create.
	External bool

	root   Token
	client *http.Client
	proc   *proc.Process
}

// Available reports whether Start finds a server: VAULT_ADDR is set, or
// `vault` or `bao` is on PATH. A test that runs without Vault too asks
// first, so that only its Vault part skips.
func Available() bool {
	if os.Getenv(EnvAddr) != "" {
		return true
	}
	_, path := devProgram()
	return path != ""
}

// devProgram returns the first of serverPrograms on PATH and its path, or
// two empty strings.
func devProgram() (name, path string) {
	for _, name := range serverPrograms {
		if p, err := exec.LookPath(name); err == nil {
			return name, p
		}
	}
	return "", ""
}

// Start returns a Vault server for t. With VAULT_ADDR set it uses that
// server and VAULT_TOKEN, which must be allowed to mount engines and write
// policies; otherwise it starts `vault` or else `bao` from PATH in dev
// mode with a fresh root token on a free loopback port, stopped in
// t.Cleanup. With neither it skips t with SkipMessage. It fails the test
// if the server is not healthy or refuses the token.
func Start(t testing.TB) *Server {
	t.Helper()
	// TODO: VAULT_CACERT, VAULT_SKIP_VERIFY and VAULT_NAMESPACE are not
	// read; an external server must be plain HTTP or use a system-trusted
	// certificate, in the root namespace.
	s := &Server{client: &http.Client{Timeout: callTimeout}}
	if addr := os.Getenv(EnvAddr); addr != "" {
		s.Addr = strings.TrimRight(addr, "/")
		s.root.value = os.Getenv(EnvToken)
		s.External = true
		if s.root.value == "" {
			t.Fatalf("vault: %s is set but %s is not; set both, or unset %s to start a dev server",
				EnvAddr, EnvToken, EnvAddr)
		}
	} else {
		startDev(t, s)
	}

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var health struct {
		Version string `json:"version"`
	}
	probe := func(ctx context.Context) error {
		return s.Do(ctx, "", http.MethodGet, "sys/health", nil, &health)
	}
	var err error
	if s.proc != nil {
		err = s.proc.WaitReady(ctx, probe)
	} else {
		err = probe(ctx)
	}
	if err != nil {
		t.Fatalf("vault: server at %s is not healthy: %v", s.Addr, err)
	}
	var self struct {
		Data struct {
			Accessor string `json:"accessor"`
		} `json:"data"`
	}
	if err := s.Do(ctx, s.root.value, http.MethodGet, "auth/token/lookup-self", nil, &self); err != nil {
		t.Fatalf("vault: server at %s refuses the root token: %v", s.Addr, err)
	}
	s.root.accessor = self.Data.Accessor

	if s.External {
		s.Kind = "external " + EnvAddr
	}
	s.Kind += " (" + health.Version + ")"
	t.Logf("e2e: Vault: %s at %s", s.Kind, s.Addr)
	return s
}

func startDev(t testing.TB, s *Server) {
	t.Helper()
	name, bin := devProgram()
	if bin == "" {
		t.Skip(SkipMessage)
	}

	addr := loopback.Addr(t)
	s.Addr = "http://" + addr
	s.root.value = "e2e-root-" + randomHex(t, 16)
	s.Kind = name + " server -dev"

	home := t.TempDir()
	cmd := exec.Command(bin, "server", "-dev",
		"-dev-listen-address="+addr,
		"-dev-root-token-id="+s.root.value,
		"-dev-no-store-token",
	)
	// A private HOME keeps the CLI's token helper and config files of the
	// machine out of the server, and the server out of them.
	cmd.Env = []string{"HOME=" + home, "TMPDIR=" + home, "PATH=" + os.Getenv("PATH")}
	s.proc = proc.Start(t, filepath.Base(bin), cmd)
}

// Root returns a token that may do anything on the server. Tests hand the
// product a token from KeyToken instead.
func (s *Server) Root() Token { return s.root }

// Pid returns the dev server's process id, or 0 for an external server.
func (s *Server) Pid() int {
	if s.proc == nil {
		return 0
	}
	return s.proc.Pid()
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("vault: random: %v", err)
	}
	return hex.EncodeToString(b)
}

// must fails t with the operation and err when err is not nil.
func must(t testing.TB, op string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("vault: %s: %v", op, err)
	}
}

// withTimeout is the context every helper call runs under.
func withTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}
