package daemon

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	wrapping "github.com/hashicorp/go-kms-wrapping/v2"

	"github.com/kmsbroker/kmsbroker/broker/config"
	"github.com/kmsbroker/kmsbroker/broker/pluginhost"
	"github.com/kmsbroker/kmsbroker/broker/purpose"
)

// retireMargin is added to a replaced plugin's call timeout before it is
// stopped: every call that took the old plugin before the swap has then
// ended, even one whose goroutine was slow to start its deadline. A call
// that still finds it stopped fails as unavailable and the router retries
// it once on the new plugin.
const retireMargin = time.Second

// reloadState is what a reload changes outside the kms blocks.
type reloadState struct {
	// mu lets one reload run at a time.
	mu sync.Mutex
	// cert is the listener's certificate; GetCertificate serves it, so
	// a reload reaches every new connection.
	cert atomic.Pointer[tls.Certificate]
}

// loadCertificate reads the listener's certificate and key files and
// serves them from now on. On error the current certificate stays.
func (r *reloadState) loadCertificate(l config.Listener) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(l.TLSCertFile, l.TLSKeyFile)
	if err != nil {
		return nil, err
	}
	r.cert.Store(&cert)
	return &cert, nil
}

// certificate is the listener's tls.Config.GetCertificate.
func (r *reloadState) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// Reload applies cfg, the config file read again and validated as for
// Start, to the running broker. The broker serves throughout.
//
// Applied live:
//   - log_level, on the broker's logger and every logger named from it;
//     plugin processes started later log at the new level.
//   - the listener's TLS certificate and key, read again from their files
//     even when the names are unchanged, so a renewed certificate is
//     served to new connections. If they cannot be read, the current
//     certificate stays.
//   - each kms block whose plugin settings, plugin_path, plugin_sha256,
//     timeouts, health_check_interval or plugins directory changed. A new
//     plugin process is started; it must configure, answer its health
//     call and decrypt a probe it encrypted. A block serving root or
//     previous-root protects stored scope keys, so its new plugin must
//     also decrypt a probe the running plugin encrypted: a reload never
//     moves root to a key that cannot open what the old one wrapped.
//     Only then does the new process replace the old one, which is
//     stopped once calls in flight on it have ended. On any failure the
//     running process stays and the error is logged.
//
// Logged as "restart required" and otherwise ignored, since the running
// broker is built on them: the listener address and tls_disable,
// storage, audit, auth, a block's type, and which blocks serve which
// purposes (a purpose or block added, removed or moved). Blocks are
// matched by the set of purposes they serve.
//
// Reload returns every failure, joined; each is logged too. It must not
// be called after Stop. Concurrent calls run one at a time.
func (d *Daemon) Reload(ctx context.Context, cfg *config.Config) error {
	d.reload.mu.Lock()
	defer d.reload.mu.Unlock()
	d.logger.Info("reloading config")

	d.reloadLogLevel(cfg.LogLevel)
	for _, what := range restartRequired(d.cfg, cfg) {
		d.logger.Warn("restart required; change ignored", "setting", what)
	}

	var errs []error
	if err := d.reloadTLS(cfg.Listener); err != nil {
		errs = append(errs, err)
	}

	next := make(map[string]*config.KMS, len(cfg.KMS))
	for _, k := range cfg.KMS {
		next[purposeKey(k.Purposes)] = k
	}
	var retired []retiree
	for _, running := range d.cfg.KMS {
		k, ok := next[purposeKey(running.Purposes)]
		if !ok || k.Type != running.Type {
			continue // reported by restartRequired
		}
		old, err := d.reloadBlock(ctx, d.blocks[running.Name], k, cfg.Plugins.Directory)
		if err != nil {
			d.logger.Error("kms block reload failed; the running plugin stays", "block", running.Name, "error", err)
			errs = append(errs, fmt.Errorf("reload kms block %s: %w", running.Name, err))
		}
		if old.plugin != nil {
			retired = append(retired, old)
		}
	}
	d.retire(ctx, retired)

	if err := errors.Join(errs...); err != nil {
		d.logger.Warn("config reloaded with errors", "errors", len(errs))
		return err
	}
	d.logger.Info("config reloaded")
	return nil
}

