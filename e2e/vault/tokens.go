package vault

import (
	"fmt"
	"net/http"
	"testing"
)

// tokenTTL is the life of a token from KeyToken: longer than any e2e run,
// short enough that a token left on a shared server expires the same day.
const tokenTTL = "2h"

// Token is a Vault token. It does not print: String shows the accessor,
// which identifies the token without granting anything.
type Token struct {
	value    string
	accessor string
}

// Value returns the token itself, to put in a product config.
func (tk Token) Value() string { return tk.value }

// Accessor returns the token's accessor.
func (tk Token) Accessor() string { return tk.accessor }

// String redacts the token.
func (tk Token) String() string { return "vault token (accessor " + tk.accessor + ")" }

// GoString redacts the token in %#v too.
func (tk Token) GoString() string { return tk.String() }

// KeyToken creates a policy that allows only encrypt and decrypt with the
// named key of this mount, and a token that holds it (plus Vault's default
// policy, which lets a token look itself up and renew itself, as the
// transit wrapper does). The token lives tokenTTL. On an external server
// the policy is deleted in t.Cleanup, which also disarms the token.
func (tr *Transit) KeyToken(t testing.TB, name string) Token {
	t.Helper()
	s := tr.srv
	policy := tr.Mount + "-" + name
	var rules string
	for _, op := range []string{"encrypt", "decrypt"} {
		rules += fmt.Sprintf("path %q {\n  capabilities = [\"update\"]\n}\n", tr.Mount+"/"+op+"/"+name)
	}

	ctx, cancel := withTimeout()
	defer cancel()
	must(t, "write policy "+policy,
		s.Do(ctx, s.root.value, http.MethodPut, "sys/policies/acl/"+policy, map[string]any{"policy": rules}, nil))
	if s.External {
		t.Cleanup(func() {
			ctx, cancel := withTimeout()
			defer cancel()
			if err := s.Do(ctx, s.root.value, http.MethodDelete, "sys/policies/acl/"+policy, nil, nil); err != nil {
				t.Errorf("vault: delete policy %s: %v", policy, err)
			}
		})
	}

	var out struct {
		Auth struct {
			ClientToken string `json:"client_token"`
			Accessor    string `json:"accessor"`
		} `json:"auth"`
	}
	in := map[string]any{
		"policies":     []string{policy},
		"ttl":          tokenTTL,
		"display_name": "kmsbroker-e2e",
	}
	must(t, "create token for policy "+policy,
		s.Do(ctx, s.root.value, http.MethodPost, "auth/token/create", in, &out))
	if out.Auth.ClientToken == "" || out.Auth.Accessor == "" {
		t.Fatalf("vault: create token for policy %s: answer lacks token or accessor", policy)
	}
	return Token{value: out.Auth.ClientToken, accessor: out.Auth.Accessor}
}

// RevokeToken revokes tk (and tokens made from it) at once, as an operator
// does when a token leaks.
func (s *Server) RevokeToken(t testing.TB, tk Token) {
	t.Helper()
	ctx, cancel := withTimeout()
	defer cancel()
	must(t, "revoke "+tk.String(),
		s.Do(ctx, s.root.value, http.MethodPost, "auth/token/revoke-accessor",
			map[string]any{"accessor": tk.accessor}, nil))
}
