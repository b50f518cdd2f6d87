package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kmsbroker/kmsbroker/broker/store"
)

// ErrTokenNotFound means no client token has the given id.
var ErrTokenNotFound = errors.New("token not found")

// ErrStore means the token store failed: the fault is the broker's, not
// the credential's.
var ErrStore = errors.New("token store failed")

// ErrInvalidToken means a token to create is malformed: an unknown role,
// no name, an admin token limited to scopes, or a negative lifetime. The
// message says which; it is the request's fault.
var ErrInvalidToken = errors.New("invalid token request")

// TokenInfo describes a client token; it never holds the secret.
type TokenInfo struct {
	ID     string
	Name   string
	Role   Role
	Scopes []string
	// CreateTime, ExpireTime (zero: never) and RevokeTime (zero: live).
	CreateTime, ExpireTime, RevokeTime time.Time
}

func tokenInfo(t store.Token) TokenInfo {
	return TokenInfo{ID: t.ID, Name: t.Name, Role: Role(t.Role), Scopes: t.Scopes,
		CreateTime: t.CreateTime, ExpireTime: t.ExpireTime, RevokeTime: t.RevokeTime}
}

// Token cache bounds. Verifying a token is a store read; on the data path
// that read costs more than the encryption itself, so a verified token is
// remembered briefly.
const (
	// tokenCacheTTL bounds how long another broker on the same store may
	// still accept a token revoked elsewhere. The broker that revokes a
	// token forgets it at once.
	tokenCacheTTL = time.Second
	// tokenCacheMax bounds the cache's memory; when full it is emptied,
	// which costs one store read per live client.
	tokenCacheMax = 10_000
)

// cachedToken is a verified token and when its verification lapses.
type cachedToken struct {
	tok   store.Token
	until time.Time
}

// Tokens creates and verifies client tokens kept, as hashes, in the store.
type Tokens struct {
	store store.AuthStore
	now   func() time.Time

	mu    sync.Mutex
	cache map[[sha256.Size]byte]cachedToken // by token hash
}

// NewTokens returns a token manager over st.
func NewTokens(st store.AuthStore) *Tokens {
	return &Tokens{store: st, now: time.Now, cache: make(map[[sha256.Size]byte]cachedToken)}
}

// Create stores a new token and returns its secret, shown to the caller
// once. A non-empty secret is used instead of a random one (dev mode's
// -dev-token); it must pass ValidTokenSyntax. A ttl of 0 never expires.
//
// Admin tokens manage every scope and cannot be limited to some: a token
// that creates tokens could otherwise mint itself an unlimited one. Scope
// ids are checked by the caller, which knows which scopes exist.
func (t *Tokens) Create(ctx context.Context, secret, name string, role Role, scopes []string, ttl time.Duration) (string, TokenInfo, error) {
	if err := checkNewToken(name, role, scopes, ttl); err != nil {
		return "", TokenInfo{}, fmt.Errorf("create token: %w", err)
	}
	var hash []byte
	if secret == "" {
		var err error
		if secret, hash, err = NewToken(); err != nil {
			return "", TokenInfo{}, err
		}
	} else {
		if !ValidTokenSyntax(secret) {
			return "", TokenInfo{}, errors.New("create token: the given secret is not a client token")
		}
		hash = HashToken(secret)
	}
	id, err := tokenID()
	if err != nil {
		return "", TokenInfo{}, err
	}
	now := t.now().UTC()
	tok := store.Token{ID: id, Name: name, Role: string(role), Scopes: scopes, Hash: hash, CreateTime: now}
	if ttl > 0 {
		tok.ExpireTime = now.Add(ttl)
	}
	if err := t.store.CreateToken(ctx, tok); err != nil {
		return "", TokenInfo{}, fmt.Errorf("create token %s: %w: %w", name, ErrStore, err)
	}
	return secret, tokenInfo(tok), nil
}

// MaxTokenNameLen bounds a token's name, an operator label, like a
// scope's name.
const MaxTokenNameLen = 256

