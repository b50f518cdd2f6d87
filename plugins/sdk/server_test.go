package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"github.com/hashicorp/go-kms-wrapping/v2/aead"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pluginv1 "github.com/kmsbroker/kmsbroker/proto/plugin/v1"
)

// testKey is a fixed AES-256 key, base64.
const testKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

var aeadSettings = []Setting{
	{Name: "key", Secret: true},
	{Name: KeyIDSetting},
	{Name: "strict", Bool: true},
}

// newAEADServer returns an in-process server around the real AEAD
// wrapper, configured unless configure is false.
func newAEADServer(t testing.TB, configure bool) pluginv1.WrapperServer {
	t.Helper()
	s := NewServer(aead.NewWrapper(), nil, WithAAD(), WithVersion("9.9"), WithSettings(aeadSettings...))
	if configure {
		_, err := s.Configure(context.Background(), &pluginv1.ConfigureRequest{
			Settings: map[string]string{"key": testKey, "key_id": "k1"},
		})
		if err != nil {
			t.Fatalf("Configure: %v", err)
		}
	}
	return s
}

func TestDescribe(t *testing.T) {
	ctx := context.Background()
	s := newAEADServer(t, false)
	d, err := s.Describe(ctx, &pluginv1.DescribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Type != "aead" || d.KeyId != "" || !d.Capabilities.GetAad() || d.PluginVersion != "9.9" ||
		d.ProtocolVersion != ProtocolVersion || len(d.Settings) != len(aeadSettings) {
		t.Errorf("Describe before Configure = %v", d)
	}
	if !d.Settings[0].Secret || d.Settings[0].Name != "key" {
		t.Errorf("Settings[0] = %v; want secret key", d.Settings[0])
	}

	if _, err := s.Configure(ctx, &pluginv1.ConfigureRequest{Settings: map[string]string{"key": testKey, "key_id": "k1"}}); err != nil {
		t.Fatal(err)
	}
	if d, err = s.Describe(ctx, &pluginv1.DescribeRequest{}); err != nil || d.KeyId != "k1" {
		t.Errorf("Describe after Configure = %v, %v; want key id k1", d, err)
	}
}

// failingWrapper returns err from SetConfig.
type failingWrapper struct {
	*aead.Wrapper
	err error
}

func (w failingWrapper) SetConfig(context.Context, ...wrapping.Option) (*wrapping.WrapperConfig, error) {
	return nil, w.err
}

func TestConfigureErrors(t *testing.T) {
	const secret = "hunter2-secret-token"
	tests := []struct {
		name     string
		wrapErr  error
		validate func(map[string]string) error
		settings map[string]string
		code     codes.Code
		names    string // the message must contain it
		hides    []string
	}{
		{
			name:     "unknown setting",
			settings: map[string]string{"key": testKey, "colour": "ultraviolet"},
			code:     codes.InvalidArgument, names: `"colour"`, hides: []string{"ultraviolet", testKey},
		},
		{
			name:     "bad boolean",
			settings: map[string]string{"key": testKey, "strict": "maybe-so"},
			code:     codes.InvalidArgument, names: `"strict"`, hides: []string{"maybe-so"},
		},
		{
			name:     "validator names setting",
			settings: map[string]string{"key": testKey},
			validate: func(map[string]string) error { return &SettingError{Setting: "key", Problem: "is too short"} },
			code:     codes.InvalidArgument, names: `setting "key": is too short`, hides: []string{testKey},
		},
		{
			name:     "wrapper echoes a secret",
			settings: map[string]string{"key": secret},
			wrapErr:  fmt.Errorf("bad key %q for this wrapper", secret),
			code:     codes.InvalidArgument, names: "<value of key>", hides: []string{secret},
		},
		{
			name:     "wrapper echoes a plain value",
			settings: map[string]string{"key": testKey, "key_id": "my-key-id"},
			wrapErr:  errors.New("no key my-key-id here"),
			code:     codes.InvalidArgument, names: "<value of key_id>", hides: []string{"my-key-id"},
		},
		{
			name:     "backend unreachable",
			settings: map[string]string{"key": secret},
			wrapErr:  fmt.Errorf("dial kms with %s: %w", secret, &net.OpError{Op: "dial", Err: errors.New("refused")}),
			code:     codes.Unavailable, names: "dial", hides: []string{secret},
		},
		{
			name:     "marked unavailable",
			settings: map[string]string{"key": testKey},
			wrapErr:  fmt.Errorf("%w: sealed", ErrBackendUnavailable),
			code:     codes.Unavailable, names: "sealed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w wrapping.Wrapper = aead.NewWrapper()
			if tt.wrapErr != nil {
				w = failingWrapper{aead.NewWrapper(), tt.wrapErr}
			}
			opts := []Option{WithSettings(aeadSettings...)}
			if tt.validate != nil {
				opts = append(opts, WithValidator(tt.validate))
			}
			s := NewServer(w, nil, opts...)
			_, err := s.Configure(context.Background(), &pluginv1.ConfigureRequest{Settings: tt.settings})
			st := status.Convert(err)
			if st.Code() != tt.code {
				t.Fatalf("Configure: %v; want code %s", err, tt.code)
			}
			if !strings.Contains(st.Message(), tt.names) {
				t.Errorf("message %q does not contain %q", st.Message(), tt.names)
			}
			for _, h := range tt.hides {
				if strings.Contains(st.Message(), h) {
					t.Errorf("message %q contains %q", st.Message(), h)
				}
			}
		})
	}
}

