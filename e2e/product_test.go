package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kmsbroker/kmsbroker/client"
	"github.com/kmsbroker/kmsbroker/e2e/awskms"
	"github.com/kmsbroker/kmsbroker/e2e/binaries"
	"github.com/kmsbroker/kmsbroker/e2e/vault"
)

type deriveOut struct {
	Key        string `json:"key"` // base64
	KeyVersion int    `json:"key_version"`
}

// TestWholeProduct runs the product as an operator would deploy it: root
// on AWS KMS, worker-auth on Vault transit, recovery and config on local
// keys. It bootstraps a fresh broker through a recovery token and then
// uses every kind of credential and every data operation. Without Vault
// the same scenario runs with worker-auth on a local key, and only its
// transit part skips.
func TestWholeProduct(t *testing.T) {
	t.Parallel()
	layout := binaries.Product(t)
	srv := awskms.Start(t)

	rootKey := srv.CreateKey(t, "broker root")
	alias := uniqueAlias(t, "broker-root")
	srv.CreateAlias(t, alias, rootKey.ID)

	// worker-auth: the broker's block, the block a worker's client file
	// holds, and the secrets of both.
	var (
		v                *vault.Server // nil without Vault
		tr               *vault.Transit
		workerVaultToken vault.Token
		workerAuth       kmsBlock
		workerClient     kmsBlock
		workerAuthType   string
		workerSecrets    = map[string]string{}
	)
	if vault.Available() {
		v = vault.Start(t)
		tr = v.EnableTransit(t)
		tr.CreateKey(t, "worker-auth")
		brokerVaultToken := tr.KeyToken(t, "worker-auth")
		workerVaultToken = tr.KeyToken(t, "worker-auth")
		workerAuth = vaultBlock(v, tr, "worker-auth", brokerVaultToken, "worker-auth")
		workerClient = vaultBlock(v, tr, "worker-auth", workerVaultToken, "worker-auth")
		workerAuthType = "transit"
		workerSecrets["broker Vault token"] = brokerVaultToken.Value()
		workerSecrets["worker Vault token"] = workerVaultToken.Value()
	} else {
		t.Log("e2e: TestWholeProduct runs worker-auth on aead: no Vault server, so only its transit part skips")
		workerAuth = aeadBlock(t, "worker-auth-1", "worker-auth")
		workerClient = workerAuth
		workerAuthType = "aead"
		workerSecrets["worker-auth key"] = workerAuth.Settings["key"]
	}

	recovery := aeadBlock(t, "recovery-1", "recovery")
	configBlk := aeadBlock(t, "config-1", "config")
	blocks := []kmsBlock{awsBlock(srv, alias, "root"), workerAuth, recovery, configBlk}
	b := newBroker(t, layout, blocks...)
	b.cfg.WorkerScopes = []string{"o_alpha"}
	b.cfg.AuditPath = filepath.Join(b.dir, "audit.log")
	b.writeConfig()
	recoveryPath := writeFile(t, b.dir, "recovery.hcl", recovery.hcl(t))
	workerPath := writeFile(t, b.dir, "worker.hcl", workerClient.hcl(t))
	b.start()

	if code, ready := b.mustHealth(); code != 200 || !ready {
		t.Fatalf("GET /v1/sys/health: got %d ready=%t, want 200 ready=true", code, ready)
	}

	// A fresh broker has no client token: nothing gets in without one.
	stderr := b.fails(noCred, "status")
	wantContains(t, "status without a credential", stderr, "not authenticated", "missing credential")

	admin := b.bootstrapAdmin(recoveryPath)

	t.Run("status", func(t *testing.T) {
		b := b.in(t)
		st := b.status(tokenCred(admin))
		if !st.Ready || st.Store.Type != "sqlite" || !st.Store.OK {
			t.Errorf("status: got ready=%t store=%+v, want ready and an ok sqlite store", st.Ready, st.Store)
		}
		want := map[string]string{"root": "awskms", "worker-auth": workerAuthType, "recovery": "aead", "config": "aead"}
		pids := map[int]string{}
		for name, typ := range want {
			p := st.purpose(b, name)
			if p.PluginType != typ || p.State != "ready" || p.Pid <= 0 || p.Pid == b.proc.Pid() {
				t.Errorf("status of %s: got %+v, want plugin %s, state ready, a pid other than brokerd's %d",
					name, p, typ, b.proc.Pid())
			}
			if other, ok := pids[p.Pid]; ok {
				t.Errorf("status: %s and %s share pid %d, want one process per block", name, other, p.Pid)
			}
			pids[p.Pid] = name
		}
		if got := st.purpose(b, "root").KeyID; !strings.Contains(got, rootKey.ID) {
			t.Errorf("status of root: key id %q, want the key the alias names, %s", got, rootKey.ID)
		}
	})

	b.createScope(tokenCred(admin), "o_alpha")
	b.createScope(tokenCred(admin), "o_beta")
	alpha := b.encrypt(tokenCred(admin), "o_alpha", "row-17")

	t.Run("aad, scope and purpose bind the envelope", func(t *testing.T) {
		b := b.in(t)
		b.decrypt(tokenCred(admin), alpha)
		for _, tc := range []struct {
			name string
			args []string
		}{
			{"wrong aad", []string{"-scope=o_alpha", "-purpose=database", "-aad=row-18"}},
			{"no aad", []string{"-scope=o_alpha", "-purpose=database"}},
			{"other scope", []string{"-scope=o_beta", "-purpose=database", "-aad=row-17"}},
			{"other purpose", []string{"-scope=o_alpha", "-purpose=oplog", "-aad=row-17"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				b := b.in(t)
				stderr := b.fails(tokenCred(admin), "decrypt", append(tc.args, alpha.envelope.Ciphertext)...)
				wantContains(t, "decrypt with "+tc.name, stderr, "decrypt failed")
				if strings.Contains(stderr, alpha.plaintext) {
					t.Errorf("decrypt with %s: the error shows the plaintext: %q", tc.name, stderr)
				}
			})
		}
	})

	t.Run("Go SDK", func(t *testing.T) {
		b := b.in(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cl, err := client.New(client.Config{Address: b.url(), Credentials: client.Token(admin)})
		if err != nil {
			t.Fatalf("client.New: %v", err)
		}
		defer cl.Close()

		plaintext := []byte(secretText(t, "sdk"))
		env, version, err := cl.Encrypt(ctx, "o_beta", "oplog", plaintext, []byte("log-1"))
		if err != nil || version != 1 {
			t.Fatalf("Encrypt: got version %d, %v; want version 1", version, err)
		}
		got, err := cl.Decrypt(ctx, "o_beta", "oplog", env, []byte("log-1"))
		if err != nil || string(got) != string(plaintext) {
			t.Fatalf("Decrypt: got %q, %v; want %q", got, err, plaintext)
		}
		_, err = cl.Decrypt(ctx, "o_beta", "oplog", env, []byte("log-2"))
		msg := status.Convert(err).Message()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(msg, "decrypt failed") {
			t.Errorf("Decrypt with wrong aad: got %v, want InvalidArgument \"decrypt failed\"", err)
		}

		// What the CLI made the SDK opens, and the other way round.
		cliEnv, err := base64.StdEncoding.DecodeString(alpha.envelope.Ciphertext)
		if err != nil {
			t.Fatalf("CLI envelope is not base64: %v", err)
		}
		got, err = cl.Decrypt(ctx, "o_alpha", "database", cliEnv, []byte(alpha.aad))
		if err != nil || string(got) != alpha.plaintext {
			t.Errorf("SDK Decrypt of a CLI envelope: got %q, %v; want %q", got, err, alpha.plaintext)
		}
		out := b.ok(tokenCred(admin), "decrypt", "-scope=o_beta", "-purpose=oplog", "-aad=log-1",
			base64.StdEncoding.EncodeToString(env))
		if out != string(plaintext) {
			t.Errorf("CLI decrypt of an SDK envelope: got %q, want %q", out, plaintext)
		}

		// The SDK mints a recovery token per call with a local plugin.
		creds, err := client.RecoveryCredentials(ctx, recoveryPath, client.OneTimeOptions{PluginDirectory: layout.Dir})
		if err != nil {
			t.Fatalf("RecoveryCredentials: %v", err)
		}
		defer creds.Close()
		rc, err := client.New(client.Config{Address: b.url(), Credentials: creds})
		if err != nil {
			t.Fatalf("client.New with recovery credentials: %v", err)
		}
		defer rc.Close()
		for i := range 2 { // each call gets a fresh single-use token
			scopes, err := rc.ListScopes(ctx)
			if err != nil || len(scopes) != 2 {
				t.Fatalf("ListScopes as recovery, call %d: got %d scopes, %v; want 2", i+1, len(scopes), err)
			}
		}
	})

	var k1 deriveOut // u_1's key for session s_1 in o_alpha
	t.Run("app token and derive-key", func(t *testing.T) {
		b := b.in(t)
		var tok struct {
			Secret string `json:"secret"`
		}
		b.okJSON(&tok, tokenCred(admin), "tokens create", "-name=app-alpha", "-role=app", "-scopes=o_alpha")
		app := tokenCred(tok.Secret)

		b.decrypt(app, alpha)
		stderr := b.fails(app, "encrypt", "-scope=o_beta", "value")
		wantContains(t, "app token in another scope", stderr, "permission denied", "o_beta")

		var k1again, k2 deriveOut
		b.okJSON(&k1, app, "derive-key", "-scope=o_alpha", "-user=u_1", "-session=s_1")
		b.okJSON(&k1again, app, "derive-key", "-scope=o_alpha", "-user=u_1", "-session=s_1",
			"-key-version="+itoa(k1.KeyVersion))
		b.okJSON(&k2, app, "derive-key", "-scope=o_alpha", "-user=u_1", "-session=s_2")
		raw, err := base64.StdEncoding.DecodeString(k1.Key)
		if err != nil || len(raw) != 32 || k1.KeyVersion != 1 {
			t.Fatalf("derive-key: got %d bytes at version %d (%v), want 32 at version 1", len(raw), k1.KeyVersion, err)
		}
		if k1again.Key != k1.Key {
			t.Errorf("derive-key again with -key-version=%d: got another key", k1.KeyVersion)
		}
		if k2.Key == k1.Key {
			t.Errorf("derive-key for another session: got the same key")
		}

		// Recovery names no user, so it may not derive session keys.
		stderr = b.fails(recoveryCred(recoveryPath), "derive-key", "-scope=o_alpha", "-user=u_1", "-session=s_1")
		wantContains(t, "derive-key as recovery", stderr, "permission denied", "recovery")
	})

	t.Run("worker auth", func(t *testing.T) {
		b := b.in(t)
		worker := workerCred(workerPath, "edge-1")
		st := b.status(worker)
		if !st.Ready {
			t.Errorf("status as worker w_edge-1: got ready=false, want true")
		}

		// auth { worker_scopes } grants o_alpha: the worker derives the
		// same key an app token does for the same user, session and
		// version.
		var got deriveOut
		b.okJSON(&got, worker, "derive-key", "-scope=o_alpha", "-user=u_1", "-session=s_1",
			"-key-version="+itoa(k1.KeyVersion))
		if k1.Key == "" || got.Key != k1.Key {
			t.Errorf("derive-key as worker: got another key than the app token's for u_1/s_1")
		}
		stderr := b.fails(worker, "derive-key", "-scope=o_beta", "-user=u_1", "-session=s_1")
		wantContains(t, "derive-key as a worker outside worker_scopes", stderr,
			"permission denied", "w_edge-1", "o_beta")
		stderr = b.fails(worker, "encrypt", "-scope=o_alpha", "value")
		wantContains(t, "encrypt as a worker", stderr, "permission denied", "worker")

		// A worker holding another KMS key is not a worker.
		bogus := writeFile(t, t.TempDir(), "worker.hcl", aeadBlock(t, "not-vault", "worker-auth").hcl(t))
		stderr = b.fails(workerCred(bogus, "edge-1"), "status")
		wantContains(t, "status as a worker with another key", stderr, "not authenticated", "worker-auth")
	})

	t.Run("worker-auth on Vault transit", func(t *testing.T) {
		if v == nil {
			t.Skip(vault.SkipMessage)
		}
		b := b.in(t)
		worker := workerCred(workerPath, "edge-1")

		// Vault rotates the key under both: the worker's tokens are then
		// made by key version 2, which the broker's own token decrypts.
		if got := tr.Rotate(t, "worker-auth"); got != 2 {
			t.Fatalf("rotate the worker-auth transit key: latest version %d, want 2", got)
		}
		var got deriveOut
		b.okJSON(&got, worker, "derive-key", "-scope=o_alpha", "-user=u_1", "-session=s_1",
			"-key-version="+itoa(k1.KeyVersion))
		if k1.Key == "" || got.Key != k1.Key {
			t.Errorf("derive-key as worker after the transit key rotated: got another key than the app token's")
		}

		// A worker whose own Vault token is revoked cannot make a token;
		// the broker's token for the same key is not affected.
		v.RevokeToken(t, workerVaultToken)
		stderr := b.fails(worker, "status")
		t.Logf("a worker with its Vault token revoked is told: %s", stderr)
		wantContains(t, "status as a worker with its Vault token revoked", stderr, "token", "refused by Vault", "403")
		if p := b.status(tokenCred(admin)).purpose(b, "worker-auth"); p.State != "ready" || p.LastError != "" {
			t.Errorf("status of worker-auth after the worker's Vault token was revoked: got %+v, want ready, no error", p)
		}
	})

	t.Run("rotation", func(t *testing.T) {
		b := b.in(t)
		var sc scopeOut
		b.okJSON(&sc, tokenCred(admin), "scopes rotate-keys", "-id=o_alpha")
		if sc.RootKeyVersion != 2 {
			t.Fatalf("rotate-keys: KEK version %d, want 2", sc.RootKeyVersion)
		}
		for _, dk := range sc.DataKeys {
			if dk.Version != 2 {
				t.Errorf("rotate-keys: %s key version %d, want 2", dk.Purpose, dk.Version)
			}
		}
		fresh := b.encrypt(tokenCred(admin), "o_alpha", "row-18")
		if fresh.envelope.KeyVersion != 2 {
			t.Errorf("encrypt after rotation: key version %d, want 2", fresh.envelope.KeyVersion)
		}
		b.decrypt(tokenCred(admin), alpha)
		b.decrypt(tokenCred(admin), fresh)

		var re envelopeOut
		b.okJSON(&re, tokenCred(admin), "reencrypt", "-scope=o_alpha", "-purpose=database", "-aad="+alpha.aad,
			alpha.envelope.Ciphertext)
		if re.KeyVersion != 2 {
			t.Errorf("reencrypt: key version %d, want 2", re.KeyVersion)
		}
		b.decrypt(tokenCred(admin), data{scope: "o_alpha", aad: alpha.aad, plaintext: alpha.plaintext, envelope: re})

		// Both KEK versions are wrapped by the key the alias resolved to,
		// recorded as its ARN, not by the alias.
		b.wantKEKsWrappedBy(tokenCred(admin), "o_alpha", rootKey.ARN)

		// After a restart every key is unwrapped through AWS KMS again.
		b.restart(blocks...)
		b.decrypt(tokenCred(admin), alpha)
		b.decrypt(tokenCred(admin), fresh)
	})

	t.Run("audit log", func(t *testing.T) {
		b := b.in(t)
		events := readAudit(t, b.cfg.AuditPath)
		for _, want := range []auditEvent{
			{Principal: "u_recovery", Operation: "auth.recovery", Result: "ok"},
			{Principal: "u_recovery", Operation: "tokens.create", Result: "ok"},
			{Principal: "w_edge-1", Operation: "auth.worker-auth", Result: "ok"},
			{Operation: "auth.worker-auth", Result: "rejected"},
			{Operation: "scopes.rotate-keys", Scope: "o_alpha", Result: "ok"},
		} {
			if !hasEvent(events, want) {
				t.Errorf("audit log: no event like %+v in %+v", want, events)
			}
		}
	})

	t.Run("no secret in the broker log", func(t *testing.T) {
		b := b.in(t)
		logText := b.allLogs() + readLog(t, b.cfg.AuditPath)
		secrets := map[string]string{
			"derived key":    k1.Key,
			"AWS secret key": srv.SecretKey,
			"recovery key":   recovery.Settings["key"],
			"config key":     configBlk.Settings["key"],
			"admin token":    admin,
			"plaintext":      alpha.plaintext,
		}
		maps.Copy(secrets, workerSecrets)
		for what, s := range secrets {
			if strings.Contains(logText, s) {
				t.Errorf("brokerd log contains the %s", what)
			}
		}
	})
}

// auditEvent is one line of the audit log; empty fields match anything.
type auditEvent struct {
	Principal string `json:"principal"`
	Operation string `json:"operation"`
	Scope     string `json:"scope"`
	Result    string `json:"result"`
	Reason    string `json:"reason"`
}

func readAudit(t *testing.T, path string) []auditEvent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open audit log: %v", err)
	}
	defer f.Close()
	var events []auditEvent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q is not JSON: %v", sc.Text(), err)
		}
		events = append(events, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read audit log: %v", err)
	}
	return events
}

func hasEvent(events []auditEvent, want auditEvent) bool {
	for _, e := range events {
		if (want.Principal == "" || e.Principal == want.Principal) &&
			e.Operation == want.Operation && e.Result == want.Result &&
			(want.Scope == "" || e.Scope == want.Scope) {
			return true
		}
	}
	return false
}
