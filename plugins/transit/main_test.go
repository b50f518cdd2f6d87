package main

import (
	"maps"
	"testing"

	"github.com/kmsbroker/kmsbroker/plugins/plugintest"
)

// TestConformance runs the plugin conformance suite against the built
// program and a real transit engine.
func TestConformance(t *testing.T) {
	tr := plugintest.NewTransit(t)
	exe, err := plugintest.Build(t.TempDir(), "transit", "./plugins/transit")
	if err != nil {
		t.Fatal(err)
	}
	valid := map[string]string{
		"address": tr.Address, "token": tr.Token, "mount_path": tr.Mount,
		"key_name": tr.Key, "disable_renewal": "true", "disallow_env_vars": "true",
	}
	with := func(name, value string) map[string]string {
		s := maps.Clone(valid)
		s[name] = value
		return s
	}
	plugintest.Run(t, plugintest.Config{
		Path:     exe,
		Settings: valid,
		BadSettings: []plugintest.BadSettings{
			{Settings: with("token", "not-a-real-token-0123"), Setting: `"token"`},
			{Settings: with("mount_path", "no-such-mount-0123/"), Setting: `"mount_path"`},
			{Settings: with("disable_renewal", "perhaps"), Setting: `"disable_renewal"`},
		},
	})
}
