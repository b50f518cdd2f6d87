package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
)

// keyLen is the length of every KEK and DEK: AES-256.
const keyLen = 32

// secretKey is one unwrapped key version: its raw bytes and a ready AEAD.
// It never prints its bytes. The raw bytes are zeroed by zero; the AEAD
// stays usable by calls that already hold it.
//
// TODO: the AES key schedule inside the cipher.AEAD cannot be zeroed (Go
// offers no API for it); it lives until the garbage collector frees it.
type secretKey struct {
	// id is the stable id of the key version.
	id   string
	raw  []byte
	aead cipher.AEAD
}

// newSecretKey takes ownership of raw, which must be keyLen bytes.
func newSecretKey(id string, raw []byte) (*secretKey, error) {
	if len(raw) != keyLen {
		return nil, fmt.Errorf("key version %s has %d bytes, want %d", id, len(raw), keyLen)
	}
	a, err := newGCM(raw)
	if err != nil {
		return nil, err
	}
	return &secretKey{id: id, raw: raw, aead: a}, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// String redacts the key.
func (k *secretKey) String() string { return "key version " + k.id + " (redacted)" }

// GoString redacts the key for %#v.
func (k *secretKey) GoString() string { return k.String() }

// zero overwrites the raw key bytes.
func (k *secretKey) zero() { clear(k.raw) }

// randomKey returns keyLen fresh random bytes.
func randomKey() []byte {
	b := make([]byte, keyLen)
	rand.Read(b)
	return b
}

// newVersionID returns a stable id for a key version: a prefix naming the
// kind ("kek_" or "dek_") and 80 random bits, enough that ids never
// collide across every scope of a deployment.
func newVersionID(prefix string) string {
	var b [10]byte
	rand.Read(b[:])
	return prefix + idEncoding.EncodeToString(b[:])
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Domain strings keep the additional data of KEKs, DEKs and envelopes
// apart, so a ciphertext of one kind can never be opened as another.
const (
	kekDomain = "kmsbroker/kek/v1"
	dekDomain = "kmsbroker/dek/v1"
)

// kekAAD binds a KEK to its scope and version when the root key wraps it,
// so a wrapped KEK copied to another scope or version row fails to unwrap
// instead of silently serving the wrong scope.
func kekAAD(scopeID string, version uint32) []byte {
	ad := make([]byte, 0, len(kekDomain)+4+len(scopeID)+4)
	ad = append(ad, kekDomain...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(scopeID)))
	ad = append(ad, scopeID...)
	return binary.BigEndian.AppendUint32(ad, version)
}

// dekAAD binds a DEK to its scope, purpose, version and the KEK version
// that wraps it, for the same reason.
func dekAAD(scopeID string, p DataPurpose, version, kekVersion uint32) []byte {
	ad := make([]byte, 0, len(dekDomain)+4+len(scopeID)+1+8)
	ad = append(ad, dekDomain...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(scopeID)))
	ad = append(ad, scopeID...)
	ad = append(ad, p.code())
	ad = binary.BigEndian.AppendUint32(ad, version)
	return binary.BigEndian.AppendUint32(ad, kekVersion)
}

// Wrapped DEK format: one format byte (1), a 12-byte random nonce, then
// the AES-256-GCM ciphertext of the 32-byte key and the 16-byte tag.
const (
	wrappedDEKFormat = 1
	nonceLen         = 12
	wrappedDEKLen    = 1 + nonceLen + keyLen + 16
)

var errBadWrappedDEK = errors.New("wrapped data key does not open")

// wrapDEK encrypts a DEK under a KEK.
func wrapDEK(kek cipher.AEAD, dek, aad []byte) []byte {
	out := make([]byte, 1+nonceLen, wrappedDEKLen)
	out[0] = wrappedDEKFormat
	rand.Read(out[1:])
	return kek.Seal(out, out[1:1+nonceLen], dek, aad)
}

// unwrapDEK decrypts a DEK that wrapDEK made.
func unwrapDEK(kek cipher.AEAD, wrapped, aad []byte) ([]byte, error) {
	if len(wrapped) != wrappedDEKLen || wrapped[0] != wrappedDEKFormat {
		return nil, errBadWrappedDEK
	}
	dek, err := kek.Open(make([]byte, 0, keyLen), wrapped[1:1+nonceLen], wrapped[1+nonceLen:], aad)
	if err != nil {
		return nil, errBadWrappedDEK
	}
	return dek, nil
}
