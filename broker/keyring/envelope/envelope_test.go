package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.json from the current code (changes the locked format: review the diff)")

// vector is one golden envelope. Byte fields are hex.
type vector struct {
	Name       string `json:"name"`
	Key        string `json:"key"`
	Nonce      string `json:"nonce"`
	Scope      string `json:"scope"`
	Purpose    byte   `json:"purpose"`
	KeyVersion uint32 `json:"key_version"`
	Plaintext  string `json:"plaintext"`
	AAD        string `json:"aad"`
	Envelope   string `json:"envelope"`
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func gcm(t testing.TB, key []byte) cipher.AEAD {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// specSeal builds an envelope straight from the format described in the
// package documentation, without using Seal, as a second opinion on it.
func specSeal(t *testing.T, key, nonce []byte, scope string, purpose byte, version uint32, pt, aad []byte) []byte {
	t.Helper()
	header := []byte{1, purpose, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(header[2:], version)
	var ad []byte
	ad = append(ad, []byte("kmsbroker/envelope/v1")...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(scope)))
	ad = append(ad, scope...)
	ad = append(ad, header...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(aad)))
	ad = append(ad, aad...)
	out := append(append([]byte{}, header...), nonce...)
	return gcm(t, key).Seal(out, nonce, pt, ad)
}

func TestGoldenVectors(t *testing.T) {
	path := filepath.Join("testdata", "golden.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden vectors: %v", err)
	}
	var vs []vector
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatalf("parse golden vectors: %v", err)
	}
	if len(vs) == 0 {
		t.Fatal("no golden vectors")
	}

	for i := range vs {
		v := &vs[i]
		t.Run(v.Name, func(t *testing.T) {
			key, nonce, pt, aad := unhex(t, v.Key), unhex(t, v.Nonce), unhex(t, v.Plaintext), unhex(t, v.AAD)
			h := Header{Purpose: v.Purpose, KeyVersion: v.KeyVersion}
			got := Seal(nil, gcm(t, key), nonce, v.Scope, h, pt, aad)

			spec := specSeal(t, key, nonce, v.Scope, v.Purpose, v.KeyVersion, pt, aad)
			if !bytes.Equal(got, spec) {
				t.Fatalf("Seal = %x\nthe documented format gives %x", got, spec)
			}
			if *update {
				v.Envelope = hex.EncodeToString(got)
				return
			}
			if want := unhex(t, v.Envelope); !bytes.Equal(got, want) {
				t.Fatalf("Seal = %x\nwant golden %x", got, want)
			}

			gotH, err := Parse(got)
			if err != nil || gotH != h {
				t.Fatalf("Parse = %+v, %v; want %+v", gotH, err, h)
			}
			opened, err := Open(nil, gcm(t, key), v.Scope, got, aad)
			if err != nil || !bytes.Equal(opened, pt) {
				t.Fatalf("Open = %x, %v; want %x", opened, err, pt)
			}
		})
	}

	if *update {
		out, err := json.MarshalIndent(vs, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestParse(t *testing.T) {
	valid := make([]byte, Overhead+1)
	valid[0], valid[1], valid[5] = 1, 3, 7

	with := func(i int, b byte) []byte {
		c := bytes.Clone(valid)
		c[i] = b
		return c
	}
	tests := []struct {
		name string
		env  []byte
		want Header
		err  error
	}{
		{"nil", nil, Header{}, ErrMalformed},
		{"one byte", []byte{1}, Header{}, ErrMalformed},
		{"header only", valid[:HeaderLen], Header{}, ErrMalformed},
		{"one short of minimum", valid[:Overhead-1], Header{}, ErrMalformed},
		{"minimum length", valid[:Overhead], Header{Purpose: 3, KeyVersion: 7}, nil},
		{"version 0", with(0, 0), Header{}, ErrMalformed},
		{"version 2", with(0, 2), Header{}, ErrMalformed},
		{"purpose 0", with(1, 0), Header{}, ErrMalformed},
		{"key version 0", with(5, 0), Header{}, ErrMalformed},
		{"high key version", with(2, 0xff), Header{Purpose: 3, KeyVersion: 0xff000007}, nil},
		{"valid", valid, Header{Purpose: 3, KeyVersion: 7}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.env)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("Parse = %+v, %v; want %+v, %v", got, err, tt.want, tt.err)
			}
		})
	}

	t.Run("too long", func(t *testing.T) {
		long := make([]byte, MaxLen+1)
		copy(long, valid)
		if _, err := Parse(long); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse of %d bytes = %v, want ErrMalformed", len(long), err)
		}
	})
}