// reloadLogLevel sets the broker's log level.
func (d *Daemon) reloadLogLevel(name string) {
	level := hclog.LevelFromString(name)
	if level == hclog.NoLevel || level == d.logger.GetLevel() {
		return
	}
	// Logged before the change, so that raising the level does not hide
	// the line that says so.
	d.logger.Info("log level changed", "from", d.logger.GetLevel().String(), "to", level.String())
	d.logger.SetLevel(level)
}

// reloadTLS reads the listener's certificate again.
func (d *Daemon) reloadTLS(l config.Listener) error {
	if d.cfg.Listener.TLSDisable || l.TLSDisable {
		return nil
	}
	cert, err := d.reload.loadCertificate(l)
	if err != nil {
		d.logger.Error("listener TLS certificate reload failed; the current one stays", "error", err)
		return fmt.Errorf("reload listener tls: %w", err)
	}
	if cert.Leaf != nil {
		d.logger.Info("listener TLS certificate loaded", "subject", cert.Leaf.Subject.String(),
			"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// retiree is a plugin replaced by a reload, to be stopped once the calls
// in flight on it are over.
type retiree struct {
	plugin *pluginhost.Plugin
	grace  time.Duration
}

// retire stops the replaced plugins once the longest grace has passed, or
// at once when ctx ends or the broker stops.
func (d *Daemon) retire(ctx context.Context, rs []retiree) {
	if len(rs) == 0 {
		return
	}
	var grace time.Duration
	for _, r := range rs {
		grace = max(grace, r.grace)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-d.stopping:
	}
	for _, r := range rs {
		r.plugin.Stop()
	}
}

// reloadBlock replaces b's plugin with one started from next, if next
// differs from what b runs, in the plugin directory dir. It returns the
// replaced plugin, if any, for the caller to retire.
func (d *Daemon) reloadBlock(ctx context.Context, b *block, next *config.KMS, dir string) (retiree, error) {
	running, runningPC := b.config()
	k := *next
	// The block keeps its name: status and the daemon's map know it by
	// that name, and a reordered file may number it differently.
	k.Name = running.Name
	pc := pluginhost.BlockConfig(&k, dir, d.logger)
	if !pluginChanged(runningPC, pc) {
		return retiree{}, nil
	}
	// The candidate records nothing until it serves: the block's series
	// belong to the running plugin until the swap.
	pc.Registerer, pc.MetricsPaused = d.registry, true

	log := d.logger.With("block", k.Name)
	log.Info("kms block changed; starting a new plugin")
	p, err := pluginhost.Start(ctx, pc)
	if err != nil {
		return retiree{}, err
	}
	if err := probe(ctx, p); err != nil {
		p.Stop()
		return retiree{}, err
	}
	if servesStoredKeys(k.Purposes) {
		if err := sameKey(ctx, b, p, log); err != nil {
			p.Stop()
			return retiree{}, err
		}
	}

	oldInfo := b.Info()
	serving := pc
	serving.MetricsPaused = false
	old, ok := b.swap(&k, serving, p)
	if !ok {
		p.Stop()
		return retiree{}, errors.New("the broker is stopping")
	}
	p.TakeOverMetrics(old)
	d.logger.Info("kms block reloaded", append(b.effective(), "old_pid", oldInfo.Pid)...)
	if slices.Contains(k.Purposes, purpose.Root) {
		// Learns the key id root wraps with now, and readiness.
		d.tryProbe(ctx)
	}
	timeout := runningPC.Timeout
	if timeout <= 0 {
		timeout = pluginhost.DefaultTimeout
	}
	return retiree{plugin: old, grace: timeout + retireMargin}, nil
}

// errOtherKey says a reloaded root or previous-root block would use a key
// that cannot open what the running one wrapped.
var errOtherKey = errors.New("the new plugin cannot decrypt what the running one encrypts; " +
	"the block protects stored scope keys, so its key cannot change on reload: " +
	"to move to a new root key, configure it as root and the current one as previous-root, restart, and rewrap")

// sameKey checks that p decrypts a probe that b's running plugin
// encrypted. When b runs no plugin, or its plugin cannot encrypt now,
// there is nothing to compare with: that is logged and allowed, since the
// running broker cannot use the old key either.
//
// TODO: compare against a root blob from the store instead, so that a
// block whose old plugin is down is checked too.
func sameKey(ctx context.Context, b *block, p *pluginhost.Plugin, log hclog.Logger) error {
	value := make([]byte, probeSize)
	if _, err := rand.Read(value); err != nil {
		return fmt.Errorf("make probe: %w", err)
	}
	cur, err := b.current()
	if err == nil {
		var blob *wrapping.BlobInfo
		if blob, err = cur.Encrypt(ctx, value, []byte(probeAAD)); err == nil {
			got, err := p.Decrypt(ctx, blob, []byte(probeAAD))
			if err != nil || subtle.ConstantTimeCompare(got, value) != 1 {
				return errOtherKey
			}
			return nil
		}
	}
	log.Warn("cannot check that the new plugin opens what the running one wrapped", "error", err)
	return nil
}

// servesStoredKeys reports whether purposes include one whose key
// protects stored scope keys.
func servesStoredKeys(purposes []purpose.Purpose) bool {
	return slices.Contains(purposes, purpose.Root) || slices.Contains(purposes, purpose.PreviousRoot)
}

// config returns what b runs now.
func (b *block) config() (*config.KMS, pluginhost.Config) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.cfg, b.pc
}

// pluginChanged reports whether next would run another plugin process
// than running: a field of pluginhost.Config that reaches the process
// differs. Name, logger, metrics and the settings check do not.
func pluginChanged(running, next pluginhost.Config) bool {
	return running.Type != next.Type ||
		running.Directory != next.Directory ||
		running.Path != next.Path ||
		running.SHA256 != next.SHA256 ||
		running.Timeout != next.Timeout ||
		running.StartTimeout != next.StartTimeout ||
		running.LivenessInterval != next.LivenessInterval ||
		running.HealthCheckInterval != next.HealthCheckInterval ||
		running.MaxRestartBackoff != next.MaxRestartBackoff ||
		!maps.Equal(running.Settings, next.Settings)
}

// purposeKey names a set of purposes, whatever their order.
func purposeKey(ps []purpose.Purpose) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.String()
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

// restartRequired lists what differs between the running config and next
// that a reload cannot apply. Entries name settings, never values.
func restartRequired(running, next *config.Config) []string {
	var out []string
	if running.Listener.Address != next.Listener.Address {
		out = append(out, "listener address")
	}
	if running.Listener.GRPCAddress != next.Listener.GRPCAddress {
		out = append(out, "listener grpc_address")
	}
	if running.Listener.TLSDisable != next.Listener.TLSDisable {
		out = append(out, "listener tls_disable")
	}
	if running.CacheSize != next.CacheSize {
		out = append(out, "cache_size")
	}
	if running.Listener.MaxPlaintextBytes != next.Listener.MaxPlaintextBytes {
		out = append(out, "listener max_plaintext_bytes")
	}
	if running.Storage != next.Storage {
		out = append(out, "storage")
	}
	if running.Audit != next.Audit {
		out = append(out, "audit")
	}
	if running.Auth.OneTimeTokenValidity != next.Auth.OneTimeTokenValidity ||
		!slices.Equal(running.Auth.WorkerScopes, next.Auth.WorkerScopes) {
		out = append(out, "auth")
	}

	have := make(map[string]*config.KMS, len(running.KMS))
	for _, k := range running.KMS {
		have[purposeKey(k.Purposes)] = k
	}
	want := make(map[string]*config.KMS, len(next.KMS))
	for _, k := range next.KMS {
		want[purposeKey(k.Purposes)] = k
	}
	for _, key := range slices.Sorted(maps.Keys(have)) {
		k, ok := want[key]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("kms block %s: no block serves exactly purposes %s any more", have[key].Name, key))
		case k.Type != have[key].Type:
			out = append(out, fmt.Sprintf("kms block %s: type %s changed to %s", have[key].Name, have[key].Type, k.Type))
		}
	}
	for _, key := range slices.Sorted(maps.Keys(want)) {
		if _, ok := have[key]; !ok {
			out = append(out, fmt.Sprintf("kms block serving purposes %s added", key))
		}
	}
	return out
}
