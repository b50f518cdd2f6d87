package pluginhost

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestChildEnv(t *testing.T) {
	environ := []string{
		"PATH=/bin", "HOME=/root", "TMPDIR=/tmp", "SHELL=/bin/sh",
		"BROKER_TOKEN=admin-secret", "AWS_REGION=eu-west-1", "AWSKMS_WRAPPER_KEY_ID=k",
		"VAULT_ADDR=http://v", "VAULT_TOKEN=root", "GOFLAGS=-x",
	}
	tests := []struct {
		typ      string
		settings map[string]string
		want     []string
	}{
		{"aead", nil, []string{"HOME", "PATH", "TMPDIR"}},
		{"awskms", nil, []string{"AWSKMS_WRAPPER_KEY_ID", "AWS_REGION", "HOME", "PATH", "TMPDIR"}},
		{"awskms", map[string]string{"disallow_env_vars": "true"}, []string{"HOME", "PATH", "TMPDIR"}},
		{"transit", map[string]string{"disallow_env_vars": "false"}, []string{"HOME", "PATH", "TMPDIR", "VAULT_ADDR", "VAULT_TOKEN"}},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			env, err := childEnv(tt.typ, tt.settings, environ, hclog.NoLevel)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, kv := range env {
				name, _, _ := strings.Cut(kv, "=")
				got = append(got, name)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("childEnv names = %v; want %v", got, tt.want)
			}
		})
	}
	if _, err := childEnv("awskms", map[string]string{"disallow_env_vars": "sometimes"}, environ, hclog.NoLevel); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("childEnv with bad disallow_env_vars: %v; want ErrInvalidConfig", err)
	}
}

// TestPluginEnvironment starts a real process that reports its
// environment, typed awskms so that AWS_* would pass.
func TestPluginEnvironment(t *testing.T) {
	t.Setenv("BROKER_TOKEN", "admin-secret")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("VAULT_TOKEN", "root")
	p := startPlugin(t, Config{
		Name: "env", Type: "awskms", Path: filepath.Join(testBin, ExecutablePrefix+"envcheck"),
		Logger: testLogger(t),
	})
	names := strings.Split(p.Info().Metadata["env"], ",")
	for _, want := range []string{"PATH", "AWS_REGION", "KMSBROKER_PLUGIN"} {
		if !slices.Contains(names, want) {
			t.Errorf("plugin environment %v lacks %s", names, want)
		}
	}
	for _, banned := range []string{"BROKER_TOKEN", "VAULT_TOKEN", "GOFLAGS"} {
		if slices.Contains(names, banned) {
			t.Errorf("plugin environment contains %s", banned)
		}
	}
}
