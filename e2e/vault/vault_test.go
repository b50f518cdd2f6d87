package vault_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/kmsbroker/kmsbroker/e2e/vault"
)

// TestTransitThroughHTTP drives the harness against a real Vault or
// OpenBao: a key-limited token encrypts and decrypts, is refused on another
// key, survives a key rotation, and is refused once revoked.
func TestTransitThroughHTTP(t *testing.T) {
	srv := vault.Start(t)
	tr := srv.EnableTransit(t)
	tr.CreateKey(t, "broker")
	tr.CreateKey(t, "other")
	tok := tr.KeyToken(t, "broker")
	ctx := context.Background()

	plaintext := []byte("e2e plaintext for transit")
	ct1, err := tr.Encrypt(ctx, tok, "broker", plaintext)
	if err != nil {
		t.Fatalf("Encrypt() error = %v", err)
	}
	if !strings.HasPrefix(ct1, "vault:v1:") {
		t.Fatalf("Encrypt() = %q, want prefix vault:v1:", ct1)
	}

	t.Run("key token scope", func(t *testing.T) {
		decryptOwn := func() error {
			return decryptEquals(ctx, tr, tok, "broker", ct1, plaintext)
		}
		encryptOther := func() error {
			_, err := tr.Encrypt(ctx, tok, "other", plaintext)
			return err
		}
		rotateOwn := func() error {
			path := tr.Mount + "/keys/broker/rotate"
			return srv.Do(ctx, tok.Value(), http.MethodPost, path, map[string]any{}, nil)
		}
		decryptTampered := func() error {
			_, err := tr.Decrypt(ctx, tok, "broker", ct1[:len(ct1)-4]+"AAA=")
			return err
		}
		tests := []struct {
			name       string
			op         func() error
			wantStatus int // 0: success
		}{
			{name: "decrypt own key", op: decryptOwn},
			{name: "encrypt other key", op: encryptOther, wantStatus: http.StatusForbidden},
			{name: "rotate own key", op: rotateOwn, wantStatus: http.StatusForbidden},
			{name: "tampered ciphertext", op: decryptTampered, wantStatus: http.StatusBadRequest},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				checkStatus(t, tt.op(), tt.wantStatus)
			})
		}
	})

	t.Run("rotate", func(t *testing.T) {
		if got := tr.LatestVersion(t, "broker"); got != 1 {
			t.Fatalf("LatestVersion() before rotate = %d, want 1", got)
		}
		if got := tr.Rotate(t, "broker"); got != 2 {
			t.Fatalf("Rotate() = %d, want 2", got)
		}
		ct2, err := tr.Encrypt(ctx, tok, "broker", plaintext)
		if err != nil {
			t.Fatalf("Encrypt() after rotate error = %v", err)
		}
		if !strings.HasPrefix(ct2, "vault:v2:") {
			t.Errorf("Encrypt() after rotate = %q, want prefix vault:v2:", ct2)
		}
		for _, ct := range []string{ct1, ct2} {
			if err := decryptEquals(ctx, tr, tok, "broker", ct, plaintext); err != nil {
				t.Errorf("after rotate: %v", err)
			}
		}
	})

	t.Run("revoke", func(t *testing.T) {
		srv.RevokeToken(t, tok)
		_, err := tr.Encrypt(ctx, tok, "broker", plaintext)
		checkStatus(t, err, http.StatusForbidden)
		if err := decryptEquals(ctx, tr, srv.Root(), "broker", ct1, plaintext); err != nil {
			t.Errorf("root token after revoking the key token: %v", err)
		}
	})
}

func TestTokenDoesNotPrint(t *testing.T) {
	srv := vault.Start(t)
	tr := srv.EnableTransit(t)
	tr.CreateKey(t, "k")
	for _, tk := range []vault.Token{srv.Root(), tr.KeyToken(t, "k")} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			got := fmt.Sprintf(verb, tk)
			if strings.Contains(got, tk.Value()) || !strings.Contains(got, tk.Accessor()) {
				t.Errorf("Sprintf(%q, token) = %q, want the accessor and not the token", verb, got)
			}
		}
		if tk.Accessor() == "" {
			t.Errorf("token %v has no accessor", tk)
		}
	}
}

func decryptEquals(ctx context.Context, tr *vault.Transit, tok vault.Token, key, ct string, want []byte) error {
	got, err := tr.Decrypt(ctx, tok, key, ct)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("Decrypt(%.16s...) = %q, want %q", ct, got, want)
	}
	return nil
}

func checkStatus(t *testing.T, err error, want int) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Fatalf("error = %v, want nil", err)
		}
		return
	}
	var apiErr *vault.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != want {
		t.Fatalf("error = %v, want Vault status %d", err, want)
	}
}
