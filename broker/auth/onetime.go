package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"google.golang.org/protobuf/proto"

	"github.com/kmsbroker/kmsbroker/broker/pluginhost"
	"github.com/kmsbroker/kmsbroker/broker/purpose"
	"github.com/kmsbroker/kmsbroker/broker/store"
)

// One-time tokens prove that the caller holds a KMS the broker shares: the
// recovery KMS (break-glass access as u_recovery) or the worker-auth KMS (a
// worker's identity). A client makes a fresh one for every request: a random
// nonce and the creation time, and for workers the worker's name, encrypted
// by that KMS. The broker decrypts it, checks the time window and records
// the nonce so the token cannot be replayed.
//
// Wire form: a prefix naming the kind, then the base64url (unpadded)
// protobuf encoding of the wrapping.BlobInfo the KMS returned. The
// plaintext inside is:
//
//	version  1 byte   (1)
//	kind     1 byte   (1 recovery, 2 worker)
//	created  8 bytes  Unix nanoseconds, big-endian
//	nonce    32 bytes
//	namelen  1 byte   (0 for recovery)
//	name     namelen bytes
//
// The kind is also bound as AAD through the purpose router, so a recovery
// token cannot pass as a worker token even where both purposes share a key.

// Prefixes of one-time tokens.
const (
	RecoveryTokenPrefix = "kmsbr."
	WorkerTokenPrefix   = "kmsbw."
)

// Built-in principals. They exist in every broker and cannot be deleted.
const (
	// RecoveryPrincipal is who a valid recovery token acts as.
	RecoveryPrincipal = "u_recovery"
	// AnonymousPrincipal is who an unauthenticated caller is: it may only
	// read health.
	AnonymousPrincipal = "u_anon"
	// workerPrincipalPrefix starts a worker's principal id: w_<name>.
	workerPrincipalPrefix = "w_"
)

// Roles of one-time token principals.
const (
	// RoleRecovery may do everything but derive session keys: it names no
	// real user to bind a session key to.
	RoleRecovery Role = "recovery"
	// RoleWorker derives session keys in the scopes allowed to workers and
	// reads status.
	RoleWorker Role = "worker"
)

// Limits of one-time tokens.
const (
	// DefaultOneTimeValidity is how long a token is accepted after its
	// creation: long enough for a slow KMS round trip and clock drift
	// between client and broker, short enough to bound replay storage.
	DefaultOneTimeValidity = 5 * time.Minute
	// MaxOneTimeValidity is the longest Validity a verifier accepts.
	MaxOneTimeValidity = time.Hour
	// maxFutureSkew tolerates a client clock that runs ahead.
	maxFutureSkew = time.Minute
	// nonceRetention is how long after a token's creation its nonce is
	// kept. It does not depend on this broker's Validity, since another
	// broker on the same store may accept tokens for longer (up to
	// MaxOneTimeValidity), and it adds maxFutureSkew because the broker
	// that prunes may run ahead of the one that checks.
	nonceRetention = MaxOneTimeValidity + maxFutureSkew
	// nonceLen is 256 bits: collisions between honest clients never
	// happen, so a seen nonce is always a replay.
	nonceLen = 32
	// maxOneTimeToken bounds the credential before any decoding; a real
	// one is a few hundred bytes.
	maxOneTimeToken = 8 << 10
	// payloadVersion is the plaintext format version.
	payloadVersion = 1
	// fixedPayloadLen is everything but the name.
	fixedPayloadLen = 1 + 1 + 8 + nonceLen + 1
)

// Kind is the kind of a one-time token.
type Kind byte

// The kinds.
const (
	KindRecovery Kind = 1
	KindWorker   Kind = 2
)

func (k Kind) purpose() purpose.Purpose {
	if k == KindWorker {
		return purpose.WorkerAuth
	}
	return purpose.Recovery
}

func (k Kind) prefix() string {
	if k == KindWorker {
		return WorkerTokenPrefix
	}
	return RecoveryTokenPrefix
}

