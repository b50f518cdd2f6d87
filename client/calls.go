package client

import (
	"context"
	"fmt"
	"math"
	"time"

	apiv1 "github.com/kmsbroker/kmsbroker/proto/api/v1"
)

// CreateScope makes a scope and its first key versions.
func (c *Client) CreateScope(ctx context.Context, id, name string) (*apiv1.Scope, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.api.CreateScope(ctx, &apiv1.CreateScopeRequest{Id: id, Name: name})
	if err != nil {
		return nil, err
	}
	return resp.GetScope(), nil
}

// Scope reads one scope.
func (c *Client) Scope(ctx context.Context, id string) (*apiv1.Scope, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.api.GetScope(ctx, &apiv1.GetScopeRequest{Id: id})
	if err != nil {
		return nil, err
	}
	return resp.GetScope(), nil
}

// ListScopes lists every scope.
func (c *Client) ListScopes(ctx context.Context) ([]*apiv1.Scope, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.api.ListScopes(ctx, &apiv1.ListScopesRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetScopes(), nil
}

// Encrypt encrypts plaintext for a data purpose of a scope, bound to aad,
// and returns the envelope and the key version that made it.
func (c *Client) Encrypt(ctx context.Context, scope, purpose string, plaintext, aad []byte) ([]byte, uint32, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.api.Encrypt(ctx, &apiv1.EncryptRequest{ScopeId: scope, Purpose: purpose, Plaintext: plaintext, Aad: aad})
	if err != nil {
		return nil, 0, err
	}
	return resp.GetCiphertext(), resp.GetKeyVersion(), nil
}

// Decrypt opens an envelope made by Encrypt with the same scope, purpose
// and aad.
func (c *Client) Decrypt(ctx context.Context, scope, purpose string, envelope, aad []byte) ([]byte, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.api.Decrypt(ctx, &apiv1.DecryptRequest{ScopeId: scope, Purpose: purpose, Ciphertext: envelope, Aad: aad})
	if err != nil {
		return nil, err
	}
	return resp.GetPlaintext(), nil
}

// Status reports the broker's purposes and store.
func (c *Client) Status(ctx context.Context) (*apiv1.StatusResponse, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	return c.api.Status(ctx, &apiv1.StatusRequest{})
}

// ReEncrypt returns the envelope's plaintext sealed under the newest key
// version.
func (c *Client) ReEncrypt(ctx context.Context, scope, purpose string, envelope, aad []byte) ([]byte, uint32, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.api.ReEncrypt(ctx, &apiv1.ReEncryptRequest{ScopeId: scope, Purpose: purpose, Ciphertext: envelope, Aad: aad})
	if err != nil {
		return nil, 0, err
	}
	return resp.GetCiphertext(), resp.GetKeyVersion(), nil
}

// DeriveKey derives length bytes for a user's session from the scope's
// sessions key, version 0 meaning the newest; it returns the key and the
// version used, which re-derives the same bytes.
func (c *Client) DeriveKey(ctx context.Context, scope, user, session string, length int, version uint32) ([]byte, uint32, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	if length < 0 || length > math.MaxUint32 {
		// The API takes a uint32; a larger value must not wrap around to
		// a valid length.
		return nil, 0, fmt.Errorf("derive key: length %d out of range", length)
	}
	resp, err := c.api.DeriveKey(ctx, &apiv1.DeriveKeyRequest{ScopeId: scope, UserId: user, SessionId: session,
		Length: uint32(length), KeyVersion: version})
	if err != nil {
		return nil, 0, err
	}
	return resp.GetKey(), resp.GetKeyVersion(), nil
}

// RotateKeys adds new KEK and DEK versions to a scope; with rewrap, older
// DEK versions are re-encrypted under the new KEK.
func (c *Client) RotateKeys(ctx context.Context, scope string, rewrap bool) (*apiv1.Scope, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.api.RotateKeys(ctx, &apiv1.RotateKeysRequest{ScopeId: scope, Rewrap: rewrap})
	if err != nil {
		return nil, err
	}
	return resp.GetScope(), nil
}

// RewrapKeys re-encrypts one scope's KEK versions under the current root
// key and its DEK versions under its newest KEK. An empty scope is refused
// by the broker as a bad request; RewrapAllKeys rewraps every scope.
func (c *Client) RewrapKeys(ctx context.Context, scope string) (*apiv1.RewrapKeysResponse, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	return c.api.RewrapKeys(ctx, &apiv1.RewrapKeysRequest{ScopeId: scope})
}

// RewrapAllKeys runs RewrapKeys on every scope.
func (c *Client) RewrapAllKeys(ctx context.Context) (*apiv1.RewrapKeysResponse, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	return c.api.RewrapKeys(ctx, &apiv1.RewrapKeysRequest{All: true})
}

// KeyVersions lists a scope's key versions.
func (c *Client) KeyVersions(ctx context.Context, scope string) ([]*apiv1.KeyVersion, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.api.ListKeyVersions(ctx, &apiv1.ListKeyVersionsRequest{ScopeId: scope})
	if err != nil {
		return nil, err
	}
	return resp.GetVersions(), nil
}

// DestroyKeyVersion destroys the key version with the given stable id.
func (c *Client) DestroyKeyVersion(ctx context.Context, scope, versionID string) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	_, err := c.api.DestroyKeyVersion(ctx, &apiv1.DestroyKeyVersionRequest{ScopeId: scope, VersionId: versionID})
	return err
}

// CreateToken makes a client token and returns it with its secret, which
// the broker never shows again. A ttl of 0 never expires; any other ttl is
// a whole number of seconds, since the broker counts in seconds and
// rounding a short lifetime down to 0 would make it endless.
func (c *Client) CreateToken(ctx context.Context, name, role string, scopes []string, ttl time.Duration) (*apiv1.Token, string, error) {
	if ttl < 0 || ttl%time.Second != 0 {
		return nil, "", fmt.Errorf("create token: ttl %s: want 0 or a positive whole number of seconds", ttl)
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.api.CreateToken(ctx, &apiv1.CreateTokenRequest{Name: name, Role: role, Scopes: scopes,
		TtlSeconds: int64(ttl / time.Second)})
	if err != nil {
		return nil, "", err
	}
	return resp.GetToken(), resp.GetSecret(), nil
}

// ListTokens lists client tokens without their secrets.
func (c *Client) ListTokens(ctx context.Context) ([]*apiv1.Token, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.api.ListTokens(ctx, &apiv1.ListTokensRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetTokens(), nil
}

// RevokeToken revokes a client token by id.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	_, err := c.api.RevokeToken(ctx, &apiv1.RevokeTokenRequest{Id: id})
	return err
}
