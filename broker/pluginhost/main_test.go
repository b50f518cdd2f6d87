package pluginhost

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"github.com/hashicorp/go-kms-wrapping/v2/aead"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/kmsbroker/kmsbroker/plugins/plugintest"
	"github.com/kmsbroker/kmsbroker/plugins/sdk"
	pluginv1 "github.com/kmsbroker/kmsbroker/proto/plugin/v1"
)

// The tests run real plugin processes. The built-in plugins are built
// from source once per run (TestMain). Deliberately broken plugins are
// this test binary itself, run under the name kmsbroker-plugin-<behaviour>
// through a symlink: TestMain sees the name and behaves as that plugin.

// testBin is the directory holding the built and symlinked plugins.
var testBin string

// builtins are the plugin programs built for the tests.
var builtins = map[string]string{
	"aead":    "./plugins/aead",
	"awskms":  "./plugins/awskms",
	"transit": "./plugins/transit",
}

// behaviours are the test binary's plugin personalities, by type.
var behaviours = map[string]func(){
	// noise writes a banner to stdout before serving: it breaks the
	// handshake.
	"noise": func() {
		fmt.Println("starting the chatty plugin")
		serveAEAD(sdk.WithAAD())
	},
	// exit dies at once with a message and status 3.
	"exit": func() {
		fmt.Fprintln(os.Stderr, "fatal: the plugin cannot start")
		os.Exit(3)
	},
	// v2 speaks plugin protocol version 2.
	"v2": func() {
		hs := sdk.Handshake
		hs.ProtocolVersion = 2
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig: hs,
			Plugins:         plugin.PluginSet{sdk.PluginName: &rawPlugin{sdk.NewServer(aead.NewWrapper(), nil)}},
			GRPCServer:      plugin.DefaultGRPCServer,
		})
	},
	// slow takes slowStart before it serves.
	"slow": func() {
		time.Sleep(slowStart)
		serveAEAD(sdk.WithAAD())
	},
	// silent never says anything.
	"silent": func() {
		time.Sleep(time.Hour)
	},
	// noaad serves the AEAD wrapper without declaring the AAD capability,
	// so the host binds AAD itself, as it does for transit.
	"noaad": func() { serveAEAD() },
	// envcheck is an aead plugin that also accepts disallow_env_vars, so
	// it can stand in for the cloud plugins whose environment the host
	// filters.
	"envcheck": func() {
		sdk.Serve(aead.NewWrapper(), sdk.WithSettings(
			sdk.Setting{Name: "key", Secret: true},
			sdk.Setting{Name: "disallow_env_vars", Bool: true},
		))
	},
	// spawner starts a helper, `sleep 300`, when configured and reports
	// its pid as configure metadata child_pid: a plugin that leaves a
	// grandchild of the host behind.
	"spawner": func() { sdk.Serve(&spawnWrapper{Wrapper: aead.NewWrapper()}) },
	// chatter prints to stdout and stderr on every Encrypt, after the
	// handshake, where go-plugin forwards both to the host, and writes a
	// JSON log line to its own stderr, which go-plugin parses. Each line
	// carelessly holds its secret key setting.
	"chatter": func() {
		logger := hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true})
		sdk.Serve(chatterWrapper{Wrapper: aead.NewWrapper(), log: logger}, sdk.WithAAD(), sdk.WithSettings(
			sdk.Setting{Name: "key", Secret: true},
		))
	},
	// flaky fails Encrypt as unavailable while the file named by its
	// fail_file setting exists: a KMS outage the process survives. While
	// the file named by hang_file exists, Encrypt waits for its caller to
	// give up: a KMS that does not answer.
	"flaky": func() {
		sdk.Serve(&flakyWrapper{Wrapper: aead.NewWrapper()}, sdk.WithAAD(), sdk.WithSettings(
			sdk.Setting{Name: "key", Secret: true},
			sdk.Setting{Name: "fail_file"},
			sdk.Setting{Name: "hang_file"},
		))
	},
}

// slowStart is how long the slow plugin takes before its handshake.
const slowStart = 1500 * time.Millisecond

func serveAEAD(opt ...sdk.Option) {
	opt = append(opt, sdk.WithSettings(
		sdk.Setting{Name: "key", Secret: true},
		sdk.Setting{Name: sdk.KeyIDSetting},
	))
	sdk.Serve(aead.NewWrapper(), opt...)
}

