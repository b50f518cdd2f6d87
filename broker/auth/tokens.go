package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/kmsbroker/kmsbroker/broker/store"
)

// Tokens creates and verifies client tokens kept, as hashes, in the store.
type Tokens struct {
	store store.AuthStore
	now   func() time.Time
}

// NewTokens returns a token manager over st.
func NewTokens(st store.AuthStore) *Tokens {
	return &Tokens{store: st, now: time.Now}
}

// Create stores a new token and returns its secret, shown to the caller
// once. A non-empty secret is used instead of a random one (dev mode's
// -dev-token); it must pass ValidTokenSyntax. A ttl of 0 never expires.
func (t *Tokens) Create(ctx context.Context, secret, name string, role Role, scopes []string, ttl time.Duration) (string, store.Token, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return "", store.Token{}, fmt.Errorf("create token: %w", err)
	}
	var hash []byte
	if secret == "" {
		var err error
		if secret, hash, err = NewToken(); err != nil {
			return "", store.Token{}, err
		}
	} else {
		if !ValidTokenSyntax(secret) {
			return "", store.Token{}, errors.New("create token: the given secret is not a client token")
		}
		hash = HashToken(secret)
	}
	id, err := tokenID()
	if err != nil {
		return "", store.Token{}, err
	}
	now := t.now().UTC()
	tok := store.Token{ID: id, Name: name, Role: string(role), Scopes: scopes, Hash: hash, CreateTime: now}
	if ttl > 0 {
		tok.ExpireTime = now.Add(ttl)
	}
	if err := t.store.CreateToken(ctx, tok); err != nil {
		return "", store.Token{}, fmt.Errorf("create token %s: %w", name, err)
	}
	return secret, tok, nil
}

// Authenticate returns the principal of a client token. Every way a token
// can be wrong is the same ErrUnauthenticated to the caller, with the
// reason in words; store failures stay distinct so a broken database is
// not reported as a bad token.
func (t *Tokens) Authenticate(ctx context.Context, credential string) (Principal, error) {
	if !ValidTokenSyntax(credential) {
		return Principal{}, fmt.Errorf("%w: not a client token", ErrUnauthenticated)
	}
	tok, err := t.store.TokenByHash(ctx, HashToken(credential))
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("look up token: %w", err)
	}
	now := t.now()
	switch {
	case !tok.RevokeTime.IsZero():
		return Principal{}, fmt.Errorf("%w: token %s was revoked", ErrUnauthenticated, tok.ID)
	case !tok.ExpireTime.IsZero() && !now.Before(tok.ExpireTime):
		return Principal{}, fmt.Errorf("%w: token %s expired", ErrUnauthenticated, tok.ID)
	}
	return Principal{ID: tok.ID, Name: tok.Name, Role: Role(tok.Role), Scopes: tok.Scopes}, nil
}

// tokenID is the public id of a token: safe to log, useless to call with.
func tokenID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("token id: %w", err)
	}
	return "t_" + hex.EncodeToString(b), nil
}
