package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"github.com/hashicorp/go-kms-wrapping/v2/aead"
	"google.golang.org/protobuf/proto"

	"github.com/kmsbroker/kmsbroker/broker/purpose"
	"github.com/kmsbroker/kmsbroker/broker/store/storetest"
)

// aeadWrapper adapts go-kms-wrapping's real AES-GCM wrapper to
// purpose.Wrapper: the same wrapper the aead plugin serves, in-process.
type aeadWrapper struct{ w *aead.Wrapper }

func newAEAD(t testing.TB) *aeadWrapper {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	w := aead.NewWrapper()
	if err := w.SetAesGcmKeyBytes(key); err != nil {
		t.Fatal(err)
	}
	if _, err := w.SetConfig(context.Background(), wrapping.WithKeyId("k1")); err != nil {
		t.Fatal(err)
	}
	return &aeadWrapper{w: w}
}

func (a *aeadWrapper) Encrypt(ctx context.Context, pt, aad []byte) (*wrapping.BlobInfo, error) {
	return a.w.Encrypt(ctx, pt, wrapping.WithAad(aad))
}

func (a *aeadWrapper) Decrypt(ctx context.Context, b *wrapping.BlobInfo, aad []byte) ([]byte, error) {
	return a.w.Decrypt(ctx, b, wrapping.WithAad(aad))
}

func TestOneTimeTokens(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	recoveryKMS, workerKMS, strangerKMS := newAEAD(t), newAEAD(t), newAEAD(t)
	broker := purpose.NewRouter(map[purpose.Purpose]purpose.Wrapper{
		purpose.Recovery: recoveryKMS, purpose.WorkerAuth: workerKMS}, nil)
	client := broker // the client holds the same KMS blocks
	stranger := purpose.NewRouter(map[purpose.Purpose]purpose.Wrapper{purpose.Recovery: strangerKMS}, nil)
	noRecovery := purpose.NewRouter(map[purpose.Purpose]purpose.Wrapper{purpose.WorkerAuth: workerKMS}, nil)

	mint := func(t *testing.T, r *purpose.Router, kind Kind, name string, at time.Time) string {
		t.Helper()
		tok, err := MintOneTime(ctx, r, kind, name, at)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tamper := func(tok string) string {
		prefix, body := tok[:len(RecoveryTokenPrefix)], tok[len(RecoveryTokenPrefix):]
		raw, _ := base64.RawURLEncoding.DecodeString(body)
		blob := new(wrapping.BlobInfo)
		if err := proto.Unmarshal(raw, blob); err != nil {
			panic(err)
		}
		blob.Ciphertext[len(blob.Ciphertext)-1] ^= 1
		b, _ := proto.Marshal(blob)
		return prefix + base64.RawURLEncoding.EncodeToString(b)
	}

	tests := []struct {
		name    string
		kms     *purpose.Router
		token   func(t *testing.T) string
		wantID  string
		wantErr string
	}{
		{"recovery token", broker, func(t *testing.T) string { return mint(t, client, KindRecovery, "", now) }, RecoveryPrincipal, ""},
		{"worker token", broker, func(t *testing.T) string { return mint(t, client, KindWorker, "build-1", now) }, "w_build-1", ""},
		{"59s in the future", broker, func(t *testing.T) string { return mint(t, client, KindRecovery, "", now.Add(59*time.Second)) }, RecoveryPrincipal, ""},
		{"two minutes in the future", broker, func(t *testing.T) string { return mint(t, client, KindRecovery, "", now.Add(2*time.Minute)) }, "", "created 2m0s in the future"},
		{"six minutes old", broker, func(t *testing.T) string { return mint(t, client, KindRecovery, "", now.Add(-6*time.Minute)) }, "", "expired: created 6m0s ago, valid for 5m0s"},
		{"different key", broker, func(t *testing.T) string { return mint(t, stranger, KindRecovery, "", now) }, "", "could not be decrypted with the broker's recovery KMS"},
		{"tampered", broker, func(t *testing.T) string { return tamper(mint(t, client, KindRecovery, "", now)) }, "", "could not be decrypted"},
		{"truncated", broker, func(t *testing.T) string { tok := mint(t, client, KindRecovery, "", now); return tok[:len(tok)/2] }, "", "token"},
		{"not base64", broker, func(*testing.T) string { return RecoveryTokenPrefix + "!!!" }, "", "not base64url"},
		{"empty body", broker, func(*testing.T) string { return RecoveryTokenPrefix }, "", "does not hold an encrypted blob"},
		{"too long", broker, func(*testing.T) string { return RecoveryTokenPrefix + strings.Repeat("A", 9000) }, "", "token too long"},
		{"recovery token as worker token", broker, func(t *testing.T) string {
			return WorkerTokenPrefix + mint(t, client, KindRecovery, "", now)[len(RecoveryTokenPrefix):]
		}, "", "could not be decrypted"},
		{"no recovery block", noRecovery, func(t *testing.T) string { return mint(t, client, KindRecovery, "", now) }, "", "the broker has no recovery KMS block"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := &OneTimeVerifier{KMS: tc.kms, Nonces: storetest.Open(t, storetest.SQLite(t)), Now: func() time.Time { return now }}
			p, err := v.Verify(ctx, tc.token(t))
			if tc.wantErr == "" {
				if err != nil || p.ID != tc.wantID {
					t.Fatalf("Verify = %+v, %v; want principal %s", p, err, tc.wantID)
				}
				return
			}
			if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Verify error = %v, want ErrUnauthenticated containing %q", err, tc.wantErr)
			}
		})
	}

	if _, err := MintOneTime(ctx, client, KindWorker, "Bad Name", now); err == nil {
		t.Error("minted a worker token with an invalid name")
	}
}