// TestOpenRejects changes each input that the additional data binds, and
// each region of the envelope, and expects every open to fail alike.
func TestOpenRejects(t *testing.T) {
	key := bytes.Repeat([]byte{0x42}, 32)
	nonce := bytes.Repeat([]byte{0x24}, NonceLen)
	aead := gcm(t, key)
	h := Header{Purpose: 1, KeyVersion: 5}
	env := Seal(nil, aead, nonce, "o_scope", h, []byte("attack at dawn"), []byte("row 17"))

	flip := func(i int) []byte {
		c := bytes.Clone(env)
		c[i] ^= 0x01
		return c
	}
	tests := []struct {
		name  string
		aead  cipher.AEAD
		scope string
		env   []byte
		aad   []byte
	}{
		{"other key", gcm(t, bytes.Repeat([]byte{0x43}, 32)), "o_scope", env, []byte("row 17")},
		{"other scope", aead, "o_scopf", env, []byte("row 17")},
		{"scope prefix", aead, "o_scop", env, []byte("row 17")},
		{"other aad", aead, "o_scope", env, []byte("row 18")},
		{"no aad", aead, "o_scope", env, nil},
		{"purpose flipped", aead, "o_scope", flip(1), []byte("row 17")},
		{"version flipped", aead, "o_scope", flip(5), []byte("row 17")},
		{"nonce flipped", aead, "o_scope", flip(HeaderLen), []byte("row 17")},
		{"ciphertext flipped", aead, "o_scope", flip(HeaderLen + NonceLen), []byte("row 17")},
		{"tag flipped", aead, "o_scope", flip(len(env) - 1), []byte("row 17")},
		{"truncated", aead, "o_scope", env[:len(env)-1], []byte("row 17")},
		{"shorter than overhead", aead, "o_scope", env[:Overhead-1], []byte("row 17")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Open(nil, tt.aead, tt.scope, tt.env, tt.aad)
			if !errors.Is(err, ErrOpen) || got != nil {
				t.Errorf("Open = %q, %v; want nil, ErrOpen", got, err)
			}
		})
	}

	t.Run("original opens", func(t *testing.T) {
		got, err := Open(nil, aead, "o_scope", env, []byte("row 17"))
		if err != nil || string(got) != "attack at dawn" {
			t.Errorf("Open = %q, %v; want the plaintext", got, err)
		}
	})
}

// TestAdditionalDataUnambiguous checks that moving bytes between the scope
// id and the caller's aad changes the additional data.
func TestAdditionalDataUnambiguous(t *testing.T) {
	header := []byte{1, 1, 0, 0, 0, 1}
	a := additionalData("ab", header, []byte("c"))
	b := additionalData("a", header, []byte("bc"))
	if bytes.Equal(a, b) {
		t.Fatalf("additionalData(ab, c) == additionalData(a, bc) = %x", a)
	}
}

func TestSealAppends(t *testing.T) {
	aead := gcm(t, make([]byte, 32))
	prefix := []byte("prefix")
	out := Seal(bytes.Clone(prefix), aead, make([]byte, NonceLen), "s", Header{Purpose: 2, KeyVersion: 1}, []byte("x"), nil)
	if !bytes.HasPrefix(out, prefix) || len(out) != len(prefix)+Overhead+1 {
		t.Fatalf("Seal onto a prefix = %x, want the prefix then %d bytes", out, Overhead+1)
	}
	if _, err := Open(nil, aead, "s", out[len(prefix):], nil); err != nil {
		t.Errorf("Open of the appended envelope: %v", err)
	}
}

// FuzzOpenEnvelope feeds arbitrary bytes to Parse and Open. Neither may
// panic; Open may succeed only on an envelope that Parse accepts, and then
// only for the one fixed plaintext the seeds were made from.
func FuzzOpenEnvelope(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	aead := gcm(f, key)
	const scope = "o_fuzz"
	aad := []byte("fuzz aad")
	pt := []byte("fuzz plaintext")

	f.Add(Seal(nil, aead, bytes.Repeat([]byte{1}, NonceLen), scope, Header{Purpose: 1, KeyVersion: 1}, pt, aad))
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0, 0, 0, 1})

	f.Fuzz(func(t *testing.T, env []byte) {
		_, perr := Parse(env)
		if perr != nil && !errors.Is(perr, ErrMalformed) {
			t.Fatalf("Parse error %v is not ErrMalformed", perr)
		}
		got, oerr := Open(nil, aead, scope, env, aad)
		if oerr != nil {
			if !errors.Is(oerr, ErrOpen) {
				t.Fatalf("Open error %v is not ErrOpen", oerr)
			}
			return
		}
		// Without the key no one can make an envelope that opens, so a
		// success must be a seed, unchanged.
		if perr != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Open accepted a forged envelope %x (Parse: %v)", env, perr)
		}
	})
}

func TestSealDrawsRandomNonce(t *testing.T) {
	aead := gcm(t, make([]byte, 32))
	h := Header{Purpose: 1, KeyVersion: 1}
	a := Seal(nil, aead, nil, "s", h, []byte("x"), nil)
	b := Seal(nil, aead, nil, "s", h, []byte("x"), nil)
	if bytes.Equal(a[HeaderLen:HeaderLen+NonceLen], b[HeaderLen:HeaderLen+NonceLen]) {
		t.Fatal("two seals with a nil nonce drew the same nonce")
	}
	for _, env := range [][]byte{a, b} {
		if got, err := Open(nil, aead, "s", env, nil); err != nil || string(got) != "x" {
			t.Errorf("Open = %q, %v; want x", got, err)
		}
	}
}

// TestLongAADNotPooled checks that an aad too long for the buffer pool
// still seals and opens.
func TestLongAADNotPooled(t *testing.T) {
	aead := gcm(t, make([]byte, 32))
	aad := bytes.Repeat([]byte("a"), 4*maxPooledAD)
	env := Seal(nil, aead, nil, "s", Header{Purpose: 2, KeyVersion: 9}, []byte("y"), aad)
	if got, err := Open(nil, aead, "s", env, aad); err != nil || string(got) != "y" {
		t.Fatalf("Open = %q, %v; want y", got, err)
	}
	if _, err := Open(nil, aead, "s", env, aad[1:]); !errors.Is(err, ErrOpen) {
		t.Errorf("Open with a shorter aad = %v, want ErrOpen", err)
	}
}
