package keyring

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	xhkdf "golang.org/x/crypto/hkdf"
)

var updateDerive = flag.Bool("update-derive", false, "rewrite testdata/derive_golden.json from the current code (changes every derived key: review the diff)")

type deriveVector struct {
	Name    string `json:"name"`
	Secret  string `json:"secret"`
	Scope   string `json:"scope"`
	Version uint32 `json:"version"`
	User    string `json:"user"`
	Session string `json:"session"`
	Length  int    `json:"length"`
	Key     string `json:"key"`
}

// specDerive computes the documented derivation with another HKDF
// implementation, golang.org/x/crypto/hkdf, as a second opinion.
func specDerive(t *testing.T, secret []byte, scope string, version uint32, user, session string, length int) []byte {
	t.Helper()
	var info []byte
	info = append(info, "kmsbroker/derive/v1"...)
	for _, s := range []string{scope} {
		info = binary.BigEndian.AppendUint32(info, uint32(len(s)))
		info = append(info, s...)
	}
	info = binary.BigEndian.AppendUint32(info, version)
	for _, s := range []string{user, session} {
		info = binary.BigEndian.AppendUint32(info, uint32(len(s)))
		info = append(info, s...)
	}
	info = binary.BigEndian.AppendUint32(info, uint32(length))
	out := make([]byte, length)
	if _, err := io.ReadFull(xhkdf.New(sha256.New, secret, nil, info), out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDeriveGoldenVectors(t *testing.T) {
	path := filepath.Join("testdata", "derive_golden.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vs []deriveVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no derivation vectors")
	}
	for i := range vs {
		v := &vs[i]
		t.Run(v.Name, func(t *testing.T) {
			secret, err := hex.DecodeString(v.Secret)
			if err != nil {
				t.Fatal(err)
			}
			got, err := derive(secret, v.Scope, v.Version, v.User, v.Session, v.Length)
			if err != nil {
				t.Fatalf("derive: %v", err)
			}
			if spec := specDerive(t, secret, v.Scope, v.Version, v.User, v.Session, v.Length); !bytes.Equal(got, spec) {
				t.Fatalf("derive = %x\nthe documented construction gives %x", got, spec)
			}
			if *updateDerive {
				v.Key = hex.EncodeToString(got)
				return
			}
			if got := hex.EncodeToString(got); got != v.Key {
				t.Errorf("derive = %s, want golden %s", got, v.Key)
			}
		})
	}
	if *updateDerive {
		out, err := json.MarshalIndent(vs, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
