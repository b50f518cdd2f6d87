package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// TokenPrefix starts every client token, so a leaked token is easy to
// recognise in a secret scanner.
const TokenPrefix = "kmsb."

// tokenBytes is the token's entropy: 256 bits, beyond any online or offline
// guessing.
const tokenBytes = 32

// maxTokenLen bounds what HashToken will look at; a real token is 48 bytes.
const maxTokenLen = 256

// NewToken returns a fresh client token and the hash the store keeps. The
// token itself is shown once and never stored.
func NewToken() (token string, hash []byte, err error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("new token: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	clear(b)
	return token, HashToken(token), nil
}

// HashToken returns the lookup hash of a client token. Tokens carry 256
// bits of entropy, so an unsalted SHA-256 is enough: there is nothing to
// brute-force.
func HashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// ValidTokenSyntax reports whether s looks like a client token, so obvious
// garbage is refused before any store lookup.
func ValidTokenSyntax(s string) bool {
	if len(s) > maxTokenLen || !strings.HasPrefix(s, TokenPrefix) {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s[len(TokenPrefix):])
	return err == nil && len(b) == tokenBytes
}
