package pluginhost

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"

	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"google.golang.org/protobuf/types/known/structpb"
)

// Host-side AAD binding for plugins that cannot bind AAD (transit).
//
// The host encrypts bindVersion || SHA-256(bindDomain || aad) || plaintext
// instead of the plaintext. The plugin's ciphertext is authenticated, so
// nobody without the key can change the embedded digest, and decrypting
// with another AAD fails the digest comparison: the AAD is bound as
// tightly as if the plugin had bound it. The blob records the binding in
// its client data (bindKey), so a blob decrypts the same way even if the
// plugin later gains or loses the AAD capability. A blob without the
// record is only ever handed to a plugin that binds AAD itself; anything
// else fails closed.
const (
	bindVersion   byte = 1
	bindDomain         = "kmsbroker pluginhost aad binding v1\x00"
	bindKey            = "kmsbroker_aad_binding"
	bindValue          = "sha256-v1"
	bindHeaderLen      = 1 + sha256.Size
)

var errBinding = errors.New("aad binding does not match")

func aadDigest(aad []byte) []byte {
	h := sha256.New()
	h.Write([]byte(bindDomain))
	h.Write(aad)
	return h.Sum(nil)
}

// bindAAD returns the payload the plugin encrypts in place of plaintext.
func bindAAD(plaintext, aad []byte) []byte {
	out := make([]byte, 0, bindHeaderLen+len(plaintext))
	out = append(out, bindVersion)
	out = append(out, aadDigest(aad)...)
	return append(out, plaintext...)
}

// unbindAAD checks a decrypted payload against aad and returns the
// plaintext inside it.
func unbindAAD(payload, aad []byte) ([]byte, error) {
	if len(payload) < bindHeaderLen || payload[0] != bindVersion {
		return nil, errBinding
	}
	if subtle.ConstantTimeCompare(payload[1:bindHeaderLen], aadDigest(aad)) != 1 {
		return nil, errBinding
	}
	return payload[bindHeaderLen:], nil
}

// markBound records the host-side binding in blob's client data.
func markBound(blob *wrapping.BlobInfo) {
	if blob.ClientData == nil {
		blob.ClientData = &structpb.Struct{}
	}
	if blob.ClientData.Fields == nil {
		blob.ClientData.Fields = make(map[string]*structpb.Value)
	}
	blob.ClientData.Fields[bindKey] = structpb.NewStringValue(bindValue)
}

// hostBound reports whether blob records a host-side binding. A record
// this version does not know is an error: such a blob fails closed.
func hostBound(blob *wrapping.BlobInfo) (bool, error) {
	v, ok := blob.GetClientData().GetFields()[bindKey]
	switch {
	case !ok:
		return false, nil
	case v.GetStringValue() == bindValue:
		return true, nil
	default:
		return false, errBinding
	}
}
