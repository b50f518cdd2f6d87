package hygiene

import (
	"strings"
	"testing"

	"github.com/kmsbroker/kmsbroker/e2e/binaries"
	"github.com/kmsbroker/kmsbroker/e2e/brokerd"
)

// TestScanFindsWhatAPluginLogs is the negative control of the hygiene
// scan with a real leak, not a planted line: brokerd serves its config
// purpose with leakyplugin, a test-only plugin that logs every plaintext
// it decrypts, and its config holds the recovery key as an encrypted
// value. At start brokerd decrypts it through that plugin, whose log line
// brokerd writes to its own log. The scan of that log must report the
// recovery key, in base64 (the form the config holds it in), and no other
// secret: the plugin also logs its own key setting, which brokerd
// scrubs.
func TestScanFindsWhatAPluginLogs(t *testing.T) {
	layout := binaries.Product(t)
	leaky := binaries.Program(t, "./e2e/hygiene/testdata/leakyplugin", "kmsbroker-plugin-leaky")

	root, rootKey := brokerd.AEAD(t, "root-1", "root")
	recovery, recoveryKey := brokerd.AEAD(t, "recovery-1", "recovery")
	configBlk, configKey := brokerd.AEAD(t, "config-1", "config")
	configBlk.Type = "leaky"
	configBlk.Settings["plugin_path"] = leaky
	marked := brokerd.Block{Type: recovery.Type, Purposes: recovery.Purposes, Settings: map[string]string{
		"key":    "{{encrypt(" + recovery.Settings["key"] + ")}}",
		"key_id": recovery.Settings["key_id"],
	}}

	s := &scenario{t: t, seen: evidence{}}
	s.b = brokerd.New(t, layout, brokerd.Config{LogLevel: "debug"})
	s.b.Flags = []string{"-log-level=debug"}
	s.startEncrypted(root, marked, configBlk)
	// The broker has the recovery key it decrypted: a recovery token
	// made with the plain key is accepted.
	admin := s.b.Bootstrap(s.b.WriteRecoveryFile(recovery))
	s.b.Stop()

	logs := s.b.Logs()
	for _, want := range []string{"leaky plugin: decrypted", "leaky plugin: configured"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("brokerd's log has no %q; the plugin did not log as meant:\n%s", want, logs)
		}
	}
	secrets := []secret{
		{"root key", rootKey},
		{"recovery key", recoveryKey},
		{"config key", configKey},
		{"admin token", []byte(admin)},
	}
	got := mustFind(t, secrets, evidence{"broker log": logs})
	// A random key's base64 often reads the same in base64url, so that
	// form may be reported too.
	inBase64 := false
	for _, l := range got {
		if l.secret != "recovery key" || l.source != "broker log" {
			t.Errorf("scan of the log of a broker whose plugin logs the recovery key: reports %s, want only the recovery key", l)
		}
		inBase64 = inBase64 || (l.secret == "recovery key" && l.form == "base64")
	}
	if !inBase64 {
		t.Fatalf("scan of the log of a broker whose plugin logs the recovery key: got %v, "+
			"want the recovery key in base64 form in the broker log", got)
	}
	if !strings.Contains(logs, "<value of key>") {
		t.Errorf("brokerd's log has no %q: it did not scrub the key setting the plugin logged", "<value of key>")
	}
	t.Logf("the scan reports: %v", got)
}
