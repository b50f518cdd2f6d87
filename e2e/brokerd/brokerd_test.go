package brokerd

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/kmsbroker/kmsbroker/broker/config"
	"github.com/kmsbroker/kmsbroker/broker/purpose"
)

// TestConfigHCL renders configs and parses them with the broker's own
// parser: each must be a valid server config that says what was meant,
// values with quotes, backslashes and template openers included.
func TestConfigHCL(t *testing.T) {
	tricky := `a "quoted" \ value with ${x} and %{y}`
	root, _ := AEAD(t, "root-1", "root")
	other := Block{Type: "custom", Purposes: []string{"worker-auth", "config"}, Settings: map[string]string{
		"plugin_path": "/opt/plugins/custom",
		"timeout":     "2s",
		"secret":      tricky,
	}}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"sqlite", Config{Address: "127.0.0.1:9201", Storage: SQLite, DBPath: "/var/lib/b.db", LogLevel: "debug",
			AuditPath: "/var/log/audit.log", WorkerScopes: []string{"o_1", "o_2"}, Blocks: []Block{root, other}}},
		{"postgres", Config{Address: "127.0.0.1:9202", Storage: Postgres,
			PostgresURL: "postgres://u@127.0.0.1:5432/db?search_path=s1", Blocks: []Block{root}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.cfg.HCL(t)
			cfg, err := config.Parse([]byte(src), "broker.hcl")
			if err != nil {
				t.Fatalf("parse the rendered config: %v\n%s", err, src)
			}
			if err := cfg.Validate(config.ValidateOptions{Server: true}); err != nil {
				t.Fatalf("validate the rendered config: %v\n%s", err, src)
			}
			if cfg.Listener.Address != tc.cfg.Address || cfg.Storage.Type != tc.cfg.Storage ||
				cfg.Storage.Path != tc.cfg.DBPath || cfg.Storage.URL != tc.cfg.PostgresURL {
				t.Errorf("parsed listener %q, storage %q %q %q; want %q, %q %q %q", cfg.Listener.Address,
					cfg.Storage.Type, cfg.Storage.Path, cfg.Storage.URL,
					tc.cfg.Address, tc.cfg.Storage, tc.cfg.DBPath, tc.cfg.PostgresURL)
			}
			if cfg.Audit.Path != tc.cfg.AuditPath || !slices.Equal(cfg.Auth.WorkerScopes, tc.cfg.WorkerScopes) {
				t.Errorf("parsed audit %q, worker scopes %v; want %q, %v", cfg.Audit.Path, cfg.Auth.WorkerScopes,
					tc.cfg.AuditPath, tc.cfg.WorkerScopes)
			}
			if blk := cfg.Block(purpose.Root); blk == nil || blk.Settings["key"] != root.Settings["key"] {
				t.Errorf("parsed root block %+v, want the aead key as written", blk)
			}
			if len(tc.cfg.Blocks) > 1 {
				blk := cfg.Block(purpose.Config)
				if blk == nil || blk.Settings["secret"] != tricky ||
					blk.PluginPath != "/opt/plugins/custom" || blk.Timeout != 2*time.Second {
					t.Errorf("parsed custom block %+v, want the tricky value, plugin path and timeout as written", blk)
				}
			}
		})
	}
}

func TestWithAddress(t *testing.T) {
	for _, tc := range []struct {
		args, want []string
	}{
		{[]string{"status"}, []string{"status", "-address=U"}},
		{[]string{"scopes", "create", "-id=o_1"}, []string{"scopes", "create", "-address=U", "-id=o_1"}},
		{[]string{"encrypt", "-scope=o_1", "value"}, []string{"encrypt", "-address=U", "-scope=o_1", "value"}},
	} {
		if got := withAddress(tc.args, "U"); !slices.Equal(got, tc.want) {
			t.Errorf("withAddress(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

// TestProcessReadings reads this test's own process and a child it
// starts.
func TestProcessReadings(t *testing.T) {
	rss, err := RSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Errorf("RSS of the test process: %d bytes, %v; want at least 1 MiB", rss, err)
	}
	files, err := OpenFiles(os.Getpid())
	if err != nil || !slices.ContainsFunc(files, func(f string) bool { return f != "" }) {
		t.Errorf("OpenFiles of the test process: %q, %v; want some", files, err)
	}
	if _, err := RSS(-1); err == nil {
		t.Errorf("RSS of no process: want an error")
	}

	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	kids, err := Children(os.Getpid())
	if err != nil {
		t.Fatalf("Children: %v", err)
	}
	if !slices.ContainsFunc(kids, func(c Child) bool { return c.Pid == cmd.Process.Pid && c.State != "Z" }) {
		t.Errorf("Children of the test process: %+v, want the running sleep %d", kids, cmd.Process.Pid)
	}
}
