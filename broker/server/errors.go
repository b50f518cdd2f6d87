package server

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kmsbroker/kmsbroker/broker/auth"
	"github.com/kmsbroker/kmsbroker/broker/keyring"
	"github.com/kmsbroker/kmsbroker/broker/pluginhost"
	"github.com/kmsbroker/kmsbroker/broker/purpose"
)

// fail turns an error from the auth or keyring layer into a gRPC status.
// Bad requests keep their message, which never holds a secret; a failed
// decrypt is one opaque message whatever the cause; backend failures are
// logged here and reach the caller only as "internal" or "unavailable", so
// no store or plugin detail leaks through the API.
func (s *service) fail(err error) error {
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, message(err))
	case errors.Is(err, auth.ErrPermissionDenied):
		return status.Error(codes.PermissionDenied, message(err))
	case errors.Is(err, keyring.ErrScopeNotFound),
		errors.Is(err, keyring.ErrKeyVersionNotFound),
		errors.Is(err, auth.ErrTokenNotFound):
		return status.Error(codes.NotFound, message(err))
	case errors.Is(err, keyring.ErrScopeExists):
		return status.Error(codes.AlreadyExists, message(err))
	case errors.Is(err, keyring.ErrInvalidScopeID),
		errors.Is(err, keyring.ErrInvalidScopeName),
		errors.Is(err, keyring.ErrUnknownDataPurpose),
		errors.Is(err, keyring.ErrEmptyPlaintext),
		errors.Is(err, keyring.ErrPlaintextTooLarge),
		errors.Is(err, keyring.ErrInvalidDeriveInput),
		errors.Is(err, auth.ErrInvalidToken):
		return status.Error(codes.InvalidArgument, message(err))
	case errors.Is(err, keyring.ErrDecrypt):
		return status.Error(codes.InvalidArgument,
			"decrypt failed: the ciphertext is corrupt or was not made for this scope, purpose and aad")
	case errors.Is(err, keyring.ErrKeyVersionDestroyed),
		errors.Is(err, keyring.ErrKeyVersionActive),
		errors.Is(err, keyring.ErrKeyVersionInUse),
		errors.Is(err, keyring.ErrKeyVersionRecent):
		return status.Error(codes.FailedPrecondition, message(err))
	case errors.Is(err, keyring.ErrConcurrentChange):
		return status.Error(codes.Aborted, message(err))
	case isUnavailable(err):
		// Checked before the context errors: a plugin's own call timeout
		// is a backend that did not answer, which the client may retry.
		s.logger.Error("request failed", "error", err)
		return status.Error(codes.Unavailable, "a key backend is unavailable; retry later")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	}
	s.logger.Error("request failed", "error", err)
	return status.Error(codes.Internal, "internal error; see the broker log")
}

// message is err's text for a status. A request's own ids can reach it,
// and a status message must be UTF-8 (else the JSON API cannot encode it
// and answers 500), so invalid bytes become U+FFFD.
func message(err error) string {
	return strings.ToValidUTF8(err.Error(), "\uFFFD")
}

// isUnavailable reports a backend that may come back: a plugin restarting,
// a KMS that did not answer in time, a store that failed.
func isUnavailable(err error) bool {
	return errors.Is(err, pluginhost.ErrUnavailable) || errors.Is(err, purpose.ErrNotConfigured) ||
		errors.Is(err, keyring.ErrClosed) || errors.Is(err, keyring.ErrStore) || errors.Is(err, auth.ErrStore)
}
