// Command hangplugin is a deliberately broken kmsbroker wrapper plugin for
// the fault tests: an AES-256-GCM wrapper (the aead plugin's) whose
// Encrypt, Decrypt or both never return, not even when the host gives up
// on the call. Its health call answers as usual, so the host sees a live
// process whose KMS hangs.
//
// Settings: key (base64 of 32 bytes, secret), key_id, and hang: a
// comma-separated list of the operations that hang, "encrypt" and
// "decrypt"; empty hangs nothing.
package main

import (
	"context"
	"slices"
	"strings"

	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"github.com/hashicorp/go-kms-wrapping/v2/aead"

	"github.com/kmsbroker/kmsbroker/plugins/sdk"
)

func main() {
	sdk.Serve(&wrapper{Wrapper: aead.NewWrapper()},
		sdk.WithVersion("0.0.1-hang"),
		sdk.WithAAD(),
		sdk.WithSettings(
			sdk.Setting{Name: "key", Secret: true, Description: "base64 encoding of the 32-byte AES-256-GCM key"},
			sdk.Setting{Name: sdk.KeyIDSetting, Description: "key id recorded in every blob"},
			sdk.Setting{Name: "hang", Description: "operations that never return: encrypt, decrypt, or both, comma-separated"},
		),
		sdk.WithValidator(validate),
	)
}

var operations = []string{"encrypt", "decrypt"}

func validate(settings map[string]string) error {
	for _, op := range parseHang(settings["hang"]) {
		if !slices.Contains(operations, op) {
			return &sdk.SettingError{Setting: "hang", Problem: "lists an operation other than encrypt and decrypt"}
		}
	}
	return nil
}

func parseHang(s string) []string {
	var ops []string
	for _, op := range strings.Split(s, ",") {
		if op = strings.TrimSpace(op); op != "" {
			ops = append(ops, op)
		}
	}
	return ops
}

// wrapper is the aead wrapper with some operations made to hang.
type wrapper struct {
	*aead.Wrapper
	hang []string
}

func (w *wrapper) SetConfig(ctx context.Context, opt ...wrapping.Option) (*wrapping.WrapperConfig, error) {
	opts, err := wrapping.GetOpts(opt...)
	if err != nil {
		return nil, err
	}
	w.hang = parseHang(opts.WithConfigMap["hang"])
	return w.Wrapper.SetConfig(ctx, opt...)
}

func (w *wrapper) Encrypt(ctx context.Context, plaintext []byte, opt ...wrapping.Option) (*wrapping.BlobInfo, error) {
	w.maybeHang("encrypt")
	return w.Wrapper.Encrypt(ctx, plaintext, opt...)
}

func (w *wrapper) Decrypt(ctx context.Context, in *wrapping.BlobInfo, opt ...wrapping.Option) ([]byte, error) {
	w.maybeHang("decrypt")
	return w.Wrapper.Decrypt(ctx, in, opt...)
}

// maybeHang blocks for ever, ignoring every cancellation, when op is one
// of the operations that hang.
func (w *wrapper) maybeHang(op string) {
	if slices.Contains(w.hang, op) {
		select {}
	}
}
