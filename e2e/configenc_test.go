package e2e

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/kmsbroker/kmsbroker/e2e/awskms"
	"github.com/kmsbroker/kmsbroker/e2e/binaries"
)

// TestConfigEncryptWithAWSKMS protects the secrets of a broker config
// with the config purpose on AWS KMS: `brokerd config encrypt` replaces
// each {{encrypt(...)}} value, the broker starts from the encrypted file
// and uses the real values, `config decrypt` gives the file back byte for
// byte, and once the config key is disabled in KMS the file no longer
// starts a broker.
func TestConfigEncryptWithAWSKMS(t *testing.T) {
	t.Parallel()
	layout := binaries.Product(t)
	srv := awskms.Start(t)
	rootKey := srv.CreateKey(t, "broker root")
	configKey := srv.CreateKey(t, "broker config")

	// The values to protect: the root block's AWS secret key and the
	// recovery key. The config block lives in a file of its own, as it
	// must hold its own credentials in clear text.
	root := awsBlock(srv, rootKey.ID, "root")
	recovery := aeadBlock(t, "recovery-1", "recovery")
	secrets := map[string]string{
		"AWS secret key": root.Settings["secret_key"],
		"recovery key":   recovery.Settings["key"],
	}
	marked := func(blk kmsBlock, setting string) kmsBlock {
		out := blk
		out.Settings = map[string]string{}
		for k, v := range blk.Settings {
			out.Settings[k] = v
		}
		out.Settings[setting] = "{{encrypt(" + blk.Settings[setting] + ")}}"
		return out
	}

	b := newBroker(t, layout, marked(root, "secret_key"), marked(recovery, "key"))
	recoveryPath := writeFile(t, b.dir, "recovery.hcl", recovery.hcl(t))
	kmsPath := writeFile(t, t.TempDir(), "config-kms.hcl", awsBlock(srv, configKey.ID, "config").hcl(t))
	b.flags = []string{"-config-kms=" + kmsPath}
	plain, err := os.ReadFile(b.cfgPath)
	if err != nil {
		t.Fatal(err)
	}

	r := runBrokerd(t, layout, nil, "config", "encrypt", "-config="+b.cfgPath, "-config-kms="+kmsPath, "-overwrite")
	if r.code != 0 {
		t.Fatalf("config encrypt: want success, got\n%s", r)
	}
	encrypted, err := os.ReadFile(b.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for what, s := range secrets {
		if strings.Contains(string(encrypted), s) {
			t.Errorf("encrypted config still holds the %s", what)
		}
	}
	decrypts := strings.Count(string(encrypted), "{{decrypt(")
	encrypts := strings.Count(string(encrypted), "{{encrypt(")
	if decrypts != 2 || encrypts != 0 {
		t.Errorf("encrypted config: got %d {{decrypt(...)}} and %d {{encrypt(...)}} values, want 2 and 0:\n%s",
			decrypts, encrypts, encrypted)
	}

	r = runBrokerd(t, layout, nil, "config", "decrypt", "-config="+b.cfgPath, "-config-kms="+kmsPath)
	if r.code != 0 || r.stdout != string(plain) {
		t.Errorf("config decrypt: got exit %d and\n%s\nwant exit 0 and the file as written:\n%s",
			r.code, r.stdout, plain)
	}

	// The broker decrypts the values in memory: the recovery key it uses
	// is the one the client's recovery.hcl holds in clear text.
	b.start()
	if code, ready := b.mustHealth(); code != 200 || !ready {
		t.Fatalf("health of a broker started from the encrypted config: got %d ready=%t, want 200 ready=true",
			code, ready)
	}
	admin := tokenCred(b.bootstrapAdmin(recoveryPath))
	b.createScope(admin, "o_cfg")
	b.decrypt(admin, b.encrypt(admin, "o_cfg", "row-1"))
	logText := b.log()
	for what, s := range secrets {
		if strings.Contains(logText, s) {
			t.Errorf("brokerd log holds the %s", what)
		}
	}
	b.stop()

	// Without the config key the values cannot be read: brokerd refuses
	// to start and names the line of the value it could not decrypt.
	disableKey(t, srv, configKey)
	r = runBrokerd(t, layout, nil, "server", "-config="+b.cfgPath, "-config-kms="+kmsPath)
	if r.code != 1 {
		t.Fatalf("brokerd server with the config key disabled: want exit 1, got\n%s", r)
	}
	t.Logf("brokerd server with the config key disabled says: %s", r.stderr)
	line := regexp.MustCompile(`broker\.hcl:\d+`)
	if !line.MatchString(r.stderr) {
		t.Errorf("brokerd server with the config key disabled: got %q, want the file and line of the value", r.stderr)
	}
	if !strings.Contains(r.stderr, "KMS refused the request") {
		t.Errorf("brokerd server with the config key disabled: got %q, want it to say KMS refused the disabled key", r.stderr)
	}
}
