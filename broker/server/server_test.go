package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"github.com/hashicorp/go-kms-wrapping/v2/aead"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kmsbroker/kmsbroker/broker/auth"
	"github.com/kmsbroker/kmsbroker/broker/keyring"
	"github.com/kmsbroker/kmsbroker/broker/purpose"
	"github.com/kmsbroker/kmsbroker/broker/store/storetest"
	"github.com/kmsbroker/kmsbroker/client"
	apiv1 "github.com/kmsbroker/kmsbroker/proto/api/v1"
)

// aeadRoot is go-kms-wrapping's real AES-GCM wrapper as the root purpose,
// in-process: these tests are about the API, not the plugin transport.
type aeadRoot struct{ w *aead.Wrapper }

func (a aeadRoot) Encrypt(ctx context.Context, pt, aad []byte) (*wrapping.BlobInfo, error) {
	return a.w.Encrypt(ctx, pt, wrapping.WithAad(aad))
}

func (a aeadRoot) Decrypt(ctx context.Context, b *wrapping.BlobInfo, aad []byte) ([]byte, error) {
	return a.w.Decrypt(ctx, b, wrapping.WithAad(aad))
}

// testServer is a real API server on a loopback port.
type testServer struct {
	url    string
	admin  string
	app    string // limited to scope o_1
	ready  atomic.Bool
	client *client.Client
	srv    *Server
}

const maxPlaintext = 1024

