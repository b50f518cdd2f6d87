package vaultdev

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestTransitRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, t.TempDir(), &http.Client{Timeout: 30 * time.Second})
	if errors.Is(err, ErrNotAvailable) {
		t.Skipf("vaultdev: SKIP: %v", err)
	}
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Close)
	t.Logf("vault: %s at %s", s.Kind, s.Addr)

	pt := bytes.Repeat([]byte{7}, 1024)
	ct, err := s.Encrypt(ctx, pt)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	if !strings.HasPrefix(ct, "vault:v1:") {
		t.Errorf("ciphertext %q does not start with vault:v1:", ct)
	}
	got, err := s.Decrypt(ctx, ct)
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if !bytes.Equal(got, pt) {
		t.Errorf("Decrypt = %d bytes, want the %d encrypted", len(got), len(pt))
	}
	var apiErr *APIError
	if _, err := s.Decrypt(ctx, "vault:v1:AAAA"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
		t.Errorf("Decrypt of garbage error = %v, want HTTP 400", err)
	}
}

func TestVaultAddrWithoutToken(t *testing.T) {
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	t.Setenv("VAULT_TOKEN", "")
	_, err := Start(context.Background(), t.TempDir(), http.DefaultClient)
	if err == nil || errors.Is(err, ErrNotAvailable) || !strings.Contains(err.Error(), "VAULT_TOKEN") {
		t.Fatalf("Start error = %v, want one naming VAULT_TOKEN", err)
	}
}
