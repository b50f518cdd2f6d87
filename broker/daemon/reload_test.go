package daemon

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kmsbroker/kmsbroker/broker/auth"
	"github.com/kmsbroker/kmsbroker/broker/config"
	"github.com/kmsbroker/kmsbroker/broker/internal/metricstest"
	"github.com/kmsbroker/kmsbroker/broker/pluginhost"
	"github.com/kmsbroker/kmsbroker/client"
	"github.com/kmsbroker/kmsbroker/plugins/plugintest"
)

// pluginDir holds the real aead plugin, built once by TestMain.
var pluginDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "daemon-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := plugintest.Build(dir, "aead", "./plugins/aead"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	pluginDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Test keys, base64 of 32 bytes each.
const (
	key1 = "vT4AxBCfG1Y5nCaQYSbhmlhY3SN/F6j2h+jAMAxu1VU="
	key2 = "5k9ybzgrSdcCsBolzP3iv7I28ivuwg55pewEEcja5bk="
	key3 = "sZE7tJ12gvTV/eZAMGk0FuqhVgvBGDvQBv29qX5ReSI="
)

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

// params fill the @NAME@ holes of a testdata config.
type params map[string]string

func (p params) with(kv ...string) params {
	out := make(params, len(p))
	for k, v := range p {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// config renders testdata/name with p and parses it as brokerd would.
func (p params) config(t *testing.T, name string) *config.Config {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for k, v := range p {
		pairs = append(pairs, "@"+k+"@", v)
	}
	cfg, err := config.Parse([]byte(strings.NewReplacer(pairs...).Replace(string(src))), name)
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	if err := cfg.Validate(config.ValidateOptions{Server: true}); err != nil {
		t.Fatalf("validate %s: %v", name, err)
	}
	return cfg
}

func baseParams(t *testing.T) params {
	t.Helper()
	return params{
		"LEVEL":            "info",
		"ADDR":             "127.0.0.1:0",
		"DB":               filepath.Join(t.TempDir(), "broker.db"),
		"PLUGINS":          pluginDir,
		"ROOT_KEY":         key1,
		"ROOT_KEY_ID_NAME": "key_id",
		"ROOT_KEY_ID":      "root-1",
		"WA_PURPOSES":      `"worker-auth"`,
		"WA_KEY":           key2,
		"WA_START_TIMEOUT": "10s",
	}
}

// start runs a daemon from cfg, logging into the returned buffer.
func start(t *testing.T, cfg *config.Config) (*Daemon, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Name: "brokerd", Output: logs, Level: hclog.LevelFromString(cfg.LogLevel)})
	d, err := Start(context.Background(), cfg, logger)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		d.Stop(context.Background())
		if t.Failed() {
			t.Logf("broker log:\n%s", logs.String())
		}
	})
	return d, logs
}

func pid(d *Daemon, block string) int { return d.blocks[block].Info().Pid }

