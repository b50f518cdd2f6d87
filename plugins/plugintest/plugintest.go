// Package plugintest is the conformance kit for kmsbroker wrapper plugins.
// It starts a plugin executable the way the broker does (go-plugin gRPC,
// the kmsbroker handshake, automatic mTLS), speaks the plugin protocol to
// it directly, and checks the contract every plugin must keep: honest
// Describe with a plugin version, settings that are checked and never
// echoed, round trips of empty, small and 1 MiB plaintexts, AAD bound when
// claimed, every kind of bad ciphertext refused cleanly with the plugin
// still healthy, 200 concurrent calls, and a stable key id.
//
// A plugin's own test builds the program and runs the suite:
//
//	func TestConformance(t *testing.T) {
//		exe, err := plugintest.Build(t.TempDir(), "mykms", "./cmd/kmsbroker-plugin-mykms")
//		if err != nil {
//			t.Fatal(err)
//		}
//		plugintest.Run(t, plugintest.Config{Path: exe, Settings: map[string]string{...}})
//	}
package plugintest

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/kmsbroker/kmsbroker/plugins/sdk"
	pluginv1 "github.com/kmsbroker/kmsbroker/proto/plugin/v1"
)

// Defaults for Config's zero values.
const (
	// DefaultTimeout bounds each call; generous, since a real KMS may be
	// remote and the 1 MiB round trip is part of the suite.
	DefaultTimeout = 30 * time.Second
	// DefaultConcurrency is the number of calls made at once: more than a
	// busy broker makes to one block.
	DefaultConcurrency = 200
)

// UnknownSetting is the setting the suite always adds to check that a
// plugin refuses settings it does not know.
const UnknownSetting = "plugintest_unknown_setting"

// Config says which plugin to check and how to configure it.
type Config struct {
	// Path is the plugin executable.
	Path string
	// Settings are valid settings for the plugin.
	Settings map[string]string
	// BadSettings are settings the plugin must refuse at Configure with
	// InvalidArgument (a malformed value) or FailedPrecondition (a value
	// its KMS refused, see sdk.SettingError.Refused), naming Setting and
	// not quoting any value. A case
	// with an unknown setting is always added.
	BadSettings []BadSettings
	// Timeout bounds each call. 0 means DefaultTimeout.
	Timeout time.Duration
	// Concurrency is how many calls run at once in the concurrency check.
	// 0 means DefaultConcurrency.
	Concurrency int
	// Logger receives go-plugin's and the plugin's log lines. nil
	// discards them.
	Logger hclog.Logger
}

// BadSettings is one refused configuration.
type BadSettings struct {
	// Settings are the whole settings map to configure.
	Settings map[string]string
	// Setting is the name the error must contain.
	Setting string
}

// Result is the outcome of one check.
type Result struct {
	// Check names the check, for example "aad/bound".
	Check string
	// Err is nil when the check passed.
	Err error
}

// Run runs the suite as subtests of t, one per check.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	results, err := Check(context.Background(), cfg)
	if err != nil {
		t.Fatalf("plugintest: %v", err)
	}
	for _, r := range results {
		t.Run(r.Check, func(t *testing.T) {
			if r.Err != nil {
				t.Error(r.Err)
			}
		})
	}
}

// Check runs the suite and returns every check's result. The error is
// for a plugin that cannot be started at all.
func Check(ctx context.Context, cfg Config) ([]Result, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	s := &suite{cfg: cfg}
	return s.run(ctx)
}

// conn is one started plugin process.
type conn struct {
	client *plugin.Client
	rpc    pluginv1.WrapperClient
}

// start starts the plugin and handshakes with it as the broker does.
func start(cfg Config) (*conn, error) {
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.PluginSet(),
		Cmd:              exec.Command(cfg.Path),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     cfg.Timeout,
		Logger:           cfg.Logger,
	})
	cp, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("start %s: %w", cfg.Path, err)
	}
	raw, err := cp.Dispense(sdk.PluginName)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("start %s: dispense: %w", cfg.Path, err)
	}
	rpc, ok := raw.(pluginv1.WrapperClient)
	if !ok {
		client.Kill()
		return nil, fmt.Errorf("start %s: plugin does not serve the wrapper service", cfg.Path)
	}
	return &conn{client: client, rpc: rpc}, nil
}

// alive reports whether the process is still running.
func (c *conn) alive() bool { return !c.client.Exited() }

func (c *conn) close() { c.client.Kill() }
