package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestAuthorize(t *testing.T) {
	admin := Principal{ID: "t_admin", Role: RoleAdmin}
	app := Principal{ID: "t_app", Role: RoleApp, Scopes: []string{"o_1"}}
	appAll := Principal{ID: "t_all", Role: RoleApp}
	recovery := Principal{ID: RecoveryPrincipal, Role: RoleRecovery}
	worker := Principal{ID: "w_build", Role: RoleWorker, Scopes: []string{"o_1"}}
	workerNone := Principal{ID: "w_idle", Role: RoleWorker}
	// Tokens.Create refuses a scoped admin; one in the store fails closed.
	scopedAdmin := Principal{ID: "t_scoped", Role: RoleAdmin, Scopes: []string{"o_1"}}

	tests := []struct {
		name    string
		p       Principal
		op      Operation
		scope   string
		wantErr string
	}{
		{"admin creates scope", admin, OpCreateScope, "", ""},
		{"admin encrypts anywhere", admin, OpEncrypt, "o_9", ""},
		{"app encrypts in its scope", app, OpEncrypt, "o_1", ""},
		{"app refused in other scope", app, OpEncrypt, "o_2", `not allowed in scope "o_2"`},
		{"app without scopes is unlimited", appAll, OpDecrypt, "o_2", ""},
		{"app may not create scopes", app, OpCreateScope, "", "role app may not scopes.create"},
		{"app may not create tokens", app, OpCreateToken, "", "role app may not tokens.create"},
		{"recovery creates tokens", recovery, OpCreateToken, "", ""},
		{"recovery may not derive", recovery, OpDeriveKey, "o_1", "role recovery may not data.derive-key"},
		{"worker derives in allowed scope", worker, OpDeriveKey, "o_1", ""},
		{"worker refused in other scope", worker, OpDeriveKey, "o_2", `not allowed in scope "o_2"`},
		{"worker with no scopes derives nowhere", workerNone, OpDeriveKey, "o_1", `not allowed in scope "o_1"`},
		{"worker may not decrypt", worker, OpDecrypt, "o_1", "role worker may not data.decrypt"},
		{"worker reads status", worker, OpStatus, "", ""},
		{"scoped admin may not create tokens", scopedAdmin, OpCreateToken, "", "admin tokens cannot be"},
		{"scoped admin may not act in its scope", scopedAdmin, OpEncrypt, "o_1", "admin tokens cannot be"},
		{"unknown operation denied", admin, Operation("sys.format-disk"), "", "may not sys.format-disk"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Authorize(tc.p, tc.op, tc.scope)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Authorize = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrPermissionDenied) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Authorize = %v, want ErrPermissionDenied containing %q", err, tc.wantErr)
			}
		})
	}
}

// Every operation the API exposes must be in the permission table, or it
// is denied to everyone.
func TestEveryOperationHasRoles(t *testing.T) {
	ops := []Operation{OpCreateScope, OpReadScope, OpListScopes, OpRotateKeys, OpRewrapKeys, OpListKeyVersions,
		OpDestroyKeyVersion, OpEncrypt, OpDecrypt, OpReEncrypt, OpDeriveKey, OpCreateToken, OpListTokens,
		OpRevokeToken, OpStatus, OpMetrics}
	for _, op := range ops {
		if len(permissions[op]) == 0 {
			t.Errorf("operation %s has no roles", op)
		}
	}
	if len(permissions) != len(ops) {
		t.Errorf("permissions has %d entries, the test knows %d: add the new operation here", len(permissions), len(ops))
	}
}

func TestTokenSyntax(t *testing.T) {
	tok, hash, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if !ValidTokenSyntax(tok) {
		t.Fatalf("fresh token %q fails its own syntax check", tok)
	}
	if string(hash) != string(HashToken(tok)) {
		t.Error("NewToken hash differs from HashToken")
	}
	other, _, _ := NewToken()
	if other == tok {
		t.Error("two tokens are equal")
	}
	for _, bad := range []string{"", "kmsb.", "kmsb.short", "Bearer " + tok, tok + "A", strings.Repeat("a", 1000), "kmsbr." + tok[5:]} {
		if ValidTokenSyntax(bad) {
			t.Errorf("ValidTokenSyntax(%q) = true", bad)
		}
	}
}
