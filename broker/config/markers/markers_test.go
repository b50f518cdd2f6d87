package markers

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeEncrypt stands in for the config KMS, which needs a plugin process:
// it is reversible and keyless, "ct:" and the base64 of the reversed
// plaintext, so that a test can see a value really went through it.
func fakeEncrypt(_ context.Context, pt []byte) (string, error) {
	r := make([]byte, len(pt))
	for i, b := range pt {
		r[len(pt)-1-i] = b
	}
	return "ct:" + base64.StdEncoding.EncodeToString(r), nil
}

// fakeDecrypt inverts fakeEncrypt and fails like a KMS on anything else.
func fakeDecrypt(_ context.Context, ct string) ([]byte, error) {
	b64, ok := strings.CutPrefix(ct, "ct:")
	if !ok {
		return nil, errors.New("fake kms: not a ciphertext")
	}
	r, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New("fake kms: not a ciphertext")
	}
	pt := make([]byte, len(r))
	for i, b := range r {
		pt[len(r)-1-i] = b
	}
	return pt, nil
}

func TestScan(t *testing.T) {
	type found struct {
		op           Op
		value        string
		line, column int
	}
	tests := []struct {
		name string
		src  string
		want []found
	}{
		{"no markers", "a = \"b\"\n", nil},
		{"empty source", "", nil},
		{"one", `key = "{{encrypt(secret)}}"`, []found{{OpEncrypt, "secret", 1, 8}}},
		{"two on one line", `a = "{{encrypt(x)}}{{decrypt(Y)}}"`,
			[]found{{OpEncrypt, "x", 1, 6}, {OpDecrypt, "Y", 1, 20}}},
		{"quotes", `k = "{{encrypt(say \"hi\")}}"`, []found{{OpEncrypt, `say \"hi\"`, 1, 6}}},
		{"parentheses", `k = "{{encrypt(f(x) (y))}}"`, []found{{OpEncrypt, "f(x) (y)", 1, 6}}},
		{"trailing parenthesis", `{{encrypt(a))}}`, []found{{OpEncrypt, "a)", 1, 1}}},
		{"trailing paren and brace", `{{encrypt(a)})}}`, []found{{OpEncrypt, "a)}", 1, 1}}},
		{"braces", `{{encrypt({{x}} }{)}}`, []found{{OpEncrypt, "{{x}} }{", 1, 1}}},
		{"three braces before", `{{{encrypt(v)}}`, []found{{OpEncrypt, "v", 1, 2}}},
		{"not a marker word", `# {{ encrypted_key }} and {{other(x)}}`, nil},
		{"later lines", "a\n\n  {{decrypt(Q0lQSEVS)}}\n", []found{{OpDecrypt, "Q0lQSEVS", 3, 3}}},
		{"crlf", "a = 1\r\nb = \"{{encrypt(v)}}\"\r\n", []found{{OpEncrypt, "v", 2, 6}}},
		{"columns count characters", `ü = "{{encrypt(v)}}"`, []found{{OpEncrypt, "v", 1, 6}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := Scan([]byte(tt.src), "f.hcl")
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != len(tt.want) {
				t.Fatalf("got %d markers, want %d: %+v", len(ms), len(tt.want), ms)
			}
			for i, m := range ms {
				w := tt.want[i]
				got := found{m.Op, string(m.Value), m.Line, m.Column}
				if got != w {
					t.Errorf("marker %d: got %+v, want %+v", i, got, w)
				}
				if text, want := tt.src[m.Start:m.End], string(marker(m.Op, m.Value)); text != want {
					t.Errorf("marker %d: src[Start:End] = %q, want %q", i, text, want)
				}
			}
		})
	}
}

func TestScanErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unterminated", "a = 1\nb = \"{{encrypt(abc\"\n",
			`f.hcl:2,6: malformed marker: unterminated encrypt marker: no ")}}" on its line`},
		{"terminator on the next line", "{{decrypt(abc\n)}}",
			`f.hcl:1,1: malformed marker: unterminated decrypt marker: no ")}}" on its line`},
		{"empty", `k = "{{encrypt()}}"`,
			`f.hcl:1,6: malformed marker: empty encrypt marker`},
		{"nested", `{{encrypt(a{{decrypt(b)}})}}`,
			`f.hcl:1,1: malformed marker: encrypt marker holds another marker`},
		{"value with terminator", `k = "{{encrypt(a)}}b)}}"`,
			`f.hcl:1,21: malformed marker: ")}}" outside a marker; a marker's value cannot contain ")}}"`},
		{"stray before a marker", `x)}} {{encrypt(a)}}`,
			`f.hcl:1,2: malformed marker: ")}}" outside a marker; a marker's value cannot contain ")}}"`},
		{"blanks", `k = "{{ encrypt(x) }}"`,
			`f.hcl:1,6: malformed marker: write {{encrypt(...)}} or {{decrypt(...)}} in lower case without blanks`},
		{"blank before parenthesis", `k = "{{decrypt (x)}}"`,
			`f.hcl:1,6: malformed marker: write {{encrypt(...)}} or {{decrypt(...)}} in lower case without blanks`},
		{"upper case", "ok\n\tk = \"{{Encrypt(x)}}\"",
			`f.hcl:2,7: malformed marker: write {{encrypt(...)}} or {{decrypt(...)}} in lower case without blanks`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := Scan([]byte(tt.src), "f.hcl")
			if err == nil {
				t.Fatalf("got %d markers, want error %q", len(ms), tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("got error\n  %v\nwant\n  %s", err, tt.want)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("errors.Is(err, ErrSyntax) = false")
			}
		})
	}
}

func TestRoundTripFile(t *testing.T) {
	ctx := context.Background()
	src, err := os.ReadFile(filepath.Join("testdata", "ten_markers.hcl"))
	if err != nil {
		t.Fatal(err)
	}

	var calls int
	countingEncrypt := func(ctx context.Context, pt []byte) (string, error) {
		calls++
		return fakeEncrypt(ctx, pt)
	}
	enc, err := Encrypt(ctx, src, "ten.hcl", countingEncrypt)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 10 {
		t.Errorf("encrypt called %d times, want 10", calls)
	}
	ms, err := Scan(enc, "ten.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 10 {
		t.Fatalf("encrypted file has %d markers, want 10", len(ms))
	}
	for _, m := range ms {
		if m.Op != OpDecrypt {
			t.Errorf("line %d: %s marker left after Encrypt", m.Line, m.Op)
		}
	}
	for _, secret := range []string{"AKIAEXAMPLE", "hvs.CAESI", "ünïcödé"} {
		if bytes.Contains(enc, []byte(secret)) {
			t.Errorf("encrypted file still holds %q", secret)
		}
	}
	if got, want := bytes.Count(enc, []byte("\n")), bytes.Count(src, []byte("\n")); got != want {
		t.Errorf("encrypted file has %d lines, want %d", got, want)
	}

	again, err := Encrypt(ctx, enc, "ten.hcl", countingEncrypt)
	if err != nil || !bytes.Equal(again, enc) || calls != 10 {
		t.Errorf("encrypting twice changed the file or called the KMS (calls %d, err %v)", calls, err)
	}

	dec, err := Decrypt(ctx, enc, "ten.hcl", fakeDecrypt)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dec, src) {
		t.Errorf("Decrypt(Encrypt(src)) differs from src:\n%s", dec)
	}

	stripped, err := Strip(ctx, enc, "ten.hcl", fakeDecrypt)
	if err != nil {
		t.Fatal(err)
	}
	want := bareValues(src)
	if !bytes.Equal(stripped, want) {
		t.Errorf("Strip: got\n%s\nwant\n%s", stripped, want)
	}
}

// bareValues removes the marker syntax around every value of src by
// plain text replacement, as an independent statement of what Strip does.
func bareValues(src []byte) []byte {
	s := string(src)
	for {
		i := strings.Index(s, "{{encrypt(")
		if i < 0 {
			return []byte(s)
		}
		j := strings.Index(s[i:], ")}}")
		s = s[:i] + s[i+len("{{encrypt("):i+j] + s[i+j+len(")}}"):]
	}
}

