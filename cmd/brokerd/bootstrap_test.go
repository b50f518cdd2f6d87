package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secretKey returns a fresh aead key in its config form and its raw bytes.
func secretKey(t *testing.T) (string, []byte) {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b), b
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// TestBootstrapThroughRecovery starts a broker with no token at all and
// sets it up entirely through a recovery token: a first admin token, an app
// token limited to one scope, a worker, key rotation and destruction, and
// token revocation; then it checks the audit log holds every event and no
// secret.
func TestBootstrapThroughRecovery(t *testing.T) {
	b := newBroker(t)
	rootKey, rootRaw := secretKey(t)
	recoveryKey, recoveryRaw := secretKey(t)
	workerKey, workerRaw := secretKey(t)
	strangerKey, _ := secretKey(t)
	auditPath := filepath.Join(b.dataDir, "audit.log")

	cfg := writeFile(t, filepath.Join(b.dataDir, "broker.hcl"), fmt.Sprintf(`
listener "tcp" {
  address     = %q
  tls_disable = true
}
storage "sqlite" { path = %q }
audit { path = %q }
auth { worker_scopes = ["o_1"] }
kms "aead" {
  purpose = ["root"]
  key     = %q
  key_id  = "root-1"
}
kms "aead" {
  purpose = ["recovery"]
  key     = %q
  key_id  = "recovery-1"
}
kms "aead" {
  purpose = ["worker-auth"]
  key     = %q
  key_id  = "worker-1"
}
`, b.addr, filepath.Join(b.dataDir, "broker.db"), auditPath, rootKey, recoveryKey, workerKey))
	recovery := writeFile(t, filepath.Join(b.dataDir, "recovery.hcl"),
		fmt.Sprintf("kms \"aead\" {\n  purpose = [\"recovery\"]\n  key = %q\n}\n", recoveryKey))
	stranger := writeFile(t, filepath.Join(b.dataDir, "stranger.hcl"),
		fmt.Sprintf("kms \"aead\" {\n  purpose = [\"recovery\"]\n  key = %q\n}\n", strangerKey))
	worker := writeFile(t, filepath.Join(b.dataDir, "worker.hcl"),
		fmt.Sprintf("kms \"aead\" {\n  purpose = [\"worker-auth\"]\n  key = %q\n}\n", workerKey))

	b.start(t, "server", "-config="+cfg, "-log-level=debug")
	b.waitReady(t, "broker started")

	// No token exists: the broker refuses everything but recovery.
	if _, errOut, code := b.cli(t, "", "scopes", "list"); code != 1 || !strings.Contains(errOut, "missing credential") {
		t.Fatalf("scopes list without credential: exit %d, %q", code, errOut)
	}
	if _, errOut, code := b.cli(t, "", "tokens", "create", "-name=x", "-role=admin", "-recovery-config="+stranger); code != 1 ||
		!strings.Contains(errOut, "could not be decrypted with the broker's recovery KMS") {
		t.Fatalf("recovery token from another key: exit %d, %q", code, errOut)
	}

	out := b.mustCLI(t, "", "tokens", "create", "-name=first-admin", "-role=admin", "-recovery-config="+recovery)
	admin := lastLine(out)
	if !strings.HasPrefix(admin, "kmsb.") {
		t.Fatalf("tokens create printed %q, want a token on the last line", out)
	}
	b.token = admin
	b.mustCLI(t, "", "scopes", "create", "-id=o_1")
	b.mustCLI(t, "", "scopes", "create", "-id=o_2")

	var created struct {
		Token struct {
			ID string `json:"id"`
		} `json:"token"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal([]byte(b.mustCLI(t, "", "tokens", "create", "-name=app", "-role=app", "-scopes=o_1", "-format=json")), &created); err != nil {
		t.Fatal(err)
	}
	app := created.Secret

	const plaintext = "card-4111-1111-1111-1111"
	run := func(token string, args ...string) (string, string, int) {
		t.Helper()
		admin := b.token
		defer func() { b.token = admin }()
		b.token = token
		return b.cli(t, "", args...)
	}
	if _, errOut, code := run(app, "encrypt", "-scope=o_1", plaintext); code != 0 {
		t.Fatalf("app encrypt in its scope: %s", errOut)
	}
	if _, errOut, code := run(app, "encrypt", "-scope=o_2", plaintext); code != 1 || !strings.Contains(errOut, `not allowed in scope "o_2"`) {
		t.Errorf("app encrypt in another scope: exit %d, %q", code, errOut)
	}
	if _, errOut, code := run(app, "scopes", "create", "-id=o_3"); code != 1 || !strings.Contains(errOut, "role app may not scopes.create") {
		t.Errorf("app creating a scope: exit %d, %q", code, errOut)
	}

	// u_recovery may do anything but derive session keys.
	if _, errOut, code := b.cli(t, "", "derive-key", "-scope=o_1", "-user=u", "-session=s", "-token=", "-recovery-config="+recovery); code != 1 ||
		!strings.Contains(errOut, "role recovery may not data.derive-key") {
		t.Errorf("recovery derive-key: exit %d, %q", code, errOut)
	}

	// A worker derives in the scopes the config grants, and nowhere else.
	if out, errOut, code := b.cli(t, "", "derive-key", "-scope=o_1", "-user=u_1", "-session=s_1", "-token=",
		"-worker-auth-config="+worker, "-worker-name=build-7"); code != 0 || !strings.Contains(out, "key_version=1") {
		t.Errorf("worker derive-key in o_1: exit %d, out %q, err %q", code, out, errOut)
	}
	if _, errOut, code := b.cli(t, "", "derive-key", "-scope=o_2", "-user=u_1", "-session=s_1", "-token=",
		"-worker-auth-config="+worker, "-worker-name=build-7"); code != 1 || !strings.Contains(errOut, `w_build-7 is not allowed in scope "o_2"`) {
		t.Errorf("worker derive-key in o_2: exit %d, %q", code, errOut)
	}

	// Rotation, rewrap and destruction are audited.
	b.mustCLI(t, "", "scopes", "rotate-keys", "-id=o_1", "-rewrap")
	b.mustCLI(t, "", "scopes", "rewrap", "-all")
	var st struct {
		RootKeys struct {
			CurrentKeyID string         `json:"current_key_id"`
			KeyVersions  map[string]int `json:"key_versions"`
			OnOtherKeys  int            `json:"on_other_keys"`
		} `json:"root_keys"`
	}
	if err := json.Unmarshal([]byte(b.mustCLI(t, "", "status", "-format=json")), &st); err != nil {
		t.Fatal(err)
	}
	// Three scopes' KEKs: o_1 has two versions after its rotation.
	if st.RootKeys.CurrentKeyID != "root-1" || st.RootKeys.OnOtherKeys != 0 || st.RootKeys.KeyVersions["root-1"] != 3 {
		t.Errorf("status root_keys = %+v, want root-1 wrapping 3 KEK versions, 0 elsewhere", st.RootKeys)
	}
	var versions struct {
		Versions []struct {
			ID      string `json:"id"`
			Kind    string `json:"kind"`
			Version int    `json:"version"`
		} `json:"versions"`
	}
	if err := json.Unmarshal([]byte(b.mustCLI(t, "", "scopes", "key-versions", "-id=o_1", "-format=json")), &versions); err != nil {
		t.Fatal(err)
	}
	var kek1 string
	for _, v := range versions.Versions {
		if v.Kind == "root" && v.Version == 1 {
			kek1 = v.ID
		}
	}
	if kek1 == "" {
		t.Fatalf("no root key version 1 in %+v", versions)
	}
	b.mustCLI(t, "", "scopes", "destroy-key-version", "-id=o_1", "-version-id="+kek1)

	b.mustCLI(t, "", "tokens", "revoke", "-id="+created.Token.ID)
	if _, errOut, code := run(app, "encrypt", "-scope=o_1", plaintext); code != 1 || !strings.Contains(errOut, "was revoked") {
		t.Errorf("revoked app token: exit %d, %q", code, errOut)
	}

	events := readAudit(t, auditPath)
	// keyVersion is the audit line's key_version; 0 means the line has
	// none.
	want := []struct {
		op, result, principal string
		keyVersion            float64
	}{
		{"auth.recovery", "rejected", "u_anon", 0},
		{"auth.recovery", "ok", "u_recovery", 0},
		{"tokens.create", "ok", "u_recovery", 0},
		{"tokens.create", "ok", "", 0},
		{"auth.worker-auth", "ok", "w_build-7", 0},
		{"scopes.rotate-keys", "ok", "", 2},
		{"scopes.rewrap", "ok", "", 0},
		{"scopes.destroy-key-version", "ok", "", 1},
		{"tokens.revoke", "ok", "", 0},
	}
	for _, w := range want {
		found := false
		for _, e := range events {
			kv, _ := e["key_version"].(float64)
			if e["operation"] == w.op && e["result"] == w.result && (w.principal == "" || e["principal"] == w.principal) &&
				kv == w.keyVersion {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("audit log has no %s %s event (principal %q, key version %v)", w.op, w.result, w.principal, w.keyVersion)
		}
	}

	auditText, _ := os.ReadFile(auditPath)
	secrets := map[string][]byte{
		"admin token": []byte(admin), "app token": []byte(app), "plaintext": []byte(plaintext),
		"root key": rootRaw, "recovery key": recoveryRaw, "worker key": workerRaw,
	}
	for name, raw := range secrets {
		for form, s := range map[string]string{
			"raw": string(raw), "base64": base64.StdEncoding.EncodeToString(raw),
			"base64url": base64.RawURLEncoding.EncodeToString(raw), "hex": hex.EncodeToString(raw),
		} {
			for where, text := range map[string]string{"audit log": string(auditText), "broker log": b.logs.String()} {
				if strings.Contains(text, s) {
					t.Errorf("%s holds the %s in %s form", where, name, form)
				}
			}
		}
	}
}

func readAudit(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q is not JSON: %v", sc.Text(), err)
		}
		if _, ok := e["time"]; !ok {
			t.Errorf("audit line without time: %s", sc.Text())
		}
		events = append(events, e)
	}
	return events
}
