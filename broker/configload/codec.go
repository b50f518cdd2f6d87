package configload

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/hashicorp/go-hclog"
	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"google.golang.org/protobuf/proto"

	"github.com/kmsbroker/kmsbroker/broker/config"
	"github.com/kmsbroker/kmsbroker/broker/pluginhost"
	"github.com/kmsbroker/kmsbroker/broker/purpose"
)

// AAD is bound to every config value. A blob the same KMS made for
// another use does not decrypt as a config value, and the version lets a
// later format refuse these values by name instead of by garbage.
const AAD = "kmsbroker config value v1"

// maxCiphertext caps the text of one {{decrypt(...)}} value before it is
// decoded: a config value is a credential of at most 64 KiB (the
// config's file:// cap), which with blob overhead and base64 stays well
// under this.
const maxCiphertext = 128 << 10

// ErrCiphertext means the text of a {{decrypt(...)}} value is not a
// config value ciphertext at all: not base64, too long, or not an encoded
// blob. A ciphertext that is well formed but does not decrypt (another
// key, tampered, another AAD) fails with pluginhost.ErrDecrypt instead.
var ErrCiphertext = errors.New("not a config value ciphertext")

// Codec encrypts and decrypts config values through the plugin of the
// kms block that serves the config purpose. Its methods are the
// markers.EncryptFunc and markers.DecryptFunc of brokerd's config
// commands and of Strip. Close stops the plugin.
type Codec struct {
	block  *config.KMS
	plugin *pluginhost.Plugin
	router *purpose.Router
}

// Open finds the kms block that serves config (in opts.KMSPath when set,
// else in src, the text of filename) and starts its plugin. A marker
// inside that block is an error wrapping config.ErrCycle; no block is an
// error wrapping ErrNoConfigBlock.
func Open(ctx context.Context, src []byte, filename string, opts Options) (*Codec, error) {
	blk, dir, err := locate(src, filename, opts)
	if err != nil {
		return nil, err
	}
	return OpenBlock(ctx, blk, dir, opts.Logger)
}

// OpenBlock starts the plugin of blk, which must serve config, from the
// plugin directory dir ("" for beside the running executable).
func OpenBlock(ctx context.Context, blk *config.KMS, dir string, logger hclog.Logger) (*Codec, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	p, err := pluginhost.Start(ctx, pluginhost.BlockConfig(blk, dir, logger.Named("config")))
	if err != nil {
		return nil, fmt.Errorf("start the config kms block: %w", err)
	}
	router := purpose.NewRouter(map[purpose.Purpose]purpose.Wrapper{purpose.Config: p}, pluginhost.Retryable)
	return &Codec{block: blk, plugin: p, router: router}, nil
}

// Block is the kms block whose plugin the codec uses.
func (c *Codec) Block() *config.KMS { return c.block }

// Encrypt returns the ciphertext text of one config value.
func (c *Codec) Encrypt(ctx context.Context, plaintext []byte) (string, error) {
	blob, err := c.router.Encrypt(ctx, purpose.Config, plaintext, []byte(AAD))
	if err != nil {
		return "", err
	}
	raw, err := proto.Marshal(blob)
	if err != nil {
		return "", fmt.Errorf("encode config value blob: %w", err)
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}

// Decrypt returns the plaintext of one config value's ciphertext text.
// Errors never hold the text or the plaintext.
func (c *Codec) Decrypt(ctx context.Context, text string) ([]byte, error) {
	blob, err := parseCiphertext(text)
	if err != nil {
		return nil, err
	}
	return c.router.Decrypt(ctx, purpose.Config, blob, []byte(AAD))
}

// parseCiphertext decodes the text of a {{decrypt(...)}} value.
func parseCiphertext(text string) (*wrapping.BlobInfo, error) {
	if len(text) > maxCiphertext {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrCiphertext, maxCiphertext)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("%w: not standard base64", ErrCiphertext)
	}
	blob := new(wrapping.BlobInfo)
	if err := proto.Unmarshal(raw, blob); err != nil || len(blob.Ciphertext) == 0 {
		return nil, fmt.Errorf("%w: not an encoded blob", ErrCiphertext)
	}
	return blob, nil
}

// Close stops the plugin.
func (c *Codec) Close() { c.plugin.Stop() }
