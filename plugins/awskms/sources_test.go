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
			conf: map[string]string{"region": "eu-west-3", "endpoint": "https://kms.example:4566"},
			want: map[string]string{"region_source": "config", "endpoint_source": "config"},
		},
		{
			name: "configured values win over the environment",
			conf: map[string]string{"region": "eu-west-3", "endpoint": "https://kms.example:4566"},
			env:  map[string]string{"AWS_REGION": "us-west-2", "AWS_KMS_ENDPOINT": "https://other:4566"},
			want: map[string]string{"region_source": "config", "endpoint_source": "config"},
		},
		{
			name: "environment fills the gaps",
			conf: map[string]string{"kms_key_id": "alias/k"},
			env:  map[string]string{"AWS_REGION": "us-west-2", "AWS_KMS_ENDPOINT": "https://other:4566"},
			want: map[string]string{"region_source": "env", "endpoint_source": "env"},
		},
		{
			name: "AWS_DEFAULT_REGION counts as the environment",
			env:  map[string]string{"AWS_DEFAULT_REGION": "ap-south-1"},
			want: map[string]string{"region_source": "env", "endpoint_source": "default"},
		},
		{
			name: "nothing set anywhere",
			conf: map[string]string{"kms_key_id": "alias/k"},
			want: map[string]string{"region_source": "default", "endpoint_source": "default"},
		},
		{
			name: "disallow_env_vars ignores AWS_KMS_ENDPOINT but not the region",
			conf: map[string]string{"disallow_env_vars": "true"},
			env:  map[string]string{"AWS_REGION": "us-west-2", "AWS_KMS_ENDPOINT": "https://other:4566"},
			want: map[string]string{"region_source": "env", "endpoint_source": "default"},
		},
		{
			name: "disallow_env_vars is parsed as the wrapper parses it",
			conf: map[string]string{"disallow_env_vars": "1"},
			env:  map[string]string{"AWS_KMS_ENDPOINT": "https://other:4566"},
			want: map[string]string{"region_source": "default", "endpoint_source": "default"},
		},
		{
			name: "disallow_env_vars false reads the endpoint variable",
			conf: map[string]string{"disallow_env_vars": "false"},
			env:  map[string]string{"AWS_KMS_ENDPOINT": "https://other:4566"},
			want: map[string]string{"region_source": "default", "endpoint_source": "env"},
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
