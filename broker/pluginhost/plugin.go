package pluginhost

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kmsbroker/kmsbroker/plugins/sdk"
	pluginv1 "github.com/kmsbroker/kmsbroker/proto/plugin/v1"
)

// typePattern is what a plugin type may look like. It becomes part of a
// file name, so it must not be able to name another directory.
var typePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Plugin is one KMS block's plugin: at most one process at a time, kept
// running by a supervisor goroutine until Stop. All methods are safe for
// concurrent use.
type Plugin struct {
	cfg     Config
	log     hclog.Logger
	metrics *metrics

	// ctx ends when Stop is called; it bounds restarts in progress.
	ctx      context.Context
	cancel   context.CancelFunc
	stopOnce sync.Once
	done     chan struct{} // closed when the supervisor has returned

	mu       sync.Mutex
	inst     *instance // the serving process; nil while there is none
	last     *instance // the most recent process that became ready
	state    string
	changed  chan struct{} // closed and replaced on every state change
	path     string
	restarts int
	lastErr  string
}

// Start starts the block's plugin: it resolves and checks the executable,
// starts the process, handshakes, and calls Describe and Configure, all
// within cfg.StartTimeout. On error nothing is left running and the error
// wraps one of ErrInvalidConfig, ErrPluginNotFound, ErrChecksumMismatch,
// ErrBadPlugin or ErrUnavailable. On success the Plugin supervises the
// process until Stop, which the caller must call.
func Start(ctx context.Context, cfg Config) (*Plugin, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	p := &Plugin{
		cfg:     cfg,
		log:     cfg.Logger.Named("pluginhost").With("block", cfg.Name, "plugin", cfg.Type),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	p.metrics = newMetrics(cfg.Registerer, cfg.Name, cfg.Type)
	if p.metrics != nil {
		p.metrics.paused.Store(cfg.MetricsPaused)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.setState(StateStarting, "")

	in, err := p.launch(ctx)
	if err != nil {
		p.setState(StateFailed, err.Error())
		p.cancel()
		return nil, err
	}
	p.serve(in)
	go p.supervise(in)
	return p, nil
}

// normalize checks cfg and fills in defaults.
func (c Config) normalize() (Config, error) {
	if c.Name == "" {
		return c, fmt.Errorf("start plugin: %w: block name is empty", ErrInvalidConfig)
	}
	if !typePattern.MatchString(c.Type) {
		return c, fmt.Errorf("start plugin block %q: %w: plugin type %q must be lower-case letters, digits, '-' and '_'", c.Name, ErrInvalidConfig, c.Type)
	}
	if c.SHA256 != "" {
		c.SHA256 = strings.ToLower(strings.TrimSpace(c.SHA256))
		if b, err := hex.DecodeString(c.SHA256); err != nil || len(b) != 32 {
			return c, fmt.Errorf("start plugin block %q: %w: setting \"plugin_sha256\": must be 64 hex digits", c.Name, ErrInvalidConfig)
		}
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.MaxRestartBackoff <= 0 {
		c.MaxRestartBackoff = DefaultMaxRestartBackoff
	}
	if c.LivenessInterval <= 0 {
		c.LivenessInterval = DefaultLivenessInterval
	}
	if c.RecheckInterval <= 0 {
		c.RecheckInterval = DefaultRecheckInterval
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	c.Settings = maps.Clone(c.Settings)
	if c.Settings == nil {
		c.Settings = map[string]string{}
	}
	return c, nil
}

// Encrypt encrypts plaintext with the block's key, binding aad.
//
// AAD is always bound. A plugin that declares the AAD capability binds it
// itself; for one that does not (transit), the host encrypts a SHA-256
// digest of aad together with the plaintext and checks it on decrypt (see
// aad.go), and records that in the blob.
//
// Errors: ErrUnavailable (retryable) or an error naming the plugin's
// refusal. The plaintext never appears in an error or a log line.
func (p *Plugin) Encrypt(ctx context.Context, plaintext, aad []byte) (*wrapping.BlobInfo, error) {
	start := time.Now()
	blob, err := p.encrypt(ctx, plaintext, aad)
	p.metrics.observe(opEncrypt, err, time.Since(start))
	return blob, err
}

func (p *Plugin) encrypt(caller context.Context, plaintext, aad []byte) (*wrapping.BlobInfo, error) {
	ctx, cancel := context.WithTimeout(caller, p.cfg.Timeout)
	defer cancel()
	in, err := p.acquire(ctx, opEncrypt)
	if err != nil {
		return nil, err
	}
	req := &pluginv1.EncryptRequest{Plaintext: plaintext, Aad: aad}
	hostBinds := !in.aad()
	if hostBinds {
		req.Plaintext, req.Aad = bindAAD(plaintext, aad), nil
	}
	var trailer metadata.MD
	resp, err := in.rpc.Encrypt(ctx, req, grpc.Trailer(&trailer))
	if err != nil {
		if gone := p.callerGone(caller, opEncrypt); gone != nil {
			return nil, gone
		}
		err = p.callErr(ctx, in, opEncrypt, err, trailer)
		p.recordCall(in, opEncrypt, err)
		return nil, err
	}
	p.recordCall(in, opEncrypt, nil)
	blob := new(wrapping.BlobInfo)
	if err := proto.Unmarshal(resp.GetBlobInfo(), blob); err != nil || len(blob.Ciphertext) == 0 {
		return nil, fmt.Errorf("%s block %q: %w: plugin returned a malformed blob", opEncrypt, p.cfg.Name, ErrBadPlugin)
	}
	blob.Plaintext = nil
	if id := blob.GetKeyInfo().GetKeyId(); id != "" {
		in.keyID.Store(id)
	}
	if hostBinds {
		markBound(blob)
	}
	return blob, nil
}

// Decrypt decrypts a blob made by Encrypt with the same aad. Every
// failure to decrypt (corrupt blob, other key, other AAD) is ErrDecrypt,
// with details in the Debug log; ErrUnavailable means it may succeed
// later.
func (p *Plugin) Decrypt(ctx context.Context, blob *wrapping.BlobInfo, aad []byte) ([]byte, error) {
	start := time.Now()
	plaintext, err := p.decrypt(ctx, blob, aad)
	p.metrics.observe(opDecrypt, err, time.Since(start))
	return plaintext, err
}

func (p *Plugin) decrypt(caller context.Context, blob *wrapping.BlobInfo, aad []byte) ([]byte, error) {
	if blob == nil {
		return nil, p.decryptErr("no blob")
	}
	hostBound, err := hostBound(blob)
	if err != nil {
		return nil, p.decryptErr("unknown aad binding record")
	}
	ctx, cancel := context.WithTimeout(caller, p.cfg.Timeout)
	defer cancel()
	in, err := p.acquire(ctx, opDecrypt)
	if err != nil {
		return nil, err
	}
	if !hostBound && !in.aad() {
		return nil, p.decryptErr("blob has no host aad binding and the plugin cannot bind aad")
	}
	send := proto.Clone(blob).(*wrapping.BlobInfo)
	send.Plaintext = nil
	raw, err := proto.Marshal(send)
	if err != nil {
		return nil, p.decryptErr("encode blob: " + err.Error())
	}
	req := &pluginv1.DecryptRequest{BlobInfo: raw, Aad: aad}
	if hostBound {
		req.Aad = nil
	}
	var trailer metadata.MD
	resp, err := in.rpc.Decrypt(ctx, req, grpc.Trailer(&trailer))
	if err != nil {
		if gone := p.callerGone(caller, opDecrypt); gone != nil {
			return nil, gone
		}
		err = p.callErr(ctx, in, opDecrypt, err, trailer)
		p.recordCall(in, opDecrypt, err)
		return nil, err
	}
	p.recordCall(in, opDecrypt, nil)
	plaintext := resp.GetPlaintext()
	if hostBound {
		if plaintext, err = unbindAAD(plaintext, aad); err != nil {
			return nil, p.decryptErr(err.Error())
		}
	}
	if plaintext == nil {
		plaintext = []byte{}
	}
	return plaintext, nil
}

// Health asks the plugin process whether it is alive and configured. It
// never reaches the KMS and does not wait for a restart in progress.
func (p *Plugin) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	in, err := p.current(opHealth)
	if err != nil {
		return err
	}
	return p.ping(ctx, in)
}

// ping makes the plugin's cheap health call on in.
func (p *Plugin) ping(ctx context.Context, in *instance) error {
	var trailer metadata.MD
	resp, err := in.rpc.Health(ctx, &pluginv1.HealthRequest{}, grpc.Trailer(&trailer))
	if err != nil {
		return p.callErr(ctx, in, opHealth, err, trailer)
	}
	if !resp.GetConfigured() {
		in.markBroken("plugin reports it is not configured")
		return fmt.Errorf("%s block %q: %w: plugin reports it is not configured", opHealth, p.cfg.Name, ErrUnavailable)
	}
	return nil
}

// Retryable reports whether a call that failed with err may be repeated
// once: the plugin was lost under it and a fresh process may serve the
// repeat. A call that used up its deadline is not retried; the repeat
// would only double the caller's wait on a plugin or KMS that hangs.
func Retryable(err error) bool {
	return errors.Is(err, ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded)
}

// TakeOverMetrics makes p record its block's series in place of from,
// which stops recording: the hand-over of a reload. p must have been
// started with Config.MetricsPaused, and both must share a Registerer.
func (p *Plugin) TakeOverMetrics(from *Plugin) {
	if from != nil && from.metrics != nil {
		from.metrics.paused.Store(true)
		p.mu.Lock()
		samePlugin := p.cfg.Type == from.cfg.Type
		p.mu.Unlock()
		if !samePlugin {
			// Another plugin type serves the block now: the old type's
			// series drop to zero.
			from.metrics.publish("")
		}
	}
	if p.metrics == nil {
		return
	}
	p.metrics.paused.Store(false)
	p.mu.Lock()
	state := p.state
	p.mu.Unlock()
	p.metrics.publish(state)
}

// Info returns a snapshot for status output.
func (p *Plugin) Info() Info {
	p.mu.Lock()
	defer p.mu.Unlock()
	info := Info{
		Name:      p.cfg.Name,
		Type:      p.cfg.Type,
		Path:      p.path,
		State:     p.state,
		Restarts:  p.restarts,
		LastError: p.lastErr,
	}
	if in := p.last; in != nil {
		info.KeyID, _ = in.keyID.Load().(string)
		info.PluginVersion = in.desc.GetPluginVersion()
		info.AAD = in.aad()
		info.Metadata = maps.Clone(in.conf.GetMetadata())
	}
	if p.inst != nil {
		info.Pid = p.inst.proc.Pid()
	}
	return info
}

// Stop stops supervision and the process: a graceful shutdown request,
// then SIGKILL to its process group. It returns when the process is gone
// and is safe to call more than once. Calls made after Stop fail with
// ErrUnavailable.
func (p *Plugin) Stop() {
	p.stopOnce.Do(func() {
		p.cancel()
		<-p.done
		p.mu.Lock()
		in := p.inst
		p.inst = nil
		p.mu.Unlock()
		if in != nil {
			in.stop()
		}
		p.setState(StateStopped, "")
		p.log.Info("plugin stopped")
	})
}

// acquire returns the serving process, waiting within ctx while one is
// being started.
func (p *Plugin) acquire(ctx context.Context, op string) (*instance, error) {
	for {
		p.mu.Lock()
		in, state, lastErr, changed := p.inst, p.state, p.lastErr, p.changed
		p.mu.Unlock()
		switch {
		case state == StateStopped:
			return nil, fmt.Errorf("%s block %q: %w: plugin is stopped", op, p.cfg.Name, ErrUnavailable)
		case state == StateFailed:
			return nil, fmt.Errorf("%s block %q: %w: plugin has failed: %s", op, p.cfg.Name, ErrUnavailable, lastErr)
		case in != nil && in.usable():
			return in, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("%s block %q: %w: no plugin process ready in time (state %s): %w",
				op, p.cfg.Name, ErrUnavailable, state, ctx.Err())
		}
	}
}

// current returns the serving process without waiting.
func (p *Plugin) current(op string) (*instance, error) {
	p.mu.Lock()
	in, state, lastErr := p.inst, p.state, p.lastErr
	p.mu.Unlock()
	if in == nil || !in.usable() {
		if lastErr != "" {
			return nil, fmt.Errorf("%s block %q: %w: plugin is %s: %s", op, p.cfg.Name, ErrUnavailable, state, lastErr)
		}
		return nil, fmt.Errorf("%s block %q: %w: plugin is %s", op, p.cfg.Name, ErrUnavailable, state)
	}
	return in, nil
}

// callerGone returns the caller's own context error when the caller gave
// up (cancelled, or its deadline came before the plugin's): that says
// nothing about the plugin, so it neither degrades the block nor counts
// as the plugin's timeout.
func (p *Plugin) callerGone(caller context.Context, op string) error {
	if err := caller.Err(); err != nil {
		return fmt.Errorf("%s block %q: caller gave up: %w", op, p.cfg.Name, err)
	}
	return nil
}

// callErr turns a failed call into ErrUnavailable, ErrDecrypt or a plain
// error, and asks for a restart when the connection to the process is
// lost.
func (p *Plugin) callErr(ctx context.Context, in *instance, op string, err error, trailer metadata.MD) error {
	st := status.Convert(err)
	msg := in.scrub.Replace(st.Message())
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Aborted, codes.FailedPrecondition:
		// An answer that carries the SDK's trailer came from a live
		// process: its KMS is unavailable, the process is not.
		if len(trailer.Get(sdk.OriginTrailer)) == 0 && in.lost(ctx) {
			in.markBroken(op + ": connection lost: " + msg)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s block %q: %w: no answer within the call deadline: %w", op, p.cfg.Name, ErrUnavailable, ctx.Err())
		}
		return fmt.Errorf("%s block %q: %w: %s", op, p.cfg.Name, ErrUnavailable, msg)
	}
	if op == opDecrypt {
		return p.decryptErr(msg)
	}
	return fmt.Errorf("%s block %q: plugin refused: %s", op, p.cfg.Name, msg)
}

// decryptErr logs why a decrypt failed and returns the opaque error.
func (p *Plugin) decryptErr(detail string) error {
	p.log.Debug("decrypt failed", "error", detail)
	return fmt.Errorf("%s block %q: %w", opDecrypt, p.cfg.Name, ErrDecrypt)
}

func (p *Plugin) setPath(path string) {
	p.mu.Lock()
	p.path = path
	p.mu.Unlock()
}

// setState records a state change and wakes everyone waiting for one.
func (p *Plugin) setState(state, lastErr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setStateLocked(state, lastErr)
}

func (p *Plugin) setStateLocked(state, lastErr string) {
	if lastErr != "" {
		p.lastErr = lastErr
	}
	if state == p.state {
		return
	}
	p.state = state
	close(p.changed)
	p.changed = make(chan struct{})
	p.metrics.setState(state)
}

// serve makes in the serving process.
func (p *Plugin) serve(in *instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inst = in
	p.last = in
	p.setStateLocked(StateReady, "")
}
