package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/kmsbroker/kmsbroker/plugins/plugintest"
	"github.com/kmsbroker/kmsbroker/plugins/sdk"
)

func randomKey(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		settings map[string]string
		problem  string // "" means valid
	}{
		{"valid", map[string]string{"key": randomKey(t, 32)}, ""},
		{"missing", map[string]string{"key_id": "k"}, "is required"},
		{"empty", map[string]string{"key": ""}, "is required"},
		{"not base64", map[string]string{"key": "%%%%"}, "is not valid base64"},
		{"unpadded", map[string]string{"key": strings.TrimRight(randomKey(t, 32), "=")}, "is not valid base64"},
		{"16 bytes", map[string]string{"key": randomKey(t, 16)}, "must decode to 32 bytes, got 16"},
		{"33 bytes", map[string]string{"key": randomKey(t, 33)}, "must decode to 32 bytes, got 33"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validate(tt.settings)
			if tt.problem == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			var se *sdk.SettingError
			if !errors.As(err, &se) || se.Setting != "key" || se.Problem != tt.problem {
				t.Fatalf("validate = %v; want setting key: %s", err, tt.problem)
			}
			if v := tt.settings["key"]; v != "" && strings.Contains(err.Error(), v) {
				t.Errorf("error %q quotes the key", err)
			}
		})
	}
}

// TestConformance runs the plugin conformance suite against the built
// program.
func TestConformance(t *testing.T) {
	exe, err := plugintest.Build(t.TempDir(), "aead", "./plugins/aead")
	if err != nil {
		t.Fatal(err)
	}
	plugintest.Run(t, plugintest.Config{
		Path:     exe,
		Settings: map[string]string{"key": randomKey(t, 32), "key_id": "conformance"},
		BadSettings: []plugintest.BadSettings{
			{Settings: map[string]string{"key": "not*base64!"}, Setting: `"key"`},
			{Settings: map[string]string{"key": randomKey(t, 16)}, Setting: `"key"`},
			{Settings: map[string]string{"key_id": "no-key"}, Setting: `"key"`},
		},
	})
}
