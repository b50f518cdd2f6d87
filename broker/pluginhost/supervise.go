package pluginhost

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Restart policy.
const (
	// backoffBase is the first restart delay: short, because a crash is
	// usually a one-off and calls are waiting.
	backoffBase = 100 * time.Millisecond
	// DefaultMaxRestartBackoff caps the delay, so a repaired binary or KMS
	// is picked up within half a minute while a crash loop costs at most
	// two starts a minute.
	DefaultMaxRestartBackoff = 30 * time.Second
	// stableAfter is how long a process must have served before its loss
	// starts the backoff over; a process that dies sooner is crash-looping.
	stableAfter = 30 * time.Second
	// livenessMisses is how many health calls in a row may fail before the
	// process is replaced: one miss can be a pause, two is a hung plugin.
	livenessMisses = 2
	// exitNoticeWait is how long a lost connection waits for the process
	// to be reaped, so the reason recorded is the exit when there is one.
	exitNoticeWait = 200 * time.Millisecond
)

// Operation names, as used in errors and metrics.
const (
	opEncrypt = "encrypt"
	opDecrypt = "decrypt"
	opHealth  = "health"
	opCheck   = "kms_check"
)

// supervise keeps the block served until Stop: it watches the serving
// process and replaces it, with backoff, when it is lost.
func (p *Plugin) supervise(in *instance) {
	defer close(p.done)
	failures := 0
	for {
		reason := p.watch(in)
		if reason == "" {
			return // stopping; Stop ends the process
		}
		p.log.Warn("plugin lost; restarting", "pid", in.proc.Pid(), "error", reason)
		p.mu.Lock()
		p.inst = nil
		p.setStateLocked(StateRestarting, reason)
		p.mu.Unlock()
		in.kill()
		if time.Since(in.readyAt) >= stableAfter {
			failures = 0
		}

		delay := backoff(failures, p.cfg.MaxRestartBackoff)
		for {
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(delay):
			}
			failures++
			next, err := p.launch(p.ctx)
			if err == nil {
				p.mu.Lock()
				p.restarts++
				p.mu.Unlock()
				p.metrics.restarted()
				p.serve(next)
				in = next
				break
			}
			if p.ctx.Err() != nil {
				return
			}
			state := StateRestarting
			if permanent(err) {
				state = StateFailed
			}
			delay = backoff(failures, p.cfg.MaxRestartBackoff)
			p.log.Error("plugin restart failed", "attempt", failures, "next_in", delay, "error", err)
			p.setState(state, err.Error())
		}
	}
}

// watch returns why in was lost, or "" when the plugin is stopping. It
// also runs the liveness call and, when configured, the KMS check.
func (p *Plugin) watch(in *instance) string {
	liveness := time.NewTicker(p.cfg.LivenessInterval)
	defer liveness.Stop()
	var checkTick <-chan time.Time
	if p.cfg.HealthCheckInterval > 0 {
		t := time.NewTicker(p.cfg.HealthCheckInterval)
		defer t.Stop()
		checkTick = t.C
	}
	// recheck brings a degraded plugin back to ready when its KMS
	// answers again, also when no call reaches it.
	recheck := time.NewTicker(p.cfg.RecheckInterval)
	defer recheck.Stop()
	checked := make(chan error, 1)
	checking := false
	check := func() {
		if !checking {
			checking = true
			go func() { checked <- p.checkKMS(in) }()
		}
	}
	misses := 0
	for {
		select {
		case <-p.ctx.Done():
			return ""
		case <-in.proc.exited:
			return exitReason(in)
		case <-in.broken:
			// A lost connection usually means the process died; say so
			// rather than how a call noticed.
			select {
			case <-in.proc.exited:
				return exitReason(in)
			case <-time.After(exitNoticeWait):
				return in.reason
			}
		case <-liveness.C:
			ctx, cancel := context.WithTimeout(p.ctx, p.cfg.Timeout)
			err := p.ping(ctx, in)
			cancel()
			if err == nil {
				misses = 0
				continue
			}
			misses++
			p.log.Warn("plugin health call failed", "misses", misses, "error", err)
			if misses >= livenessMisses {
				return fmt.Sprintf("no answer to %d health calls in a row: %v", misses, err)
			}
		case <-checkTick:
			check()
		case <-recheck.C:
			p.mu.Lock()
			degraded := p.state == StateDegraded && p.inst == in
			p.mu.Unlock()
			if degraded {
				check()
			}
		case err := <-checked:
			checking = false
			p.recordCheck(in, "kms health check", err)
		}
	}
}

func exitReason(in *instance) string {
	return fmt.Sprintf("process %d exited (%s)", in.proc.Pid(), in.proc.exitState())
}

// checkKMS encrypts and decrypts a random probe, which reaches the KMS.
func (p *Plugin) checkKMS(in *instance) error {
	start := time.Now()
	err := func() error {
		probe := make([]byte, 16)
		if _, err := rand.Read(probe); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(p.ctx, p.cfg.Timeout)
		defer cancel()
		blob, err := p.encrypt(ctx, probe, []byte("kmsbroker health check"))
		if err != nil {
			return err
		}
		got, err := p.decrypt(ctx, blob, []byte("kmsbroker health check"))
		if err != nil {
			return err
		}
		if string(got) != string(probe) {
			return fmt.Errorf("%s block %q: decrypt returned other bytes than were encrypted", opCheck, p.cfg.Name)
		}
		return nil
	}()
	p.metrics.observe(opCheck, err, time.Since(start))
	return err
}

// recordCheck moves between ready and degraded on the result of a KMS
// check or of a call that reached the KMS; source names which, for the
// log. A call that could not be served (timeout, KMS unavailable) counts
// as a failure; a refused input does not.
func (p *Plugin) recordCheck(in *instance, source string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inst != in {
		return
	}
	switch {
	case err != nil && p.state == StateReady:
		p.log.Warn(source+" failed; plugin degraded", "error", err)
		p.setStateLocked(StateDegraded, err.Error())
	case err == nil && p.state == StateDegraded:
		p.log.Info(source + " succeeded; plugin ready")
		p.setStateLocked(StateReady, "")
	}
}

// recordCall feeds a call's outcome to recordCheck, so a block whose calls
// time out turns degraded even without the opt-in KMS check.
func (p *Plugin) recordCall(in *instance, op string, err error) {
	switch {
	case err == nil:
		p.recordCheck(in, op, nil)
	case errors.Is(err, ErrUnavailable):
		p.recordCheck(in, op, err)
	}
}

// permanent reports whether a start failed for a reason that retrying is
// unlikely to fix.
func permanent(err error) bool {
	return errors.Is(err, ErrInvalidConfig) || errors.Is(err, ErrPluginNotFound) ||
		errors.Is(err, ErrChecksumMismatch) || errors.Is(err, ErrBadPlugin)
}

// backoff is the delay before restart attempt n (from 0): exponential
// from backoffBase, capped at maxDelay, with "equal jitter" (a random
// point in the upper half) so that blocks that failed together do not
// restart in lockstep.
func backoff(n int, maxDelay time.Duration) time.Duration {
	d := maxDelay
	if n < 20 {
		d = min(backoffBase<<n, maxDelay)
	}
	half := d / 2
	j, err := rand.Int(rand.Reader, big.NewInt(int64(half)+1))
	if err != nil {
		return d
	}
	return half + time.Duration(j.Int64())
}
