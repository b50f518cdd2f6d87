package pluginhost

import (
	"context"
	"errors"
	"testing"

	"github.com/kmsbroker/kmsbroker/plugins/plugintest"
)

// TestTransitAADBoundByHost runs the real transit plugin against a real
// transit engine. Transit ignores AAD, so the host must bind it: a blob
// made for one scope must not decrypt for another.
func TestTransitAADBoundByHost(t *testing.T) {
	tr := plugintest.NewTransit(t)
	p := startPlugin(t, Config{
		Name: "transit", Type: "transit", Directory: testBin, Logger: testLogger(t),
		Settings: map[string]string{
			"address": tr.Address, "token": tr.Token, "mount_path": tr.Mount,
			"key_name": tr.Key, "disable_renewal": "true", "disallow_env_vars": "true",
		},
	})
	if p.Info().AAD {
		t.Fatal("transit plugin claims to bind AAD")
	}
	ctx := context.Background()
	blob, err := p.Encrypt(ctx, []byte("kek bytes"), []byte("o_1"))
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	if bound, _ := hostBound(blob); !bound {
		t.Fatal("transit blob does not record the host's AAD binding")
	}
	got, err := p.Decrypt(ctx, blob, []byte("o_1"))
	if err != nil || string(got) != "kek bytes" {
		t.Fatalf("Decrypt = %q, %v; want the plaintext", got, err)
	}
	for _, other := range [][]byte{[]byte("o_2"), nil} {
		if got, err := p.Decrypt(ctx, blob, other); !errors.Is(err, ErrDecrypt) {
			t.Errorf("Decrypt with aad %q = %q, %v; want ErrDecrypt", other, got, err)
		}
	}
	if p.Info().KeyID == "" {
		t.Error("Info().KeyID is empty; want the transit key version")
	}
}
