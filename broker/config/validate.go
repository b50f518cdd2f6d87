package config

import (
	"github.com/hashicorp/hcl/v2"

	"github.com/kmsbroker/kmsbroker/broker/purpose"
)

// ValidateOptions say how a config will be used.
type ValidateOptions struct {
	// Server is set when the config runs brokerd server. A block serving
	// root is then required, and so is a listener block: the default
	// listener uses TLS and has no certificate. Unset for client-side
	// files, such as a recovery or config KMS file, that hold only the
	// blocks a command needs.
	Server bool
}

// Validate checks what depends on how the config will be used; Parse has
// already rejected everything the file alone shows to be wrong. Problems
// are reported at the start of the file. The error is an *Error that wraps
// ErrInvalid.
func (c *Config) Validate(opts ValidateOptions) error {
	var diags hcl.Diagnostics
	if opts.Server {
		if c.Block(purpose.Root) == nil {
			diags = append(diags, errorf(c.start,
				"no kms block serves purpose %q, which brokerd server requires", purpose.Root))
		}
		if !c.hasListener {
			diags = append(diags, errorf(c.start, "no listener block, which brokerd server requires: "+
				"the default listener needs tls_cert_file and tls_key_file unless tls_disable = true"))
		}
	}
	return asError(diags)
}
