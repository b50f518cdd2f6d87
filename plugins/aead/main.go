// Command kmsbroker-plugin-aead serves an AES-256-GCM key held in the
// plugin's own settings as a kmsbroker wrapper plugin. It binds AAD.
//
// It suits development and the recovery and worker-auth purposes where the
// key is shared out of band; it is not a KMS, since the key is in the
// broker's configuration.
//
// Settings: key (base64 of exactly 32 bytes, secret) and key_id.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"github.com/hashicorp/go-kms-wrapping/v2/aead"

	"github.com/kmsbroker/kmsbroker/plugins/sdk"
)

// version is this plugin program's version.
const version = "0.1.0"

// keySize is the AES-256 key length; the wrapper would also accept
// AES-128 and AES-192 keys, which kmsbroker does not offer.
const keySize = 32

// minCiphertext is the shortest ciphertext the wrapper can have made: a
// 12-byte GCM nonce and a 16-byte tag. The wrapper slices the nonce off
// without a length check, so shorter input is refused here.
const minCiphertext = 12 + 16

var settings = []sdk.Setting{
	{Name: "key", Secret: true, Description: "base64 encoding of the 32-byte AES-256-GCM key"},
	{Name: sdk.KeyIDSetting, Description: "key id recorded in every blob; names the key in status output"},
}

func main() {
	sdk.Serve(wrapper{aead.NewWrapper()},
		sdk.WithVersion(version),
		sdk.WithAAD(),
		sdk.WithSettings(settings...),
		sdk.WithValidator(validate),
	)
}

// validate checks the key before the wrapper sees it: the wrapper would
// accept a missing key and then fail every call.
func validate(settings map[string]string) error {
	raw, ok := settings["key"]
	if !ok || raw == "" {
		return &sdk.SettingError{Setting: "key", Problem: "is required"}
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return &sdk.SettingError{Setting: "key", Problem: "is not valid base64"}
	}
	if len(key) != keySize {
		return &sdk.SettingError{Setting: "key", Problem: fmt.Sprintf("must decode to %d bytes, got %d", keySize, len(key))}
	}
	return nil
}

// wrapper adds the input checks the upstream wrapper lacks.
type wrapper struct {
	*aead.Wrapper
}

var errShortCiphertext = errors.New("ciphertext too short")

func (w wrapper) Decrypt(ctx context.Context, in *wrapping.BlobInfo, opt ...wrapping.Option) ([]byte, error) {
	if in == nil || len(in.Ciphertext) < minCiphertext {
		return nil, errShortCiphertext
	}
	return w.Wrapper.Decrypt(ctx, in, opt...)
}