// waitGone waits until process pid has exited.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("plugin process %d still runs", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReload(t *testing.T) {
	base := baseParams(t)
	d, logs := start(t, base.config(t, "reload.hcl"))
	ctx := context.Background()

	// Each case reloads the daemon as the previous one left it.
	cases := []struct {
		name        string
		p           params
		wantErr     error  // nil: Reload succeeds
		wantText    string // in the error, or in the log when wantErr is nil
		rootChanges bool
		waChanges   bool
	}{
		{name: "unchanged", p: base, wantText: "config reloaded"},
		{name: "root key not base64", p: base.with("ROOT_KEY", "not base64"),
			wantErr: errors.New(`reload.hcl:19,3-6: setting "key": is not valid base64`)},
		{name: "root key replaced by another key", p: base.with("ROOT_KEY", key3), wantErr: errOtherKey},
		{name: "root setting misspelt", p: base.with("ROOT_KEY_ID_NAME", "key_di"),
			wantErr: config.ErrInvalid, wantText: `reload.hcl:20,3-9: unknown setting "key_di" for plugin "aead": did you mean "key_id"?`},
		{name: "root key id changed", p: base.with("ROOT_KEY_ID", "root-2"), wantText: "kms block reloaded", rootChanges: true},
		{name: "worker-auth key replaced", p: base.with("ROOT_KEY_ID", "root-2", "WA_KEY", key3),
			wantText: "kms block reloaded", waChanges: true},
		{name: "listener, storage and purposes need a restart",
			p: base.with("ROOT_KEY_ID", "root-2", "WA_KEY", key3, "ADDR", "127.0.0.1:1",
				"DB", filepath.Join(t.TempDir(), "other.db"), "WA_PURPOSES", `"worker-auth", "recovery"`),
			wantText: "restart required"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rootPid, waPid := pid(d, "aead"), pid(d, "aead#2")
			mark := len(logs.String())

			err := d.Reload(ctx, tc.p.config(t, "reload.hcl"))
			newLogs := logs.String()[mark:]
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("Reload: %v", err)
			case tc.wantErr != nil && err == nil:
				t.Fatalf("Reload succeeded, want an error like %q", tc.wantErr)
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) && !strings.Contains(err.Error(), tc.wantErr.Error()) {
					t.Errorf("Reload error %q, want %q", err, tc.wantErr)
				}
				if tc.wantText != "" && !strings.Contains(err.Error(), tc.wantText) {
					t.Errorf("Reload error %q does not say %q", err, tc.wantText)
				}
				if !strings.Contains(newLogs, "kms block reload failed; the running plugin stays") {
					t.Errorf("failure not logged:\n%s", newLogs)
				}
			default:
				if !strings.Contains(newLogs, tc.wantText) {
					t.Errorf("log does not say %q:\n%s", tc.wantText, newLogs)
				}
			}
			if got := pid(d, "aead") != rootPid; got != tc.rootChanges {
				t.Errorf("root plugin replaced = %t, want %t", got, tc.rootChanges)
			}
			if got := pid(d, "aead#2") != waPid; got != tc.waChanges {
				t.Errorf("worker-auth plugin replaced = %t, want %t", got, tc.waChanges)
			}
			if tc.rootChanges {
				waitGone(t, rootPid)
				if id, err := d.router.RootKeyID(ctx); err != nil || id != tc.p["ROOT_KEY_ID"] {
					t.Errorf("root key id = %q (%v), want %q", id, err, tc.p["ROOT_KEY_ID"])
				}
			}
			if tc.waChanges {
				waitGone(t, waPid)
			}
			if strings.Contains(newLogs, key1) || strings.Contains(newLogs, key3) ||
				(err != nil && (strings.Contains(err.Error(), key3) || strings.Contains(err.Error(), "not base64\""))) {
				t.Errorf("a key or setting value reached the log or the error")
			}
			// The broker still serves through root after every reload.
			if _, err := d.Keyring().CreateScope(ctx, fmt.Sprintf("o_reload_%d", i), ""); err != nil {
				t.Errorf("CreateScope after reload: %v", err)
			}
		})
	}

	// The reloaded plugins' series are the block's: the retired plugin
	// stopping did not mark a serving block stopped, and calls count on.
	t.Run("metrics follow the serving plugin", func(t *testing.T) {
		for _, block := range []string{"aead", "aead#2"} {
			if got := metricValue(t, d, "kmsbroker_plugin_state", "block", block, "state", "ready"); got != 1 {
				t.Errorf("%s state ready = %v, want 1", block, got)
			}
			if got := metricValue(t, d, "kmsbroker_plugin_state", "block", block, "state", "stopped"); got != 0 {
				t.Errorf("%s state stopped = %v, want 0", block, got)
			}
		}
		before := metricValue(t, d, "kmsbroker_plugin_calls_total", "block", "aead", "operation", "encrypt", "result", "ok")
		if _, err := d.Keyring().CreateScope(ctx, "o_reload_metrics", ""); err != nil {
			t.Fatal(err)
		}
		after := metricValue(t, d, "kmsbroker_plugin_calls_total", "block", "aead", "operation", "encrypt", "result", "ok")
		if after != before+1 {
			t.Errorf("root encrypt calls went from %v to %v after one scope was created, want one more", before, after)
		}
	})

	t.Run("restart required names each change", func(t *testing.T) {
		for _, want := range []string{"setting=\"listener address\"", "setting=storage",
			"no block serves exactly purposes worker-auth any more", "recovery,worker-auth added"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q", want)
			}
		}
		if got := d.Addr().String(); strings.HasSuffix(got, ":1") {
			t.Errorf("listener moved to %s", got)
		}
	})
}

