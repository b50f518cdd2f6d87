package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/kmsbroker/kmsbroker/broker/audit"
)

// Authenticator accepts client tokens and, when configured, one-time
// recovery and worker-auth tokens.
type Authenticator struct {
	Tokens *Tokens
	// OneTime verifies recovery and worker-auth tokens; nil refuses them.
	OneTime *OneTimeVerifier
	// Audit records every one-time token authentication.
	Audit *audit.Log
	// Logger reports audit write failures.
	Logger hclog.Logger
}

// Authenticate returns the principal credential acts as.
func (a *Authenticator) Authenticate(ctx context.Context, credential string) (Principal, error) {
	if !IsOneTime(credential) {
		return a.Tokens.Authenticate(ctx, credential)
	}
	kind := "recovery"
	if len(credential) >= len(WorkerTokenPrefix) && credential[:len(WorkerTokenPrefix)] == WorkerTokenPrefix {
		kind = "worker-auth"
	}
	if a.OneTime == nil {
		err := fmt.Errorf("%w: %s tokens are not accepted by this broker", ErrUnauthenticated, kind)
		a.record(kind, "", err)
		return Principal{}, err
	}
	// TODO: one-time token attempts are not rate limited; each costs a
	// KMS decrypt before it can be refused, so a flood is a billed load.
	p, err := a.OneTime.Verify(ctx, credential)
	a.record(kind, p.ID, err)
	return p, err
}

func (a *Authenticator) record(kind, principal string, err error) {
	if principal == "" {
		// Refused before it proved anything: the caller is anonymous.
		principal = AnonymousPrincipal
	}
	e := audit.Event{Principal: principal, Operation: "auth." + kind, Result: audit.ResultOK}
	switch {
	case errors.Is(err, ErrUnauthenticated):
		e.Result, e.Reason = audit.ResultRejected, err.Error()
	case err != nil:
		e.Result, e.Reason = audit.ResultError, err.Error()
	}
	// An audit write failure is logged, not turned into an authentication
	// result.
	if err := a.Audit.Record(e); err != nil && a.Logger != nil {
		a.Logger.Error("audit write failed", "operation", e.Operation, "error", err)
	}
}
