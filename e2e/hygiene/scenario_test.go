package hygiene

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/status"

	"github.com/kmsbroker/kmsbroker/client"
	"github.com/kmsbroker/kmsbroker/e2e/awskms"
	"github.com/kmsbroker/kmsbroker/e2e/binaries"
	"github.com/kmsbroker/kmsbroker/e2e/brokerd"
	"github.com/kmsbroker/kmsbroker/e2e/vault"
)

// vaultSkip is the line a run without Vault shows, in the words the e2e
// harness uses, so `make e2e` counts it.
const vaultSkip = "e2e: SKIP Vault transit: no Vault server: put `vault` (HashiCorp) or `bao` (OpenBao) on PATH, " +
	"or set VAULT_ADDR and VAULT_TOKEN; worker-auth ran on aead and no Vault token was searched for"

// evidence is everything the scenario saw that must hold no secret: by
// source name, the text.
type evidence map[string]string

// add records text under source, numbering a source seen before.
func (e evidence) add(source, text string) {
	name := source
	for i := 2; ; i++ {
		if _, taken := e[name]; !taken {
			e[name] = text
			return
		}
		name = fmt.Sprintf("%s #%d", source, i)
	}
}

// scenario is the broker under test and what is known about it.
type scenario struct {
	t        *testing.T
	b        *brokerd.Broker
	secrets  []secret
	seen     evidence
	admin    string
	recovery string // client file of the recovery block
}

func (s *scenario) secret(name string, value []byte) {
	s.secrets = append(s.secrets, secret{name, value})
}

// cli runs a client command. Its standard error is evidence, and so is
// its standard output unless the command prints a secret by design
// (secretOut: tokens create, decrypt, derive-key), in which case the
// output goes to the caller only. wantOK says whether it must succeed.
func (s *scenario) cli(label string, wantOK, secretOut bool, args ...string) string {
	s.t.Helper()
	r := s.b.CLI(args...)
	if (r.Code == 0) != wantOK {
		s.t.Fatalf("%s: want success %t, got exit %d\nstderr: %s", label, wantOK, r.Code, r.Stderr)
	}
	s.seen.add("stderr of "+label, r.Stderr)
	if !secretOut || r.Code != 0 {
		s.seen.add("stdout of "+label, r.Stdout)
	}
	return r.Stdout
}

// sdkErr records the message of an SDK call that must fail.
func (s *scenario) sdkErr(label string, err error) {
	s.t.Helper()
	if err == nil {
		s.t.Fatalf("%s: succeeded, want an error", label)
	}
	s.seen.add("SDK error of "+label, err.Error()+"\n"+status.Convert(err).Message())
}

func randomText(t *testing.T, label string) string {
	t.Helper()
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return label + "-" + hex.EncodeToString(b)
}

