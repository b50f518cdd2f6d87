package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kmsbroker/kmsbroker/broker/store/storetest"
)

// fakeClock is a settable clock for the token cache's lifetimes.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time            { return c.t }
func (c *fakeClock) add(d time.Duration)       { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock                 { return &fakeClock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)} }
func tokensAt(c *fakeClock, t *Tokens) *Tokens { t.now = c.now; return t }

// Two brokers share a store: a token revoked on one is refused there at
// once, and on the other within the cache lifetime.
func TestTokenRevocationAcrossBrokers(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	b := storetest.SQLite(t)
	a := tokensAt(clock, NewTokens(storetest.Open(t, b)))
	other := tokensAt(clock, NewTokens(storetest.Open(t, b)))

	secret, info, err := a.Create(ctx, "", "app", RoleApp, []string{"o_1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, tk := range map[string]*Tokens{"a": a, "other": other} {
		if p, err := tk.Authenticate(ctx, secret); err != nil || p.ID != info.ID {
			t.Fatalf("%s: Authenticate = %+v, %v", name, p, err)
		}
	}

	if err := a.Revoke(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, secret); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoking broker: err = %v, want revoked at once", err)
	}
	clock.add(tokenCacheTTL)
	if _, err := other.Authenticate(ctx, secret); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("other broker after the cache lifetime: err = %v, want revoked", err)
	}
}

// A cached token still expires on time.
func TestCachedTokenExpires(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	tk := tokensAt(clock, NewTokens(storetest.Open(t, storetest.SQLite(t))))
	secret, _, err := tk.Create(ctx, "", "short", RoleApp, nil, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	clock.add(500 * time.Millisecond)
	if _, err := tk.Authenticate(ctx, secret); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("err = %v, want expired", err)
	}
}

// Tokens that must not exist are refused before anything is stored.
func TestCreateRefusesBadTokens(t *testing.T) {
	ctx := context.Background()
	tk := NewTokens(storetest.Open(t, storetest.SQLite(t)))
	tests := []struct {
		name    string
		tokName string
		role    Role
		scopes  []string
		ttl     time.Duration
		wantErr string
	}{
		{"scoped admin", "a", RoleAdmin, []string{"o_1"}, 0, "admin tokens manage every scope"},
		{"built-in role", "r", RoleRecovery, nil, 0, `unknown role "recovery"`},
		{"no name", "", RoleApp, nil, 0, "name is required"},
		{"negative ttl", "n", RoleApp, nil, -time.Second, "must not be negative"},
		{"escape codes in the name", "evil\nname\x1b[31m", RoleApp, nil, 0, "without control characters"},
		{"name not UTF-8", "bad\xffname", RoleApp, nil, 0, "without control characters"},
		{"name too long", strings.Repeat("n", 5000), RoleApp, nil, 0, "at most 256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tk.Create(ctx, "", tc.tokName, tc.role, tc.scopes, tc.ttl)
			if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Create = %v, want ErrInvalidToken containing %q", err, tc.wantErr)
			}
		})
	}
	if toks, err := tk.List(ctx); err != nil || len(toks) != 0 {
		t.Errorf("List after refused creates = %d tokens, %v; want none", len(toks), err)
	}
}