func TestRewriteErrors(t *testing.T) {
	ctx := context.Background()
	errKMS := errors.New("fake kms: access denied")
	failing := func(context.Context, string) ([]byte, error) { return nil, errKMS }
	returning := func(pt string) DecryptFunc {
		return func(context.Context, string) ([]byte, error) { return []byte(pt), nil }
	}
	encReturning := func(ct string) EncryptFunc {
		return func(context.Context, []byte) (string, error) { return ct, nil }
	}
	src := []byte("a = 1\nb = \"{{decrypt(ct:eA==)}}\"\nc = \"{{encrypt(v)}}\"\n")

	tests := []struct {
		name    string
		run     func() ([]byte, error)
		want    string
		wantErr error
	}{
		{"decrypt failure names the line",
			func() ([]byte, error) { return Decrypt(ctx, src, "f.hcl", failing) },
			"f.hcl:2,6: decrypt: fake kms: access denied", errKMS},
		{"strip failure names the line",
			func() ([]byte, error) { return Strip(ctx, src, "f.hcl", failing) },
			"f.hcl:2,6: decrypt: fake kms: access denied", errKMS},
		{"encrypt failure names the line",
			func() ([]byte, error) {
				return Encrypt(ctx, src, "f.hcl", func(context.Context, []byte) (string, error) { return "", errKMS })
			},
			"f.hcl:3,6: encrypt: fake kms: access denied", errKMS},
		{"ciphertext with terminator",
			func() ([]byte, error) { return Encrypt(ctx, src, "f.hcl", encReturning("a)}}b")) },
			"f.hcl:3,6: value cannot be written into the file: the ciphertext is empty or holds a line break or marker syntax", ErrValue},
		{"empty ciphertext",
			func() ([]byte, error) { return Encrypt(ctx, src, "f.hcl", encReturning("")) },
			"f.hcl:3,6: value cannot be written into the file: the ciphertext is empty or holds a line break or marker syntax", ErrValue},
		{"plaintext with line break",
			func() ([]byte, error) { return Decrypt(ctx, src, "f.hcl", returning("x\ny")) },
			"f.hcl:2,6: value cannot be written into the file: the plaintext is empty or holds a line break or marker syntax", ErrValue},
		{"plaintext with opening",
			func() ([]byte, error) { return Decrypt(ctx, src, "f.hcl", returning("{{encrypt(")) },
			"f.hcl:2,6: value cannot be written into the file: the plaintext is empty or holds a line break or marker syntax", ErrValue},
		{"stripped plaintext with line break",
			func() ([]byte, error) { return Strip(ctx, src, "f.hcl", returning("x\ny")) },
			"f.hcl:2,6: value cannot be written into the file: the plaintext holds a line break", ErrValue},
		{"syntax error before any call",
			func() ([]byte, error) {
				return Decrypt(ctx, []byte("{{decrypt(ct:eA==)}}\n{{decrypt()}}"), "f.hcl",
					func(context.Context, string) ([]byte, error) { panic("decrypt called before the scan finished") })
			},
			"f.hcl:2,1: malformed marker: empty decrypt marker", ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.run()
			if err == nil {
				t.Fatalf("got output %q, want error %q", out, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("got error\n  %v\nwant\n  %s", err, tt.want)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("errors.Is(err, %v) = false", tt.wantErr)
			}
			var mErr *Error
			if !errors.As(err, &mErr) || mErr.Line == 0 {
				t.Errorf("error %T carries no line", err)
			}
		})
	}

	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := Decrypt(ctx, src, "f.hcl", fakeDecrypt)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})
}

func TestStripKeepsEncryptValues(t *testing.T) {
	src := []byte(`a = "{{encrypt(plain)}}" b = "{{decrypt(ct:ZXJjZXM=)}}"`)
	got, err := Strip(context.Background(), src, "f.hcl", fakeDecrypt)
	if err != nil {
		t.Fatal(err)
	}
	if want := `a = "plain" b = "secre"`; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