// TestNoSecretInAnyOutput runs a whole broker life with known secrets at
// debug log level with an audit log: bootstrap through recovery, app and
// worker tokens, data operations good and bad, rotation and destruction,
// a plugin crash, and a move of the root key from a local key to AWS KMS
// through previous-root with config values encrypted by `brokerd config
// encrypt`. It also mints recovery and worker tokens itself, so that
// their strings are known, uses each once and replays it. Then it
// searches every log, the audit log, status, metrics, every listing and
// every error message for every secret in every form, and finds none.
// TestScanFindsWhatAPluginLogs is the negative control: the same search
// over the log of a broker whose plugin really leaks.
func TestNoSecretInAnyOutput(t *testing.T) {
	layout := binaries.Product(t)
	aws := awskms.Start(t)
	awsKey := aws.CreateKey(t, "broker root")

	s := &scenario{t: t, seen: evidence{}}
	oldRoot, oldRootKey := brokerd.AEAD(t, "root-old", "root")
	recovery, recoveryKey := brokerd.AEAD(t, "recovery-1", "recovery")
	configBlk, configKey := brokerd.AEAD(t, "config-1", "config")
	stranger, strangerKey := brokerd.AEAD(t, "stranger", "recovery")
	s.secret("old root key", oldRootKey)
	s.secret("recovery key", recoveryKey)
	s.secret("config key", configKey)
	s.secret("stranger's recovery key", strangerKey)
	if len(aws.SecretKey) >= minSecretLen {
		s.secret("AWS secret key", []byte(aws.SecretKey))
	} else {
		t.Logf("the AWS KMS endpoint's secret key is %d characters, too short to search for; not searched", len(aws.SecretKey))
	}

	// worker-auth runs on Vault transit when there is a Vault, with the
	// broker's token in the config as an encrypted value.
	var workerBroker, workerClient brokerd.Block
	if vault.Available() {
		v := vault.Start(t)
		tr := v.EnableTransit(t)
		tr.CreateKey(t, "worker-auth")
		brokerToken, workerToken := tr.KeyToken(t, "worker-auth"), tr.KeyToken(t, "worker-auth")
		s.secret("broker's Vault token", []byte(brokerToken.Value()))
		s.secret("worker's Vault token", []byte(workerToken.Value()))
		transit := func(token string) brokerd.Block {
			return brokerd.Block{Type: "transit", Purposes: []string{"worker-auth"}, Settings: map[string]string{
				"address": v.Addr, "mount_path": tr.Mount + "/", "key_name": "worker-auth", "token": token,
			}}
		}
		workerBroker = transit("{{encrypt(" + brokerToken.Value() + ")}}")
		workerClient = transit(workerToken.Value())
	} else {
		t.Run("Vault token", func(t *testing.T) { t.Skip(vaultSkip) })
		var workerKey []byte
		workerBroker, workerKey = brokerd.AEAD(t, "worker-1", "worker-auth")
		workerClient = workerBroker
		s.secret("worker-auth key", workerKey)
	}

	s.b = brokerd.New(t, layout, brokerd.Config{LogLevel: "debug", WorkerScopes: []string{"o_1"}})
	s.b.Config.AuditPath = filepath.Join(s.b.Dir, "audit.log")
	s.b.Flags = []string{"-log-level=debug"}
	s.startEncrypted(oldRoot, workerBroker, recovery, configBlk)

	s.recovery = s.writeFile("recovery.hcl", recovery.HCL(t))
	strangerFile := s.writeFile("stranger.hcl", stranger.HCL(t))
	workerFile := s.writeFile("worker.hcl", workerClient.HCL(t))
	s.oneTimeTokens(layout, workerFile)
	bogus := "kmsb." + base64.RawURLEncoding.EncodeToString([]byte(randomText(t, "x")[:32]))
	s.secret("bogus client token", []byte(bogus))

	// Bootstrap through recovery; refusals first.
	s.cli("status without a credential", false, false, "status")
	s.cli("status with a bogus token", false, false, "status", "-token="+bogus)
	s.cli("tokens create with another recovery key", false, false,
		"tokens", "create", "-name=x", "-role=admin", "-recovery-config="+strangerFile)
	var created struct {
		Token struct {
			ID string `json:"id"`
		} `json:"token"`
		Secret string `json:"secret"`
	}
	out := s.cli("tokens create admin", true, true, "tokens", "create", "-name=admin", "-role=admin",
		"-recovery-config="+s.recovery, "-format=json")
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Secret == "" {
		t.Fatalf("tokens create admin: output is not a token: %v", err)
	}
	s.admin = created.Secret
	s.secret("admin token", []byte(s.admin))
	admin := "-token=" + s.admin

	s.cli("scopes create o_1", true, false, "scopes", "create", "-id=o_1", admin)
	s.cli("scopes create o_2", true, false, "scopes", "create", "-id=o_2", admin)
	out = s.cli("tokens create app", true, true, "tokens", "create", "-name=app", "-role=app", "-scopes=o_1",
		"-format=json", admin)
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Secret == "" {
		t.Fatalf("tokens create app: output is not a token: %v", err)
	}
	app := "-token=" + created.Secret
	appID := created.Token.ID
	s.secret("app token", []byte(created.Secret))

	// Data through the CLI, good and bad.
	p1 := randomText(t, "card")
	s.secret("plaintext 1", []byte(p1))
	e1 := strings.TrimSpace(s.cli("encrypt p1", true, false,
		"encrypt", "-scope=o_1", "-purpose=database", "-aad=row-1", app, p1))
	if got := s.cli("decrypt p1", true, true, "decrypt", "-scope=o_1", "-purpose=database", "-aad=row-1", app, e1); got != p1 {
		t.Fatalf("decrypt p1: got %d bytes, want the plaintext back", len(got))
	}
	s.cli("decrypt p1 with the wrong aad", false, false, "decrypt", "-scope=o_1", "-purpose=database", "-aad=row-2", app, e1)
	s.cli("decrypt p1 in another scope", false, false, "decrypt", "-scope=o_2", "-purpose=database", "-aad=row-1", admin, e1)
	s.cli("encrypt outside the app's scopes", false, false, "encrypt", "-scope=o_2", "-purpose=database", app, p1)
	s.cli("encrypt with an unknown purpose", false, false, "encrypt", "-scope=o_1", "-purpose=secrets", app, p1)

	// Data through the SDK, good and bad.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := s.b.Client(client.Token(s.admin))
	p2 := randomText(t, "ssn")
	s.secret("plaintext 2", []byte(p2))
	e2, _, err := c.Encrypt(ctx, "o_2", "oplog", []byte(p2), []byte("log-1"))
	if err != nil {
		t.Fatalf("SDK Encrypt: %v", err)
	}
	_, err = c.Decrypt(ctx, "o_2", "oplog", e2, []byte("log-2"))
	s.sdkErr("Decrypt with the wrong aad", err)
	_, err = c.Decrypt(ctx, "o_2", "oplog", append(append([]byte{}, e2[:len(e2)-1]...), e2[len(e2)-1]^1), []byte("log-1"))
	s.sdkErr("Decrypt of a tampered envelope", err)
	_, _, err = c.Encrypt(ctx, "o_9", "oplog", []byte(p2), nil)
	s.sdkErr("Encrypt in an unknown scope", err)
	derived, _, err := c.DeriveKey(ctx, "o_1", "u_1", "s_1", 32, 0)
	if err != nil {
		t.Fatalf("SDK DeriveKey: %v", err)
	}
	s.secret("derived key", derived)

	// A worker derives through worker-auth; a stranger cannot.
	var dk struct {
		Key string `json:"key"`
	}
	out = s.cli("derive-key as a worker", true, true, "derive-key", "-scope=o_1", "-user=u_2", "-session=s_2",
		"-worker-auth-config="+workerFile, "-worker-name=edge-1", "-format=json")
	if err := json.Unmarshal([]byte(out), &dk); err != nil {
		t.Fatalf("derive-key as a worker: output is not JSON: %v", err)
	}
	raw, err := base64.StdEncoding.DecodeString(dk.Key)
	if err != nil || len(raw) != 32 {
		t.Fatalf("derive-key as a worker: key is not base64 of 32 bytes: %v", err)
	}
	s.secret("worker's derived key", raw)
	s.cli("derive-key as a worker with another key", false, false, "derive-key", "-scope=o_1", "-user=u_2",
		"-session=s_2", "-worker-auth-config="+strangerFile, "-worker-name=edge-1")

	// Rotation, destruction, and what an operator lists.
	s.cli("rotate-keys with rewrap", true, false, "scopes", "rotate-keys", "-id=o_1", "-rewrap", admin)
	var versions struct {
		Versions []struct {
			ID      string `json:"id"`
			Kind    string `json:"kind"`
			Version int    `json:"version"`
		} `json:"versions"`
	}
	out = s.cli("key-versions", true, false, "scopes", "key-versions", "-id=o_1", "-format=json", admin)
	if err := json.Unmarshal([]byte(out), &versions); err != nil {
		t.Fatalf("key-versions: %v", err)
	}
	// The broker refuses to destroy a data key version until it has been
	// replaced for twice its one-second staleness check.
	time.Sleep(2100 * time.Millisecond)
	for _, v := range versions.Versions {
		if v.Version == 1 && (v.Kind == "database" || v.Kind == "root") {
			s.cli("destroy "+v.Kind+" version 1", true, false, "scopes", "destroy-key-version", "-id=o_1", "-version-id="+v.ID, admin)
		}
	}
	s.cli("decrypt p1 after its key version was destroyed", false, false,
		"decrypt", "-scope=o_1", "-purpose=database", "-aad=row-1", admin, e1)
	s.cli("tokens list", true, false, "tokens", "list", admin)
	s.cli("scopes list", true, false, "scopes", "list", "-format=json", admin)
	s.cli("tokens revoke app", true, false, "tokens", "revoke", "-id="+appID, admin)
	s.cli("encrypt with the revoked app token", false, false, "encrypt", "-scope=o_1", "-purpose=database", app, p1)
	s.observe("after phase 1")

	// Phase 2: root moves to AWS KMS, the old key stays as previous-root
	// until a rewrap; the AWS secret key is an encrypted config value.
	oldRoot.Purposes = []string{"previous-root"}
	newRoot := brokerd.Block{Type: "awskms", Purposes: []string{"root"}, Settings: map[string]string{
		"kms_key_id": awsKey.ARN, "region": aws.Region, "endpoint": aws.Endpoint,
		"access_key": aws.AccessKey, "secret_key": "{{encrypt(" + aws.SecretKey + ")}}",
	}}
	s.b.Stop()
	s.startEncrypted(newRoot, oldRoot, workerBroker, recovery, configBlk)
	c = s.b.Client(client.Token(s.admin))
	s.cli("rewrap all", true, false, "scopes", "rewrap", "-all", admin)
	var st struct {
		RootKeys struct {
			OnOtherKeys int `json:"on_other_keys"`
		} `json:"root_keys"`
	}
	out = s.cli("status after the rewrap", true, false, "status", "-format=json", admin)
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status: %v", err)
	}
	if st.RootKeys.OnOtherKeys != 0 {
		t.Errorf("status after rewrap -all: %d KEK versions still on the old root key, want 0", st.RootKeys.OnOtherKeys)
	}
	if got, err := c.Decrypt(ctx, "o_2", "oplog", e2, []byte("log-1")); err != nil || string(got) != p2 {
		t.Fatalf("SDK Decrypt after the root moved: %v", err)
	}

	// A crash of the AWS KMS plugin: its restart configures it again.
	s.killRootPlugin(c)
	p3 := randomText(t, "iban")
	s.secret("plaintext 3", []byte(p3))
	if _, err := c.CreateScope(ctx, "o_3", ""); err != nil {
		t.Fatalf("CreateScope after the root plugin restarted: %v", err)
	}
	if _, _, err := c.Encrypt(ctx, "o_3", "tokens", []byte(p3), nil); err != nil {
		t.Fatalf("SDK Encrypt after the root plugin restarted: %v", err)
	}
	s.observe("at the end")
	s.b.Stop()

	logs := s.b.Logs()
	// The evidence must be what the scenario claims: debug lines, a
	// plugin restart, refused one-time tokens in the audit log.
	for _, want := range []string{"[DEBUG]", "plugin lost; restarting", "decrypt failed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("broker log has no %q line; the scenario did not run as meant", want)
		}
	}
	s.seen.add("broker log", logs)
	audit, err := os.ReadFile(s.b.Config.AuditPath)
	if err != nil || len(audit) == 0 {
		t.Fatalf("read the audit log: %d bytes, %v", len(audit), err)
	}
	for _, want := range []string{
		`"auth.recovery"`, `"rejected"`, `"auth.worker-auth"`, `"scopes.destroy-key-version"`, `"tokens.revoke"`,
	} {
		if !strings.Contains(string(audit), want) {
			t.Errorf("audit log has no %s event; the scenario did not run as meant", want)
		}
	}
	s.seen.add("audit log", string(audit))

	leaks := mustFind(t, s.secrets, s.seen)
	for _, l := range leaks {
		t.Errorf("secret leaked: %s", l)
	}
	t.Logf("searched %d sources (%d KiB) for %d secrets in every form", len(s.seen), size(s.seen)>>10, len(s.secrets))
}

