package plugintest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"github.com/hashicorp/go-kms-wrapping/v2/aead"
	"google.golang.org/protobuf/proto"

	"github.com/kmsbroker/kmsbroker/plugins/sdk"
)

// The test binary doubles as three sample plugins, chosen by the name it
// is run under: a good one (the AEAD wrapper served by the SDK) and two
// deliberately broken ones that the suite must catch.

const (
	goodType    = "sample-good"
	brokenType  = "sample-broken"
	fragileType = "sample-fragile"
	testKey     = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
)

var sampleSettings = []sdk.Setting{{Name: "key", Secret: true}, {Name: sdk.KeyIDSetting}}

func TestMain(m *testing.M) {
	switch strings.TrimPrefix(filepath.Base(os.Args[0]), "kmsbroker-plugin-") {
	case goodType:
		sdk.Serve(aead.NewWrapper(), sdk.WithAAD(), sdk.WithVersion("1.0.0"), sdk.WithSettings(sampleSettings...))
		os.Exit(0)
	case brokenType:
		// The third lie: no version.
		sdk.Serve(&liar{Wrapper: aead.NewWrapper()}, sdk.WithAAD(), sdk.WithSettings(sampleSettings...))
		os.Exit(0)
	case fragileType:
		sdk.Serve(fragile{aead.NewWrapper()}, sdk.WithAAD(), sdk.WithVersion("1.0.0"), sdk.WithSettings(sampleSettings...))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// liar claims to bind AAD but drops it, and names a new key id in every
// blob: with its missing version, three lies the suite must catch.
type liar struct {
	*aead.Wrapper
	calls atomic.Int64
}

func (l *liar) Encrypt(ctx context.Context, pt []byte, _ ...wrapping.Option) (*wrapping.BlobInfo, error) {
	blob, err := l.Wrapper.Encrypt(ctx, pt)
	if err == nil {
		blob.KeyInfo.KeyId = fmt.Sprintf("key-%d", l.calls.Add(1))
	}
	return blob, err
}

func (l *liar) Decrypt(ctx context.Context, blob *wrapping.BlobInfo, _ ...wrapping.Option) ([]byte, error) {
	if len(blob.Ciphertext) < 28 {
		return nil, fmt.Errorf("ciphertext too short")
	}
	return l.Wrapper.Decrypt(ctx, blob)
}

// fragile keeps the contract except on a blob of its own key whose
// ciphertext is too short for a nonce and a tag: there it dies, as a
// plugin without the SDK's panic recovery might.
type fragile struct{ *aead.Wrapper }

func (f fragile) Decrypt(ctx context.Context, blob *wrapping.BlobInfo, opt ...wrapping.Option) ([]byte, error) {
	id, err := f.KeyId(ctx)
	if err != nil {
		return nil, err
	}
	if len(blob.Ciphertext) < 28 && blob.GetKeyInfo().GetKeyId() == id {
		os.Exit(2)
	}
	return f.Wrapper.Decrypt(ctx, blob, opt...)
}

// sample links the test binary into a directory as a plugin of typ.
func sample(t *testing.T, typ string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kmsbroker-plugin-"+typ)
	if err := os.Symlink(self, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func sampleConfig(path string) Config {
	return Config{
		Path:     path,
		Settings: map[string]string{"key": testKey, "key_id": "sample"},
		BadSettings: []BadSettings{
			{Settings: map[string]string{"key": "AAEC"}, Setting: "key"},
		},
		Concurrency: 50,
	}
}

// TestGoodSamplePasses guards against false alarms: a plugin that keeps
// the contract passes every check.
func TestGoodSamplePasses(t *testing.T) {
	Run(t, sampleConfig(sample(t, goodType)))
}

// TestBrokenSampleFails: the suite catches the liar's three lies and
// nothing else.
func TestBrokenSampleFails(t *testing.T) {
	results, err := Check(context.Background(), sampleConfig(sample(t, brokenType)))
	if err != nil {
		t.Fatal(err)
	}
	wantFailed := map[string]bool{"describe": true, "aad/bound": true, "key-id/stable": true}
	seen := map[string]bool{}
	for _, r := range results {
		seen[r.Check] = true
		switch {
		case wantFailed[r.Check] && r.Err == nil:
			t.Errorf("check %s passed the broken sample", r.Check)
		case wantFailed[r.Check]:
			t.Logf("check %s caught: %v", r.Check, r.Err)
		case r.Err != nil:
			t.Errorf("check %s failed the broken sample for another reason: %v", r.Check, r.Err)
		}
	}
	for check := range wantFailed {
		if !seen[check] {
			t.Errorf("check %s did not run", check)
		}
	}
}

// TestFragileSampleFails: a plugin that dies on a well-formed blob with a
// truncated ciphertext fails that check, which says it stopped answering
// Health, and passes every check before it.
func TestFragileSampleFails(t *testing.T) {
	results, err := Check(context.Background(), sampleConfig(sample(t, fragileType)))
	if err != nil {
		t.Fatal(err)
	}
	const check = "bad-ciphertext/truncated-ciphertext"
	i := slices.IndexFunc(results, func(r Result) bool { return r.Check == check })
	if i < 0 {
		t.Fatalf("check %s did not run", check)
	}
	for _, r := range results[:i] {
		if r.Err != nil {
			t.Errorf("check %s failed the fragile sample before it broke: %v", r.Check, r.Err)
		}
	}
	switch err := results[i].Err; {
	case err == nil:
		t.Errorf("check %s passed a plugin that dies on it", check)
	case !strings.Contains(err.Error(), "health after it"):
		t.Errorf("check %s: %v; want it to report that Health failed afterwards", check, err)
	default:
		t.Logf("check %s caught: %v", check, err)
	}
}

// TestEmptyCiphertextEncoding: the empty-ciphertext case differs from the
// no-ciphertext case on the wire and still parses, to an empty ciphertext.
func TestEmptyCiphertextEncoding(t *testing.T) {
	blob := &wrapping.BlobInfo{KeyInfo: &wrapping.KeyInfo{KeyId: "k"}}
	raw := withEmptyCiphertext(blob)
	if bytes.Equal(raw, mustMarshal(blob)) {
		t.Fatal("encoding equals the blob without the field")
	}
	var got wrapping.BlobInfo
	if err := proto.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Ciphertext) != 0 || got.GetKeyInfo().GetKeyId() != "k" {
		t.Errorf("decoded %v; want an empty ciphertext and key id k", &got)
	}
}

func TestStartFailure(t *testing.T) {
	_, err := Check(context.Background(), Config{Path: filepath.Join(t.TempDir(), "missing")})
	if err == nil {
		t.Fatal("Check of a missing executable succeeded")
	}
}

func TestQuotes(t *testing.T) {
	settings := map[string]string{"prefix_extra": "x", "key_name": "extra"}
	tests := []struct {
		msg  string
		want bool
	}{
		{`setting "prefix_extra": unknown`, false},
		{`key extra not found`, true},
		{`setting "prefix_extra": extra`, true},
		{`nothing here`, false},
	}
	for _, tt := range tests {
		if got := quotes(tt.msg, "extra", settings); got != tt.want {
			t.Errorf("quotes(%q) = %v; want %v", tt.msg, got, tt.want)
		}
	}
}