func (k Kind) aad() []byte {
	return []byte(fmt.Sprintf("kmsbroker one-time token v1 kind %d", k))
}

func (k Kind) String() string {
	if k == KindWorker {
		return "worker-auth"
	}
	return "recovery"
}

// workerName is what a worker may call itself.
var workerName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// Encrypter is the client side's KMS: a purpose router over the one
// locally started plugin.
type Encrypter interface {
	Encrypt(ctx context.Context, p purpose.Purpose, plaintext, aad []byte) (*wrapping.BlobInfo, error)
}

// Decrypter is the broker side's KMS.
type Decrypter interface {
	Decrypt(ctx context.Context, p purpose.Purpose, blob *wrapping.BlobInfo, aad []byte) ([]byte, error)
	Has(p purpose.Purpose) bool
}

// MintOneTime makes a fresh one-time token of kind, for worker name when
// kind is KindWorker.
func MintOneTime(ctx context.Context, enc Encrypter, kind Kind, name string, now time.Time) (string, error) {
	if kind == KindWorker && !workerName.MatchString(name) {
		return "", fmt.Errorf("mint %s token: worker name must match %s", kind, workerName)
	}
	if kind == KindRecovery {
		name = ""
	}
	payload := make([]byte, fixedPayloadLen+len(name))
	payload[0] = payloadVersion
	payload[1] = byte(kind)
	binary.BigEndian.PutUint64(payload[2:10], uint64(now.UnixNano()))
	if _, err := rand.Read(payload[10 : 10+nonceLen]); err != nil {
		return "", fmt.Errorf("mint %s token: %w", kind, err)
	}
	payload[10+nonceLen] = byte(len(name))
	copy(payload[fixedPayloadLen:], name)

	blob, err := enc.Encrypt(ctx, kind.purpose(), payload, kind.aad())
	if err != nil {
		return "", fmt.Errorf("mint %s token: %w", kind, err)
	}
	b, err := proto.Marshal(blob)
	if err != nil {
		return "", fmt.Errorf("mint %s token: %w", kind, err)
	}
	return kind.prefix() + base64.RawURLEncoding.EncodeToString(b), nil
}

// oneTimePayload is a decrypted one-time token.
type oneTimePayload struct {
	kind    Kind
	created time.Time
	nonce   []byte
	name    string
}

// errMalformed is every way a decrypted payload can be wrong.
var errMalformed = errors.New("malformed token payload")

// parsePayload checks every length before slicing.
func parsePayload(b []byte) (oneTimePayload, error) {
	if len(b) < fixedPayloadLen || b[0] != payloadVersion {
		return oneTimePayload{}, errMalformed
	}
	kind := Kind(b[1])
	if kind != KindRecovery && kind != KindWorker {
		return oneTimePayload{}, errMalformed
	}
	nameLen := int(b[10+nonceLen])
	if len(b) != fixedPayloadLen+nameLen {
		return oneTimePayload{}, errMalformed
	}
	p := oneTimePayload{
		kind:    kind,
		created: time.Unix(0, int64(binary.BigEndian.Uint64(b[2:10]))),
		nonce:   append([]byte(nil), b[10:10+nonceLen]...),
		name:    string(b[fixedPayloadLen:]),
	}
	if kind == KindWorker && !workerName.MatchString(p.name) {
		return oneTimePayload{}, errMalformed
	}
	if kind == KindRecovery && nameLen != 0 {
		return oneTimePayload{}, errMalformed
	}
	return p, nil
}

// decodeOneTime splits a credential into its kind and blob.
func decodeOneTime(credential string) (Kind, *wrapping.BlobInfo, error) {
	if len(credential) > maxOneTimeToken {
		return 0, nil, errors.New("token too long")
	}
	var kind Kind
	var body string
	switch {
	case strings.HasPrefix(credential, RecoveryTokenPrefix):
		kind, body = KindRecovery, credential[len(RecoveryTokenPrefix):]
	case strings.HasPrefix(credential, WorkerTokenPrefix):
		kind, body = KindWorker, credential[len(WorkerTokenPrefix):]
	default:
		return 0, nil, errors.New("not a one-time token")
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return 0, nil, errors.New("token is not base64url")
	}
	blob := new(wrapping.BlobInfo)
	if err := proto.Unmarshal(raw, blob); err != nil || len(blob.GetCiphertext()) == 0 {
		return 0, nil, errors.New("token does not hold an encrypted blob")
	}
	return kind, blob, nil
}

