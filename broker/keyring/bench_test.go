package keyring

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/kmsbroker/kmsbroker/broker/keyring/envelope"
)

var benchSizes = []int{64, 1 << 10, 64 << 10}

// BenchmarkEncrypt measures Keyring.Encrypt on a warm scope; compare with
// BenchmarkRawGCMSeal, the same work done directly with crypto/cipher.
func BenchmarkEncrypt(b *testing.B) {
	f := newFixture(b, fixtureOpts{})
	f.mustCreate(b, "o_bench")
	aad := []byte("row 42")
	for _, n := range benchSizes {
		pt := make([]byte, n)
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := f.kr.Encrypt(context.Background(), "o_bench", Database, pt, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	if n := f.croot.calls(); n != 1 {
		b.Fatalf("benchmark made %d root calls, want the 1 of CreateScope", n)
	}
}

// BenchmarkDecrypt measures Keyring.Decrypt on a warm scope; compare with
// BenchmarkRawGCMOpen.
func BenchmarkDecrypt(b *testing.B) {
	f := newFixture(b, fixtureOpts{})
	f.mustCreate(b, "o_bench")
	aad := []byte("row 42")
	for _, n := range benchSizes {
		env, _ := f.mustEncrypt(b, "o_bench", Database, make([]byte, n), aad)
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := f.kr.Decrypt(context.Background(), "o_bench", Database, env, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRawGCMSeal is the baseline: AES-256-GCM from crypto/cipher
// with a ready AEAD, a fresh random nonce and a new output buffer per
// call, which is the least any envelope encryption must do.
func BenchmarkRawGCMSeal(b *testing.B) {
	a := benchGCM(b)
	aad := []byte("row 42")
	for _, n := range benchSizes {
		pt := make([]byte, n)
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				nonce := make([]byte, envelope.NonceLen)
				rand.Read(nonce)
				out := make([]byte, 0, n+a.Overhead())
				a.Seal(out, nonce, pt, aad)
			}
		})
	}
}

// BenchmarkRawGCMOpen is the decrypt baseline.
func BenchmarkRawGCMOpen(b *testing.B) {
	a := benchGCM(b)
	aad := []byte("row 42")
	nonce := make([]byte, envelope.NonceLen)
	for _, n := range benchSizes {
		ct := a.Seal(nil, nonce, make([]byte, n), aad)
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Open(nil, nonce, ct, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchGCM(b *testing.B) cipher.AEAD {
	key := make([]byte, 32)
	rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		b.Fatal(err)
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	return a
}
