package pluginhost

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/kmsbroker/kmsbroker/plugins/plugintest"
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

// TestPluginEnvironment starts a real process per case, under the plugin
// type whose backend variables the host would pass, and reads the
// environment it was started with from /proc.
func TestPluginEnvironment(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "plugin_env.json"))
	if err != nil {
		t.Fatal(err)
	}
	var data struct {
		Environ map[string]string
		Cases   []struct {
			Name, Type      string
			Settings        map[string]string
			Present, Absent []string
		}
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	for name, value := range data.Environ {
		t.Setenv(name, value)
	}
	for _, tt := range data.Cases {
		t.Run(tt.Name, func(t *testing.T) {
			settings := map[string]string{"key": testKey}
			maps.Copy(settings, tt.Settings)
			p := startPlugin(t, Config{
				Name: "env", Type: tt.Type, Path: filepath.Join(testBin, ExecutablePrefix+"envcheck"),
				Settings: settings, Logger: testLogger(t),
			})
			env := processEnv(t, p.Info().Pid)
			for _, want := range tt.Present {
				if _, ok := env[want]; !ok {
					t.Errorf("plugin environment %v lacks %s", slices.Sorted(maps.Keys(env)), want)
				}
			}
			for _, banned := range tt.Absent {
				if _, ok := env[banned]; ok {
					t.Errorf("plugin environment contains %s", banned)
				}
			}
		})
	}
}

// TestTransitWithoutEnvironment: the real transit plugin, with
// disallow_env_vars = true, is started without the VAULT_* variables that
// would otherwise override its settings, and works from its settings.
func TestTransitWithoutEnvironment(t *testing.T) {
	tr := plugintest.NewTransit(t)
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	t.Setenv("VAULT_TOKEN", "not-the-token")
	p := startPlugin(t, Config{
		Name: "transit", Type: "transit", Directory: testBin, Logger: testLogger(t),
		Settings: map[string]string{
			"address": tr.Address, "token": tr.Token, "mount_path": tr.Mount,
			"key_name": tr.Key, "disable_renewal": "true", "disallow_env_vars": "true",
		},
	})
	for name := range processEnv(t, p.Info().Pid) {
		if strings.HasPrefix(name, "VAULT_") {
			t.Errorf("transit plugin was started with %s", name)
		}
	}
	if _, err := p.Encrypt(context.Background(), []byte("x"), nil); err != nil {
		t.Errorf("Encrypt: %v", err)
	}
}

// processEnv reads the environment pid was started with.
func processEnv(t *testing.T, pid int) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("/proc", itoa(pid), "environ"))
	if err != nil {
		t.Fatal(err)
	}
	env := make(map[string]string)
	for _, kv := range strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00") {
		name, value, _ := strings.Cut(kv, "=")
		env[name] = value
	}
	return env
}