func TestConfigureOnce(t *testing.T) {
	s := newAEADServer(t, true)
	_, err := s.Configure(context.Background(), &pluginv1.ConfigureRequest{Settings: map[string]string{"key": testKey}})
	if got := status.Code(err); got != codes.FailedPrecondition {
		t.Errorf("second Configure: %v; want FailedPrecondition", err)
	}
}

func TestCallsBeforeConfigure(t *testing.T) {
	ctx := context.Background()
	s := newAEADServer(t, false)
	if _, err := s.Encrypt(ctx, &pluginv1.EncryptRequest{Plaintext: []byte("x")}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Encrypt: %v; want FailedPrecondition", err)
	}
	if _, err := s.Decrypt(ctx, &pluginv1.DecryptRequest{BlobInfo: []byte{1}}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Decrypt: %v; want FailedPrecondition", err)
	}
	if h, err := s.Health(ctx, &pluginv1.HealthRequest{}); err != nil || h.Configured {
		t.Errorf("Health = %v, %v; want not configured", h, err)
	}
}

func TestEncryptDecrypt(t *testing.T) {
	ctx := context.Background()
	s := newAEADServer(t, true)
	tests := []struct {
		name           string
		plaintext, aad []byte
	}{
		{"empty", nil, nil},
		{"with aad", []byte("kek"), []byte("o_1")},
		{"1MiB", bytes.Repeat([]byte("z"), 1<<20), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := s.Encrypt(ctx, &pluginv1.EncryptRequest{Plaintext: tt.plaintext, Aad: tt.aad})
			if err != nil {
				t.Fatalf("Encrypt: %v", err)
			}
			var blob wrapping.BlobInfo
			if err := proto.Unmarshal(enc.BlobInfo, &blob); err != nil {
				t.Fatalf("blob_info is not a BlobInfo: %v", err)
			}
			if blob.Plaintext != nil || blob.KeyInfo.GetKeyId() != "k1" {
				t.Errorf("blob = plaintext %v, key id %q; want none, k1", blob.Plaintext != nil, blob.KeyInfo.GetKeyId())
			}
			dec, err := s.Decrypt(ctx, &pluginv1.DecryptRequest{BlobInfo: enc.BlobInfo, Aad: tt.aad})
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if !bytes.Equal(dec.Plaintext, tt.plaintext) {
				t.Errorf("Decrypt = %d bytes; want %d", len(dec.Plaintext), len(tt.plaintext))
			}
			if len(tt.aad) > 0 {
				_, err := s.Decrypt(ctx, &pluginv1.DecryptRequest{BlobInfo: enc.BlobInfo, Aad: []byte("other")})
				if status.Code(err) != codes.InvalidArgument {
					t.Errorf("Decrypt with other aad: %v; want InvalidArgument", err)
				}
			}
		})
	}
}

