package e2e

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kmsbroker/kmsbroker/e2e/binaries"
	"github.com/kmsbroker/kmsbroker/e2e/loopback"
	"github.com/kmsbroker/kmsbroker/e2e/proc"
	"github.com/kmsbroker/kmsbroker/e2e/vault"
)

// healthCheckInterval is the opt-in KMS check of the blocks whose
// failures a scenario waits for: short, so a test sees a revoked token
// within seconds.
const healthCheckInterval = "1s"

// stateTimeout bounds the wait for a purpose to change state: several
// health check intervals plus a Vault round trip with its retries.
const stateTimeout = 20 * time.Second

// TestTransitKeyRotatedInVault runs the root purpose on Vault transit and
// rotates the transit key in Vault under the running broker: what was
// wrapped by the old key version still opens, and new scope keys are
// wrapped by the new version.
func TestTransitKeyRotatedInVault(t *testing.T) {
	t.Parallel()
	v := vault.Start(t) // first: without Vault the test skips at once
	layout := binaries.Product(t)
	tr := v.EnableTransit(t)
	tr.CreateKey(t, "broker-root")
	recovery := aeadBlock(t, "recovery-1", "recovery")
	blocks := []kmsBlock{vaultBlock(v, tr, "broker-root", tr.KeyToken(t, "broker-root"), "root"), recovery}

	b := newBroker(t, layout, blocks...)
	recoveryPath := writeFile(t, b.dir, "recovery.hcl", recovery.hcl(t))
	b.start()
	if code, ready := b.mustHealth(); code != 200 || !ready {
		t.Fatalf("health: got %d ready=%t, want 200 ready=true", code, ready)
	}
	admin := tokenCred(b.bootstrapAdmin(recoveryPath))
	b.createScope(admin, "o_before")
	before := b.encrypt(admin, "o_before", "row-1")
	// Transit names a key version "v<N>", which the broker records.
	b.wantKEKsWrappedBy(admin, "o_before", "v1")

	if got := tr.Rotate(t, "broker-root"); got != 2 {
		t.Fatalf("rotate transit key: latest version %d, want 2", got)
	}

	b.createScope(admin, "o_after")
	b.wantKEKsWrappedBy(admin, "o_after", "v2")
	after := b.encrypt(admin, "o_after", "row-2")
	b.ok(admin, "scopes rotate-keys", "-id=o_before")
	if got := b.kekWrappers(admin, "o_before"); got[1] != "v1" || got[2] != "v2" {
		t.Errorf("o_before KEK versions after rotating it: wrapped by %v, want 1 by v1, 2 by v2", got)
	}

	// A restart empties the key cache: the first KEK is unwrapped by
	// transit key version 1 again.
	b.restart(blocks...)
	b.decrypt(admin, before)
	b.decrypt(admin, after)
	b.decrypt(admin, b.encrypt(admin, "o_before", "row-3"))
}

// TestVaultTokenRevokedWhileRunning revokes the broker's Vault token
// under a running broker whose worker-auth purpose is on transit. The
// purpose must turn degraded with an error that says Vault refused the
// token, while root and recovery keep working; a new token in the config
// brings it back.
func TestVaultTokenRevokedWhileRunning(t *testing.T) {
	t.Parallel()
	v := vault.Start(t) // first: without Vault the test skips at once
	layout := binaries.Product(t)
	tr := v.EnableTransit(t)
	tr.CreateKey(t, "worker-auth")
	brokerToken := tr.KeyToken(t, "worker-auth")

	workerAuth := func(tok vault.Token) kmsBlock {
		blk := vaultBlock(v, tr, "worker-auth", tok, "worker-auth")
		blk.Settings["health_check_interval"] = healthCheckInterval
		return blk
	}
	root := aeadBlock(t, "root-1", "root")
	recovery := aeadBlock(t, "recovery-1", "recovery")
	b := newBroker(t, layout, root, workerAuth(brokerToken), recovery)
	recoveryPath := writeFile(t, b.dir, "recovery.hcl", recovery.hcl(t))
	workerPath := writeFile(t, b.dir, "worker.hcl",
		vaultBlock(v, tr, "worker-auth", tr.KeyToken(t, "worker-auth"), "worker-auth").hcl(t))
	worker := workerCred(workerPath, "edge-1")
	b.start()
	admin := tokenCred(b.bootstrapAdmin(recoveryPath))
	b.createScope(admin, "o_app")
	stored := b.encrypt(admin, "o_app", "row-1")

	if st := b.status(worker); st.purpose(b, "worker-auth").State != "ready" {
		t.Fatalf("worker-auth before revocation: got %+v, want ready", st.purpose(b, "worker-auth"))
	}

	v.RevokeToken(t, brokerToken)

	wa := b.waitPurpose(admin, "worker-auth", "degraded")
	t.Logf("worker-auth after revocation: state %s, last error %q", wa.State, wa.LastError)
	wantContains(t, "worker-auth last error after revocation", wa.LastError, "refused the token", "403", "permission denied")

	t.Run("workers are refused", func(t *testing.T) {
		b := b.in(t)
		// The broker's own KMS failed, not the worker's token: the worker
		// is told to retry, not that it is unauthenticated.
		stderr := b.fails(worker, "status")
		t.Logf("a worker is told: %s", stderr)
		wantContains(t, "status as a worker with the broker's token revoked", stderr, "unavailable")
		if strings.Contains(stderr, "not authenticated") {
			t.Errorf("the worker was blamed for the broker's KMS failure: %s", stderr)
		}
	})

	t.Run("other purposes keep working", func(t *testing.T) {
		b := b.in(t)
		if code, ready := b.mustHealth(); code != 200 || !ready {
			t.Errorf("health with worker-auth degraded: got %d ready=%t, want 200 ready=true", code, ready)
		}
		st := b.status(admin)
		for _, name := range []string{"root", "recovery"} {
			if p := st.purpose(b, name); p.State != "ready" {
				t.Errorf("status of %s with worker-auth degraded: got %+v, want ready", name, p)
			}
		}
		b.decrypt(admin, stored)
		b.decrypt(admin, b.encrypt(admin, "o_app", "row-2"))
		b.createScope(recoveryCred(recoveryPath), "o_more")
	})

	t.Run("a new token and a reload bring it back", func(t *testing.T) {
		b := b.in(t)
		b.cfg.Blocks = []kmsBlock{root, workerAuth(tr.KeyToken(t, "worker-auth")), recovery}
		b.writeConfig()
		if err := syscall.Kill(b.proc.Pid(), syscall.SIGHUP); err != nil {
			t.Fatalf("send SIGHUP to brokerd: %v", err)
		}
		select {
		case <-b.proc.Done():
			t.Fatalf("brokerd exited on SIGHUP (%v) instead of reloading its config", b.proc.Err())
		case <-time.After(time.Second):
		}
		wa := b.waitPurpose(admin, "worker-auth", "ready")
		if wa.LastError != "" {
			t.Errorf("worker-auth after the reload: last error %q, want none", wa.LastError)
		}
		if st := b.status(worker); !st.Ready {
			t.Errorf("status as a worker after the reload: got ready=false, want true")
		}
		b.decrypt(admin, stored)
	})
}

