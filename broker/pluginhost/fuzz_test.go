package pluginhost

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"google.golang.org/protobuf/proto"
)

// FuzzPluginDecrypt sends arbitrary bytes, parsed as a BlobInfo where they
// parse and always as a bare ciphertext, through the host's Decrypt to the
// real aead plugin. Nothing it is given decrypts (the seeds are made with
// another key), so every call must end in the host's opaque ErrDecrypt:
// not unavailable, not a panic in the host or the plugin, and the same
// plugin process must still answer Health.
func FuzzPluginDecrypt(f *testing.F) {
	var log syncBuffer
	p := startPlugin(f, Config{
		Name: "fuzz", Type: "aead", Directory: testBin,
		Settings: map[string]string{"key": testKey, "key_id": "k1"},
		Logger:   hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Debug}),
	})
	pid := p.Info().Pid
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		blobs := []*wrapping.BlobInfo{{Ciphertext: data}}
		parsed := new(wrapping.BlobInfo)
		if proto.Unmarshal(data, parsed) == nil {
			blobs = append(blobs, parsed)
		}
		for _, blob := range blobs {
			log.Reset()
			got, err := p.Decrypt(ctx, blob, nil)
			if !errors.Is(err, ErrDecrypt) || errors.Is(err, ErrUnavailable) {
				t.Fatalf("Decrypt(%v) = %d bytes, %v; want ErrDecrypt", blob, len(got), err)
			}
			// The SDK turns a panic in the wrapper into an error that the
			// host makes opaque; its Debug line still says so.
			if strings.Contains(log.String(), "panicked") {
				t.Fatalf("Decrypt(%v): the plugin panicked:\n%s", blob, log.String())
			}
		}
		if err := p.Health(ctx); err != nil {
			t.Fatalf("Health after Decrypt: %v", err)
		}
		if got := p.Info().Pid; got != pid {
			t.Fatalf("plugin pid changed from %d to %d: the process was replaced", pid, got)
		}
	})
}