func TestReloadLogLevel(t *testing.T) {
	base := baseParams(t)
	d, logs := start(t, base.config(t, "reload.hcl"))
	if err := d.Reload(context.Background(), base.with("LEVEL", "debug").config(t, "reload.hcl")); err != nil {
		t.Fatal(err)
	}
	if got := d.logger.GetLevel(); got != hclog.Debug {
		t.Errorf("level = %s, want debug", got)
	}
	if !strings.Contains(logs.String(), "log level changed: from=info to=debug") {
		t.Errorf("level change not logged:\n%s", logs.String())
	}
	if err := d.Reload(context.Background(), base.with("LEVEL", "error").config(t, "reload.hcl")); err != nil {
		t.Fatal(err)
	}
	mark := len(logs.String())
	d.logger.Named("api").Info("a line below the level")
	if logs.String()[mark:] != "" {
		t.Errorf("a named logger still logs Info after the level rose to error")
	}
}

func TestReloadStartsBlockThatNeverRan(t *testing.T) {
	base := baseParams(t)
	// A start that cannot finish in time is retried, not fatal.
	d, _ := start(t, base.with("WA_START_TIMEOUT", "1ms").config(t, "reload.hcl"))
	if info := d.blocks["aead#2"].Info(); info.Pid != 0 || info.State != "failed" {
		t.Fatalf("worker-auth block = %+v, want failed with no process", info)
	}
	if err := d.Reload(context.Background(), base.config(t, "reload.hcl")); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	info := d.blocks["aead#2"].Info()
	if info.Pid == 0 || info.State != "ready" || info.KeyID != "wa-1" {
		t.Fatalf("worker-auth block after reload = %+v, want ready", info)
	}
	// The background start retry must leave the reloaded plugin alone.
	time.Sleep(2 * startRetryMin)
	if got := d.blocks["aead#2"].Info().Pid; got != info.Pid {
		t.Errorf("worker-auth pid changed from %d to %d after the reload", info.Pid, got)
	}
}

func TestStartLogsEffectiveSettings(t *testing.T) {
	_, logs := start(t, baseParams(t).config(t, "reload.hcl"))
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "kms block ready") && strings.Contains(l, "block=aead ") {
			line = l
		}
	}
	for _, want := range []string{"plugin=aead", "purposes=root", "key_id=root-1", "pid=",
		`settings="key=(redacted) key_id=\"root-1\""`} {
		if !strings.Contains(line, want) {
			t.Errorf("kms block ready line %q lacks %q", line, want)
		}
	}
	if strings.Contains(logs.String(), key1) || strings.Contains(logs.String(), key2) {
		t.Errorf("a key reached the log")
	}
}

func TestStartRejectsUnknownSetting(t *testing.T) {
	cfg := baseParams(t).with("ROOT_KEY_ID_NAME", "key_di").config(t, "reload.hcl")
	logger := hclog.NewNullLogger()
	d, err := Start(context.Background(), cfg, logger)
	if err == nil {
		d.Stop(context.Background())
		t.Fatal("Start succeeded with a misspelt setting")
	}
	want := `reload.hcl:20,3-9: unknown setting "key_di" for plugin "aead": did you mean "key_id"?`
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), want) {
		t.Errorf("Start error %q, want config.ErrInvalid saying %q", err, want)
	}
}

// writeCert writes a fresh self-signed certificate and key for
// 127.0.0.1 and returns the certificate's serial number.
func writeCert(t *testing.T, certFile, keyFile string) *big.Int {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "broker test"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return serial
}