// checkNewToken rejects a token that must not exist.
func checkNewToken(name string, role Role, scopes []string, ttl time.Duration) error {
	if _, err := ParseRole(string(role)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	switch {
	case name == "":
		return fmt.Errorf("%w: a token name is required", ErrInvalidToken)
	case len(name) > MaxTokenNameLen:
		return fmt.Errorf("%w: token name of %d bytes, at most %d", ErrInvalidToken, len(name), MaxTokenNameLen)
	case !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl):
		// Names are printed in tables and logs; a control character
		// could break them or drive the operator's terminal.
		return fmt.Errorf("%w: token name must be UTF-8 without control characters", ErrInvalidToken)
	case role == RoleAdmin && len(scopes) > 0:
		return fmt.Errorf("%w: admin tokens manage every scope and cannot be limited to some; "+
			"make an app token for scopes %s", ErrInvalidToken, strings.Join(scopes, ","))
	case ttl < 0:
		return fmt.Errorf("%w: ttl must not be negative", ErrInvalidToken)
	}
	return nil
}

// List returns every client token, revoked and expired ones included.
func (t *Tokens) List(ctx context.Context) ([]TokenInfo, error) {
	toks, err := t.store.ListTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w: %w", ErrStore, err)
	}
	out := make([]TokenInfo, len(toks))
	for i, tok := range toks {
		out[i] = tokenInfo(tok)
	}
	return out, nil
}

// Revoke revokes the client token with the given id. The built-in
// principals are not tokens and cannot be revoked.
func (t *Tokens) Revoke(ctx context.Context, id string) error {
	switch {
	case id == RecoveryPrincipal || id == AnonymousPrincipal || strings.HasPrefix(id, workerPrincipalPrefix):
		return fmt.Errorf("revoke token: %w: %s is a built-in principal, not a token", ErrPermissionDenied, id)
	case id == "":
		return fmt.Errorf("revoke token: %w: empty id", ErrTokenNotFound)
	}
	err := t.store.RevokeToken(ctx, id, t.now().UTC())
	t.forget(id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("revoke token %s: %w", id, ErrTokenNotFound)
	}
	if err != nil {
		return fmt.Errorf("revoke token %s: %w: %w", id, ErrStore, err)
	}
	return nil
}

// Authenticate returns the principal of a client token. Every way a token
// can be wrong is the same ErrUnauthenticated to the caller, with the
// reason in words; store failures stay distinct so a broken database is
// not reported as a bad token.
func (t *Tokens) Authenticate(ctx context.Context, credential string) (Principal, error) {
	if !ValidTokenSyntax(credential) {
		return Principal{}, fmt.Errorf("%w: not a client token", ErrUnauthenticated)
	}
	now := t.now()
	tok, err := t.lookup(ctx, HashToken(credential), now)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("look up token: %w: %w", ErrStore, err)
	}
	switch {
	case !tok.RevokeTime.IsZero():
		return Principal{}, fmt.Errorf("%w: token %s was revoked", ErrUnauthenticated, tok.ID)
	case !tok.ExpireTime.IsZero() && !now.Before(tok.ExpireTime):
		return Principal{}, fmt.Errorf("%w: token %s expired", ErrUnauthenticated, tok.ID)
	}
	return Principal{ID: tok.ID, Name: tok.Name, Role: Role(tok.Role), Scopes: tok.Scopes}, nil
}

// lookup returns the stored token with the given hash, from the cache
// while its entry is fresh. Only live tokens are cached, so a revoked or
// expired token is always read again.
func (t *Tokens) lookup(ctx context.Context, hash []byte, now time.Time) (store.Token, error) {
	key := [sha256.Size]byte(hash)
	t.mu.Lock()
	c, ok := t.cache[key]
	t.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.tok, nil
	}

	tok, err := t.store.TokenByHash(ctx, hash)
	if err != nil || !tok.RevokeTime.IsZero() {
		return tok, err
	}
	until := now.Add(tokenCacheTTL)
	if !tok.ExpireTime.IsZero() && tok.ExpireTime.Before(until) {
		until = tok.ExpireTime
	}
	t.mu.Lock()
	if len(t.cache) >= tokenCacheMax {
		clear(t.cache)
	}
	t.cache[key] = cachedToken{tok: tok, until: until}
	t.mu.Unlock()
	return tok, nil
}

// forget drops the cached verification of the token with the given id.
func (t *Tokens) forget(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, c := range t.cache {
		if c.tok.ID == id {
			delete(t.cache, k)
		}
	}
}

// tokenID is the public id of a token: safe to log, useless to call with.
func tokenID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("token id: %w", err)
	}
	return "t_" + hex.EncodeToString(b), nil
}
