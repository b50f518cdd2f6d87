package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kmsbroker/kmsbroker/client"
	"github.com/kmsbroker/kmsbroker/e2e/binaries"
	"github.com/kmsbroker/kmsbroker/e2e/brokerd"
)

// envelope is one successful Encrypt: what a caller would have stored.
type envelope struct {
	scope, purpose string
	plaintext      string
	aad            string
	ciphertext     []byte
	version        uint32
}

// fixture is a running broker with an admin client and one scope, o_1.
type fixture struct {
	t      *testing.T
	b      *brokerd.Broker
	admin  string
	c      *client.Client
	issued []envelope
}

// newFixture starts a broker on storage cfg (Storage, DBPath or
// PostgresURL set by the caller) with aead root and recovery blocks, and
// creates scope o_1.
func newFixture(t *testing.T, cfg brokerd.Config) *fixture {
	t.Helper()
	layout := binaries.Product(t)
	root, _ := brokerd.AEAD(t, "root-1", "root")
	recovery, _ := brokerd.AEAD(t, "recovery-1", "recovery")
	cfg.Blocks = []brokerd.Block{root, recovery}
	b := brokerd.New(t, layout, cfg)
	b.Start()
	admin := b.Bootstrap(b.WriteRecoveryFile(recovery))
	f := &fixture{t: t, b: b, admin: admin, c: b.Client(client.Token(admin))}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := f.c.CreateScope(ctx, "o_1", ""); err != nil {
		t.Fatalf("CreateScope o_1: %v", err)
	}
	return f
}

// restart starts the broker again after a Kill or Stop and gives the
// fixture a new client: the old client's connection sits in gRPC's
// reconnect backoff for up to a second after the broker went away.
func (f *fixture) restart() {
	f.t.Helper()
	f.b.Start()
	f.c = f.b.Client(client.Token(f.admin))
}

// encrypt encrypts a fresh plaintext in o_1 and remembers the envelope.
func (f *fixture) encrypt(ctx context.Context) error {
	n := len(f.issued)
	e := envelope{scope: "o_1", purpose: dataPurposes[n%len(dataPurposes)],
		plaintext: fmt.Sprintf("plaintext-%d", n), aad: fmt.Sprintf("row-%d", n)}
	ct, v, err := f.c.Encrypt(ctx, e.scope, e.purpose, []byte(e.plaintext), []byte(e.aad))
	if err != nil {
		return err
	}
	e.ciphertext, e.version = ct, v
	f.issued = append(f.issued, e)
	return nil
}

func (f *fixture) mustEncrypt() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.encrypt(ctx); err != nil {
		f.t.Fatalf("Encrypt: %v", err)
	}
}

// decryptAll decrypts every envelope issued so far with c.
func decryptAll(t *testing.T, c *client.Client, issued []envelope) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	failed := 0
	for _, e := range issued {
		got, err := c.Decrypt(ctx, e.scope, e.purpose, e.ciphertext, []byte(e.aad))
		if err != nil || string(got) != e.plaintext {
			failed++
			if failed <= 5 {
				t.Errorf("Decrypt of the %s envelope of key version %d (%s): got %q, %v; want %q",
					e.purpose, e.version, e.aad, got, err, e.plaintext)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d envelopes issued did not decrypt", failed, len(issued))
	}
}

// storeUnavailable is the message of every call that fails on a broken
// store: the API's one text for a backend that may come back
// (broker/server/errors.go), which names nothing of the store.
const storeUnavailable = "a key backend is unavailable; retry later"

// wantCleanError checks err is how a broken store must look to a caller:
// an error with the documented message, which shows nothing of the store.
func wantCleanError(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s while the store is broken: succeeded, want an error", what)
		return
	}
	msg := status.Convert(err).Message()
	if msg != storeUnavailable {
		t.Errorf("%s while the store is broken: message %q, want %q", what, msg, storeUnavailable)
	}
	for _, detail := range []string{"sqlite", "SQLITE", "pgx", "postgres", "SQLSTATE", "broker.db", "disk"} {
		if strings.Contains(msg, detail) {
			t.Errorf("%s while the store is broken: message %q shows store detail %q", what, msg, detail)
		}
	}
}

// wantUnavailable checks every error in errs (by call) is UNAVAILABLE:
// a broken backend, retryable, not the caller's fault.
func wantUnavailable(t *testing.T, errs map[string]error) {
	t.Helper()
	t.Run("store errors are UNAVAILABLE", func(t *testing.T) {
		for what, err := range errs {
			if code := status.Code(err); code != codes.Unavailable {
				t.Errorf("%s while the store is broken: got code %s (%v), want %s", what, code, err, codes.Unavailable)
			}
		}
	})
}