func TestDecryptBadInput(t *testing.T) {
	ctx := context.Background()
	s := newAEADServer(t, true)
	short, _ := proto.Marshal(&wrapping.BlobInfo{Ciphertext: []byte{1, 2, 3}})
	inputs := map[string][]byte{
		"empty":            nil,
		"not protobuf":     {0xff, 0xff, 0xff, 0xff},
		"no ciphertext":    {0x20, 0x01},
		"short ciphertext": short,
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			_, err := s.Decrypt(ctx, &pluginv1.DecryptRequest{BlobInfo: in})
			// The upstream AEAD wrapper panics on a short ciphertext; the
			// server must turn that into an error too.
			if c := status.Code(err); c != codes.InvalidArgument && c != codes.Internal {
				t.Errorf("Decrypt: %v; want InvalidArgument or Internal", err)
			}
		})
	}
	if _, err := s.Encrypt(ctx, &pluginv1.EncryptRequest{Plaintext: []byte("still serving")}); err != nil {
		t.Errorf("Encrypt after bad input: %v", err)
	}
}

// panicWrapper panics in Encrypt.
type panicWrapper struct{ *aead.Wrapper }

func (panicWrapper) Encrypt(context.Context, []byte, ...wrapping.Option) (*wrapping.BlobInfo, error) {
	panic("boom")
}

func TestPanicBecomesInternal(t *testing.T) {
	ctx := context.Background()
	s := NewServer(panicWrapper{aead.NewWrapper()}, nil, WithSettings(aeadSettings...))
	if _, err := s.Configure(ctx, &pluginv1.ConfigureRequest{Settings: map[string]string{"key": testKey}}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Encrypt(ctx, &pluginv1.EncryptRequest{Plaintext: []byte("x")})
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), "boom") {
		t.Errorf("Encrypt: %v; want Internal without the panic value", err)
	}
	if h, err := s.Health(ctx, &pluginv1.HealthRequest{}); err != nil || !h.Configured {
		t.Errorf("Health after panic = %v, %v", h, err)
	}
}

// metaWrapper returns metadata that includes secrets.
type metaWrapper struct{ *aead.Wrapper }

func (w metaWrapper) SetConfig(ctx context.Context, opt ...wrapping.Option) (*wrapping.WrapperConfig, error) {
	if _, err := w.Wrapper.SetConfig(ctx, opt...); err != nil {
		return nil, err
	}
	return &wrapping.WrapperConfig{Metadata: map[string]string{
		"key": "x", "echo": testKey, "region": "eu-west-1",
	}}, nil
}

func TestMetadataDropsSecrets(t *testing.T) {
	s := NewServer(metaWrapper{aead.NewWrapper()}, nil, WithSettings(aeadSettings...))
	resp, err := s.Configure(context.Background(), &pluginv1.ConfigureRequest{Settings: map[string]string{"key": testKey}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Metadata; len(got) != 1 || got["region"] != "eu-west-1" {
		t.Errorf("Metadata = %v; want only region", got)
	}
}

func TestNewRedactor(t *testing.T) {
	settings := map[string]string{
		"token": "ab", "address": "https://vault:8200", "mount": "t", "prefix": "https://vault",
		"prefix_extra": "", "key_name": "extra",
	}
	r := NewRedactor(settings, func(n string) bool { return n == "token" })
	tests := []struct{ in, want string }{
		{"token ab rejected", "token <value of token> rejected"},
		{"GET https://vault:8200/v1", "GET <value of address>/v1"},
		{"at https://vault/x", "at <value of prefix>/x"},
		{"mount t", "mount t"},
		// A value inside a setting name leaves the name alone.
		{`setting "prefix_extra"`, `setting "prefix_extra"`},
		{"the extra key", "the <value of key_name> key"},
	}
	for _, tt := range tests {
		if got := r.Replace(tt.in); got != tt.want {
			t.Errorf("Replace(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
