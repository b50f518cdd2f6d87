package noop

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/kmsbroker/kmsbroker/proto/plugin/v1"
)

// buildPlugin builds the real no-op plugin program.
func buildPlugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "noopplugin")
	cmd := exec.Command("go", "build", "-o", bin, "../../noopplugin")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build no-op plugin: %v\n%s", err, out)
	}
	return bin
}

func TestRoundTrip(t *testing.T) {
	c, err := Start(buildPlugin(t))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(c.Kill)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	resp, err := c.RPC.Encrypt(ctx, &pluginv1.EncryptRequest{Plaintext: make([]byte, 32)})
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	if len(resp.GetBlobInfo()) != 0 {
		t.Errorf("Encrypt returned %d bytes, want the empty answer of a no-op", len(resp.GetBlobInfo()))
	}
	h, err := c.RPC.Health(ctx, &pluginv1.HealthRequest{})
	if err != nil || !h.GetConfigured() {
		t.Errorf("Health = %v, %v; want configured", h, err)
	}
	_, err = c.RPC.Configure(ctx, &pluginv1.ConfigureRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("Configure error = %v, want Unimplemented", err)
	}
}

func TestStartRefusesOtherPrograms(t *testing.T) {
	if _, err := Start("/bin/true"); err == nil {
		t.Fatal("Start of a program that is not a plugin succeeded")
	}
}