// startServer serves the API on a loopback port; opts adjust its config.
func startServer(t testing.TB, opts ...func(*Config)) *testServer {
	t.Helper()
	ctx := context.Background()
	key := make([]byte, 32)
	rand.Read(key)
	w := aead.NewWrapper()
	if err := w.SetAesGcmKeyBytes(key); err != nil {
		t.Fatal(err)
	}
	router := purpose.NewRouter(map[purpose.Purpose]purpose.Wrapper{purpose.Root: aeadRoot{w}}, nil)
	st := storetest.Open(t, storetest.SQLite(t))
	keys := keyring.New(st, router, keyring.Options{}, hclog.NewNullLogger())
	t.Cleanup(keys.Close)
	tokens := auth.NewTokens(st)

	ts := &testServer{}
	ts.ready.Store(true)
	cfg := Config{
		Keys:         keys,
		Tokens:       tokens,
		Authn:        &auth.Authenticator{Tokens: tokens},
		Status:       func(context.Context) *apiv1.StatusResponse { return &apiv1.StatusResponse{Ready: ts.ready.Load()} },
		Ready:        ts.ready.Load,
		MaxPlaintext: maxPlaintext,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln, nil)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	ts.url = "http://" + ln.Addr().String()

	if ts.admin, _, err = tokens.Create(ctx, "", "admin", auth.RoleAdmin, nil, 0); err != nil {
		t.Fatal(err)
	}
	if ts.app, _, err = tokens.Create(ctx, "", "app", auth.RoleApp, []string{"o_1"}, 0); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"o_1", "o_2"} {
		if _, err := keys.CreateScope(ctx, id, ""); err != nil {
			t.Fatal(err)
		}
	}
	ts.client, err = client.New(client.Config{Address: ts.url, Credentials: client.Token(ts.admin)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.client.Close() })
	return ts
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestHTTPStatusCodes(t *testing.T) {
	ts := startServer(t)
	tests := []struct {
		name        string
		method      string
		path        string
		token       string
		contentType string
		body        string
		wantCode    int
		wantMsg     string
	}{
		{"health needs no token", "GET", "/v1/sys/health", "", "", "", 200, `"ready":true`},
		{"missing token", "GET", "/v1/scopes", "", "", "", 401, "missing credential"},
		{"malformed token", "GET", "/v1/scopes", "nope", "", "", 401, "not a client token"},
		{"unknown token", "GET", "/v1/scopes", "kmsb.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "", "", 401, "unknown token"},
		{"app may not list scopes", "GET", "/v1/scopes", "app", "", "", 403, "role app may not scopes.list"},
		{"app in another scope", "POST", "/v1/scopes/o_2/encrypt", "app", "application/json", `{"purpose":"database","plaintext":"` + b64("x") + `"}`, 403, "not allowed in scope"},
		{"admin lists scopes", "GET", "/v1/scopes", "admin", "", "", 200, `"o_1"`},
		{"unknown scope", "POST", "/v1/scopes/o_9/encrypt", "admin", "application/json", `{"purpose":"database","plaintext":"` + b64("x") + `"}`, 404, "scope not found"},
		{"unknown purpose", "POST", "/v1/scopes/o_1/encrypt", "admin", "application/json", `{"purpose":"backups","plaintext":"` + b64("x") + `"}`, 400, "unknown data purpose"},
		{"empty plaintext", "POST", "/v1/scopes/o_1/encrypt", "admin", "application/json", `{"purpose":"database","plaintext":""}`, 400, "empty plaintext"},
		{"plaintext over the limit", "POST", "/v1/scopes/o_1/encrypt", "admin", "application/json", `{"purpose":"database","plaintext":"` + b64(strings.Repeat("a", maxPlaintext+1)) + `"}`, 400, "over the limit of 1024"},
		{"invalid base64", "POST", "/v1/scopes/o_1/encrypt", "admin", "application/json", `{"purpose":"database","plaintext":"!!!"}`, 400, "field plaintext: not a valid bytes value (bytes are base64)"},
		{"not JSON", "POST", "/v1/scopes/o_1/encrypt", "admin", "application/json", `purpose=database`, 400, "not valid JSON for this call"},
		{"data after the body", "POST", "/v1/scopes/o_1/encrypt", "admin", "application/json", `{"purpose":"database","plaintext":"` + b64("x") + `"} {}`, 400, "unexpected data after request body"},
		{"invalid scope id", "POST", "/v1/scopes", "admin", "application/json", `{"id":"no spaces allowed"}`, 400, "invalid scope id"},
		{"scope exists", "POST", "/v1/scopes", "admin", "application/json", `{"id":"o_1"}`, 409, "already exists"},
		{"garbage envelope", "POST", "/v1/scopes/o_1/decrypt", "admin", "application/json", `{"purpose":"database","ciphertext":"` + b64("garbage") + `"}`, 400, "decrypt failed"},
		{"unknown route", "GET", "/v1/nothing", "admin", "", "", 404, ""},
		{"wrong method", "GET", "/v1/scopes/o_1/encrypt", "admin", "", "", 405, "Method Not Allowed"},
		{"not a bearer credential", "GET", "/v1/scopes", "basic", "", "", 401, "not a bearer credential"},
		{"wrong content type", "POST", "/v1/scopes/o_1/encrypt", "admin", "text/plain", `{"purpose":"database","plaintext":"` + b64("x") + `"}`, 415, "must be application/json"},
		{"json with charset", "POST", "/v1/scopes/o_1/encrypt", "admin", "application/json; charset=utf-8", `{"purpose":"database","plaintext":"` + b64("x") + `"}`, 200, `"key_version":1`},
		{"no content type is json", "POST", "/v1/scopes/o_1/encrypt", "admin", "", `{"purpose":"database","plaintext":"` + b64("x") + `"}`, 200, `"ciphertext"`},
		{"misspelt field", "POST", "/v1/scopes/o_1/encrypt", "admin", "application/json", `{"purpose":"database","plaintext":"` + b64("x") + `","add":"` + b64("ctx") + `"}`, 400, `unknown field \"add\"`},
		{"body over the limit", "POST", "/v1/scopes/o_1/encrypt", "admin", "application/json", strings.Repeat(" ", maxRequestBytes(maxPlaintext)+1), 413, "over the limit"},
		{"admin token limited to a scope", "POST", "/v1/tokens", "admin", "application/json", `{"name":"a","role":"admin","scopes":["o_1"]}`, 400, "cannot be limited"},
		{"token for an unknown scope", "POST", "/v1/tokens", "admin", "application/json", `{"name":"a","role":"app","scopes":["o_9"]}`, 404, "scope not found"},
		{"token for an invalid scope id", "POST", "/v1/tokens", "admin", "application/json", `{"name":"a","role":"app","scopes":["a/b"]}`, 400, "invalid scope id"},
		{"token ttl too long", "POST", "/v1/tokens", "admin", "application/json", `{"name":"a","role":"app","ttl_seconds":"9223372036"}`, 400, "ttl_seconds"},
		{"token without a name", "POST", "/v1/tokens", "admin", "application/json", `{"role":"app"}`, 400, "name is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, ts.url+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			switch tc.token {
			case "admin":
				req.Header.Set("Authorization", "Bearer "+ts.admin)
			case "app":
				req.Header.Set("Authorization", "Bearer "+ts.app)
			case "basic":
				req.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
			case "":
			default:
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tc.wantCode, body)
			}
			if !strings.Contains(string(body), tc.wantMsg) {
				t.Errorf("body = %s, want it to contain %q", body, tc.wantMsg)
			}
			if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode == 401 && got != bearerChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, bearerChallenge)
			}
		})
	}
}

