package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// render fills the @NAME@ holes of testdata/name with vars and writes the
// result into dir under the same base name.
func render(t *testing.T, dir, name string, vars map[string]string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for k, v := range vars {
		pairs = append(pairs, "@"+k+"@", v)
	}
	return writeFile(t, filepath.Join(dir, filepath.Base(name)), strings.NewReplacer(pairs...).Replace(string(src)))
}

// runCmd runs brokerd in-process with args and returns stdout, stderr and
// the exit code.
func runCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := &cmdEnv{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	code := run(env, args)
	return stdout.String(), stderr.String(), code
}

func TestConfigCommandErrors(t *testing.T) {
	dir := t.TempDir()
	key, _ := secretKey(t)
	configKey, _ := secretKey(t)
	otherKey, _ := secretKey(t)
	vars := map[string]string{"PLUGINS": binaries(t), "KEY": key, "CONFIG_KEY": configKey, "OTHER_KEY": otherKey}
	file := func(name string) string { return render(t, dir, "config/"+name, vars) }

	// A file encrypted with plain.hcl's own config block, for the
	// decrypt cases.
	encrypted, errOut, code := runCmd(t, "config", "encrypt", "-config="+file("plain.hcl"))
	if code != 0 {
		t.Fatalf("config encrypt: exit %d: %s", code, errOut)
	}
	encPath := writeFile(t, filepath.Join(dir, "encrypted.hcl"), encrypted)
	missing := filepath.Join(dir, "missing.hcl")
	badVars := maps.Clone(vars)
	badVars["KEY"] = "not base64 at all"
	badKey := render(t, t.TempDir(), "config/server.hcl", badVars)

	cases := []struct {
		name     string
		args     []string
		wantCode int
		want     []string // in stderr
		stdout   string   // in stdout
	}{
		{"encrypt without -config", []string{"config", "encrypt"}, 1, []string{"-config is required"}, ""},
		{"encrypt unknown flag", []string{"config", "encrypt", "-nope"}, 2, []string{"flag provided but not defined: -nope"}, ""},
		{"encrypt missing file", []string{"config", "encrypt", "-config=" + missing}, 1, []string{"missing.hcl", "no such file"}, ""},
		{"encrypt unterminated marker", []string{"config", "encrypt", "-config=" + file("unterminated.hcl")}, 1,
			[]string{"unterminated.hcl:2,10: malformed marker: unterminated encrypt marker"}, ""},
		{"encrypt without config block", []string{"config", "encrypt", "-config=" + file("no_config_block.hcl")}, 1,
			[]string{`no_config_block.hcl: no kms block serves purpose "config"`, "-config-kms"}, ""},
		{"encrypt cycle", []string{"config", "encrypt", "-config=" + file("cycle.hcl")}, 1,
			[]string{"cycle.hcl:10,14-", `the kms block serving purpose "config" cannot hold {{encrypt(...)}}: it would be needed to decrypt itself`}, ""},
		{"encrypt with missing -config-kms", []string{"config", "encrypt", "-config=" + file("plain.hcl"), "-config-kms=" + missing}, 1,
			[]string{"missing.hcl", "no such file"}, ""},
		{"decrypt malformed ciphertext", []string{"config", "decrypt", "-config=" + file("bad_ciphertext.hcl")}, 1,
			[]string{"bad_ciphertext.hcl:5,14: decrypt: not a config value ciphertext: not an encoded blob"}, ""},
		{"decrypt with another key", []string{"config", "decrypt", "-config=" + encPath, "-config-kms=" + file("other_config_kms.hcl")}, 1,
			[]string{"encrypted.hcl:5,14: decrypt: decrypt with config:", "decrypt failed"}, ""},
		{"decrypt -strip with another key", []string{"config", "decrypt", "-strip", "-config=" + encPath, "-config-kms=" + file("other_config_kms.hcl")}, 1,
			[]string{"encrypted.hcl:5,14: decrypt: decrypt with config:", "decrypt failed"}, ""},
		{"validate misspelt attribute", []string{"config", "validate", "-config=" + file("typo_attribute.hcl")}, 1,
			[]string{"typo_attribute.hcl:1,1-10:", `Did you mean "log_level"?`}, ""},
		{"validate misspelt plugin setting", []string{"config", "validate", "-check-plugins", "-config=" + file("typo_setting.hcl")}, 1,
			[]string{`kms block aead: start plugin block "aead"`, `typo_setting.hcl:11,3-9: unknown setting "key_di" for plugin "aead": did you mean "key_id"?`}, ""},
		{"validate a value the plugin refuses", []string{"config", "validate", "-check-plugins", "-config=" + badKey}, 1,
			[]string{`kms block aead: start plugin block "aead"`, `server.hcl:10,3-6: setting "key": is not valid base64`}, ""},
		{"validate leaves plugin settings to -check-plugins", []string{"config", "validate", "-config=" + file("typo_setting.hcl")}, 0,
			nil, "typo_setting.hcl: valid"},
		{"validate server without root", []string{"config", "validate", "-config=" + file("no_root.hcl")}, 1,
			[]string{`no kms block serves purpose "root", which brokerd server requires`}, ""},
		{"validate client file", []string{"config", "validate", "-server=false", "-config=" + file("recovery_only.hcl")}, 0,
			nil, "recovery_only.hcl: valid"},
		{"validate cycle without decrypt values", []string{"config", "validate", "-config=" + file("cycle.hcl")}, 1,
			[]string{"cycle.hcl:10,14-", "it would be needed to decrypt itself"}, ""},
		{"validate with plugins", []string{"config", "validate", "-check-plugins", "-config=" + file("server.hcl")}, 0,
			nil, "kms block aead (root): plugin aead 0.1.0 configured, key id \"root-1\", probe ok\n"},
		{"validate encrypted file", []string{"config", "validate", "-server=false", "-config=" + encPath}, 0, nil, "encrypted.hcl: valid"},
		{"server without config block", []string{"server", "-config=" + file("server_no_config_block.hcl")}, 1,
			[]string{`server_no_config_block.hcl: no kms block serves purpose "config"`}, ""},
		{"server with a bad log level", []string{"server", "-config=" + file("server.hcl"), "-log-level=loud"}, 1,
			[]string{`-log-level="loud": use one of trace, debug, info, warn, error`}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runCmd(t, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, stdout, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			if !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout %q lacks %q", stdout, tc.stdout)
			}
			if tc.wantCode != 0 && tc.stdout == "" && stdout != "" {
				t.Errorf("a failed command wrote to stdout: %q", stdout)
			}
			for _, secret := range []string{key, configKey, otherKey} {
				if strings.Contains(stderr, secret) || strings.Contains(stdout, secret) {
					t.Errorf("output holds a key")
				}
			}
			if strings.Contains(stderr, "panic") {
				t.Errorf("stderr holds a panic: %s", stderr)
			}
		})
	}
}

