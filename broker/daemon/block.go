package daemon

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	wrapping "github.com/hashicorp/go-kms-wrapping/v2"

	"github.com/kmsbroker/kmsbroker/broker/config"
	"github.com/kmsbroker/kmsbroker/broker/pluginhost"
	"github.com/kmsbroker/kmsbroker/broker/purpose"
)

// Start retry bounds for a block whose plugin could not start: quick
// enough to notice a KMS that came back, slow enough not to hammer one
// that is down.
const (
	startRetryMin = time.Second
	startRetryMax = time.Minute
)

// block is one KMS block of the running config. It serves its purposes
// through its plugin and keeps the broker up when that plugin cannot
// start: the block is then "failed", calls fail with a retryable error
// that says why, and the start is retried with backoff. A reload swaps
// the plugin underneath.
type block struct {
	cfg    *config.KMS
	pc     pluginhost.Config
	logger hclog.Logger

	mu      sync.RWMutex
	plugin  *pluginhost.Plugin // nil while not started
	lastErr string

	stop chan struct{}
	done chan struct{}
}

var _ purpose.Wrapper = (*block)(nil)

// errBlockDown says a block has no running plugin; it wraps
// pluginhost.ErrUnavailable so callers treat it as retryable.
var errBlockDown = fmt.Errorf("kms block is not running: %w", pluginhost.ErrUnavailable)

// fatalStartError reports start failures that retrying cannot fix: the
// executable is missing, has the wrong digest or is not a plugin, the
// config file names a setting the plugin does not have, or the plugin
// finds a value malformed. A value the KMS refused is not fatal: the key
// may be enabled, or a permission propagate, later.
func fatalStartError(err error) bool {
	return errors.Is(err, config.ErrInvalid) ||
		(errors.Is(err, pluginhost.ErrInvalidConfig) && !errors.Is(err, pluginhost.ErrSettingRefused)) ||
		errors.Is(err, pluginhost.ErrPluginNotFound) ||
		errors.Is(err, pluginhost.ErrChecksumMismatch) ||
		errors.Is(err, pluginhost.ErrBadPlugin)
}

// startBlock starts blk's plugin. A fatal start error is returned; any
// other leaves the block failed and retrying in the background.
func startBlock(ctx context.Context, blk *config.KMS, pc pluginhost.Config, logger hclog.Logger) (*block, error) {
	b := &block{cfg: blk, pc: pc, logger: logger.With("block", blk.Name), stop: make(chan struct{}), done: make(chan struct{})}
	p, err := pluginhost.Start(ctx, pc)
	if err == nil {
		b.plugin = p
		close(b.done)
		return b, nil
	}
	if fatalStartError(err) {
		close(b.done)
		return nil, err
	}
	b.lastErr = err.Error()
	b.logger.Error("kms block failed to start; retrying in the background", "error", err)
	go b.retryStart()
	return b, nil
}

func (b *block) retryStart() {
	defer close(b.done)
	delay := startRetryMin
	for {
		// Full jitter spreads the retries of brokers that failed together.
		wait := delay/2 + rand.N(delay/2+1)
		select {
		case <-b.stop:
			return
		case <-time.After(wait):
		}
		// A reload may have changed the config or installed a plugin.
		b.mu.RLock()
		pc, running := b.pc, b.plugin != nil
		b.mu.RUnlock()
		if running {
			return
		}
		p, err := pluginhost.Start(context.Background(), pc)
		if err == nil {
			b.mu.Lock()
			stopped, replaced := b.stopped(), b.plugin != nil
			if !stopped && !replaced {
				b.plugin, b.lastErr = p, ""
			}
			b.mu.Unlock()
			if stopped || replaced {
				p.Stop()
				return
			}
			info := p.Info()
			b.logger.Info("kms block started after retry", "plugin", info.Type, "pid", info.Pid)
			return
		}
		b.mu.Lock()
		if b.plugin == nil {
			b.lastErr = err.Error()
		}
		b.mu.Unlock()
		b.logger.Warn("kms block start retry failed", "error", err, "next_retry", delay)
		delay = min(delay*2, startRetryMax)
	}
}

func (b *block) stopped() bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}

func (b *block) current() (*pluginhost.Plugin, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.plugin == nil {
		return nil, fmt.Errorf("%w: %s: %s", errBlockDown, b.cfg.Name, b.lastErr)
	}
	return b.plugin, nil
}

// Encrypt implements purpose.Wrapper.
func (b *block) Encrypt(ctx context.Context, plaintext, aad []byte) (*wrapping.BlobInfo, error) {
	p, err := b.current()
	if err != nil {
		return nil, err
	}
	return p.Encrypt(ctx, plaintext, aad)
}

// Decrypt implements purpose.Wrapper.
func (b *block) Decrypt(ctx context.Context, blob *wrapping.BlobInfo, aad []byte) ([]byte, error) {
	p, err := b.current()
	if err != nil {
		return nil, err
	}
	return p.Decrypt(ctx, blob, aad)
}

// Info reports the plugin's state, or "failed" with the start error while
// no plugin runs.
func (b *block) Info() pluginhost.Info {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.plugin == nil {
		return pluginhost.Info{Name: b.cfg.Name, Type: b.cfg.Type, State: pluginhost.StateFailed, LastError: b.lastErr}
	}
	return b.plugin.Info()
}

// swap installs a new, already started plugin and returns the old one for
// the caller to stop once calls in flight have moved over. It installs
// nothing and returns false once the block is stopping.
func (b *block) swap(cfg *config.KMS, pc pluginhost.Config, p *pluginhost.Plugin) (*pluginhost.Plugin, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped() {
		return nil, false
	}
	old := b.plugin
	b.cfg, b.pc, b.plugin, b.lastErr = cfg, pc, p, ""
	return old, true
}

// Stop ends any start retry and stops the plugin.
func (b *block) Stop() {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	<-b.done
	b.mu.Lock()
	p := b.plugin
	b.plugin = nil
	b.mu.Unlock()
	if p != nil {
		p.Stop()
	}
}
