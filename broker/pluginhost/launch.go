package pluginhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/kmsbroker/kmsbroker/plugins/sdk"
	pluginv1 "github.com/kmsbroker/kmsbroker/proto/plugin/v1"
)

// ExecutablePrefix starts the file name of every plugin executable; the
// plugin type follows it.
const ExecutablePrefix = "kmsbroker-plugin-"

// quoteLimit is how many bytes of a plugin's stray output an error quotes:
// enough to recognise it, short enough for one log line.
const quoteLimit = 64

// exitWait is how long a failed handshake waits for a process that closed
// its stdout to be reaped, so the error can give its exit status.
const exitWait = time.Second

// stopGrace is how long a plugin gets to exit after the host asks it to,
// before it is killed. go-plugin itself waits 2s after a clean shutdown
// request; this bounds the request too, for a plugin that hangs.
const stopGrace = 3 * time.Second

// instance is one running plugin process, handshaken and configured.
type instance struct {
	client *plugin.Client
	proc   *process
	conn   *grpc.ClientConn
	rpc    pluginv1.WrapperClient
	desc   *pluginv1.DescribeResponse
	conf   *pluginv1.ConfigureResponse
	// scrub replaces secret setting values in the plugin's messages;
	// scrubAll replaces every setting value, for configuration errors.
	scrub    *strings.Replacer
	scrubAll *strings.Replacer
	readyAt  time.Time
	// keyID is the key id the plugin last reported: from Configure, then
	// from each blob (a KMS alias resolves to the key that encrypted).
	keyID atomic.Value

	brokenOnce sync.Once
	broken     chan struct{}
	reason     string
}

// aad reports whether the plugin binds AAD itself.
func (in *instance) aad() bool { return in.desc.GetCapabilities().GetAad() }

// markBroken asks the supervisor to replace the process.
func (in *instance) markBroken(reason string) {
	in.brokenOnce.Do(func() {
		in.reason = reason
		close(in.broken)
	})
}

// usable reports whether calls may go to this process.
func (in *instance) usable() bool {
	select {
	case <-in.broken:
		return false
	case <-in.proc.exited:
		return false
	default:
		return true
	}
}

// lost reports whether a call that failed without an answer from the
// plugin means the process or its connection is gone. A process that just
// died may not be reaped yet, and its connection may still look ready for
// a moment, so this waits up to exitNoticeWait (or until ctx ends) for
// either to show it.
func (in *instance) lost(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, exitNoticeWait)
	defer cancel()
	state := in.conn.GetState()
	if state != connectivity.Ready {
		return true
	}
	changed := make(chan struct{})
	go func() {
		if in.conn.WaitForStateChange(ctx, state) {
			close(changed)
		}
	}()
	select {
	case <-in.proc.exited:
		return true
	case <-changed:
		return true
	case <-ctx.Done():
		return false
	}
}

// stop ends the process: a graceful shutdown request first, then SIGKILL
// to the process group once stopGrace has passed.
func (in *instance) stop() {
	done := make(chan struct{})
	go func() {
		in.client.Kill()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(stopGrace):
		_ = in.proc.Kill(context.Background())
		<-done
	}
	// Helpers the plugin started may survive its clean exit.
	killGroup(in.proc.Pid())
}

// kill ends a process that is already broken, without the courtesy.
func (in *instance) kill() {
	_ = in.proc.Kill(context.Background())
	in.client.Kill()
}

// executable resolves the plugin's path.
func (c *Config) executable() (string, error) {
	if c.Path != "" {
		return filepath.Abs(c.Path)
	}
	dir := c.Directory
	if dir == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("find plugin directory: %w", err)
		}
		dir = filepath.Dir(exe)
	}
	return filepath.Abs(filepath.Join(dir, ExecutablePrefix+c.Type))
}