// oneTimeTokens mints a recovery token and a worker token with the Go
// SDK, as a client does for every call, so that the token strings are
// known secrets. Each is used once and works, then replayed and refused.
func (s *scenario) oneTimeTokens(layout binaries.Layout, workerFile string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := client.OneTimeOptions{PluginDirectory: layout.Dir}
	for _, tc := range []struct {
		kind  string
		creds func() (*client.OneTimeCredentials, error)
	}{
		{"recovery", func() (*client.OneTimeCredentials, error) {
			return client.RecoveryCredentials(ctx, s.recovery, opts)
		}},
		{"worker", func() (*client.OneTimeCredentials, error) {
			return client.WorkerCredentials(ctx, workerFile, "edge-2", opts)
		}},
	} {
		creds, err := tc.creds()
		if err != nil {
			s.t.Fatalf("%s credentials: %v", tc.kind, err)
		}
		token, err := creds.Credential(ctx)
		creds.Close()
		if err != nil {
			s.t.Fatalf("mint a %s token: %v", tc.kind, err)
		}
		s.secret(tc.kind+" one-time token", []byte(token))
		c := s.b.Client(client.Token(token))
		if _, err := c.Status(ctx); err != nil {
			s.t.Fatalf("Status with a fresh %s token: %v", tc.kind, err)
		}
		_, err = c.Status(ctx)
		s.sdkErr("Status with a replayed "+tc.kind+" token", err)
		if !strings.Contains(err.Error(), "already used") {
			s.t.Errorf("Status with a replayed %s token: %v, want it refused as already used", tc.kind, err)
		}
	}
}

