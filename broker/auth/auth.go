// Package auth decides who is calling the broker and what they may do.
//
// Every API call is named by an Operation; one table, permissions, maps each
// operation to the roles that may perform it. A credential that cannot be
// verified is ErrUnauthenticated (HTTP 401); a verified principal without the
// right is ErrPermissionDenied (HTTP 403).
package auth

import (
	"errors"
	"fmt"
	"slices"
)

// Role is what a principal is allowed to do.
type Role string

// The roles.
const (
	// RoleAdmin manages scopes, keys and tokens, and may use every scope.
	RoleAdmin Role = "admin"
	// RoleApp encrypts, decrypts and derives in the scopes it is given.
	RoleApp Role = "app"
)

// ParseRole returns the role of a client token: admin or app. The
// recovery and worker roles belong to built-in principals only.
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case RoleAdmin, RoleApp:
		return Role(s), nil
	}
	return "", fmt.Errorf("unknown role %q (valid: admin, app)", s)
}

// Operation names one API call.
type Operation string

// The operations, one per API call.
const (
	OpCreateScope       Operation = "scopes.create"
	OpReadScope         Operation = "scopes.read"
	OpListScopes        Operation = "scopes.list"
	OpRotateKeys        Operation = "scopes.rotate-keys"
	OpRewrapKeys        Operation = "scopes.rewrap"
	OpListKeyVersions   Operation = "scopes.key-versions"
	OpDestroyKeyVersion Operation = "scopes.destroy-key-version"
	OpEncrypt           Operation = "data.encrypt"
	OpDecrypt           Operation = "data.decrypt"
	OpReEncrypt         Operation = "data.reencrypt"
	OpDeriveKey         Operation = "data.derive-key"
	OpCreateToken       Operation = "tokens.create"
	OpListTokens        Operation = "tokens.list"
	OpRevokeToken       Operation = "tokens.revoke"
	OpStatus            Operation = "sys.status"
	OpMetrics           Operation = "sys.metrics"
)

// permissions is the one table of who may do what. An operation missing
// from it is denied to everyone. Recovery may do everything an admin may,
// including making the first admin token, but not derive session keys: it
// names no real user to bind them to.
var permissions = map[Operation][]Role{
	OpCreateScope:       {RoleAdmin, RoleRecovery},
	OpReadScope:         {RoleAdmin, RoleRecovery, RoleApp},
	OpListScopes:        {RoleAdmin, RoleRecovery},
	OpRotateKeys:        {RoleAdmin, RoleRecovery},
	OpRewrapKeys:        {RoleAdmin, RoleRecovery},
	OpListKeyVersions:   {RoleAdmin, RoleRecovery},
	OpDestroyKeyVersion: {RoleAdmin, RoleRecovery},
	OpEncrypt:           {RoleAdmin, RoleRecovery, RoleApp},
	OpDecrypt:           {RoleAdmin, RoleRecovery, RoleApp},
	OpReEncrypt:         {RoleAdmin, RoleRecovery, RoleApp},
	OpDeriveKey:         {RoleAdmin, RoleApp, RoleWorker},
	OpCreateToken:       {RoleAdmin, RoleRecovery},
	OpListTokens:        {RoleAdmin, RoleRecovery},
	OpRevokeToken:       {RoleAdmin, RoleRecovery},
	OpStatus:            {RoleAdmin, RoleRecovery, RoleApp, RoleWorker},
	OpMetrics:           {RoleAdmin, RoleRecovery, RoleApp, RoleWorker},
}

// Errors returned by Authenticate and Authorize.
var (
	// ErrUnauthenticated means the credential is missing, malformed,
	// unknown, expired or revoked.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied means the principal is known but lacks the right.
	ErrPermissionDenied = errors.New("permission denied")
)

// Principal is an authenticated caller.
type Principal struct {
	// ID names the caller in logs and audit lines, for example a token id.
	ID string
	// Name is the human name given to the credential.
	Name string
	Role Role
	// Scopes limits the principal to these scopes. Empty means every scope
	// for admin and app tokens, and no scope for workers, whose scopes the
	// broker's config must grant.
	Scopes []string
}

// Authorize reports whether p may perform op, in scope when the operation
// acts on one ("" otherwise).
func Authorize(p Principal, op Operation, scope string) error {
	roles, ok := permissions[op]
	if !ok || !slices.Contains(roles, p.Role) {
		return fmt.Errorf("%w: role %s may not %s", ErrPermissionDenied, p.Role, op)
	}
	if p.Role == RoleAdmin && len(p.Scopes) > 0 {
		// Create refuses such tokens; one found in the store fails closed.
		return fmt.Errorf("%w: admin token %s is limited to scopes, which admin tokens cannot be; revoke it",
			ErrPermissionDenied, p.ID)
	}
	limited := len(p.Scopes) > 0 || p.Role == RoleWorker
	if scope != "" && limited && !slices.Contains(p.Scopes, scope) {
		return fmt.Errorf("%w: %s is not allowed in scope %q", ErrPermissionDenied, p.ID, scope)
	}
	return nil
}
