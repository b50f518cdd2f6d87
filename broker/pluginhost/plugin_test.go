package pluginhost

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
)

func TestRoundTrip(t *testing.T) {
	for _, typ := range []string{"aead", "noaad"} {
		p := startAEAD(t, func(c *Config) { c.Name, c.Type = typ, typ })
		tests := []struct {
			name      string
			plaintext []byte
			aad       []byte
		}{
			{"empty", []byte{}, nil},
			{"small", []byte("secret"), nil},
			{"small with aad", []byte("secret"), []byte("o_1234")},
			{"64KiB with aad", bytes.Repeat([]byte{0xa5}, 64<<10), []byte("scope")},
		}
		for _, tt := range tests {
			t.Run(typ+"/"+tt.name, func(t *testing.T) {
				ctx := context.Background()
				blob, err := p.Encrypt(ctx, tt.plaintext, tt.aad)
				if err != nil {
					t.Fatalf("Encrypt: %v", err)
				}
				if len(tt.plaintext) > 0 && bytes.Contains(blob.Ciphertext, tt.plaintext) {
					t.Fatal("ciphertext contains the plaintext")
				}
				got, err := p.Decrypt(ctx, blob, tt.aad)
				if err != nil {
					t.Fatalf("Decrypt: %v", err)
				}
				if !bytes.Equal(got, tt.plaintext) {
					t.Fatalf("Decrypt = %d bytes, want the %d encrypted", len(got), len(tt.plaintext))
				}
			})
		}
	}
}

func TestAADMismatchFails(t *testing.T) {
	for _, typ := range []string{"aead", "noaad"} {
		t.Run(typ, func(t *testing.T) {
			p := startAEAD(t, func(c *Config) { c.Name, c.Type = typ, typ })
			ctx := context.Background()
			blob, err := p.Encrypt(ctx, []byte("kek bytes"), []byte("o_1"))
			if err != nil {
				t.Fatalf("Encrypt: %v", err)
			}
			for _, aad := range [][]byte{[]byte("o_2"), nil, []byte("o_1 ")} {
				got, err := p.Decrypt(ctx, blob, aad)
				if !errors.Is(err, ErrDecrypt) {
					t.Errorf("Decrypt with aad %q = %q, %v; want ErrDecrypt", aad, got, err)
				}
			}
		})
	}
}

// TestAADBindingRecordedInBlob checks that a blob keeps decrypting the way
// it was made, and that a blob the plugin did not bind fails closed on a
// plugin that cannot bind AAD.
func TestAADBindingRecordedInBlob(t *testing.T) {
	ctx := context.Background()
	binds := startAEAD(t, nil)
	noaad := startAEAD(t, func(c *Config) { c.Name, c.Type = "noaad", "noaad" })

	hostBlob, err := noaad.Encrypt(ctx, []byte("x"), []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if bound, _ := hostBound(hostBlob); !bound {
		t.Fatal("blob from a plugin without AAD capability does not record the host binding")
	}
	// Same key, plugin that binds AAD itself: the record decides.
	if got, err := binds.Decrypt(ctx, hostBlob, []byte("a")); err != nil || string(got) != "x" {
		t.Errorf("capable plugin decrypting a host-bound blob = %q, %v; want x", got, err)
	}
	if _, err := binds.Decrypt(ctx, hostBlob, []byte("b")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("capable plugin, host-bound blob, wrong aad: %v; want ErrDecrypt", err)
	}

	pluginBlob, err := binds.Encrypt(ctx, []byte("x"), []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noaad.Decrypt(ctx, pluginBlob, []byte("a")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("plugin without AAD decrypting an unbound blob: %v; want ErrDecrypt", err)
	}
}

func TestBadSettings(t *testing.T) {
	tests := []struct {
		name     string
		settings map[string]string
		setting  string // must be named
		value    string // must not appear
	}{
		{"bad base64 key", map[string]string{"key": "not*base64*at*all!", "key_id": "k"}, "key", "not*base64*at*all!"},
		{"short key", map[string]string{"key": "c2VjcmV0LWtleS1ieXRlcw==", "key_id": "k"}, "key", "c2VjcmV0LWtleS1ieXRlcw=="},
		{"missing key", map[string]string{"key_id": "k"}, "key", ""},
		{"unknown setting", map[string]string{"key": testKey, "colour": "ultraviolet-7"}, "colour", "ultraviolet-7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Start(context.Background(), Config{
				Name: "aead", Type: "aead", Directory: testBin,
				Settings: tt.settings, Logger: testLogger(t),
			})
			if err == nil {
				p.Stop()
				t.Fatal("Start succeeded, want ErrInvalidConfig")
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Start: %v; want ErrInvalidConfig", err)
			}
			t.Logf("error: %v", err)
			msg := err.Error()
			if !strings.Contains(msg, `"`+tt.setting+`"`) {
				t.Errorf("error %q does not name setting %q", msg, tt.setting)
			}
			if tt.value != "" && strings.Contains(msg, tt.value) {
				t.Errorf("error %q contains the setting's value", msg)
			}
			if strings.Contains(msg, testKey) {
				t.Errorf("error %q contains the key", msg)
			}
		})
	}
}

