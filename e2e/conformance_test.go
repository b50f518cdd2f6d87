package e2e

import (
	"maps"
	"testing"

	"github.com/kmsbroker/kmsbroker/e2e/awskms"
	"github.com/kmsbroker/kmsbroker/e2e/binaries"
	"github.com/kmsbroker/kmsbroker/e2e/vault"
	"github.com/kmsbroker/kmsbroker/plugins/plugintest"
)

// TestAWSKMSPluginConformance runs the plugin conformance suite against
// the built awskms plugin and the AWS KMS API server the harness starts.
// The plugin's own conformance test skips when no server is installed
// yet, which is the case in the unit phase of `make test`; this one
// installs the emulator and so always runs.
func TestAWSKMSPluginConformance(t *testing.T) {
	t.Parallel()
	layout := binaries.Product(t)
	srv := awskms.Start(t)
	key := srv.CreateKey(t, "plugin conformance")

	valid := map[string]string{
		"kms_key_id":        key.ID,
		"region":            srv.Region,
		"endpoint":          srv.Endpoint,
		"access_key":        srv.AccessKey,
		"secret_key":        srv.SecretKey,
		"disallow_env_vars": "true",
	}
	plugintest.Run(t, plugintest.Config{
		Path:     layout.Plugins["awskms"],
		Settings: valid,
		BadSettings: []plugintest.BadSettings{
			{Settings: withSetting(valid, "kms_key_id", uniqueAlias(t, "no-such-key")), Setting: `"kms_key_id"`},
			{Settings: withSetting(valid, "disallow_env_vars", "perhaps"), Setting: `"disallow_env_vars"`},
		},
	})
}

// TestTransitPluginConformance runs the plugin conformance suite against
// the built transit plugin and a real Vault transit engine, with a token
// that may only encrypt and decrypt with its key. Without Vault it skips
// with the harness's one loud line.
func TestTransitPluginConformance(t *testing.T) {
	t.Parallel()
	v := vault.Start(t) // first: without Vault the test skips at once
	layout := binaries.Product(t)
	tr := v.EnableTransit(t)
	tr.CreateKey(t, "conformance")

	valid := map[string]string{
		"address":           v.Addr,
		"token":             tr.KeyToken(t, "conformance").Value(),
		"mount_path":        tr.Mount + "/",
		"key_name":          "conformance",
		"disable_renewal":   "true",
		"disallow_env_vars": "true",
	}
	plugintest.Run(t, plugintest.Config{
		Path:     layout.Plugins["transit"],
		Settings: valid,
		BadSettings: []plugintest.BadSettings{
			{Settings: withSetting(valid, "token", "s.e2e-not-a-real-token"), Setting: `"token"`},
			// Only a token that may read other paths learns that a mount
			// is missing (404); the key's own token gets 403 there.
			{Settings: withSetting(withSetting(valid, "token", v.Root().Value()), "mount_path", tr.Mount+"-missing/"),
				Setting: `"mount_path"`},
			{Settings: withSetting(valid, "disable_renewal", "perhaps"), Setting: `"disable_renewal"`},
		},
	})
}

// withSetting returns a copy of settings with name set to value.
func withSetting(settings map[string]string, name, value string) map[string]string {
	s := maps.Clone(settings)
	s[name] = value
	return s
}
