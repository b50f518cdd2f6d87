package configload

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/kmsbroker/kmsbroker/broker/config"
	"github.com/kmsbroker/kmsbroker/broker/config/markers"
	"github.com/kmsbroker/kmsbroker/broker/pluginhost"
	"github.com/kmsbroker/kmsbroker/broker/purpose"
	"github.com/kmsbroker/kmsbroker/plugins/plugintest"
)

// pluginDir holds the real aead plugin, built once by TestMain.
var pluginDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "configload-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := plugintest.Build(dir, "aead", "./plugins/aead"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	pluginDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func opts(t *testing.T) Options {
	t.Helper()
	return Options{PluginDirectory: pluginDir, Logger: hclog.NewNullLogger()}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// encryptFile encrypts every {{encrypt(...)}} of src with its own config
// block, as brokerd config encrypt does.
func encryptFile(t *testing.T, src []byte, name string, o Options) []byte {
	t.Helper()
	ctx := context.Background()
	codec, err := Open(ctx, src, name, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer codec.Close()
	out, err := markers.Encrypt(ctx, src, name, codec.Encrypt)
	if err != nil {
		t.Fatalf("markers.Encrypt: %v", err)
	}
	return out
}

func TestRoundTripTenValues(t *testing.T) {
	ctx := context.Background()
	name := "ten_values.hcl"
	src := readTestdata(t, name)
	if ms, err := markers.Scan(src, name); err != nil || len(ms) != 10 {
		t.Fatalf("testdata has %d markers (err %v), want 10", len(ms), err)
	}

	enc := encryptFile(t, src, name, opts(t))
	ms, err := markers.Scan(enc, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 10 {
		t.Fatalf("encrypted file has %d markers, want 10", len(ms))
	}
	for _, m := range ms {
		if m.Op != markers.OpDecrypt {
			t.Errorf("line %d: marker %s left, want decrypt", m.Line, m.Op)
		}
	}
	for _, secret := range []string{"vT4AxBCfG1Y5nCaQYSbhmlhY3SN", "root \\\"primary\\\"", "rec {x)}"} {
		if bytes.Contains(enc, []byte(secret)) {
			t.Errorf("encrypted file still holds %q", secret)
		}
	}

	codec, err := Open(ctx, enc, name, opts(t))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := markers.Decrypt(ctx, enc, name, codec.Decrypt)
	codec.Close()
	if err != nil {
		t.Fatalf("markers.Decrypt: %v", err)
	}
	if !bytes.Equal(dec, src) {
		t.Fatalf("decrypt(encrypt(file)) differs from the file:\ngot:\n%s\nwant:\n%s", dec, src)
	}

	// Load decrypts in memory and parses what brokerd would run.
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, enc, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(ctx, path, opts(t))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got, want := cfg.Listener.Address, "127.0.0.1:9200"; got != want {
		t.Errorf("listener address = %q, want %q", got, want)
	}
	want := map[purpose.Purpose][2]string{
		purpose.Root:       {"vT4AxBCfG1Y5nCaQYSbhmlhY3SN/F6j2h+jAMAxu1VU=", `root "primary" {v1}`},
		purpose.WorkerAuth: {"5k9ybzgrSdcCsBolzP3iv7I28ivuwg55pewEEcja5bk=", "workers (a"},
		purpose.Recovery:   {"sZE7tJ12gvTV/eZAMGk0FuqhVgvBGDvQBv29qX5ReSI=", "rec {x)}"},
	}
	for p, w := range want {
		blk := cfg.Block(p)
		if blk == nil {
			t.Fatalf("no block serves %s", p)
		}
		if blk.Settings["key"] != w[0] {
			t.Errorf("%s: key differs from the plaintext written", p)
		}
		if got := blk.Settings["key_id"]; got != w[1] {
			t.Errorf("%s: key_id = %q, want %q", p, got, w[1])
		}
	}
	if stat, err := os.ReadFile(path); err != nil || !bytes.Equal(stat, enc) {
		t.Errorf("Load changed the file on disk (err %v)", err)
	}
}

func TestConfigKMSFile(t *testing.T) {
	ctx := context.Background()
	src := []byte("kms \"aead\" {\n  purpose = [\"root\"]\n  key = \"{{encrypt(vT4AxBCfG1Y5nCaQYSbhmlhY3SN/F6j2h+jAMAxu1VU=)}}\"\n}\n")
	o := opts(t)
	o.KMSPath = filepath.Join("testdata", "config_kms.hcl")
	enc := encryptFile(t, src, "main.hcl", o)

	plain, err := Strip(ctx, enc, "main.hcl", o)
	if err != nil {
		t.Fatalf("Strip: %v", err)
	}
	if !bytes.Equal(plain, bytes.ReplaceAll(bytes.ReplaceAll(src, []byte("{{encrypt("), nil), []byte(")}}"), nil)) {
		t.Errorf("Strip = %q", plain)
	}

	// Without the KMS file the main file has nothing to decrypt with.
	_, err = Strip(ctx, enc, "main.hcl", opts(t))
	if !errors.Is(err, ErrNoConfigBlock) || !strings.Contains(err.Error(), "-config-kms") {
		t.Errorf("Strip without -config-kms: got %v, want ErrNoConfigBlock with a hint", err)
	}
}

// foreignAAD encrypts value with the config block's plugin under another
// AAD, as another use of the same KMS would.
func foreignAAD(t *testing.T, value string) string {
	t.Helper()
	blk, err := config.ConfigBlock(readTestdata(t, "config_kms.hcl"), "config_kms.hcl")
	if err != nil {
		t.Fatal(err)
	}
	p, err := pluginhost.Start(context.Background(), pluginhost.BlockConfig(blk, pluginDir, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	blob, err := p.Encrypt(context.Background(), []byte(value), []byte("some other use"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := proto.Marshal(blob)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(raw)
}

func TestStripErrors(t *testing.T) {
	const secret = "vT4AxBCfG1Y5nCaQYSbhmlhY3SN/F6j2h+jAMAxu1VU="
	o := opts(t)
	o.KMSPath = filepath.Join("testdata", "config_kms.hcl")
	good := encryptFile(t, []byte("a = \"{{encrypt("+secret+")}}\"\n"), "good.hcl", o)
	ms, err := markers.Scan(good, "good.hcl")
	if err != nil || len(ms) != 1 {
		t.Fatalf("scan: %v", err)
	}
	ct := string(ms[0].Value)
	blob, err := parseCiphertext(ct)
	if err != nil {
		t.Fatal(err)
	}
	blob.Ciphertext[len(blob.Ciphertext)-1] ^= 1
	tampered, err := proto.Marshal(blob)
	if err != nil {
		t.Fatal(err)
	}

	// body puts a value on line 3, after a comment and a blank line.
	body := func(ct string) []byte {
		return []byte("# line 1\n\nkey = \"{{decrypt(" + ct + ")}}\"\n")
	}
	cases := []struct {
		name    string
		src     []byte
		kmsPath string
		want    error
		line    int // the line the error must name; 0: none
		text    string
	}{
		{"not base64", body("!!!not base64!!!"), "config_kms.hcl", ErrCiphertext, 3, "not standard base64"},
		{"url-safe base64", body(base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe})), "config_kms.hcl", ErrCiphertext, 3, "not standard base64"},
		{"not a blob", body(base64.StdEncoding.EncodeToString([]byte("hello"))), "config_kms.hcl", ErrCiphertext, 3, "not an encoded blob"},
		{"too long", body(strings.Repeat("A", maxCiphertext+4)), "config_kms.hcl", ErrCiphertext, 3, "longer than"},
		{"tampered", body(base64.StdEncoding.EncodeToString(tampered)), "config_kms.hcl", pluginhost.ErrDecrypt, 3, "decrypt failed"},
		{"other key", body(ct), "other_config_kms.hcl", pluginhost.ErrDecrypt, 3, "decrypt failed"},
		{"other aad", body(foreignAAD(t, secret)), "config_kms.hcl", pluginhost.ErrDecrypt, 3, "decrypt failed"},
		{"malformed marker", []byte("a = 1\nkey = \"{{decrypt(abc\"\n"), "config_kms.hcl", markers.ErrSyntax, 2, "unterminated"},
		{"no config block", readTestdata(t, "no_config_block.hcl"), "", ErrNoConfigBlock, 0, "no kms block serves purpose \"config\""},
		{"kms file without config block", body(ct), "no_config_block.hcl", ErrNoConfigBlock, 0, "no_config_block.hcl"},
		{"kms file missing", body(ct), "missing.hcl", fs.ErrNotExist, 0, "missing.hcl"},
		{"cycle", readTestdata(t, "cycle.hcl"), "", config.ErrCycle, 0, "f.hcl:8,"},
		{"plugins directory encrypted", readTestdata(t, "plugins_dir_marker.hcl"), "", config.ErrInvalid, 0, "f.hcl:2,"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := opts(t)
			if tc.kmsPath != "" {
				o.KMSPath = filepath.Join("testdata", tc.kmsPath)
			}
			got, err := Strip(context.Background(), tc.src, "f.hcl", o)
			if err == nil {
				t.Fatalf("Strip = %q, want an error", got)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %q does not wrap %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not say %q", err, tc.text)
			}
			if tc.line > 0 {
				var me *markers.Error
				if !errors.As(err, &me) || me.Line != tc.line || me.Filename != "f.hcl" {
					t.Errorf("error %q does not name f.hcl line %d", err, tc.line)
				}
			}
			if strings.Contains(err.Error(), secret) || (len(ct) > 0 && strings.Contains(err.Error(), ct)) {
				t.Errorf("error %q holds the value or its ciphertext", err)
			}
		})
	}
}

func TestStripWithoutDecryptMarkersStartsNothing(t *testing.T) {
	var logs bytes.Buffer
	o := Options{
		// No plugin can be found here: Strip must not need one.
		PluginDirectory: t.TempDir(),
		Logger:          hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn}),
	}
	src := []byte("a = 1\nb = \"{{encrypt(not yet secret)}}\"\n")
	got, err := Strip(context.Background(), src, "f.hcl", o)
	if err != nil {
		t.Fatalf("Strip: %v", err)
	}
	if want := "a = 1\nb = \"not yet secret\"\n"; string(got) != want {
		t.Errorf("Strip = %q, want %q", got, want)
	}
	if !strings.Contains(logs.String(), "not encrypted") || !strings.Contains(logs.String(), "line=2") {
		t.Errorf("no warning naming line 2 for the value in clear: %q", logs.String())
	}
	if strings.Contains(logs.String(), "not yet secret") {
		t.Errorf("the warning holds the value: %q", logs.String())
	}
}

func FuzzParseCiphertext(f *testing.F) {
	f.Add("")
	f.Add("AAAA")
	f.Add("CiWC6K0KKMnmWDlLjGWtBQv9i/yWDVo+MuSswh8wpn5qj1pdooCZKgUaA2NmZw==")
	f.Add("!!!")
	f.Fuzz(func(t *testing.T, text string) {
		blob, err := parseCiphertext(text)
		if err != nil {
			if !errors.Is(err, ErrCiphertext) {
				t.Fatalf("error %v does not wrap ErrCiphertext", err)
			}
			return
		}
		if len(blob.Ciphertext) == 0 {
			t.Fatalf("accepted %q with an empty ciphertext", text)
		}
	})
}
