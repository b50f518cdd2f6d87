package envelope

import (
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"testing"
)

// benchSizes match the keyring's benchmarks, whose BenchmarkRawGCMSeal
// and BenchmarkRawGCMOpen are the baselines of these:
// `go test -bench . ./broker/keyring/...` runs them all in one run.
var benchSizes = []int{64, 1 << 10, 64 << 10}

func benchAEAD(b *testing.B) cipher.AEAD {
	b.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	return gcm(b, key)
}

// BenchmarkSeal measures Seal with a fresh output buffer per envelope, as
// the keyring calls it: the AEAD's own Seal plus the envelope's header,
// random nonce and additional data.
func BenchmarkSeal(b *testing.B) {
	aead := benchAEAD(b)
	aad := []byte("row 42")
	h := Header{Purpose: 1, KeyVersion: 7}
	for _, n := range benchSizes {
		pt := make([]byte, n)
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				Seal(nil, aead, nil, "o_bench", h, pt, aad)
			}
		})
	}
}

// BenchmarkOpen measures Parse and Open of one envelope.
func BenchmarkOpen(b *testing.B) {
	aead := benchAEAD(b)
	aad := []byte("row 42")
	h := Header{Purpose: 1, KeyVersion: 7}
	for _, n := range benchSizes {
		env := Seal(nil, aead, nil, "o_bench", h, make([]byte, n), aad)
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(env); err != nil {
					b.Fatal(err)
				}
				if _, err := Open(nil, aead, "o_bench", env, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