// launch starts, handshakes, describes and configures one process, all
// within StartTimeout. On error nothing is left running.
func (p *Plugin) launch(ctx context.Context) (_ *instance, err error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.StartTimeout)
	defer cancel()

	path, err := p.cfg.executable()
	if err != nil {
		return nil, p.startErr("", ErrPluginNotFound, "%v", err)
	}
	p.setPath(path)
	if err := checkExecutable(path); err != nil {
		return nil, p.startErr(path, ErrPluginNotFound, "%v", err)
	}
	var pinned *os.File
	if p.cfg.SHA256 != "" {
		if pinned, err = openVerified(path, p.cfg.SHA256); err != nil {
			return nil, p.startErr(path, ErrChecksumMismatch, "%v", err)
		}
		// Closed by the process once started; this covers a start that
		// never gets that far.
		defer pinned.Close()
	}
	env, err := childEnv(p.cfg.Type, p.cfg.Settings, os.Environ(), p.cfg.Logger.GetLevel())
	if err != nil {
		return nil, p.startErr(path, ErrInvalidConfig, "%v", err)
	}

	proc := newProcess()
	// Until Describe says which settings are secret, every value is.
	allSecret := sdk.NewRedactor(p.cfg.Settings, func(string) bool { return true })
	log := newScrubLogger(p.log, allSecret)
	var sockDir string
	client := plugin.NewClient(p.clientConfig(log,
		func(_ hclog.Logger, cmd *exec.Cmd, dir string) (runner.Runner, error) {
			// cmd carries only go-plugin's variables (SkipHostEnv).
			sockDir = dir
			return proc, proc.prepare(path, append(env, cmd.Env...), pinned)
		}))
	defer func() {
		if err != nil {
			_ = proc.Kill(context.Background())
			client.Kill()
		}
	}()

	// go-plugin's handshake cannot be cancelled; killing the process ends
	// it when ctx ends first.
	handshaken := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = proc.Kill(context.Background())
		case <-handshaken:
		}
	}()
	cp, err := client.Client()
	close(handshaken)
	if err != nil {
		return nil, p.handshakeErr(ctx, path, proc, allSecret, err)
	}
	raw, err := cp.Dispense(sdk.PluginName)
	if err != nil {
		return nil, p.startErr(path, ErrBadPlugin, "dispense %s: %v", sdk.PluginName, err)
	}
	gc, ok := cp.(*plugin.GRPCClient)
	rpc, ok2 := raw.(pluginv1.WrapperClient)
	if !ok || !ok2 {
		return nil, p.startErr(path, ErrBadPlugin, "plugin is not served over gRPC")
	}
	in := &instance{
		client: client,
		proc:   proc,
		conn:   gc.Conn,
		rpc:    rpc,
		broken: make(chan struct{}),
		scrub:  allSecret,
	}
	in.scrubAll = in.scrub

	in.desc, err = rpc.Describe(ctx, &pluginv1.DescribeRequest{})
	if err != nil {
		return nil, p.rpcStartErr(ctx, path, in, "describe", err)
	}
	if v := in.desc.GetProtocolVersion(); v != sdk.ProtocolVersion {
		return nil, p.startErr(path, ErrBadPlugin, "describe reports plugin protocol version %d, this broker speaks %d", v, sdk.ProtocolVersion)
	}
	// The connection is up and stays up for the life of the process, so
	// the socket's directory can go now: a host killed by SIGKILL then
	// leaves nothing behind in the temporary directory.
	if sockDir != "" {
		_ = os.RemoveAll(sockDir)
	}

	secret := make(map[string]bool)
	known := make(map[string]bool)
	for _, s := range in.desc.GetSettings() {
		known[s.GetName()] = true
		secret[s.GetName()] = s.GetSecret()
	}
	isSecret := func(name string) bool { return secret[name] || !known[name] }
	in.scrubAll = sdk.NewRedactor(p.cfg.Settings, isSecret)
	in.scrub = sdk.NewRedactor(secretSettings(p.cfg.Settings, isSecret), isSecret)
	log.setScrub(in.scrub)
	if err := p.cfg.checkDeclared(in.desc.GetSettings()); err != nil {
		return nil, p.settingsErr(path, err)
	}

	in.conf, err = rpc.Configure(ctx, &pluginv1.ConfigureRequest{Settings: p.cfg.Settings})
	if err != nil {
		return nil, p.rpcStartErr(ctx, path, in, "configure", err)
	}
	in.conf.Metadata = publicMetadata(in.conf.GetMetadata(), p.cfg.Settings, isSecret)
	in.keyID.Store(in.conf.GetKeyId())
	in.readyAt = time.Now()
	p.log.Info("plugin ready", "pid", proc.Pid(), "path", path,
		"key_id", in.conf.GetKeyId(), "plugin_version", in.desc.GetPluginVersion(),
		"aad", in.aad())
	return in, nil
}

// clientConfig is what one start hands go-plugin: gRPC only, automatic
// mTLS, no host environment, the process started by run, and what the
// plugin prints scrubbed by output before it is logged.
//
// go-plugin's own start timer gets all of StartTimeout, however long,
// instead of its one-minute default. It starts after launch's ctx, which
// ends first and bounds the whole start (see launch).
func (p *Plugin) clientConfig(log hclog.Logger, run func(hclog.Logger, *exec.Cmd, string) (runner.Runner, error)) *plugin.ClientConfig {
	return &plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.PluginSet(),
		RunnerFunc:       run,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		UnixSocketConfig: socketConfig(os.TempDir()),
		AutoMTLS:         true,
		Managed:          false,
		SkipHostEnv:      true,
		StartTimeout:     p.cfg.StartTimeout,
		Logger:           log,
		SyncStdout:       &lineLogger{log: log, stream: "stdout"},
		SyncStderr:       &lineLogger{log: log, stream: "stderr"},
	}
}

