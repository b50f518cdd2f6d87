// Package vaultdev gives the benchmark a Vault transit engine to compare
// with: the server named by VAULT_ADDR and VAULT_TOKEN, or else a `vault`
// or `bao` dev server started on a loopback port for the run. It speaks
// Vault's HTTP API with net/http, as any client would.
package vaultdev

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/child"
)

// ErrNotAvailable means no Vault server can be had: none is named by
// VAULT_ADDR and neither `vault` nor `bao` is on PATH.
var ErrNotAvailable = errors.New("no Vault server: put `vault` or `bao` on PATH, or set VAULT_ADDR and VAULT_TOKEN")

// programs are looked for on PATH in this order.
var programs = []string{"vault", "bao"}

// startTimeout bounds a dev server's start; one is up in about a second,
// and the margin covers a loaded two-core machine.
const startTimeout = 60 * time.Second

// maxBody bounds a response body read: transit answers for 1 KiB inputs
// are a few KiB.
const maxBody = 1 << 20

// keyName is the transit key the benchmark encrypts with.
const keyName = "brokerbench"

// Server is a Vault server with a transit mount for the benchmark.
type Server struct {
	// Addr is the base URL.
	Addr string
	// Kind says what serves, e.g. "bao server -dev (v2.0.0)".
	Kind string
	// External is true for a VAULT_ADDR server, which outlives the run;
	// Close then removes the mount it made.
	External bool

	token string
	mount string
	http  *http.Client
	proc  *child.Process
}

// Start finds or starts a server, checks the token, and mounts a transit
// engine with one AES-256-GCM key. dir holds a dev server's home and log.
// It returns ErrNotAvailable when there is no server to be had. The
// caller must call Close.
func Start(ctx context.Context, dir string, client *http.Client) (_ *Server, err error) {
	// TODO: VAULT_CACERT, VAULT_SKIP_VERIFY and VAULT_NAMESPACE are not
	// read; an external server must be plain HTTP or trusted by the
	// system roots, in the root namespace.
	s := &Server{http: client}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if addr := os.Getenv("VAULT_ADDR"); addr != "" {
		s.Addr, s.token, s.External = strings.TrimRight(addr, "/"), os.Getenv("VAULT_TOKEN"), true
		if s.token == "" {
			return nil, errors.New("vault: VAULT_ADDR is set but VAULT_TOKEN is not; set both, or unset VAULT_ADDR to start a dev server")
		}
		s.Kind = "external VAULT_ADDR"
	} else if err := s.startDev(ctx, dir); err != nil {
		return nil, err
	}

	var health struct {
		Version string `json:"version"`
	}
	if err := s.do(ctx, http.MethodGet, "sys/health", nil, &health); err != nil {
		return nil, fmt.Errorf("vault: health: %w", err)
	}
	s.Kind += " (" + health.Version + ")"
	if err := s.do(ctx, http.MethodGet, "auth/token/lookup-self", nil, nil); err != nil {
		return nil, fmt.Errorf("vault: the token is refused: %w", err)
	}

	s.mount = "brokerbench-" + randomHex(6)
	if err := s.do(ctx, http.MethodPost, "sys/mounts/"+s.mount, map[string]any{"type": "transit"}, nil); err != nil {
		s.mount = ""
		return nil, fmt.Errorf("vault: mount transit: %w", err)
	}
	if err := s.do(ctx, http.MethodPost, s.mount+"/keys/"+keyName, map[string]any{"type": "aes256-gcm96"}, nil); err != nil {
		return nil, fmt.Errorf("vault: create transit key: %w", err)
	}
	return s, nil
}

func (s *Server) startDev(ctx context.Context, dir string) error {
	var name, bin string
	for _, name = range programs {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		return ErrNotAvailable
	}
	addr, err := freeAddr()
	if err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	s.Addr = "http://" + addr
	s.token = "brokerbench-" + randomHex(16)
	s.Kind = name + " server -dev"

	home := filepath.Join(dir, "vault-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	cmd := exec.Command(bin, "server", "-dev",
		"-dev-listen-address="+addr,
		"-dev-root-token-id="+s.token,
		"-dev-no-store-token",
	)
	// A private HOME keeps the machine's token helper and CLI config out.
	cmd.Env = []string{"HOME=" + home, "TMPDIR=" + home, "PATH=" + os.Getenv("PATH")}
	s.proc, err = child.Start(name, cmd, filepath.Join(dir, name+".log"))
	if err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	return s.proc.WaitHTTP(ctx, s.http, s.Addr+"/v1/sys/health")
}

// Pid is the dev server's process id, or 0 for an external server.
func (s *Server) Pid() int {
	if s.proc == nil {
		return 0
	}
	return s.proc.Pid()
}

// Encrypt encrypts plaintext with the transit key and returns Vault's
// ciphertext ("vault:v1:...").
func (s *Server) Encrypt(ctx context.Context, plaintext []byte) (string, error) {
	var out struct {
		Data struct {
			Ciphertext string `json:"ciphertext"`
		} `json:"data"`
	}
	in := map[string]string{"plaintext": base64.StdEncoding.EncodeToString(plaintext)}
	if err := s.do(ctx, http.MethodPost, s.mount+"/encrypt/"+keyName, in, &out); err != nil {
		return "", fmt.Errorf("vault transit encrypt: %w", err)
	}
	if out.Data.Ciphertext == "" {
		return "", errors.New("vault transit encrypt: empty ciphertext in the answer")
	}
	return out.Data.Ciphertext, nil
}

// Decrypt decrypts a ciphertext made by Encrypt.
func (s *Server) Decrypt(ctx context.Context, ciphertext string) ([]byte, error) {
	var out struct {
		Data struct {
			Plaintext string `json:"plaintext"`
		} `json:"data"`
	}
	if err := s.do(ctx, http.MethodPost, s.mount+"/decrypt/"+keyName, map[string]string{"ciphertext": ciphertext}, &out); err != nil {
		return nil, fmt.Errorf("vault transit decrypt: %w", err)
	}
	pt, err := base64.StdEncoding.DecodeString(out.Data.Plaintext)
	if err != nil {
		return nil, fmt.Errorf("vault transit decrypt: plaintext is not base64: %w", err)
	}
	return pt, nil
}

// Close removes the transit mount of an external server, or stops the dev
// server. It is safe to call on a partly started Server.
func (s *Server) Close() {
	if s.External && s.mount != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = s.do(ctx, http.MethodDelete, "sys/mounts/"+s.mount, nil, nil)
	}
	if s.proc != nil {
		s.proc.Stop()
	}
}

// APIError is a non-2xx answer. Its message holds Vault's errors, which
// never include the token.
type APIError struct {
	Status int
	Errors []string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.Status, strings.Join(e.Errors, "; "))
}

func (s *Server) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.Addr+"/v1/"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", s.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Errors []string `json:"errors"`
		}
		_ = json.Unmarshal(b, &e)
		return &APIError{Status: resp.StatusCode, Errors: e.Errors}
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, out)
}

// freeAddr returns a loopback address with a port free at the time of the
// call. Another process may take it before the server binds it; the
// server then fails to start and the benchmark says so.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails on supported platforms (Go 1.24+)
	return hex.EncodeToString(b)
}