func TestMain(m *testing.M) {
	if behave, ok := behaviours[strings.TrimPrefix(filepath.Base(os.Args[0]), ExecutablePrefix)]; ok {
		behave()
		os.Exit(0)
	}
	if os.Getenv(hostModeEnv) != "" {
		runAsHost()
		os.Exit(0)
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pluginhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testBin = dir
	for typ, pkg := range builtins {
		if _, err := plugintest.Build(dir, typ, pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for typ := range behaviours {
		if err := os.Symlink(self, filepath.Join(dir, ExecutablePrefix+typ)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// testKey is a fixed AES-256 key (base64) for the aead plugin.
const testKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// startAEAD starts the aead plugin with a test key and stops it at the
// end of the test.
func startAEAD(t *testing.T, mod func(*Config)) *Plugin {
	t.Helper()
	cfg := Config{
		Name:      "aead",
		Type:      "aead",
		Directory: testBin,
		Settings:  map[string]string{"key": testKey, "key_id": "k1"},
		Logger:    testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	return startPlugin(t, cfg)
}

func startPlugin(t testing.TB, cfg Config) *Plugin {
	t.Helper()
	p, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start(%s): %v", cfg.Name, err)
	}
	t.Cleanup(p.Stop)
	return p
}

// testLogger logs to the test's output through a sink that outlives the
// test: plugin goroutines may write a last line after it ends.
func testLogger(t *testing.T) hclog.Logger {
	t.Helper()
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: w})
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// rawPlugin serves a wrapper server under any handshake, for plugins
// that must get the handshake wrong.
type rawPlugin struct {
	srv pluginv1.WrapperServer
}

func (r *rawPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterWrapperServer(s, r.srv)
	return nil
}

func (r *rawPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("rawPlugin is plugin-side only")
}

func (r *rawPlugin) Server(*plugin.MuxBroker) (any, error) { return nil, errors.New("gRPC only") }
func (r *rawPlugin) Client(*plugin.MuxBroker, *rpc.Client) (any, error) {
	return nil, errors.New("gRPC only")
}

// spawnWrapper starts a long-lived helper process when configured.
type spawnWrapper struct{ *aead.Wrapper }

func (w *spawnWrapper) SetConfig(ctx context.Context, opt ...wrapping.Option) (*wrapping.WrapperConfig, error) {
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait() }()
	return &wrapping.WrapperConfig{Metadata: map[string]string{"child_pid": strconv.Itoa(cmd.Process.Pid)}}, nil
}

// chatterWrapper writes a line to stdout, to stderr and to its log
// before encrypting, each with its key setting in it.
type chatterWrapper struct {
	*aead.Wrapper
	log hclog.Logger
}

func (w chatterWrapper) Encrypt(ctx context.Context, pt []byte, opt ...wrapping.Option) (*wrapping.BlobInfo, error) {
	raw, err := w.KeyBytes(ctx)
	if err != nil {
		return nil, err
	}
	key := base64.StdEncoding.EncodeToString(raw)
	fmt.Println("chatter on stdout key=" + key)
	fmt.Fprintln(os.Stderr, "chatter on stderr key="+key)
	w.log.Info("chatter in the log", "key", key, "error", errors.New("bad key "+key))
	return w.Wrapper.Encrypt(ctx, pt, opt...)
}

// flakyWrapper fails Encrypt while its fail_file exists and hangs it
// while its hang_file exists.
type flakyWrapper struct {
	*aead.Wrapper
	failFile, hangFile string
}

func (w *flakyWrapper) SetConfig(ctx context.Context, opt ...wrapping.Option) (*wrapping.WrapperConfig, error) {
	opts, err := wrapping.GetOpts(opt...)
	if err != nil {
		return nil, err
	}
	w.failFile = opts.WithConfigMap["fail_file"]
	w.hangFile = opts.WithConfigMap["hang_file"]
	return w.Wrapper.SetConfig(ctx, opt...)
}

func (w *flakyWrapper) Encrypt(ctx context.Context, pt []byte, opt ...wrapping.Option) (*wrapping.BlobInfo, error) {
	if _, err := os.Stat(w.hangFile); err == nil {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if _, err := os.Stat(w.failFile); err == nil {
		return nil, fmt.Errorf("%w: test outage", sdk.ErrBackendUnavailable)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return w.Wrapper.Encrypt(ctx, pt, opt...)
}
