package pluginhost

import (
	"bytes"
	"errors"
	"testing"
)

func TestBindAAD(t *testing.T) {
	tests := []struct {
		name           string
		plaintext, aad []byte
		openAAD        []byte
		wantErr        bool
	}{
		{"same aad", []byte("kek"), []byte("o_1"), []byte("o_1"), false},
		{"empty both", nil, nil, []byte{}, false},
		{"other aad", []byte("kek"), []byte("o_1"), []byte("o_2"), true},
		{"aad dropped", []byte("kek"), []byte("o_1"), nil, true},
		{"aad added", []byte("kek"), nil, []byte("o_1"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := unbindAAD(bindAAD(tt.plaintext, tt.aad), tt.openAAD)
			if tt.wantErr {
				if !errors.Is(err, errBinding) {
					t.Fatalf("unbindAAD = %q, %v; want errBinding", got, err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.plaintext) {
				t.Fatalf("unbindAAD = %q, %v; want %q", got, err, tt.plaintext)
			}
		})
	}
}

// FuzzUnbindAAD checks the binding parser on arbitrary payloads: it never
// panics, and it only accepts a payload whose header is the digest of the
// AAD it is given.
func FuzzUnbindAAD(f *testing.F) {
	f.Add(bindAAD([]byte("kek"), []byte("o_1")), []byte("o_1"))
	f.Add(bindAAD(nil, nil), []byte{})
	f.Add([]byte{bindVersion}, []byte{})
	f.Add([]byte{}, []byte("x"))
	f.Fuzz(func(t *testing.T, payload, aad []byte) {
		got, err := unbindAAD(payload, aad)
		if err != nil {
			return
		}
		if want := bindAAD(got, aad); !bytes.Equal(want, payload) {
			t.Fatalf("accepted a payload that is not bindAAD(%q, %q)", got, aad)
		}
	})
}
