package config

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kmsbroker/kmsbroker/broker/config/markers"
	"github.com/kmsbroker/kmsbroker/broker/purpose"
)

func TestConfigBlock(t *testing.T) {
	t.Setenv("KMSBROKER_TEST_CONFIG_KEY_ID", "cfg-from-env")
	tests := []struct {
		file      string
		wantName  string
		wantID    string
		wantErr   string
		wantCycle bool
	}{
		{file: "clean.hcl", wantName: "aead", wantID: "config-1"},
		{file: "second_of_type.hcl", wantName: "aead#2", wantID: "cfg-from-env"},
		{file: "none.hcl"},
		{file: "cycle.hcl", wantCycle: true, wantErr: `invalid config: ` +
			`broker.hcl:8,14-39: the kms block serving purpose "config" cannot hold {{decrypt(...)}}: it would be needed to decrypt itself; ` +
			`broker.hcl:9,5-30: the kms block serving purpose "config" cannot hold {{encrypt(...)}}: it would be needed to decrypt itself`},
		{file: "cycle_malformed.hcl", wantErr: `invalid config: ` +
			`broker.hcl:3,14-14: malformed marker: unterminated decrypt marker: no ")}}" on its line`},
		{file: "two_config.hcl", wantErr: `invalid config: ` +
			`broker.hcl:5,1-14: purpose "config" is already served by kms "aead" at broker.hcl:1,1-11; each purpose is served by exactly one block`},
		{file: "bad_config_block.hcl", wantErr: `invalid config: ` +
			`broker.hcl:3,13-19: timeout is not a duration such as "5s" or "1m30s"`},
		{file: "syntax.hcl", wantErr: `invalid config: broker.hcl:3,32-33: missing key/value separator`},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".hcl"), func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("testdata", "configblock", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			k, err := ConfigBlock(src, "broker.hcl")
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got error\n  %v\nwant\n  %s", err, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("errors.Is(err, ErrInvalid) = false")
				}
				if errors.Is(err, ErrCycle) != tt.wantCycle {
					t.Errorf("errors.Is(err, ErrCycle) = %v, want %v", !tt.wantCycle, tt.wantCycle)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantName == "" {
				if k != nil {
					t.Fatalf("got block %s, want none", k.Name)
				}
				return
			}
			if k == nil {
				t.Fatal("got no block")
			}
			if k.Name != tt.wantName || k.Settings["key_id"] != tt.wantID || !slices.Contains(k.Purposes, purpose.Config) {
				t.Errorf("got block %s (key_id %q, purposes %v), want %s (key_id %q) serving config",
					k.Name, k.Settings["key_id"], k.Purposes, tt.wantName, tt.wantID)
			}
		})
	}
}

// TestEncryptedConfigParses encrypts every marker of a config, strips the
// markers again as brokerd does at start, and checks that Parse then sees
// the original values. The KMS is a fake (base64), since the config
// package starts no plugins.
func TestEncryptedConfigParses(t *testing.T) {
	ctx := context.Background()
	fakeEncrypt := func(_ context.Context, pt []byte) (string, error) {
		return base64.StdEncoding.EncodeToString(pt), nil
	}
	fakeDecrypt := func(_ context.Context, ct string) ([]byte, error) {
		return base64.StdEncoding.DecodeString(ct)
	}
	src := []byte(`kms "aead" {
  purpose = ["config"]
  key_id  = "cfg"
}
kms "transit" {
  purpose = ["root"]
  token   = "{{encrypt(hvs.s3cr3t)}}"
  address = "https://{{encrypt(vault)}}:{{encrypt(8200)}}"
  key_name = "{{encrypt(say \"k(e)y}\")}}"
}
`)
	enc, err := markers.Encrypt(ctx, src, "broker.hcl", fakeEncrypt)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(enc), "s3cr3t") {
		t.Fatal("encrypted config still holds the token")
	}
	k, err := ConfigBlock(enc, "broker.hcl")
	if err != nil || k == nil || k.Name != "aead" {
		t.Fatalf("ConfigBlock: got %v, %v; want the aead block", k, err)
	}
	plain, err := markers.Strip(ctx, enc, "broker.hcl", fakeDecrypt)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(plain, "broker.hcl")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"token": "hvs.s3cr3t", "address": "https://vault:8200", "key_name": `say "k(e)y}"`}
	got := c.Block(purpose.Root).Settings
	for name, v := range want {
		if got[name] != v {
			t.Errorf("setting %s: got %q, want %q", name, got[name], v)
		}
	}
}
