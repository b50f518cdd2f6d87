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
// secret.
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
	if !strings.Contains(logs, "leaky plugin: decrypted") {
		t.Fatalf("brokerd's log has no line of the leaking plugin; the leak did not happen:\n%s", logs)
	}
	secrets := []secret{
		{"root key", rootKey},
		{"recovery key", recoveryKey},
		{"config key", configKey},
		{"admin token", []byte(admin)},
	}
	got := mustFind(t, secrets, evidence{"broker log": logs})
	if len(got) != 1 || got[0].secret != "recovery key" || got[0].form != "base64" || got[0].source != "broker log" {
		t.Fatalf("scan of the log of a broker whose plugin logs the recovery key: got %v, "+
			"want the recovery key in base64 form in the broker log, and nothing else", got)
	}
	t.Logf("the scan reports: %s", got[0])
}
