package markers

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func addSeeds(f *testing.F) {
	f.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", "ten_markers.hcl"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(src)
	for _, s := range []string{
		`a = "{{encrypt(x)}}{{decrypt(Y)}}"`,
		`{{encrypt(a)})}}`,
		`{{encrypt({{x}} }{)}}`,
		"{{decrypt(abc\n)}}",
		`k = "{{encrypt(a)}}b)}}"`,
		`k = "{{ encrypt(x) }}"`,
		`{{encrypt(a{{decrypt(b)}})}}`,
		"b = \"{{encrypt(v)}}\"\r\n",
	} {
		f.Add([]byte(s))
	}
}

// FuzzScanMarkers checks that Scan never panics, that every error is an
// *Error wrapping ErrSyntax, and that every marker it finds is exactly
// where and what it says.
func FuzzScanMarkers(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		ms, err := Scan(src, "fuzz.hcl")
		if err != nil {
			var mErr *Error
			if !errors.As(err, &mErr) || !errors.Is(err, ErrSyntax) || mErr.Line < 1 || mErr.Column < 1 {
				t.Fatalf("error %v (%T) is not a positioned *Error wrapping ErrSyntax", err, err)
			}
			return
		}
		last := 0
		for _, m := range ms {
			if m.Start < last || m.End <= m.Start || m.End > len(src) {
				t.Fatalf("marker at %d..%d out of order or bounds (previous end %d)", m.Start, m.End, last)
			}
			last = m.End
			if !bytes.Equal(src[m.Start:m.End], marker(m.Op, m.Value)) {
				t.Fatalf("src[%d:%d] = %q is not the marker %s(%q)", m.Start, m.End, src[m.Start:m.End], m.Op, m.Value)
			}
			if !validValue(m.Value) {
				t.Fatalf("invalid value %q accepted", m.Value)
			}
			if line := bytes.Count(src[:m.Start], []byte("\n")) + 1; line != m.Line {
				t.Fatalf("marker on line %d reported on line %d", line, m.Line)
			}
		}
	})
}

// FuzzRoundTrip checks that, with a reversible encrypt function, Decrypt
// undoes Encrypt byte for byte, that Encrypt is idempotent, and that Strip
// of the encrypted file equals Strip of the original.
func FuzzRoundTrip(f *testing.F) {
	addSeeds(f)
	ctx := context.Background()
	noDecrypt := func(context.Context, string) ([]byte, error) {
		return nil, errors.New("no decrypt marker expected")
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		ms, scanErr := Scan(src, "fuzz.hcl")
		enc, err := Encrypt(ctx, src, "fuzz.hcl", fakeEncrypt)
		if scanErr != nil {
			if err == nil || err.Error() != scanErr.Error() {
				t.Fatalf("Scan failed with %v but Encrypt gave %v", scanErr, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Encrypt: %v", err)
		}
		again, err := Encrypt(ctx, enc, "fuzz.hcl", fakeEncrypt)
		if err != nil || !bytes.Equal(again, enc) {
			t.Fatalf("Encrypt is not idempotent (err %v)", err)
		}

		for _, m := range ms {
			if m.Op == OpDecrypt {
				return // Decrypt would also turn this pre-existing marker around
			}
		}
		dec, err := Decrypt(ctx, enc, "fuzz.hcl", fakeDecrypt)
		if err != nil {
			t.Fatalf("Decrypt: %v", err)
		}
		if !bytes.Equal(dec, src) {
			t.Fatalf("round trip differs:\n got %q\nwant %q", dec, src)
		}
		stripEnc, err := Strip(ctx, enc, "fuzz.hcl", fakeDecrypt)
		if err != nil {
			t.Fatalf("Strip of the encrypted file: %v", err)
		}
		stripSrc, err := Strip(ctx, src, "fuzz.hcl", noDecrypt)
		if err != nil {
			t.Fatalf("Strip of the original: %v", err)
		}
		if !bytes.Equal(stripEnc, stripSrc) {
			t.Fatalf("Strip differs:\n got %q\nwant %q", stripEnc, stripSrc)
		}
	})
}
