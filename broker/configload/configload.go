// Package configload reads a broker config whose values may be encrypted
// with the config purpose: it finds the kms block that serves config,
// starts that block's plugin locally, and decrypts each
// {{decrypt(CIPHERTEXT)}} value in memory before the file is parsed.
// Decrypted values are never written anywhere.
//
// # Ciphertext format
//
// The text between a decrypt marker's parentheses is the standard base64
// encoding, with padding (RFC 4648 section 4), of a protobuf-encoded
// go-kms-wrapping BlobInfo made by the config purpose's plugin with AAD
// "kmsbroker config value v1". Standard base64 holds no quote, brace,
// "$" or "%", so the text is safe inside an HCL quoted string and cannot
// end a marker early.
package configload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/kmsbroker/kmsbroker/broker/config"
	"github.com/kmsbroker/kmsbroker/broker/config/markers"
)

// maxFileSize caps a config file, as config.Load does: a broker config is
// a few kilobytes, and the cap bounds memory when a path names a device
// or a huge file by mistake.
const maxFileSize = 1 << 20

// ErrNoConfigBlock means a file holds encrypted values but no kms block
// serves the config purpose to decrypt them (or, for encrypt, to encrypt
// them).
var ErrNoConfigBlock = errors.New("no kms block serves purpose \"config\"")

// Options say where the config purpose's kms block and its plugin are.
// The zero value uses the config file's own block and plugins directory.
type Options struct {
	// KMSPath, when set, names a file whose kms block serving config is
	// used instead of one in the config file (brokerd -config-kms).
	KMSPath string
	// PluginDirectory is used when neither file has a plugins block.
	// "" means beside the running executable.
	PluginDirectory string
	// Logger receives the config plugin's log lines and a warning per
	// value still written as {{encrypt(...)}}. nil discards them.
	Logger hclog.Logger
}

func (o Options) logger() hclog.Logger {
	if o.Logger == nil {
		return hclog.NewNullLogger()
	}
	return o.Logger
}

// Read reads a config file of at most 1 MiB.
func Read(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("read config %s: larger than %d bytes", path, maxFileSize)
	}
	return b, nil
}

// Load reads the config file at path, decrypts its values in memory (see
// Strip) and parses it. Errors in the file are *config.Error or
// *markers.Error values and name the line; a failure to read a file or
// to start the config plugin does not wrap config.ErrInvalid.
func Load(ctx context.Context, path string, opts Options) (*config.Config, error) {
	src, err := Read(path)
	if err != nil {
		return nil, err
	}
	plain, err := Strip(ctx, src, path, opts)
	if err != nil {
		return nil, err
	}
	return config.Parse(plain, path)
}

// Strip returns src, the text of the file filename, with every marker
// replaced by its plaintext: {{decrypt(C)}} by what the config purpose
// decrypts C to, {{encrypt(V)}} by V, with a warning that V is still in
// clear. The config block's plugin is started only when src holds a
// decrypt marker, and is stopped before Strip returns.
//
// The kms block that serves config cannot hold a marker itself: that is
// an error wrapping config.ErrCycle, reported before any plugin starts.
func Strip(ctx context.Context, src []byte, filename string, opts Options) ([]byte, error) {
	ms, err := markers.Scan(src, filename)
	if err != nil {
		return nil, err
	}
	needKMS := false
	for _, m := range ms {
		switch m.Op {
		case markers.OpDecrypt:
			needKMS = true
		case markers.OpEncrypt:
			opts.logger().Warn("config value is not encrypted; run brokerd config encrypt",
				"file", filename, "line", m.Line)
		}
	}

	dec := func(context.Context, string) ([]byte, error) {
		return nil, errors.New("decrypt: no config kms") // unreachable: no decrypt marker
	}
	if needKMS {
		codec, err := Open(ctx, src, filename, opts)
		if err != nil {
			return nil, err
		}
		defer codec.Close()
		dec = codec.Decrypt
	}
	return markers.Strip(ctx, src, filename, dec)
}

// locate returns the kms block that serves config and the plugin
// directory to start it from: the block in opts.KMSPath when set, else in
// src; the plugins directory of the file holding the block, else of src,
// else opts.PluginDirectory.
func locate(src []byte, filename string, opts Options) (*config.KMS, string, error) {
	blockSrc, blockFile := src, filename
	if opts.KMSPath != "" {
		b, err := Read(opts.KMSPath)
		if err != nil {
			return nil, "", err
		}
		blockSrc, blockFile = b, opts.KMSPath
	}
	blk, err := config.ConfigBlock(blockSrc, blockFile)
	if err != nil {
		return nil, "", err
	}
	if blk == nil {
		hint := ""
		if opts.KMSPath == "" {
			hint = "; add one or name a file holding one with -config-kms"
		}
		return nil, "", fmt.Errorf("%s: %w%s", blockFile, ErrNoConfigBlock, hint)
	}

	dir, err := pluginDirectory(blockSrc, blockFile)
	if err != nil {
		return nil, "", err
	}
	if dir == "" && opts.KMSPath != "" {
		if dir, err = pluginDirectory(src, filename); err != nil {
			return nil, "", err
		}
	}
	if dir == "" {
		dir = opts.PluginDirectory
	}
	return blk, dir, nil
}

// pluginDirectory reads `plugins { directory = "..." }` from a file whose
// other values may still be encrypted. It returns "" when there is none
// or it is not a plain string, which config.Parse reports later. The
// directory is needed to start the plugin that decrypts, so it cannot
// itself be encrypted.
func pluginDirectory(src []byte, filename string) (string, error) {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return "", nil
	}
	body := file.Body.(*hclsyntax.Body) // hclsyntax.ParseConfig always makes one
	for _, b := range body.Blocks {
		if b.Type != "plugins" {
			continue
		}
		attr, ok := b.Body.Attributes["directory"]
		if !ok {
			return "", nil
		}
		v, diags := attr.Expr.Value(nil)
		if diags.HasErrors() || v.IsNull() || !v.Type().Equals(cty.String) {
			return "", nil
		}
		dir := v.AsString()
		if strings.Contains(dir, "{{encrypt(") || strings.Contains(dir, "{{decrypt(") {
			return "", fmt.Errorf("%w: %s: the plugins directory cannot hold a marker: "+
				"it is needed to decrypt the other values (a cycle)", config.ErrInvalid, attr.Expr.Range())
		}
		return dir, nil
	}
	return "", nil
}
