package plugintest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// vaultStartTimeout bounds a dev server's start: seconds normally, more
// on a loaded CI machine.
const vaultStartTimeout = 30 * time.Second

// Transit is a transit secrets engine a test may use.
type Transit struct {
	Address string
	Token   string
	// Mount is a transit mount of the test's own, with a trailing slash.
	Mount string
	// Key names a fresh aes256-gcm96 key in Mount.
	Key string
}

// NewTransit returns a transit engine on a real Vault or OpenBao server:
// the one at VAULT_ADDR with VAULT_TOKEN when both are set, otherwise a dev
// server started from `bao` or `vault` on PATH for the test's duration.
// It mounts a fresh engine (removed at the end of the test) and creates a
// key. Without a server it skips the test with a line that says what to
// install.
func NewTransit(t *testing.T) Transit {
	t.Helper()
	addr, token := os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN")
	if addr == "" || token == "" {
		addr, token = devVault(t)
	}
	client := vaultClient(t, addr, token)
	mount := "plugintest-" + randomHex(t, 4)
	if err := client.Sys().MountWithContext(context.Background(), mount, &api.MountInput{Type: "transit"}); err != nil {
		t.Fatalf("enable transit at %s: %v", mount, err)
	}
	t.Cleanup(func() { _ = client.Sys().Unmount(mount) })
	if _, err := client.Logical().Write(mount+"/keys/plugintest", nil); err != nil {
		t.Fatalf("create transit key: %v", err)
	}
	return Transit{Address: addr, Token: token, Mount: mount + "/", Key: "plugintest"}
}

// devVault starts `bao server -dev` or `vault server -dev` on a free
// loopback port and waits until it is unsealed.
func devVault(t *testing.T) (addr, token string) {
	t.Helper()
	var bin string
	for _, name := range []string{"bao", "vault"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("SKIP transit against a real server: set VAULT_ADDR and VAULT_TOKEN, or put `bao` (OpenBao) or `vault` on PATH")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hostport := l.Addr().String()
	l.Close()
	token = randomHex(t, 16)
	cmd := exec.Command(bin, "server", "-dev", "-dev-root-token-id="+token, "-dev-listen-address="+hostport)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s dev server: %v", bin, err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	addr = "http://" + hostport
	client := vaultClient(t, addr, token)
	deadline := time.Now().Add(vaultStartTimeout)
	for {
		if h, err := client.Sys().Health(); err == nil && h.Initialized && !h.Sealed {
			return addr, token
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s dev server at %s not ready after %s", bin, addr, vaultStartTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func vaultClient(t *testing.T, addr, token string) *api.Client {
	t.Helper()
	conf := api.DefaultConfig()
	conf.Address = addr
	client, err := api.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken(token)
	return client
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(fmt.Errorf("random: %w", err))
	}
	return hex.EncodeToString(b)
}