func TestHealthNotReady(t *testing.T) {
	ts := startServer(t)
	ts.ready.Store(false)
	resp, err := http.Get(ts.url + "/v1/sys/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("health while not ready = %d, want 503", resp.StatusCode)
	}
}

func TestOversizedHeaders(t *testing.T) {
	ts := startServer(t)
	req, _ := http.NewRequest("GET", ts.url+"/v1/scopes", nil)
	req.Header.Set("X-Padding", strings.Repeat("a", maxHeaderBytes+4096))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status = %d, want 431", resp.StatusCode)
	}
}

// A client that opens a connection and sends nothing is cut off at the
// header read timeout instead of holding the connection for ever.
func TestSlowClientIsCut(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the server's read header timeout")
	}
	ts := startServer(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(readHeaderTimeout + 5*time.Second))
	start := time.Now()
	b, err := io.ReadAll(conn)
	if elapsed := time.Since(start); elapsed > readHeaderTimeout+3*time.Second {
		t.Fatalf("connection held for %s (read %q, %v), want closed after about %s", elapsed, b, err, readHeaderTimeout)
	}
}

func TestGRPCRoundTripAndErrors(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	env, v, err := ts.client.Encrypt(ctx, "o_1", "database", []byte("secret"), []byte("row-1"))
	if err != nil || v != 1 {
		t.Fatalf("Encrypt = v%d, %v", v, err)
	}
	got, err := ts.client.Decrypt(ctx, "o_1", "database", env, []byte("row-1"))
	if err != nil || !bytes.Equal(got, []byte("secret")) {
		t.Fatalf("Decrypt = %q, %v", got, err)
	}

	tests := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"wrong aad", func() error { _, err := ts.client.Decrypt(ctx, "o_1", "database", env, []byte("row-2")); return err }, codes.InvalidArgument},
		{"other scope", func() error { _, err := ts.client.Decrypt(ctx, "o_2", "database", env, []byte("row-1")); return err }, codes.InvalidArgument},
		{"unknown scope", func() error { _, err := ts.client.Scope(ctx, "o_404"); return err }, codes.NotFound},
		{"rewrap needs a target", func() error {
			_, err := ts.client.API().RewrapKeys(ctx, &apiv1.RewrapKeysRequest{})
			return err
		}, codes.InvalidArgument},
		{"rewrap of an empty scope id is not rewrap all", func() error {
			_, err := ts.client.RewrapKeys(ctx, "")
			return err
		}, codes.InvalidArgument},
		{"destroy the active version", func() error {
			vs, err := ts.client.KeyVersions(ctx, "o_1")
			if err != nil {
				return err
			}
			return ts.client.DestroyKeyVersion(ctx, "o_1", vs[0].GetId())
		}, codes.FailedPrecondition},
		{"token with bad role", func() error { _, _, err := ts.client.CreateToken(ctx, "n", "root", nil, 0); return err }, codes.InvalidArgument},
		{"revoke unknown token", func() error { return ts.client.RevokeToken(ctx, "t_0000") }, codes.NotFound},
		{"revoke a built-in principal", func() error { return ts.client.RevokeToken(ctx, auth.RecoveryPrincipal) }, codes.PermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if got := status.Code(err); got != tc.code {
				t.Fatalf("code = %s (%v), want %s", got, err, tc.code)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the plaintext: %v", err)
			}
		})
	}
}