func TestBackendUnreachableIsUnavailable(t *testing.T) {
	tests := []struct {
		typ      string
		settings map[string]string
	}{
		{"awskms", map[string]string{
			"kms_key_id": "alias/test", "region": "us-east-1", "endpoint": "http://127.0.0.1:1",
			"access_key": "AKIDEXAMPLE", "secret_key": "very-secret-key-material",
		}},
		{"transit", map[string]string{
			"address": "http://127.0.0.1:1", "token": "s.very-secret-token", "mount_path": "transit/",
			"key_name": "k", "disable_renewal": "true",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			p, err := Start(context.Background(), Config{
				Name: tt.typ, Type: tt.typ, Directory: testBin, Settings: tt.settings,
				StartTimeout: 30 * time.Second, Logger: testLogger(t),
			})
			if err == nil {
				p.Stop()
				t.Fatal("Start succeeded against a closed port")
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Start: %v; want ErrUnavailable, not ErrInvalidConfig", err)
			}
			for name, v := range tt.settings {
				if strings.Contains(name, "secret") || strings.Contains(name, "token") {
					if strings.Contains(err.Error(), v) {
						t.Errorf("error %q contains the value of %s", err, name)
					}
				}
			}
		})
	}
}

func TestPluginNotFound(t *testing.T) {
	empty := t.TempDir()
	notExec := filepath.Join(empty, "kmsbroker-plugin-plain")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no file in directory", Config{Name: "b", Type: "aead", Directory: empty}, filepath.Join(empty, "kmsbroker-plugin-aead")},
		{"explicit path missing", Config{Name: "b", Type: "aead", Path: filepath.Join(empty, "nope")}, filepath.Join(empty, "nope")},
		{"not executable", Config{Name: "b", Type: "plain", Directory: empty}, "not executable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Start(context.Background(), tt.cfg)
			if !errors.Is(err, ErrPluginNotFound) {
				t.Fatalf("Start: %v; want ErrPluginNotFound", err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `"b"`) {
				t.Errorf("error %q should name block \"b\" and %q", err, tt.want)
			}
		})
	}
}

func TestBadTypeRejected(t *testing.T) {
	for _, typ := range []string{"", "../aead", "AEAD", "a/b"} {
		_, err := Start(context.Background(), Config{Name: "b", Type: typ, Directory: testBin})
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Start(type %q): %v; want ErrInvalidConfig", typ, err)
		}
	}
}

func TestGarbageBlob(t *testing.T) {
	p := startAEAD(t, nil)
	pid := p.Info().Pid
	ctx := context.Background()
	blobs := map[string]*wrapping.BlobInfo{
		"nil":               nil,
		"empty":             {},
		"short ciphertext":  {Ciphertext: []byte{1, 2, 3}},
		"random ciphertext": {Ciphertext: bytes.Repeat([]byte{7}, 64)},
		"unknown aad record": func() *wrapping.BlobInfo {
			b := &wrapping.BlobInfo{Ciphertext: []byte("x")}
			markBound(b)
			b.ClientData.Fields[bindKey].Kind = nil
			return b
		}(),
	}
	for name, blob := range blobs {
		t.Run(name, func(t *testing.T) {
			if got, err := p.Decrypt(ctx, blob, nil); !errors.Is(err, ErrDecrypt) {
				t.Errorf("Decrypt = %q, %v; want ErrDecrypt", got, err)
			}
		})
	}
	if err := p.Health(ctx); err != nil {
		t.Fatalf("Health after garbage: %v", err)
	}
	if got := p.Info().Pid; got != pid {
		t.Errorf("pid changed from %d to %d: the plugin crashed", pid, got)
	}
}

