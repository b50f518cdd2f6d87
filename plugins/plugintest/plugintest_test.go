package plugintest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"github.com/hashicorp/go-kms-wrapping/v2/aead"

	"github.com/kmsbroker/kmsbroker/plugins/sdk"
)

// The test binary doubles as two sample plugins, chosen by the name it is
// run under: a good one (the AEAD wrapper served by the SDK) and a
// deliberately broken one that the suite must catch.

const (
	goodType   = "sample-good"
	brokenType = "sample-broken"
	testKey    = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
)

var sampleSettings = []sdk.Setting{{Name: "key", Secret: true}, {Name: sdk.KeyIDSetting}}

func TestMain(m *testing.M) {
	switch strings.TrimPrefix(filepath.Base(os.Args[0]), "kmsbroker-plugin-") {
	case goodType:
		sdk.Serve(aead.NewWrapper(), sdk.WithAAD(), sdk.WithSettings(sampleSettings...))
		os.Exit(0)
	case brokenType:
		sdk.Serve(&liar{Wrapper: aead.NewWrapper()}, sdk.WithAAD(), sdk.WithSettings(sampleSettings...))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// liar claims to bind AAD but drops it, and names a new key id in every
// blob: two lies the suite must catch.
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

// TestBrokenSampleFails: the suite catches the liar's two lies and
// nothing else.
func TestBrokenSampleFails(t *testing.T) {
	results, err := Check(context.Background(), sampleConfig(sample(t, brokenType)))
	if err != nil {
		t.Fatal(err)
	}
	wantFailed := map[string]bool{"aad/bound": true, "key-id/stable": true}
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
