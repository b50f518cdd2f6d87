package keyring

import (
	"context"
	"errors"
	"fmt"

	"github.com/kmsbroker/kmsbroker/broker/keyring/envelope"
)

// MaxPlaintextLen is the most Encrypt accepts in one call; see
// envelope.MaxPlaintextLen for why.
const MaxPlaintextLen = envelope.MaxPlaintextLen

// Encrypt seals plaintext into an envelope with the newest key version of
// the scope's data key for p, binding aad (which may be empty and must be
// given again to Decrypt). It returns the envelope and the key version
// used.
//
// Each envelope takes a fresh random 96-bit nonce.
//
// TODO: nothing counts encryptions per key version; past about 2^32
// envelopes under one version, random nonces exceed NIST's collision
// bound, so a scope that busy must be rotated by its operator.
func (k *Keyring) Encrypt(ctx context.Context, scopeID string, p DataPurpose,
	plaintext, aad []byte) ([]byte, uint32, error) {
	if err := k.check(scopeID); err != nil {
		return nil, 0, fmt.Errorf("encrypt: %w", err)
	}
	code := p.code()
	switch {
	case code == 0:
		return nil, 0, fmt.Errorf("encrypt: %w", ErrUnknownDataPurpose)
	case len(plaintext) == 0:
		return nil, 0, fmt.Errorf("encrypt: %w", ErrEmptyPlaintext)
	case len(plaintext) > MaxPlaintextLen:
		return nil, 0, fmt.Errorf("encrypt: %w: %d bytes, at most %d",
			ErrPlaintextTooLarge, len(plaintext), MaxPlaintextLen)
	}

	for attempt := 1; ; attempt++ {
		e, err := k.entry(ctx, scopeID)
		if err != nil {
			return nil, 0, fmt.Errorf("encrypt in scope %q: %w", scopeID, err)
		}
		v := e.newest[code]
		if v == 0 {
			return nil, 0, fmt.Errorf("encrypt in scope %q: %w: no %s key", scopeID, ErrStore, p)
		}
		sk, err := k.dataKey(ctx, e, p, v)
		if errors.Is(err, errRetired) && attempt < maxEntryRetries {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("encrypt in scope %q: %w", scopeID, err)
		}

		out := envelope.Seal(nil, sk.aead, nil, scopeID,
			envelope.Header{Purpose: code, KeyVersion: v}, plaintext, aad)
		return out, v, nil
	}
}

// Decrypt opens an envelope that Encrypt made for the same scope, purpose
// and aad, and returns the plaintext and the key version that made it.
// Every envelope that does not open gets ErrDecrypt; one made by a
// destroyed key version gets ErrKeyVersionDestroyed.
func (k *Keyring) Decrypt(ctx context.Context, scopeID string, p DataPurpose, env,
	aad []byte) ([]byte, uint32, error) {
	if err := k.check(scopeID); err != nil {
		return nil, 0, fmt.Errorf("decrypt: %w", err)
	}
	code := p.code()
	if code == 0 {
		return nil, 0, fmt.Errorf("decrypt: %w", ErrUnknownDataPurpose)
	}
	h, err := envelope.Parse(env)
	if err != nil {
		return nil, 0, k.openFailed(scopeID, p, 0, err)
	}
	if h.Purpose != code {
		return nil, 0, k.openFailed(scopeID, p, h.KeyVersion,
			fmt.Errorf("envelope is for purpose code %d", h.Purpose))
	}

	ref := dataRef{code, h.KeyVersion}
	rechecked := false
	for attempt := 1; ; attempt++ {
		e, err := k.entry(ctx, scopeID)
		if err != nil {
			return nil, 0, fmt.Errorf("decrypt in scope %q: %w", scopeID, err)
		}
		row, ok := e.data[ref]
		if !ok {
			// A version newer than any we know may have been made by
			// another broker since we last looked.
			if !rechecked && h.KeyVersion > e.newest[code] {
				rechecked = true
				if _, err := k.revalidate(ctx, e, true); err != nil {
					return nil, 0, fmt.Errorf("decrypt in scope %q: %w", scopeID, err)
				}
				continue
			}
			return nil, 0, k.openFailed(scopeID, p, h.KeyVersion, errors.New("no such key version"))
		}
		if !row.DestroyTime.IsZero() {
			return nil, 0, fmt.Errorf("decrypt in scope %q: %s key version %d: %w",
				scopeID, p, h.KeyVersion, ErrKeyVersionDestroyed)
		}
		sk, err := k.dataKey(ctx, e, p, h.KeyVersion)
		if errors.Is(err, errRetired) && attempt < maxEntryRetries {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("decrypt in scope %q: %w", scopeID, err)
		}
		pt, err := envelope.Open(nil, sk.aead, scopeID, env, aad)
		if err != nil {
			return nil, 0, k.openFailed(scopeID, p, h.KeyVersion, err)
		}
		return pt, h.KeyVersion, nil
	}
}

// openFailed logs why an envelope did not open, at Debug and without any
// secret, and returns the one opaque ErrDecrypt.
func (k *Keyring) openFailed(scopeID string, p DataPurpose, version uint32, reason error) error {
	k.log.Debug("decrypt failed", "scope", scopeID, "purpose", p, "key_version",
		version, "error", reason)
	return ErrDecrypt
}