// servedSerial is the serial number of the certificate d serves.
func servedSerial(t *testing.T, d *Daemon) *big.Int {
	t.Helper()
	conn, err := tls.Dial("tcp", d.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

func TestReloadTLSCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := writeCert(t, certFile, keyFile)
	p := baseParams(t).with("CERT", certFile, "KEY", keyFile)
	d, logs := start(t, p.config(t, "tls.hcl"))
	if got := servedSerial(t, d); got.Cmp(first) != 0 {
		t.Fatalf("serves serial %v, want %v", got, first)
	}

	second := writeCert(t, certFile, keyFile)
	if err := d.Reload(context.Background(), p.config(t, "tls.hcl")); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := servedSerial(t, d); got.Cmp(second) != 0 {
		t.Fatalf("after reload serves serial %v, want the new %v", got, second)
	}

	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := d.Reload(context.Background(), p.config(t, "tls.hcl"))
	if err == nil || !strings.Contains(err.Error(), "reload listener tls") {
		t.Fatalf("Reload with a broken key file: %v, want a listener tls error", err)
	}
	if got := servedSerial(t, d); got.Cmp(second) != 0 {
		t.Errorf("after a failed reload serves serial %v, want the kept %v", got, second)
	}
	if !strings.Contains(logs.String(), "the current one stays") {
		t.Errorf("failed certificate reload not logged")
	}
}

func TestRestartRequired(t *testing.T) {
	p := baseParams(t)
	base := p.config(t, "reload.hcl")
	cases := []struct {
		name string
		next params
		want []string
	}{
		{"same", p, nil},
		{"plugin settings only", p.with("ROOT_KEY", key3, "LEVEL", "debug"), nil},
		{"address", p.with("ADDR", "127.0.0.1:1"), []string{"listener address"}},
		{"storage", p.with("DB", "/elsewhere.db"), []string{"storage"}},
		{"purpose added", p.with("WA_PURPOSES", `"worker-auth", "config"`),
			[]string{"kms block aead#2: no block serves exactly purposes worker-auth any more",
				"kms block serving purposes config,worker-auth added"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := restartRequired(base, tc.next.config(t, "reload.hcl"))
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("restartRequired = %q, want %q", got, tc.want)
			}
		})
	}
}

var (
	transitOnce sync.Once
	transitErr  error
)

// TestStartLogsTransitSources starts a broker with a Vault transit block
// against a real Vault or OpenBao server and checks that the start log
// says where the effective address came from, with the token redacted.
func TestStartLogsTransitSources(t *testing.T) {
	tr := plugintest.NewTransit(t)
	transitOnce.Do(func() { _, transitErr = plugintest.Build(pluginDir, "transit", "./plugins/transit") })
	if transitErr != nil {
		t.Fatal(transitErr)
	}
	t.Setenv("BROKER_TEST_TRANSIT_TOKEN", tr.Token)

	cases := []struct {
		name      string
		address   string // the address setting line, or ""
		vaultAddr string // VAULT_ADDR in the broker's environment
		want      []string
	}{
		{"address from config", `address = "` + tr.Address + `"`, "",
			[]string{"address=" + tr.Address, "address_source=config", "mount_path_source=config", "key_name_source=config"}},
		{"address from environment", "", tr.Address,
			[]string{"address=" + tr.Address, "address_source=env"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("VAULT_ADDR", tc.vaultAddr)
			cfg := baseParams(t).with("ADDRESS", tc.address, "MOUNT", tr.Mount, "KEY_NAME", tr.Key).config(t, "transit.hcl")
			_, logs := start(t, cfg)
			var line string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "kms block ready") && strings.Contains(l, "plugin=transit") {
					line = l
				}
			}
			want := append(tc.want, "purposes=worker-auth", "mount_path="+tr.Mount, "key_name="+tr.Key, "token=(redacted)")
			for _, w := range want {
				if !strings.Contains(line, w) {
					t.Errorf("kms block ready line %q lacks %q", line, w)
				}
			}
			if strings.Contains(logs.String(), tr.Token) {
				t.Errorf("the Vault token reached the log")
			}
		})
	}
}

// metricValue reads one series of the daemon's registry; labels are
// name, value pairs that must all match. A missing series is 0.
func metricValue(t *testing.T, d *Daemon, name string, labels ...string) float64 {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	v, _ := metricstest.Value(t, d.registry, name, want)
	return v
}

