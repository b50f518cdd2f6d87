// Package envelope defines kmsbroker's data ciphertext: a compact,
// versioned byte string that names the key version that made it, sealed
// with AES-256-GCM.
//
// Format version 1, all integers big-endian:
//
//	offset  size  field
//	0       1     format version, 0x01
//	1       1     data purpose code (1 database, 2 oplog, 3 tokens, 4 sessions)
//	2       4     data key version, > 0
//	6       12    GCM nonce, random per envelope
//	18      n+16  ciphertext of an n-byte plaintext, then the 16-byte GCM tag
//
// The additional data given to GCM binds everything that decides which key
// and which context the envelope belongs to, so that an envelope moved to
// another scope, purpose or key version, or given another caller AAD, fails
// to open instead of decrypting under a different meaning:
//
//	"kmsbroker/envelope/v1"       domain string, 21 bytes
//	uint32 len(scope id) || scope id
//	the 6 header bytes             format version, purpose code, key version
//	uint32 len(caller aad) || caller aad
//
// Every variable-length field is length-prefixed, so no two different
// inputs produce the same additional data. The header is authenticated as
// part of it, so flipping a header bit also fails the open.
//
// The format is locked by the golden vectors in testdata/golden.json.
package envelope

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Format constants.
const (
	// Version1 is the only format version so far.
	Version1 byte = 1
	// HeaderLen is the length of the fixed header before the nonce.
	HeaderLen = 6
	// NonceLen is GCM's standard 96-bit nonce, the only size for which
	// random nonces have NIST's analysed collision bound (SP 800-38D 8.2.2).
	NonceLen = 12
	// TagLen is GCM's full 128-bit tag; shorter tags weaken forgery
	// resistance for no gain here.
	TagLen = 16
	// Overhead is how many bytes an envelope adds to its plaintext.
	Overhead = HeaderLen + NonceLen + TagLen
	// MaxPlaintextLen caps one envelope's plaintext at 64 MiB, so a single
	// call cannot pin unbounded memory; the API's own, usually lower,
	// request limit applies first. GCM itself allows about 64 GiB.
	MaxPlaintextLen = 64 << 20
	// MaxLen is the longest valid envelope.
	MaxLen = MaxPlaintextLen + Overhead
)

const domain = "kmsbroker/envelope/v1"

// ErrMalformed means the bytes are not a well-formed envelope: too short,
// too long, an unknown format version, a zero purpose code or key version.
// It says nothing about whether the envelope would authenticate.
var ErrMalformed = errors.New("malformed envelope")

// ErrOpen means the envelope did not authenticate under the key and
// context given: wrong key, scope, purpose, version or AAD, or altered
// bytes. It carries no detail on purpose.
var ErrOpen = errors.New("envelope authentication failed")

// Header is the clear part of an envelope.
type Header struct {
	// Purpose is the data purpose code; its meaning belongs to the caller.
	Purpose byte
	// KeyVersion is the data key version that sealed the envelope.
	KeyVersion uint32
}

// Parse checks env's length and header and returns the header. It reads
// only what it has checked is there and never panics.
func Parse(env []byte) (Header, error) {
	switch {
	case len(env) < Overhead:
		return Header{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte minimum",
			ErrMalformed, len(env), Overhead)
	case len(env) > MaxLen:
		return Header{}, fmt.Errorf("%w: %d bytes, longer than the %d-byte maximum",
			ErrMalformed, len(env), MaxLen)
	case env[0] != Version1:
		return Header{}, fmt.Errorf("%w: unknown format version %d", ErrMalformed, env[0])
	}
	h := Header{Purpose: env[1], KeyVersion: binary.BigEndian.Uint32(env[2:6])}
	switch {
	case h.Purpose == 0:
		return Header{}, fmt.Errorf("%w: purpose code 0", ErrMalformed)
	case h.KeyVersion == 0:
		return Header{}, fmt.Errorf("%w: key version 0", ErrMalformed)
	}
	return h, nil
}

// Seal appends to dst the envelope of plaintext under aead (AES-256-GCM
// with a 12-byte nonce and 16-byte tag) and returns the extended slice.
// With a nil nonce, Seal draws a fresh random one straight into the
// envelope, which is what every caller but a test vector wants; a given
// nonce must be NonceLen bytes never used before with this key, since
// reusing one breaks GCM's confidentiality and authenticity. The caller
// enforces MaxPlaintextLen and a non-zero purpose and key version. Seal
// panics if aead or nonce have the wrong sizes: that is a programming
// error.
func Seal(dst []byte, aead cipher.AEAD, nonce []byte, scopeID string, h Header,
	plaintext, aad []byte) []byte {
	if aead.NonceSize() != NonceLen || aead.Overhead() != TagLen || (nonce != nil && len(nonce) != NonceLen) {
		panic("envelope: Seal needs a 12-byte-nonce, 16-byte-tag AEAD and a 12-byte nonce")
	}
	start := len(dst)
	dst = slices.Grow(dst, Overhead+len(plaintext))
	dst = append(dst, Version1, h.Purpose, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[start+2:], h.KeyVersion)
	if nonce == nil {
		dst = dst[:start+HeaderLen+NonceLen]
		rand.Read(dst[start+HeaderLen:])
	} else {
		dst = append(dst, nonce...)
	}

	ad := getAD(scopeID, dst[start:start+HeaderLen], aad)
	defer putAD(ad)
	return aead.Seal(dst, dst[start+HeaderLen:start+HeaderLen+NonceLen], plaintext, *ad)
}

// Open authenticates and decrypts env, which Parse has accepted, under
// aead, appends the plaintext to dst and returns the extended slice. Any
// failure is ErrOpen.
func Open(dst []byte, aead cipher.AEAD, scopeID string, env, aad []byte) ([]byte, error) {
	if len(env) < Overhead || aead.NonceSize() != NonceLen {
		return nil, ErrOpen
	}
	ad := getAD(scopeID, env[:HeaderLen], aad)
	defer putAD(ad)
	out, err := aead.Open(dst, env[HeaderLen:HeaderLen+NonceLen], env[HeaderLen+NonceLen:], *ad)
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}

// additionalData returns the GCM additional data described in the package
// documentation for a scope, a 6-byte header and the caller's aad.
func additionalData(scopeID string, header, aad []byte) []byte {
	return appendAD(make([]byte, 0, adLen(scopeID, aad)), scopeID, header, aad)
}

func adLen(scopeID string, aad []byte) int {
	return len(domain) + 4 + len(scopeID) + HeaderLen + 4 + len(aad)
}

func appendAD(ad []byte, scopeID string, header, aad []byte) []byte {
	ad = append(ad, domain...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(scopeID)))
	ad = append(ad, scopeID...)
	ad = append(ad, header...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(aad)))
	return append(ad, aad...)
}

// maxPooledAD is the largest additional-data buffer kept for reuse; a
// caller's unusually long aad gets a one-off buffer instead of pinning
// memory in the pool.
const maxPooledAD = 1 << 10

var adPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// getAD builds the additional data in a pooled buffer, so the hot path
// does not allocate; putAD returns it.
func getAD(scopeID string, header, aad []byte) *[]byte {
	if adLen(scopeID, aad) > maxPooledAD {
		b := additionalData(scopeID, header, aad)
		return &b
	}
	b := adPool.Get().(*[]byte)
	*b = appendAD((*b)[:0], scopeID, header, aad)
	return b
}

func putAD(b *[]byte) {
	if cap(*b) <= maxPooledAD {
		adPool.Put(b)
	}
}
