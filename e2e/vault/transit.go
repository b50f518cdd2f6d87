package vault

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"testing"
)

// Transit is a transit secrets engine mounted for one test.
type Transit struct {
	// Mount is the engine's path, unique per call to EnableTransit, e.g.
	// "transit-e2e-1a2b3c4d". It is the product's mount_path setting.
	Mount string

	srv *Server
}

// EnableTransit mounts a transit engine at a fresh path. On an external
// server it is unmounted, with its keys, in t.Cleanup.
func (s *Server) EnableTransit(t testing.TB) *Transit {
	t.Helper()
	tr := &Transit{Mount: "transit-e2e-" + randomHex(t, 4), srv: s}
	ctx, cancel := withTimeout()
	defer cancel()
	must(t, "enable transit at "+tr.Mount,
		s.Do(ctx, s.root.value, http.MethodPost, "sys/mounts/"+tr.Mount, map[string]any{"type": "transit"}, nil))
	if s.External {
		t.Cleanup(func() {
			ctx, cancel := withTimeout()
			defer cancel()
			if err := s.Do(ctx, s.root.value, http.MethodDelete, "sys/mounts/"+tr.Mount, nil, nil); err != nil {
				t.Errorf("vault: disable transit at %s: %v", tr.Mount, err)
			}
		})
	}
	return tr
}

// CreateKey creates the named key with transit's default type,
// aes256-gcm96, at version 1.
func (tr *Transit) CreateKey(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := withTimeout()
	defer cancel()
	must(t, "create transit key "+name,
		tr.srv.Do(ctx, tr.srv.root.value, http.MethodPost, tr.Mount+"/keys/"+name, map[string]any{}, nil))
}

// Rotate adds a new version to the named key, as an operator does with
// `vault write -f transit/keys/NAME/rotate`, and returns the new latest
// version. Ciphertexts made before keep decrypting.
func (tr *Transit) Rotate(t testing.TB, name string) int {
	t.Helper()
	ctx, cancel := withTimeout()
	defer cancel()
	must(t, "rotate transit key "+name,
		tr.srv.Do(ctx, tr.srv.root.value, http.MethodPost, tr.Mount+"/keys/"+name+"/rotate", map[string]any{}, nil))
	return tr.LatestVersion(t, name)
}

// LatestVersion returns the version the named key encrypts with.
func (tr *Transit) LatestVersion(t testing.TB, name string) int {
	t.Helper()
	ctx, cancel := withTimeout()
	defer cancel()
	var out struct {
		Data struct {
			LatestVersion int `json:"latest_version"`
		} `json:"data"`
	}
	must(t, "read transit key "+name,
		tr.srv.Do(ctx, tr.srv.root.value, http.MethodGet, tr.Mount+"/keys/"+name, nil, &out))
	if out.Data.LatestVersion < 1 {
		t.Fatalf("vault: read transit key %s: latest_version %d, want at least 1", name, out.Data.LatestVersion)
	}
	return out.Data.LatestVersion
}

// Encrypt encrypts plaintext with the named key using token and returns
// Vault's ciphertext ("vault:vN:..."). It returns the error so a test can
// assert a refusal; an *APIError carries the status.
func (tr *Transit) Encrypt(ctx context.Context, token Token, name string, plaintext []byte) (string, error) {
	var out struct {
		Data struct {
			Ciphertext string `json:"ciphertext"`
		} `json:"data"`
	}
	in := map[string]any{"plaintext": base64.StdEncoding.EncodeToString(plaintext)}
	if err := tr.srv.Do(ctx, token.value, http.MethodPost, tr.Mount+"/encrypt/"+name, in, &out); err != nil {
		return "", err
	}
	if out.Data.Ciphertext == "" {
		return "", fmt.Errorf("vault encrypt with %s: answer has no ciphertext", name)
	}
	return out.Data.Ciphertext, nil
}

// Decrypt decrypts a ciphertext from Encrypt (or the product) with the
// named key using token.
func (tr *Transit) Decrypt(ctx context.Context, token Token, name, ciphertext string) ([]byte, error) {
	var out struct {
		Data struct {
			Plaintext string `json:"plaintext"`
		} `json:"data"`
	}
	in := map[string]any{"ciphertext": ciphertext}
	if err := tr.srv.Do(ctx, token.value, http.MethodPost, tr.Mount+"/decrypt/"+name, in, &out); err != nil {
		return nil, err
	}
	pt, err := base64.StdEncoding.DecodeString(out.Data.Plaintext)
	if err != nil {
		return nil, fmt.Errorf("vault decrypt with %s: plaintext is not base64: %w", name, err)
	}
	return pt, nil
}
