package main

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

	"github.com/kmsbroker/kmsbroker/plugins/plugintest"
)

// vaultServer returns the address and a token of a Vault (or OpenBao)
// server for the test: VAULT_ADDR and VAULT_TOKEN when both are set,
// otherwise a dev server started from `bao` or `vault` on PATH. With
// neither, the test is skipped with a line that says what to install.
func vaultServer(t *testing.T) (addr, token string) {
	t.Helper()
	if addr, token := os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN"); addr != "" && token != "" {
		return addr, token
	}
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
	addr = "127.0.0.1:" + freePort(t)
	token = randomHex(t, 16)
	cmd := exec.Command(bin, "server", "-dev", "-dev-root-token-id="+token, "-dev-listen-address="+addr)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s dev server: %v", bin, err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr = "http://" + addr

	client := apiClient(t, addr, token)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if h, err := client.Sys().Health(); err == nil && h.Initialized && !h.Sealed {
			return addr, token
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s dev server at %s not ready after 30s", bin, addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func apiClient(t *testing.T, addr, token string) *api.Client {
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

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestConformance runs the plugin conformance suite against the built
// program and a real transit engine, on a mount of its own.
func TestConformance(t *testing.T) {
	addr, token := vaultServer(t)
	client := apiClient(t, addr, token)
	mount := "plugintest-" + randomHex(t, 4)
	if err := client.Sys().MountWithContext(context.Background(), mount, &api.MountInput{Type: "transit"}); err != nil {
		t.Fatalf("enable transit at %s: %v", mount, err)
	}
	t.Cleanup(func() { _ = client.Sys().Unmount(mount) })
	if _, err := client.Logical().Write(mount+"/keys/conformance", nil); err != nil {
		t.Fatalf("create transit key: %v", err)
	}

	exe, err := plugintest.Build(t.TempDir(), "transit", "./plugins/transit")
	if err != nil {
		t.Fatal(err)
	}
	settings := func(over map[string]string) map[string]string {
		s := map[string]string{
			"address": addr, "token": token, "mount_path": mount + "/",
			"key_name": "conformance", "disable_renewal": "true", "disallow_env_vars": "true",
		}
		for k, v := range over {
			s[k] = v
		}
		return s
	}
	plugintest.Run(t, plugintest.Config{
		Path:     exe,
		Settings: settings(nil),
		BadSettings: []plugintest.BadSettings{
			{Settings: settings(map[string]string{"token": "not-a-real-token-" + randomHex(t, 4)}), Setting: `"token"`},
			{Settings: settings(map[string]string{"mount_path": "no-such-mount-" + randomHex(t, 4) + "/"}), Setting: `"mount_path"`},
			{Settings: settings(map[string]string{"disable_renewal": "perhaps"}), Setting: `"disable_renewal"`},
		},
	})
}
