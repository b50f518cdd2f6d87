package hygiene

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// minSecretLen is the shortest secret the scan accepts. A shorter value
// could turn up in innocent text by chance, and its base64 forms at an
// offset would be a handful of characters.
const minSecretLen = 16

// minCoreLen is the shortest base64 run searched for. A base64 encoding
// of a secret that sits inside a longer encoded blob is only stable away
// from the secret's ends; that middle part must be long enough never to
// match by chance (18 random base64 characters are 108 bits).
const minCoreLen = 18

// secret is a value that must never appear in what a broker shows.
type secret struct {
	name  string
	value []byte
}

// leak is one place where a secret was found. It names the secret and
// the form, never the value, so that reporting a leak leaks nothing more.
type leak struct {
	secret string
	form   string
	source string
	line   int
}

func (l leak) String() string {
	return fmt.Sprintf("%s holds the %s in %s form (line %d)", l.source, l.secret, l.form, l.line)
}

// forms returns every form in which v could leak, by name:
//
//   - raw: the bytes themselves;
//   - quoted: as Go's %q writes them, when that differs from raw;
//   - decimal: as Go's %v writes a []byte, without the brackets;
//   - hex and HEX;
//   - base64 and base64url, each at the three alignments a value can
//     have inside a longer encoded blob: the characters that depend on v
//     alone. They match the padded and the unpadded encoding of v, and
//     v encoded as part of a larger message.
func forms(v []byte) map[string]string {
	f := map[string]string{
		"raw":     string(v),
		"decimal": strings.Trim(fmt.Sprint(v), "[]"),
		"hex":     hex.EncodeToString(v),
		"HEX":     strings.ToUpper(hex.EncodeToString(v)),
	}
	if q := strconv.Quote(string(v)); q[1:len(q)-1] != string(v) {
		f["quoted"] = q[1 : len(q)-1]
	}
	for _, enc := range []struct {
		name string
		e    *base64.Encoding
	}{{"base64", base64.StdEncoding}, {"base64url", base64.URLEncoding}} {
		for offset := range 3 {
			if core := base64Core(enc.e, v, offset); len(core) >= minCoreLen {
				name := enc.name
				if offset > 0 {
					name = fmt.Sprintf("%s at offset %d", enc.name, offset)
				}
				f[name] = core
			}
		}
	}
	return f
}

// base64Core is the part of the encoding of v, preceded by offset other
// bytes, that depends on v alone: whole 4-character groups after the
// first (when offset > 0), up to the last whole group of v.
func base64Core(enc *base64.Encoding, v []byte, offset int) string {
	msg := append(make([]byte, offset), v...)
	s := enc.EncodeToString(msg)
	end := 4 * (len(msg) / 3)
	start := 0
	if offset > 0 {
		start = 4
	}
	if end <= start {
		return ""
	}
	return s[start:end]
}

// find searches every source (a name and its text) for every secret in
// every form and returns each find, sorted. A secret too short to search
// for meaningfully is an error.
func find(secrets []secret, sources map[string]string) ([]leak, error) {
	var leaks []leak
	for _, s := range secrets {
		if len(s.value) < minSecretLen {
			return nil, fmt.Errorf("secret %s is %d bytes, too short to search for (at least %d)", s.name, len(s.value), minSecretLen)
		}
		for form, needle := range forms(s.value) {
			for name, text := range sources {
				if i := strings.Index(text, needle); i >= 0 {
					leaks = append(leaks, leak{secret: s.name, form: form, source: name, line: 1 + strings.Count(text[:i], "\n")})
				}
			}
		}
	}
	slices.SortFunc(leaks, func(a, b leak) int { return strings.Compare(a.String(), b.String()) })
	return leaks, nil
}

// mustFind is find for secrets known to be long enough.
func mustFind(t *testing.T, secrets []secret, sources map[string]string) []leak {
	t.Helper()
	leaks, err := find(secrets, sources)
	if err != nil {
		t.Fatal(err)
	}
	return leaks
}

// TestFindReportsEveryForm plants each kind of secret in each form in a
// broker-like log line and checks find reports it, with the right form
// and line, and reports nothing in the same text without it.
func TestFindReportsEveryForm(t *testing.T) {
	key := bytes.Repeat([]byte{0x00, 0x9f, 0x41, 0xff, 0x7e, 0x10, 0xc3, 0x22}, 4) // binary, 32 bytes
	token := []byte("kmsb.Q2hhbmdlIG1lIHBsZWFzZSwgSSBhbSBhIHRlc3QgdG9rZW4")
	clean := "2026-01-02T03:04:05.000Z [DEBUG] brokerd.api: request: method=/kmsbroker.api.v1.Broker/Encrypt scope=o_1\n"

	for _, s := range []secret{{"aead key", key}, {"client token", token}} {
		for form, needle := range forms(s.value) {
			t.Run(s.name+"/"+form, func(t *testing.T) {
				// Surround the needle the way a leak would: inside a
				// quoted value, and for base64 inside a longer blob.
				planted := clean + `2026-01-02T03:04:05.001Z [DEBUG] brokerd.pluginhost: configure: settings="x` + needle + `x"` + "\n"
				got := mustFind(t, []secret{s}, map[string]string{"broker log": planted})
				if len(got) == 0 {
					t.Fatalf("find: nothing found in a log holding the %s in %s form", s.name, form)
				}
				want := leak{secret: s.name, form: form, source: "broker log", line: 2}
				if !slices.Contains(got, want) {
					t.Errorf("find: got %v, want it to hold %v", got, want)
				}
				if got := mustFind(t, []secret{s}, map[string]string{"broker log": clean}); len(got) > 0 {
					t.Errorf("find in a clean log: got %v, want nothing", got)
				}
			})
		}
	}
}

// TestFindInsideEncodedBlob plants a key inside a larger message that is
// then base64-encoded as a whole, at every alignment: find must still
// report it, though the key's own base64 encoding is nowhere in the text.
func TestFindInsideEncodedBlob(t *testing.T) {
	key := []byte("0123456789abcdef0123456789ABCDEF")
	for offset := range 3 {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding} {
			blob := append(append(bytes.Repeat([]byte{'{'}, offset), key...), []byte(`","aad":"r1"}`)...)
			text := "request body=" + enc.EncodeToString(blob)
			if got := mustFind(t, []secret{{"key", key}}, map[string]string{"log": text}); len(got) == 0 {
				t.Errorf("find: key at offset %d inside an encoded blob not found in %q", offset, text)
			}
		}
	}
}

// TestFindRefusesShortSecrets: a short value could match by chance, so
// searching for it would prove nothing either way.
func TestFindRefusesShortSecrets(t *testing.T) {
	if _, err := find([]secret{{"pin", []byte("1234")}}, map[string]string{"log": "pin=1234"}); err == nil {
		t.Errorf("find accepted a 4-byte secret; want an error")
	}
}