func TestInfo(t *testing.T) {
	p := startAEAD(t, nil)
	info := p.Info()
	if info.Pid == 0 || info.Pid == os.Getpid() {
		t.Errorf("Pid = %d; want the plugin's own pid (host is %d)", info.Pid, os.Getpid())
	}
	want := Info{Name: "aead", Type: "aead", Path: filepath.Join(testBin, "kmsbroker-plugin-aead"),
		KeyID: "k1", PluginVersion: "0.1.0", AAD: true, State: StateReady}
	if info.Name != want.Name || info.Type != want.Type || info.Path != want.Path ||
		info.KeyID != want.KeyID || info.PluginVersion != want.PluginVersion ||
		info.AAD != want.AAD || info.State != want.State || info.Restarts != 0 {
		t.Errorf("Info = %+v; want %+v", info, want)
	}
	if info.Metadata["aead_type"] == "" {
		t.Errorf("Metadata = %v; want aead_type", info.Metadata)
	}
	for k, v := range info.Metadata {
		if strings.Contains(v, testKey) || k == "key" {
			t.Errorf("Metadata[%q] leaks the key", k)
		}
	}
}

func TestStopKillsProcess(t *testing.T) {
	p := startAEAD(t, nil)
	pid := p.Info().Pid
	if !alive(pid) {
		t.Fatalf("plugin pid %d not alive before Stop", pid)
	}
	p.Stop()
	p.Stop() // idempotent
	if alive(pid) {
		t.Errorf("plugin pid %d still alive after Stop", pid)
	}
	if got := p.Info().State; got != StateStopped {
		t.Errorf("State after Stop = %q; want %q", got, StateStopped)
	}
	if _, err := p.Encrypt(context.Background(), []byte("x"), nil); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Encrypt after Stop: %v; want ErrUnavailable", err)
	}
}

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

func TestChecksum(t *testing.T) {
	path := filepath.Join(testBin, "kmsbroker-plugin-aead")
	good := sha256File(t, path)
	p := startAEAD(t, func(c *Config) { c.SHA256 = strings.ToUpper(good) })
	if _, err := p.Encrypt(context.Background(), []byte("x"), nil); err != nil {
		t.Fatalf("Encrypt with pinned binary: %v", err)
	}

	bad := strings.Repeat("ab", 32)
	_, err := Start(context.Background(), Config{
		Name: "pinned", Type: "aead", Directory: testBin, SHA256: bad,
		Settings: map[string]string{"key": testKey},
	})
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("Start with wrong pin: %v; want ErrChecksumMismatch", err)
	}
	t.Logf("error: %v", err)
	for _, want := range []string{bad, good, `"pinned"`, path} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}

	// A pinned test-binary plugin still sees its own name as argv[0]
	// (TestMain dispatches on it) though it runs from the verified file.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	noaad := startAEAD(t, func(c *Config) {
		c.Name, c.Type, c.SHA256 = "noaad", "noaad", sha256File(t, self)
	})
	cmdline, err := os.ReadFile(filepath.Join("/proc", itoa(noaad.Info().Pid), "cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	if argv0, _, _ := bytes.Cut(cmdline, []byte{0}); string(argv0) != filepath.Join(testBin, "kmsbroker-plugin-noaad") {
		t.Errorf("pinned plugin argv[0] = %q", argv0)
	}

	_, err = Start(context.Background(), Config{Name: "pinned", Type: "aead", Directory: testBin, SHA256: "xyz"})
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "plugin_sha256") {
		t.Errorf("Start with malformed pin: %v; want ErrInvalidConfig naming plugin_sha256", err)
	}
}

func TestCallDeadline(t *testing.T) {
	p := startAEAD(t, func(c *Config) { c.Timeout = time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	_, err := p.Encrypt(ctx, []byte("x"), nil)
	if errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("Encrypt with cancelled context: %v; want context.Canceled, not ErrUnavailable: the caller left, the plugin is fine", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("cancelled call took %s", d)
	}
}

func TestPublicMetadata(t *testing.T) {
	settings := map[string]string{"token": "s.secret-token", "region": "eu-west-1"}
	secret := func(name string) bool { return name == "token" }
	meta := map[string]string{
		"token":    "anything",
		"auth":     "Bearer s.secret-token",
		"region":   "eu-west-1",
		"key_name": "k",
	}
	got := publicMetadata(meta, settings, secret)
	want := map[string]string{"region": "eu-west-1", "key_name": "k"}
	if len(got) != len(want) || got["region"] != want["region"] || got["key_name"] != want["key_name"] {
		t.Errorf("publicMetadata = %v; want %v", got, want)
	}
}