// publicMetadata drops metadata a plugin should not have returned: entries
// named like a secret setting or equal to a secret value. The SDK already
// does this; the host repeats it for plugins built without the SDK.
func publicMetadata(meta, settings map[string]string, secret func(string) bool) map[string]string {
	out := make(map[string]string, len(meta))
	for k, v := range meta {
		if _, isSetting := settings[k]; isSetting && secret(k) {
			continue
		}
		leaked := false
		for name, value := range settings {
			if secret(name) && value != "" && strings.Contains(v, value) {
				leaked = true
				break
			}
		}
		if !leaked {
			out[k] = v
		}
	}
	return out
}

// secretSettings returns the settings for which secret is true.
func secretSettings(settings map[string]string, secret func(string) bool) map[string]string {
	out := make(map[string]string)
	for name, value := range settings {
		if secret(name) {
			out[name] = value
		}
	}
	return out
}

// checkSettings rejects settings the plugin did not declare, naming the
// first one in sorted order and listing the accepted ones.
func checkSettings(settings map[string]string, known map[string]bool) error {
	var unknown []string
	for name := range settings {
		if !known[name] {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	accepted := make([]string, 0, len(known))
	for name := range known {
		accepted = append(accepted, name)
	}
	sort.Strings(accepted)
	return fmt.Errorf("setting %q: unknown setting for this plugin (accepted: %s)",
		unknown[0], strings.Join(accepted, ", "))
}

// rejectedSetting returns the setting a configure refusal names in its
// structured details (plugins built on the SDK send them), or "".
func rejectedSetting(st *status.Status) string {
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() != "" {
					return v.GetField()
				}
			}
		}
	}
	return ""
}

func (p *Plugin) startErr(path string, sentinel error, format string, args ...any) error {
	if path == "" {
		return fmt.Errorf("start plugin block %q: %w: %s", p.cfg.Name, sentinel, fmt.Sprintf(format, args...))
	}
	return fmt.Errorf("start plugin block %q (%s): %w: %s", p.cfg.Name, path, sentinel, fmt.Sprintf(format, args...))
}

// rpcStartErr explains a failed describe or configure call.
func (p *Plugin) rpcStartErr(ctx context.Context, path string, in *instance, op string, err error) error {
	st := status.Convert(err)
	msg := strings.TrimPrefix(in.scrub.Replace(st.Message()), op+": ")
	switch {
	case ctx.Err() != nil:
		return p.startErr(path, ErrUnavailable, "no answer to %s within start timeout %s", op, p.cfg.StartTimeout)
	case (st.Code() == codes.InvalidArgument || st.Code() == codes.FailedPrecondition) && op == "configure":
		msg := strings.TrimPrefix(in.scrubAll.Replace(st.Message()), op+": ")
		if name := rejectedSetting(st); name != "" && p.cfg.SettingPosition != nil {
			if pos := p.cfg.SettingPosition(name); pos != "" {
				msg = pos + ": " + msg
			}
		}
		if st.Code() == codes.FailedPrecondition {
			return fmt.Errorf("%w (%w)", p.startErr(path, ErrInvalidConfig, "%s", msg), ErrSettingRefused)
		}
		return p.startErr(path, ErrInvalidConfig, "%s", msg)
	case st.Code() == codes.Unimplemented:
		return p.startErr(path, ErrBadPlugin, "%s is not implemented: %s", op, msg)
	default:
		return p.startErr(path, ErrUnavailable, "%s: %s", op, msg)
	}
}

