// Command leakyplugin is a deliberately leaking kmsbroker wrapper plugin,
// for the secret-hygiene tests only: the aead plugin's AES-256-GCM
// wrapper, which logs its key setting when configured and every plaintext
// it decrypts, as a careless plugin might while debugging. Its lines
// reach brokerd's log the way every plugin's do: brokerd scrubs the
// setting it knows, but cannot know a plaintext, so a hygiene scan of
// that log must report the plaintext. Never ship it.
//
// Settings: key (base64 of 32 bytes, secret) and key_id.
package main

import (
	"context"
	"os"

	"github.com/hashicorp/go-hclog"
	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"github.com/hashicorp/go-kms-wrapping/v2/aead"

	"github.com/kmsbroker/kmsbroker/plugins/sdk"
)

func main() {
	// The process's own stderr, taken before go-plugin redirects
	// os.Stderr: the host parses JSON log lines from it.
	logger := hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true})
	sdk.Serve(&wrapper{Wrapper: aead.NewWrapper(), log: logger},
		sdk.WithVersion("0.0.1-leaky"),
		sdk.WithAAD(),
		sdk.WithSettings(
			sdk.Setting{Name: "key", Secret: true, Description: "base64 encoding of the 32-byte AES-256-GCM key"},
			sdk.Setting{Name: sdk.KeyIDSetting, Description: "key id recorded in every blob"},
		),
	)
}

// wrapper is the aead wrapper that logs what it decrypts.
type wrapper struct {
	*aead.Wrapper
	log hclog.Logger
}

func (w *wrapper) SetConfig(ctx context.Context, opt ...wrapping.Option) (*wrapping.WrapperConfig, error) {
	opts, err := wrapping.GetOpts(opt...)
	if err != nil {
		return nil, err
	}
	w.log.Info("leaky plugin: configured", "key", opts.WithConfigMap["key"])
	return w.Wrapper.SetConfig(ctx, opt...)
}

func (w *wrapper) Decrypt(ctx context.Context, in *wrapping.BlobInfo, opt ...wrapping.Option) ([]byte, error) {
	plaintext, err := w.Wrapper.Decrypt(ctx, in, opt...)
	if err == nil {
		w.log.Info("leaky plugin: decrypted", "plaintext", string(plaintext))
	}
	return plaintext, err
}
