package keyring

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrInvalidDeriveInput means DeriveKey was given an empty or over-long
// user or session id, or a key length outside
// [MinDerivedKeyLen, MaxDerivedKeyLen].
var ErrInvalidDeriveInput = errors.New("invalid key derivation input")

// Derivation limits.
const (
	// MinDerivedKeyLen is 128 bits, the floor for a symmetric key.
	MinDerivedKeyLen = 16
	// MaxDerivedKeyLen is 512 bits, enough for any AES or HMAC-SHA-512
	// key; HKDF-SHA256 could give more, but nothing needs it.
	MaxDerivedKeyLen = 64
	// DefaultDerivedKeyLen is an AES-256 key.
	DefaultDerivedKeyLen = 32
	// MaxDeriveIDLen bounds the user and session ids: they are
	// identifiers bound into the derivation, not payloads.
	MaxDeriveIDLen = 256
)

const deriveDomain = "kmsbroker/derive/v1"

// DeriveKey derives length bytes of key material for one user's session
// from version version of the scope's sessions DEK (0 means the newest)
// with HKDF-SHA256, and returns them with the version used. The same
// scope, user, session, length and version always give the same bytes, on
// every broker sharing the store; changing any of them gives unrelated
// bytes. The ids are bound length-prefixed, so no two id pairs collide.
// A destroyed version fails with ErrKeyVersionDestroyed, an unknown one
// with ErrKeyVersionNotFound.
func (k *Keyring) DeriveKey(ctx context.Context, scopeID, user, session string,
	length int, version uint32) ([]byte, uint32, error) {
	if err := k.check(scopeID); err != nil {
		return nil, 0, fmt.Errorf("derive key: %w", err)
	}
	switch {
	case user == "" || len(user) > MaxDeriveIDLen:
		return nil, 0, fmt.Errorf("derive key: %w: user id must be 1 to %d bytes",
			ErrInvalidDeriveInput, MaxDeriveIDLen)
	case session == "" || len(session) > MaxDeriveIDLen:
		return nil, 0, fmt.Errorf("derive key: %w: session id must be 1 to %d bytes",
			ErrInvalidDeriveInput, MaxDeriveIDLen)
	case length < MinDerivedKeyLen || length > MaxDerivedKeyLen:
		return nil, 0, fmt.Errorf("derive key: %w: length %d, want %d to %d",
			ErrInvalidDeriveInput, length, MinDerivedKeyLen, MaxDerivedKeyLen)
	}

	code := Sessions.code()
	rechecked := false
	for attempt := 1; ; attempt++ {
		e, err := k.entry(ctx, scopeID)
		if err != nil {
			return nil, 0, fmt.Errorf("derive key in scope %q: %w", scopeID, err)
		}
		v := version
		if v == 0 {
			v = e.newest[code]
		}
		ref := dataRef{code, v}
		row, ok := e.data[ref]
		if !ok {
			if !rechecked && v > e.newest[code] {
				rechecked = true
				if _, err := k.revalidate(ctx, e, true); err != nil {
					return nil, 0, fmt.Errorf("derive key in scope %q: %w", scopeID, err)
				}
				continue
			}
			return nil, 0, fmt.Errorf("derive key in scope %q: sessions key version %d: %w",
				scopeID, v, ErrKeyVersionNotFound)
		}
		if !row.DestroyTime.IsZero() {
			return nil, 0, fmt.Errorf("derive key in scope %q: sessions key version %d: %w",
				scopeID, v, ErrKeyVersionDestroyed)
		}
		_, err = k.dataKey(ctx, e, Sessions, v)
		if errors.Is(err, errRetired) && attempt < maxEntryRetries {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("derive key in scope %q: %w", scopeID, err)
		}
		secret, ok := e.copyRaw(ref)
		if !ok {
			if attempt < maxEntryRetries {
				continue
			}
			return nil, 0, fmt.Errorf("derive key in scope %q: %w", scopeID, errRetired)
		}
		key, err := derive(secret, scopeID, v, user, session, length)
		clear(secret)
		if err != nil {
			return nil, 0, fmt.Errorf("derive key in scope %q: %w", scopeID, err)
		}
		return key, v, nil
	}
}

// derive is HKDF-SHA256 (RFC 5869) with the DEK as input keying material,
// no salt (the DEK is already uniformly random, RFC 5869 section 3.1), and
// as info:
//
//	"kmsbroker/derive/v1"
//	uint32 len(scope id) || scope id
//	uint32 sessions key version
//	uint32 len(user) || user
//	uint32 len(session) || session
//	uint32 length
//
// Binding the length makes a short key no prefix of a longer one.
func derive(secret []byte, scopeID string, version uint32, user, session string,
	length int) ([]byte, error) {
	info := make([]byte, 0, len(deriveDomain)+4*5+len(scopeID)+len(user)+len(session))
	info = append(info, deriveDomain...)
	info = binary.BigEndian.AppendUint32(info, uint32(len(scopeID)))
	info = append(info, scopeID...)
	info = binary.BigEndian.AppendUint32(info, version)
	info = binary.BigEndian.AppendUint32(info, uint32(len(user)))
	info = append(info, user...)
	info = binary.BigEndian.AppendUint32(info, uint32(len(session)))
	info = append(info, session...)
	info = binary.BigEndian.AppendUint32(info, uint32(length))
	return hkdf.Key(sha256.New, secret, nil, string(info), length)
}