// waitPurpose polls status until purpose name is in state, and returns
// its status then. It fails the test after stateTimeout.
func (b *broker) waitPurpose(c cred, name, state string) purposeOut {
	b.t.Helper()
	deadline := time.Now().Add(stateTimeout)
	for {
		p := b.status(c).purpose(b, name)
		if p.State == state {
			return p
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("status of %s: still %+v after %s, want state %s", name, p, stateTimeout, state)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestBrokerStartsWithUnreachableTransitRoot starts the broker with root
// on a transit server it cannot use. It must stay up, say it is not ready
// on /v1/sys/health, and say why in status and in its log.
func TestBrokerStartsWithUnreachableTransitRoot(t *testing.T) {
	t.Parallel()
	layout := binaries.Product(t)

	for _, tc := range []struct {
		name string
		// block returns the root block; it may skip t.
		block func(t *testing.T) kmsBlock
		// cause is what the error must say.
		cause string
	}{
		{
			name: "closed port",
			block: func(t *testing.T) kmsBlock {
				addr := fmt.Sprintf("http://%s:%d", loopback.Host, loopback.FreePort(t))
				return transitBlock(addr, "transit", "broker-root", "s.e2e-no-such-token", "root")
			},
			cause: "connection refused",
		},
		{
			name: "revoked token",
			block: func(t *testing.T) kmsBlock {
				v := vault.Start(t)
				tr := v.EnableTransit(t)
				tr.CreateKey(t, "broker-root")
				tok := tr.KeyToken(t, "broker-root")
				v.RevokeToken(t, tok)
				return vaultBlock(v, tr, "broker-root", tok, "root")
			},
			cause: "was refused by Vault (HTTP 403)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			recovery := aeadBlock(t, "recovery-1", "recovery")
			b := newBroker(t, layout, tc.block(t), recovery)
			recoveryPath := writeFile(t, b.dir, "recovery.hcl", recovery.hcl(t))

			err := b.startErr()
			if errors.Is(err, proc.ErrExited) {
				t.Fatalf("brokerd exited instead of staying up with root unreachable: %v", err)
			} else if err != nil {
				t.Fatal(err)
			}
			select {
			case <-b.proc.Done():
				t.Fatalf("brokerd exited after it started: %v\n%s", b.proc.Err(), b.log())
			case <-time.After(2 * time.Second):
			}

			if code, ready := b.mustHealth(); code != 503 || ready {
				t.Errorf("GET /v1/sys/health with root unreachable: got %d ready=%t, want 503 ready=false", code, ready)
			}
			st := b.status(recoveryCred(recoveryPath))
			if st.Ready {
				t.Errorf("status with root unreachable: got ready=true, want false")
			}
			root := st.purpose(b, "root")
			t.Logf("status of root: state %s, last error %q", root.State, root.LastError)
			if root.State == "ready" {
				t.Errorf("status of root: got state ready, want another state while its KMS is unreachable")
			}
			wantContains(t, "status of root: last error", root.LastError, tc.cause)
			wantContains(t, "brokerd log", b.log(), tc.cause)

			// Without root no scope can be made, and the error says so
			// without a stack of internals.
			stderr := b.fails(recoveryCred(recoveryPath), "scopes create", "-id=o_x")
			t.Logf("scopes create is told: %s", stderr)
			wantContains(t, "scopes create with root unreachable", stderr, "unavailable")
		})
	}
}
