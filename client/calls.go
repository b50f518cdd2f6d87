package client

import (
	"context"

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