// IsOneTime reports whether credential claims to be a one-time token.
func IsOneTime(credential string) bool {
	return strings.HasPrefix(credential, RecoveryTokenPrefix) || strings.HasPrefix(credential, WorkerTokenPrefix)
}

// OneTimeVerifier checks recovery and worker-auth tokens on the broker.
type OneTimeVerifier struct {
	// KMS decrypts with the broker's recovery and worker-auth purposes.
	KMS Decrypter
	// Nonces records used nonces, shared by every broker on one store.
	Nonces store.AuthStore
	// Validity is how long after creation a token is accepted. Default:
	// DefaultOneTimeValidity; at most MaxOneTimeValidity.
	Validity time.Duration
	// WorkerScopes are the scopes a worker may derive keys in; empty
	// means none.
	WorkerScopes []string
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Verify returns the principal a one-time token acts as. Every refusal
// wraps ErrUnauthenticated and names its reason; none reveals key material.
func (v *OneTimeVerifier) Verify(ctx context.Context, credential string) (Principal, error) {
	kind, blob, err := decodeOneTime(credential)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	if !v.KMS.Has(kind.purpose()) {
		return Principal{}, fmt.Errorf("%w: %s tokens are refused: the broker has no %s KMS block",
			ErrUnauthenticated, kind, kind.purpose())
	}
	plain, err := v.KMS.Decrypt(ctx, kind.purpose(), blob, kind.aad())
	if err != nil {
		if !isBackendDown(err) {
			return Principal{}, fmt.Errorf("%w: %s token could not be decrypted with the broker's %s KMS",
				ErrUnauthenticated, kind, kind.purpose())
		}
		return Principal{}, fmt.Errorf("verify %s token: %w", kind, err)
	}
	p, err := parsePayload(plain)
	clear(plain)
	if err != nil || p.kind != kind {
		return Principal{}, fmt.Errorf("%w: %s token payload is malformed", ErrUnauthenticated, kind)
	}

	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	validity := v.Validity
	if validity <= 0 {
		validity = DefaultOneTimeValidity
	}
	validity = min(validity, MaxOneTimeValidity)
	t := now()
	switch {
	case p.created.After(t.Add(maxFutureSkew)):
		return Principal{}, fmt.Errorf("%w: %s token was created %s in the future (allowed: %s)",
			ErrUnauthenticated, kind, p.created.Sub(t).Round(time.Second), maxFutureSkew)
	case t.Sub(p.created) > validity:
		return Principal{}, fmt.Errorf("%w: %s token expired: created %s ago, valid for %s",
			ErrUnauthenticated, kind, t.Sub(p.created).Round(time.Second), validity)
	}
	// The nonce must be remembered until the token could no longer pass
	// the age check above on any broker sharing the store.
	if err := v.Nonces.UseNonce(ctx, p.nonce, p.created.Add(nonceRetention)); err != nil {
		if errors.Is(err, store.ErrNonceUsed) {
			return Principal{}, fmt.Errorf("%w: %s token was already used", ErrUnauthenticated, kind)
		}
		return Principal{}, fmt.Errorf("verify %s token: record nonce: %w: %w", kind, ErrStore, err)
	}

	if kind == KindWorker {
		return Principal{ID: workerPrincipalPrefix + p.name, Name: p.name, Role: RoleWorker,
			Scopes: append([]string(nil), v.WorkerScopes...)}, nil
	}
	return Principal{ID: RecoveryPrincipal, Name: "recovery", Role: RoleRecovery}, nil
}

// isBackendDown tells a KMS outage, which the caller may retry, from a
// token the KMS could not open.
func isBackendDown(err error) bool {
	return errors.Is(err, pluginhost.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}
