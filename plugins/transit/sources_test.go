package main

import (
	"maps"
	"testing"
)

func TestSettingSources(t *testing.T) {
	cases := []struct {
		name string
		conf map[string]string
		env  map[string]string
		want map[string]string
	}{
		{
			name: "all from config",
			conf: map[string]string{"address": "https://v:8200", "mount_path": "transit/", "key_name": "k", "namespace": "ns"},
			want: map[string]string{"address_source": "config", "mount_path_source": "config", "key_name_source": "config", "namespace_source": "config"},
		},
		{
			name: "environment fills the gaps and overrides the mount path and key name",
			conf: map[string]string{"mount_path": "transit/", "key_name": "k"},
			env:  map[string]string{"VAULT_ADDR": "https://v:8200", "TRANSIT_WRAPPER_MOUNT_PATH": "other/", "VAULT_TRANSIT_SEAL_KEY_NAME": "k2", "VAULT_NAMESPACE": "ns"},
			want: map[string]string{"address_source": "env", "mount_path_source": "env", "key_name_source": "env", "namespace_source": "env"},
		},
		{
			name: "configured address wins over VAULT_ADDR",
			conf: map[string]string{"address": "https://v:8200", "mount_path": "transit/", "key_name": "k"},
			env:  map[string]string{"VAULT_ADDR": "https://other:8200"},
			want: map[string]string{"address_source": "config", "mount_path_source": "config", "key_name_source": "config", "namespace_source": "default"},
		},
		{
			name: "disallow_env_vars ignores the wrapper variables",
			conf: map[string]string{"mount_path": "transit/", "key_name": "k", "disallow_env_vars": "true"},
			env:  map[string]string{"TRANSIT_WRAPPER_MOUNT_PATH": "other/", "TRANSIT_WRAPPER_KEY_NAME": "k2", "VAULT_NAMESPACE": "ns"},
			want: map[string]string{"address_source": "default", "mount_path_source": "config", "key_name_source": "config", "namespace_source": "default"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := settingSources(tc.conf, func(name string) string { return tc.env[name] })
			if !maps.Equal(got, tc.want) {
				t.Errorf("settingSources = %v, want %v", got, tc.want)
			}
		})
	}
}