// A token is single-use on every broker that shares a store: the second
// use is refused, also by another broker, on SQLite and PostgreSQL.
func TestOneTimeTokenReplay(t *testing.T) {
	ctx := context.Background()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		kms := purpose.NewRouter(map[purpose.Purpose]purpose.Wrapper{purpose.Recovery: newAEAD(t)}, nil)
		first := &OneTimeVerifier{KMS: kms, Nonces: storetest.Open(t, b)}
		second := &OneTimeVerifier{KMS: kms, Nonces: storetest.Open(t, b)}

		tok, err := MintOneTime(ctx, kms, KindRecovery, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := first.Verify(ctx, tok); err != nil {
			t.Fatalf("first use: %v", err)
		}
		for name, v := range map[string]*OneTimeVerifier{"same broker": first, "second broker": second} {
			if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "already used") {
				t.Errorf("%s: replay error = %v, want already used", name, err)
			}
		}
		fresh, _ := MintOneTime(ctx, kms, KindRecovery, "", time.Now())
		if _, err := second.Verify(ctx, fresh); err != nil {
			t.Errorf("a fresh token on the second broker: %v", err)
		}
	})
}

func FuzzParsePayload(f *testing.F) {
	valid := make([]byte, fixedPayloadLen+5)
	valid[0], valid[1], valid[10+nonceLen] = payloadVersion, byte(KindWorker), 5
	copy(valid[fixedPayloadLen:], "build")
	f.Add(valid)
	f.Add(valid[:fixedPayloadLen])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePayload(b)
		if err != nil {
			return
		}
		if len(p.nonce) != nonceLen || (p.kind != KindRecovery && p.kind != KindWorker) {
			t.Fatalf("accepted a payload with nonce %d bytes, kind %d", len(p.nonce), p.kind)
		}
	})
}

func FuzzDecodeOneTime(f *testing.F) {
	f.Add(RecoveryTokenPrefix + "CgQBAgME")
	f.Add(WorkerTokenPrefix)
	f.Add("kmsb.xyz")
	f.Fuzz(func(t *testing.T, s string) {
		kind, blob, err := decodeOneTime(s)
		if err == nil && (blob == nil || len(blob.GetCiphertext()) == 0 || (kind != KindRecovery && kind != KindWorker)) {
			t.Fatalf("decodeOneTime(%q) accepted an unusable token", s)
		}
	})
}

// TestNonceOutlivesShorterValidity is the regression test for a replay
// across brokers: one broker with a short validity, or a clock behind the
// store's, recorded the nonce only until its own expiry, and the next
// verification pruned it, so a broker with a longer validity accepted the
// same token again.
func TestNonceOutlivesShorterValidity(t *testing.T) {
	ctx := context.Background()
	kms := purpose.NewRouter(map[purpose.Purpose]purpose.Wrapper{purpose.Recovery: newAEAD(t)}, nil)
	nonces := storetest.Open(t, storetest.SQLite(t))
	created := time.Now().Add(-4 * time.Minute)
	tok, err := MintOneTime(ctx, kms, KindRecovery, "", created)
	if err != nil {
		t.Fatal(err)
	}

	// Broker a runs three minutes behind and accepts tokens for two.
	a := &OneTimeVerifier{KMS: kms, Nonces: nonces, Validity: 2 * time.Minute,
		Now: func() time.Time { return time.Now().Add(-3 * time.Minute) }}
	if _, err := a.Verify(ctx, tok); err != nil {
		t.Fatalf("broker a: %v", err)
	}
	// Broker b keeps real time and accepts tokens for ten minutes.
	b := &OneTimeVerifier{KMS: kms, Nonces: nonces, Validity: 10 * time.Minute}
	if _, err := b.Verify(ctx, tok); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("replay on broker b = %v, want ErrUnauthenticated: already used", err)
	}
}

func TestValidityIsCapped(t *testing.T) {
	ctx := context.Background()
	kms := purpose.NewRouter(map[purpose.Purpose]purpose.Wrapper{purpose.Recovery: newAEAD(t)}, nil)
	tok, err := MintOneTime(ctx, kms, KindRecovery, "", time.Now().Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	v := &OneTimeVerifier{KMS: kms, Nonces: storetest.Open(t, storetest.SQLite(t)), Validity: 24 * time.Hour}
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "valid for 1h0m0s") {
		t.Fatalf("two-hour-old token with a 24h validity = %v, want expired, valid for 1h0m0s", err)
	}
}
