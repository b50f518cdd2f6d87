package pluginhost

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/kmsbroker/kmsbroker/plugins/sdk"
)

// baseEnv is what every plugin gets from the host's environment: enough
// to find programs, a home for SDK config files, and a temporary
// directory. Nothing else leaks through, so the broker's own BROKER_*
// secrets never reach a plugin.
var baseEnv = []string{"PATH", "HOME", "TMPDIR"}

// backendEnv lists, per plugin type, the variables its backend documents,
// as exact names or prefixes ending in '_'. They pass through unless the
// block sets disallow_env_vars = true.
var backendEnv = map[string][]string{
	"awskms": {
		"AWS_", "AWSKMS_WRAPPER_",
		"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
		"SSL_CERT_FILE", "SSL_CERT_DIR",
	},
	"transit": {
		"VAULT_", "TRANSIT_WRAPPER_",
		"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
		"SSL_CERT_FILE", "SSL_CERT_DIR",
	},
}

// disallowEnvSetting is the block setting that withholds backendEnv.
const disallowEnvSetting = "disallow_env_vars"

// childEnv builds a plugin's environment from the host's (environ, in
// os.Environ form). go-plugin appends its own handshake variables.
func childEnv(typ string, settings map[string]string, environ []string, level hclog.Level) ([]string, error) {
	allow := append([]string(nil), baseEnv...)
	if v, ok := settings[disallowEnvSetting]; ok {
		disallow, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("%w: setting %q must be true or false", ErrInvalidConfig, disallowEnvSetting)
		}
		if !disallow {
			allow = append(allow, backendEnv[typ]...)
		}
	} else {
		allow = append(allow, backendEnv[typ]...)
	}

	var env []string
	for _, kv := range environ {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || strings.HasPrefix(name, "BROKER_") || !allowed(name, allow) {
			continue
		}
		env = append(env, kv)
	}
	if level != hclog.NoLevel && level != hclog.Off {
		env = append(env, sdk.LogLevelEnv+"="+level.String())
	}
	return env, nil
}

func allowed(name string, allow []string) bool {
	for _, a := range allow {
		if name == a || (strings.HasSuffix(a, "_") && strings.HasPrefix(name, a)) {
			return true
		}
	}
	return false
}
