// Package purpose names the external purposes a KMS block can serve and
// routes each one to the wrapper that serves it.
//
// External purposes are distinct from the in-core data purposes of the
// keyring (database, oplog, tokens, sessions): an external purpose is served
// by a plugin-backed KMS block, a data purpose by a scope's DEK.
package purpose

import (
	"errors"
	"fmt"
)

// Purpose is an external purpose a KMS block is configured for.
type Purpose string

// The external purposes.
const (
	// Root protects every scope's KEK.
	Root Purpose = "root"
	// PreviousRoot decrypts KEKs wrapped by a root key being retired; it
	// never encrypts.
	PreviousRoot Purpose = "previous-root"
	// WorkerAuth authenticates workers that share the KMS.
	WorkerAuth Purpose = "worker-auth"
	// Recovery authenticates break-glass recovery tokens.
	Recovery Purpose = "recovery"
	// Config encrypts secret values inside a config file.
	Config Purpose = "config"
)

// ErrUnknown is returned by Parse for a name that is not an external
// purpose.
var ErrUnknown = errors.New("unknown purpose")

// All lists every external purpose in a stable order.
func All() []Purpose {
	return []Purpose{Root, PreviousRoot, WorkerAuth, Recovery, Config}
}

// Parse returns the purpose named s.
func Parse(s string) (Purpose, error) {
	for _, p := range All() {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w %q (valid: root, previous-root, worker-auth, recovery, config)", ErrUnknown, s)
}

// String returns the purpose's name.
func (p Purpose) String() string { return string(p) }