// TestStatusFlagsSameRootKeyID is the regression test for a status that
// said previous-root could go when it named the same key as root: with
// equal key ids the counts by key id cannot tell, and status says so.
func TestStatusFlagsSameRootKeyID(t *testing.T) {
	tests := []struct {
		name      string
		rootKeyID string
		wantError string
	}{
		{"distinct key ids", "root-1", ""},
		{"same key id", "wa-1", "report the same key id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := baseParams(t).with("ROOT_KEY_ID", tt.rootKeyID, "WA_PURPOSES", `"previous-root"`)
			d, logs := start(t, p.config(t, "reload.hcl"))
			rk := d.status(context.Background()).GetRootKeys()
			if rk.GetCurrentKeyId() != tt.rootKeyID {
				t.Fatalf("current key id %q, want %q", rk.GetCurrentKeyId(), tt.rootKeyID)
			}
			got := rk.GetError()
			if tt.wantError == "" && got != "" || !strings.Contains(got, tt.wantError) {
				t.Errorf("root key status error %q, want %q", got, tt.wantError)
			}
			if logged := strings.Contains(logs.String(), "root key status unreliable"); logged != (tt.wantError != "") {
				t.Errorf("warning logged: %v, want %v", logged, tt.wantError != "")
			}
		})
	}
}

// TestGRPCListener starts a broker with grpc_address and calls the API on
// that listener with the SDK.
func TestGRPCListener(t *testing.T) {
	cfg := baseParams(t).config(t, "reload.hcl")
	cfg.Listener.GRPCAddress = "127.0.0.1:0"
	d, _ := start(t, cfg)
	if d.GRPCAddr() == nil {
		t.Fatal("no gRPC listener")
	}
	ctx := context.Background()
	token, err := d.MintToken(ctx, "", "admin", auth.RoleAdmin, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Address: "http://" + d.GRPCAddr().String(), Credentials: client.Token(token)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateScope(ctx, "o_grpc", ""); err != nil {
		t.Fatalf("create scope over the gRPC listener: %v", err)
	}
	st, err := c.Status(ctx)
	if err != nil || !st.GetReady() {
		t.Fatalf("status over the gRPC listener = %v, %v; want ready", st, err)
	}
}

// TestStartRejectsMalformedSetting is the regression test for a broker
// that kept running, unready and retrying, with a key setting the plugin
// can tell is malformed: that fails the start at once, naming the line.
func TestStartRejectsMalformedSetting(t *testing.T) {
	cfg := baseParams(t).with("ROOT_KEY", "c2hvcnQ=").config(t, "reload.hcl")
	d, err := Start(context.Background(), cfg, hclog.NewNullLogger())
	if err == nil {
		d.Stop(context.Background())
		t.Fatal("Start succeeded with a 5-byte aead key")
	}
	want := `reload.hcl:19,3-6: setting "key": must decode to 32 bytes, got 5`
	if !errors.Is(err, pluginhost.ErrInvalidConfig) || errors.Is(err, pluginhost.ErrSettingRefused) ||
		!strings.Contains(err.Error(), want) {
		t.Errorf("Start error %q, want ErrInvalidConfig saying %q", err, want)
	}
	if strings.Contains(err.Error(), "c2hvcnQ=") {
		t.Error("the error holds the key")
	}
}

// The config caps one_time_token_validity at what the verifier keeps used
// nonces for; config cannot import auth, so the two limits are checked
// against each other here.
func TestTokenValidityLimitsAgree(t *testing.T) {
	if config.MaxOneTimeTokenValidity != auth.MaxOneTimeValidity {
		t.Errorf("config allows one_time_token_validity up to %s, the verifier up to %s",
			config.MaxOneTimeTokenValidity, auth.MaxOneTimeValidity)
	}
	if config.DefaultOneTimeTokenValidity != auth.DefaultOneTimeValidity {
		t.Errorf("config defaults one_time_token_validity to %s, the verifier to %s",
			config.DefaultOneTimeTokenValidity, auth.DefaultOneTimeValidity)
	}
}