// handshakeErr explains a failed go-plugin handshake from what the host
// saw: stray output, the version the plugin offered, its exit status, or
// silence until the start timeout. What it quotes of the plugin's output
// passes through scrub first.
func (p *Plugin) handshakeErr(ctx context.Context, path string, proc *process, scrub *strings.Replacer, err error) error {
	head := []byte(scrub.Replace(string(proc.headBytes())))
	if len(head) > 0 {
		line, complete := firstLine(head)
		parts := strings.Split(line, "|")
		switch {
		case complete && !isHandshake(parts):
			return p.startErr(path, ErrBadPlugin, "wrote to stdout before the handshake: %s", quote(head))
		case complete && parts[0] != strconv.Itoa(plugin.CoreProtocolVersion):
			return p.startErr(path, ErrBadPlugin, "speaks go-plugin core protocol %s, this broker speaks %d", parts[0], plugin.CoreProtocolVersion)
		case complete && parts[1] != strconv.Itoa(sdk.ProtocolVersion):
			return p.startErr(path, ErrBadPlugin, "speaks plugin protocol version %s, this broker speaks %d", parts[1], sdk.ProtocolVersion)
		case complete && (len(parts) < 5 || parts[4] != string(plugin.ProtocolGRPC)):
			return p.startErr(path, ErrBadPlugin, "serves the net/rpc transport, this broker needs gRPC")
		}
	}
	if _, complete := firstLine(head); !complete && ctx.Err() == nil {
		// Stdout closed without a line: the process is exiting. Give the
		// reaper a moment so the error can report the exit status.
		select {
		case <-proc.exited:
		case <-time.After(exitWait):
		}
	}
	if st := proc.exitState(); st != nil && ctx.Err() == nil {
		msg := fmt.Sprintf("exited before the handshake (%s)", st)
		if len(head) > 0 {
			msg += "; stdout began " + quote(head)
		}
		if last := proc.tail.lastLine(); last != "" {
			msg += "; last stderr line " + quote([]byte(scrub.Replace(last)))
		}
		return p.startErr(path, ErrUnavailable, "%s", msg)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return p.startErr(path, ErrUnavailable, "start canceled")
	}
	if ctx.Err() != nil || strings.Contains(err.Error(), "timeout") {
		msg := fmt.Sprintf("no handshake within start timeout %s", p.cfg.StartTimeout)
		if len(head) > 0 {
			msg += "; stdout so far " + quote(head)
		}
		return p.startErr(path, ErrUnavailable, "%s", msg)
	}
	return p.startErr(path, ErrUnavailable, "handshake: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
}

// isHandshake reports whether parts look like a go-plugin handshake line:
// CORE|APP|NETWORK|ADDRESS[|PROTOCOL[|CERT]].
func isHandshake(parts []string) bool {
	if len(parts) < 4 {
		return false
	}
	if _, err := strconv.Atoi(parts[0]); err != nil {
		return false
	}
	if _, err := strconv.Atoi(parts[1]); err != nil {
		return false
	}
	return parts[2] == "unix" || parts[2] == "tcp"
}

// firstLine returns the first line of b and whether it is known to be
// complete: it ended, or it filled all of what was kept (a handshake line
// with its certificate is longer than seenLimit).
func firstLine(b []byte) (string, bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return string(b), len(b) >= seenLimit
	}
	return strings.TrimSpace(string(b[:i])), true
}

// quote renders at most quoteLimit bytes of stray output.
func quote(b []byte) string {
	if len(b) > quoteLimit {
		return strconv.Quote(string(b[:quoteLimit])) + "..."
	}
	return strconv.Quote(string(b))
}

// checkExecutable reports a missing or non-executable plugin.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no such file")
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return fmt.Errorf("not a regular file")
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("not executable")
	}
	return nil
}

// openVerified opens the executable and compares its SHA-256 digest with
// want (hex). On a match it returns the file, positioned at the start, for
// the process to be started from; on Linux that closes the gap between
// checking and running (see execPinned).
func openVerified(path, want string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		f.Close()
		return nil, err
	}
	got := hex.EncodeToString(h.Sum(nil))
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		f.Close()
		return nil, fmt.Errorf("want sha256 %s, got %s", want, got)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// lineLogger turns a plugin's redirected stdout or stderr into log lines.
// go-plugin writes to it from one goroutine per stream.
type lineLogger struct {
	log    hclog.Logger
	stream string
	mu     sync.Mutex
	buf    []byte
}

// lineLimit bounds one logged line, so a plugin writing without newlines
// cannot grow the host's memory.
const lineLimit = 4096

func (l *lineLogger) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			if len(l.buf) >= lineLimit {
				l.emit(l.buf)
				l.buf = l.buf[:0]
			}
			return len(b), nil
		}
		l.emit(l.buf[:i])
		l.buf = append(l.buf[:0], l.buf[i+1:]...)
	}
}

func (l *lineLogger) emit(line []byte) {
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	l.log.Info("plugin output", "stream", l.stream, "line", string(line))
}

// maxSocketDirLen keeps go-plugin's socket paths, about 40 bytes longer
// than their base directory, under the 107-byte limit of a Unix socket
// address (sun_path) on Linux.
const maxSocketDirLen = 64

// socketConfig returns where go-plugin makes a plugin's socket directory:
// under tmp, unless that path is too long for a socket address; then
// under /tmp, which every Unix has.
func socketConfig(tmp string) *plugin.UnixSocketConfig {
	if len(tmp) <= maxSocketDirLen {
		return nil
	}
	return &plugin.UnixSocketConfig{TempDir: "/tmp"}
}
