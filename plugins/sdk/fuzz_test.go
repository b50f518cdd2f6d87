package sdk

import (
	"bytes"
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/kmsbroker/kmsbroker/proto/plugin/v1"
)

// fuzzPlaintext is what the valid seed blobs in testdata/fuzz/FuzzDecrypt
// decrypt to, under testKey with the seed's AAD.
var fuzzPlaintext = []byte("fuzz seed plaintext")

// FuzzDecrypt feeds arbitrary blob_info bytes and AAD to the plugin-side
// Decrypt around the real AEAD wrapper. It must never panic, and it may
// only succeed with the plaintext the valid seeds were made from.
func FuzzDecrypt(f *testing.F) {
	s := newAEADServer(f, true)
	ctx := context.Background()
	f.Add([]byte{}, []byte{})
	f.Add([]byte{0x0a, 0x00}, []byte("aad"))
	f.Fuzz(func(t *testing.T, blob, aad []byte) {
		resp, err := s.Decrypt(ctx, &pluginv1.DecryptRequest{BlobInfo: blob, Aad: aad})
		if err != nil {
			if c := status.Code(err); c != codes.InvalidArgument && c != codes.Internal {
				t.Fatalf("Decrypt: %v; want InvalidArgument or Internal", err)
			}
			return
		}
		if !bytes.Equal(resp.Plaintext, fuzzPlaintext) {
			t.Fatalf("Decrypt succeeded with %q, which no seed encrypted", resp.Plaintext)
		}
	})
}