func TestStatusJSON(t *testing.T) {
	ts := startServer(t)
	req, _ := http.NewRequest("GET", ts.url+"/v1/sys/status", nil)
	req.Header.Set("Authorization", "Bearer "+ts.app)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, decode %v", resp.StatusCode, err)
	}
	if st["ready"] != true {
		t.Errorf("ready = %v, want true", st["ready"])
	}
}

// A body the API cannot decode is refused without repeating any of its
// values: a caller who forgot to base64-encode sends the secret itself.
func TestDecodeErrorsHoldNoValue(t *testing.T) {
	ts := startServer(t)
	const secret = "hunter2-not-base64!"
	bodies := []string{
		`{"purpose":"database","plaintext":"` + secret + `"}`,
		`{"purpose":"database","plaintext":"` + b64("x") + `","aad":"` + secret + `"}`,
		`{"purpose":"database","ciphertext":"` + secret + `"}`,
		`{"purpose":"database","plaintext":` + secret + `}`,
		`{"purpose":["` + secret + `"]}`,
		secret,
		`{"` + secret + `":1}`,
	}
	for _, path := range []string{"/v1/scopes/o_1/encrypt", "/v1/scopes/o_1/decrypt"} {
		for _, body := range bodies {
			req, _ := http.NewRequest("POST", ts.url+path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+ts.admin)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("POST %s %s: status %d, want 400", path, body, resp.StatusCode)
			}
			if strings.Contains(string(got), "hunter2") {
				t.Errorf("POST %s %s: the answer repeats the value: %s", path, body, got)
			}
		}
	}
}

// A client that sends headers and then trickles its body is cut off at
// the read timeout with the request unanswered.
func TestSlowBodyIsCut(t *testing.T) {
	const readTimeout = 500 * time.Millisecond
	ts := startServer(t, func(c *Config) { c.ReadTimeout = readTimeout })
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "POST /v1/scopes/o_1/encrypt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ts.admin +
		"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
	if _, err := conn.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(readTimeout + 10*time.Second))
	start := time.Now()
	b, _ := io.ReadAll(conn)
	if elapsed := time.Since(start); elapsed > readTimeout+5*time.Second {
		t.Fatalf("connection held for %s, want closed after about %s", elapsed, readTimeout)
	}
	if strings.Contains(string(b), "200 OK") {
		t.Errorf("a request with a missing body was answered: %q", b)
	}
}

// The plaintext limit is configurable and says so in its error; a limit
// beyond the keyring's is refused.
func TestMaxPlaintextConfigurable(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxPlaintext = 10 })
	ctx := context.Background()
	if _, _, err := ts.client.Encrypt(ctx, "o_1", "database", []byte("0123456789"), nil); err != nil {
		t.Fatalf("Encrypt at the limit: %v", err)
	}
	_, _, err := ts.client.Encrypt(ctx, "o_1", "database", []byte("0123456789a"), nil)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "over the limit of 10") {
		t.Errorf("Encrypt over the limit = %v, want InvalidArgument naming the limit", err)
	}
	cfg := Config{Keys: keyring.New(nil, nil, keyring.Options{}, nil), Tokens: auth.NewTokens(nil), Authn: &auth.Authenticator{},
		Status: func(context.Context) *apiv1.StatusResponse { return nil }, Ready: func() bool { return true },
		MaxPlaintext: MaxMaxPlaintext + 1}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "max plaintext") {
		t.Errorf("New with a limit over the keyring's = %v, want an error", err)
	}
}
