package purpose

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"sync/atomic"
	"testing"

	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"github.com/hashicorp/go-kms-wrapping/v2/aead"
)

// aeadWrapper adapts go-kms-wrapping's real AES-GCM wrapper to Wrapper.
type aeadWrapper struct{ w *aead.Wrapper }

func newAEAD(t *testing.T, keyID string) *aeadWrapper {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	w := aead.NewWrapper()
	if err := w.SetAesGcmKeyBytes(key); err != nil {
		t.Fatal(err)
	}
	if _, err := w.SetConfig(context.Background(), wrapping.WithKeyId(keyID)); err != nil {
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

// errRestarted stands in for a plugin that was restarted under a call.
var errRestarted = errors.New("plugin restarted")

// flaky fails its first failN calls with errRestarted, then delegates to a
// real wrapper. It is a fault injector, not a fake KMS.
type flaky struct {
	Wrapper
	failN int32
	calls atomic.Int32
}

func (f *flaky) Encrypt(ctx context.Context, pt, aad []byte) (*wrapping.BlobInfo, error) {
	if f.calls.Add(1) <= f.failN {
		return nil, errRestarted
	}
	return f.Wrapper.Encrypt(ctx, pt, aad)
}

func TestRouterRoutesAndBindsAAD(t *testing.T) {
	ctx := context.Background()
	r := NewRouter(map[Purpose]Wrapper{Root: newAEAD(t, "root-1"), Recovery: newAEAD(t, "rec-1")}, nil)

	blob, err := r.Encrypt(ctx, Recovery, []byte("hello"), []byte("aad-1"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Decrypt(ctx, Recovery, blob, []byte("aad-1"))
	if err != nil || string(got) != "hello" {
		t.Fatalf("Decrypt = %q, %v; want hello", got, err)
	}
	if _, err := r.Decrypt(ctx, Recovery, blob, []byte("aad-2")); err == nil {
		t.Error("Decrypt with other aad succeeded")
	}
	if _, err := r.Decrypt(ctx, Root, blob, []byte("aad-1")); err == nil {
		t.Error("root opened a recovery blob")
	}
	if _, err := r.Encrypt(ctx, Config, []byte("x"), nil); !errors.Is(err, ErrNotConfigured) {
		t.Errorf("Encrypt with unconfigured purpose: err = %v, want ErrNotConfigured", err)
	}
	if _, err := r.Encrypt(ctx, PreviousRoot, []byte("x"), nil); err == nil {
		t.Error("previous-root encrypted")
	}
}

func TestRouterRootRotation(t *testing.T) {
	ctx := context.Background()
	oldKey, newKey := newAEAD(t, "root-old"), newAEAD(t, "root-new")
	r := NewRouter(map[Purpose]Wrapper{Root: oldKey}, nil)
	if _, err := r.RootKeyID(ctx); !errors.Is(err, ErrRootKeyUnknown) {
		t.Fatalf("RootKeyID before any wrap: err = %v, want ErrRootKeyUnknown", err)
	}
	kek := []byte("0123456789abcdef0123456789abcdef")
	blob, err := r.WrapRoot(ctx, kek, []byte("scope-a"))
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := r.RootKeyID(ctx); id != "root-old" {
		t.Errorf("RootKeyID = %q, want root-old", id)
	}

	// The operator makes the new key root and keeps the old as previous-root.
	r.Set(Root, newKey)
	r.Set(PreviousRoot, oldKey)
	got, err := r.UnwrapRoot(ctx, blob, []byte("scope-a"))
	if err != nil || !bytes.Equal(got, kek) {
		t.Fatalf("UnwrapRoot through previous-root = %x, %v", got, err)
	}
	if err := r.ProbeRoot(ctx); err != nil {
		t.Fatal(err)
	}
	if id, _ := r.RootKeyID(ctx); id != "root-new" {
		t.Errorf("RootKeyID after probe = %q, want root-new", id)
	}

	// Without previous-root the old blob no longer opens.
	r.Set(PreviousRoot, nil)
	if _, err := r.UnwrapRoot(ctx, blob, []byte("scope-a")); err == nil {
		t.Error("UnwrapRoot without previous-root succeeded")
	}
}

func TestRouterRetriesOnce(t *testing.T) {
	ctx := context.Background()
	retryable := func(err error) bool { return errors.Is(err, errRestarted) }
	tests := []struct {
		name    string
		failN   int32
		wantErr bool
		calls   int32
	}{
		{"no failure", 0, false, 1},
		{"one failure is retried", 1, false, 2},
		{"two failures give up", 2, true, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &flaky{Wrapper: newAEAD(t, "k"), failN: tc.failN}
			r := NewRouter(map[Purpose]Wrapper{Config: f}, retryable)
			_, err := r.Encrypt(ctx, Config, []byte("v"), nil)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %t", err, tc.wantErr)
			}
			if got := f.calls.Load(); got != tc.calls {
				t.Errorf("calls = %d, want %d", got, tc.calls)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, p := range All() {
		got, err := Parse(string(p))
		if err != nil || got != p {
			t.Errorf("Parse(%q) = %q, %v", p, got, err)
		}
	}
	if _, err := Parse("backup"); !errors.Is(err, ErrUnknown) {
		t.Errorf("Parse(backup): err = %v, want ErrUnknown", err)
	}
}