// startEncrypted writes a config with blocks whose {{encrypt(...)}}
// values `brokerd config encrypt` then encrypts with the config block,
// and starts the broker on it.
func (s *scenario) startEncrypted(blocks ...brokerd.Block) {
	s.t.Helper()
	s.b.Config.Blocks = blocks
	s.b.RawConfig = ""
	plain := s.writeFile("marked.hcl", s.b.Config.HCL(s.t))
	r := s.b.Command("config", "encrypt", "-config="+plain)
	if r.Code != 0 {
		s.t.Fatalf("config encrypt: exit %d: %s", r.Code, r.Stderr)
	}
	s.seen.add("stderr of config encrypt", r.Stderr)
	if strings.Contains(r.Stdout, "{{encrypt(") {
		s.t.Fatalf("config encrypt left an {{encrypt(...)}} marker")
	}
	if err := os.Remove(plain); err != nil {
		s.t.Fatal(err)
	}
	s.b.RawConfig = r.Stdout
	s.b.Start()
}

func (s *scenario) writeFile(name, content string) string {
	s.t.Helper()
	path := filepath.Join(s.b.Dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return path
}

// observe records what an operator can look at: status in both formats
// and the metrics.
func (s *scenario) observe(when string) {
	s.t.Helper()
	admin := "-token=" + s.admin
	s.cli("status "+when, true, false, "status", admin)
	s.cli("status -format=json "+when, true, false, "status", "-format=json", admin)
	s.cli("scopes read o_1 "+when, true, false, "scopes", "read", "-id=o_1", admin)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.b.URL()+"/metrics", nil)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET /metrics: status %d, %v", resp.StatusCode, err)
	}
	s.seen.add("metrics "+when, string(body))
}

// killRootPlugin SIGKILLs the root block's plugin and waits until a new
// process serves.
func (s *scenario) killRootPlugin(c *client.Client) {
	s.t.Helper()
	pid := func() (int32, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := c.Status(ctx)
		if err != nil {
			s.t.Fatalf("Status: %v", err)
		}
		for _, p := range st.GetPurposes() {
			if p.GetPurpose() == "root" {
				return p.GetPid(), p.GetState()
			}
		}
		s.t.Fatalf("Status lists no root purpose")
		return 0, ""
	}
	old, _ := pid()
	if err := syscall.Kill(int(old), syscall.SIGKILL); err != nil {
		s.t.Fatalf("kill the root plugin %d: %v", old, err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		now, state := pid()
		if now > 0 && now != old && state == "ready" {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("root plugin not back a minute after SIGKILL: pid %d, state %q", now, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func size(e evidence) int {
	n := 0
	for _, v := range e {
		n += len(v)
	}
	return n
}