func TestConfigEncryptNothingToDo(t *testing.T) {
	key, _ := secretKey(t)
	path := render(t, t.TempDir(), "config/server.hcl", map[string]string{"PLUGINS": binaries(t), "KEY": key})
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runCmd(t, "config", "encrypt", "-config="+path)
	if code != 0 || stdout != string(want) || !strings.Contains(stderr, "has no {{encrypt(...)}} values") {
		t.Errorf("exit %d, stdout %q, stderr %q; want the file unchanged and a note", code, stdout, stderr)
	}
	stdout, stderr, code = runCmd(t, "config", "decrypt", "-overwrite", "-config="+path)
	if code != 0 || stdout != "" || !strings.Contains(stderr, "has no {{decrypt(...)}} values") {
		t.Errorf("decrypt -overwrite: exit %d, stdout %q, stderr %q; want nothing written and a note", code, stdout, stderr)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
		t.Errorf("decrypt -overwrite with nothing to do changed the file (%v)", err)
	}
}

func TestConfigOverwrite(t *testing.T) {
	dir := t.TempDir()
	key, _ := secretKey(t)
	configKey, _ := secretKey(t)
	path := render(t, dir, "config/plain.hcl", map[string]string{"PLUGINS": binaries(t), "KEY": key, "CONFIG_KEY": configKey})
	plain, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.hcl")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}

	check := func(step string, wantPlain bool) {
		t.Helper()
		fi, err := os.Lstat(link)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("%s: the symbolic link was replaced (%v)", step, err)
		}
		fi, err = os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %o, want 640", step, fi.Mode().Perm())
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case wantPlain && !bytes.Equal(got, plain):
			t.Errorf("%s: file differs from the original:\n%s", step, got)
		case !wantPlain && (bytes.Contains(got, []byte(key)) || !bytes.Contains(got, []byte("{{decrypt("))):
			t.Errorf("%s: the value is not encrypted:\n%s", step, got)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 2 {
			t.Errorf("%s: %d files in the directory, want 2 (no temporary file left)", step, len(entries))
		}
	}

	if stdout, stderr, code := runCmd(t, "config", "encrypt", "-overwrite", "-config="+link); code != 0 || stdout != "" {
		t.Fatalf("config encrypt -overwrite: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	check("encrypt", false)
	if stdout, stderr, code := runCmd(t, "config", "decrypt", "-overwrite", "-config="+link); code != 0 || stdout != "" {
		t.Fatalf("config decrypt -overwrite: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	check("decrypt", true)
}

// TestConfigRoundTripStartsBroker encrypts a config holding ten values
// with the real brokerd and aead plugin, decrypts it back byte for byte,
// and starts a broker from the encrypted file that uses every decrypted
// value.
func TestConfigRoundTripStartsBroker(t *testing.T) {
	b := newBroker(t)
	rootKey, _ := secretKey(t)
	workerKey, _ := secretKey(t)
	recoveryKey, _ := secretKey(t)
	configKey, _ := secretKey(t)
	_, port, _ := strings.Cut(b.addr, ":")
	db := filepath.Join(b.dataDir, "from-encrypted-config.db")
	plainPath := render(t, b.dataDir, "ten_values.hcl", map[string]string{"PORT": port, "DB": db,
		"ROOT_KEY": rootKey, "WORKER_KEY": workerKey, "RECOVERY_KEY": recoveryKey, "CONFIG_KEY": configKey})
	plain, err := os.ReadFile(plainPath)
	if err != nil {
		t.Fatal(err)
	}

	encrypted := b.mustCLI(t, "", "config", "encrypt", "-config="+plainPath)
	if n := strings.Count(encrypted, "{{decrypt("); n != 10 || strings.Contains(encrypted, "{{encrypt(") {
		t.Fatalf("encrypted file has %d decrypt markers, want 10 and no encrypt marker:\n%s", n, encrypted)
	}
	for _, secret := range []string{rootKey, workerKey, recoveryKey, `root \"primary\" {v1}`, "rec {x)}", db} {
		if strings.Contains(encrypted, secret) {
			t.Errorf("encrypted file holds %q", secret)
		}
	}
	encPath := writeFile(t, filepath.Join(b.dataDir, "encrypted.hcl"), encrypted)
	if back := b.mustCLI(t, "", "config", "decrypt", "-config="+encPath); back != string(plain) {
		t.Fatalf("config decrypt differs from the original:\ngot:\n%s\nwant:\n%s", back, plain)
	}

	b.start(t, "server", "-config="+encPath)
	b.waitReady(t, "broker started") // on the decrypted address
	if _, err := os.Stat(db); err != nil {
		t.Errorf("no database at the decrypted storage path: %v", err)
	}
	if !strings.Contains(b.logs.String(), "[DEBUG]") {
		t.Errorf("the decrypted log_level debug is not in effect")
	}

	// A recovery token made with the plaintext key works only if the
	// broker decrypted its recovery key.
	recovery := writeFile(t, filepath.Join(b.dataDir, "recovery.hcl"),
		"kms \"aead\" {\n  purpose = [\"recovery\"]\n  key = \""+recoveryKey+"\"\n}\n")
	b.token = lastLine(b.mustCLI(t, "", "tokens", "create", "-name=admin", "-role=admin", "-recovery-config="+recovery))
	b.mustCLI(t, "", "scopes", "create", "-id=o_enc")

	var st struct {
		Purposes []struct {
			Purpose string `json:"purpose"`
			KeyID   string `json:"key_id"`
			State   string `json:"state"`
		} `json:"purposes"`
	}
	if err := json.Unmarshal([]byte(b.mustCLI(t, "", "status", "-format=json")), &st); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"root": `root "primary" {v1}`, "worker-auth": "workers (a", "recovery": "rec {x)}", "config": "config-1"}
	for _, p := range st.Purposes {
		if p.KeyID != want[p.Purpose] || p.State != "ready" {
			t.Errorf("%s: key id %q state %s, want %q ready", p.Purpose, p.KeyID, p.State, want[p.Purpose])
		}
		delete(want, p.Purpose)
	}
	if len(want) != 0 {
		t.Errorf("status lacks purposes %v", want)
	}

	logs := b.logs.String()
	for name, s := range map[string]string{"root key": rootKey, "worker key": workerKey, "recovery key": recoveryKey, "config key": configKey} {
		if strings.Contains(logs, s) {
			t.Errorf("broker log holds the %s", name)
		}
	}
}
