package e2e

import (
	"encoding/json"
	"strconv"
	"strings"
)

// The JSON the CLI prints with -format=json (protojson with the proto
// field names).

type statusOut struct {
	Version  string       `json:"version"`
	Ready    bool         `json:"ready"`
	Purposes []purposeOut `json:"purposes"`
	Store    struct {
		Type  string `json:"type"`
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"store"`
	RootKeys rootKeysOut `json:"root_keys"`
}

// rootKeysOut says which external keys wrap the live KEK versions.
type rootKeysOut struct {
	CurrentKeyID string         `json:"current_key_id"`
	KeyVersions  map[string]int `json:"key_versions"`
	OnOtherKeys  int            `json:"on_other_keys"`
	Error        string         `json:"error"`
}

type purposeOut struct {
	Purpose    string `json:"purpose"`
	Block      string `json:"block"`
	PluginType string `json:"plugin_type"`
	Pid        int    `json:"pid"`
	State      string `json:"state"`
	KeyID      string `json:"key_id"`
	LastError  string `json:"last_error"`
	Restarts   int    `json:"restarts"`
}

// purpose returns the status of one external purpose, failing the test if
// status does not list it.
func (s statusOut) purpose(b *broker, name string) purposeOut {
	b.t.Helper()
	for _, p := range s.Purposes {
		if p.Purpose == name {
			return p
		}
	}
	b.t.Fatalf("status lists no purpose %q: %+v", name, s.Purposes)
	return purposeOut{}
}

type scopeOut struct {
	ID             string `json:"id"`
	RootKeyVersion int    `json:"root_key_version"`
	DataKeys       []struct {
		Purpose string `json:"purpose"`
		Version int    `json:"version"`
	} `json:"data_keys"`
}

type keyVersionOut struct {
	ID             string  `json:"id"`
	Kind           string  `json:"kind"`
	Version        int     `json:"version"`
	RootKeyVersion int     `json:"root_key_version"`
	WrappingKeyID  string  `json:"wrapping_key_id"`
	Active         bool    `json:"active"`
	DestroyTime    *string `json:"destroy_time"`
}

type envelopeOut struct {
	Ciphertext string `json:"ciphertext"` // base64, as decrypt takes it
	KeyVersion int    `json:"key_version"`
}

// data is one value encrypted through the broker, to decrypt again later.
type data struct {
	scope, aad, plaintext string
	envelope              envelopeOut
}

func (b *broker) status(c cred) statusOut {
	b.t.Helper()
	r := b.cli(c, "status", "-format=json")
	var s statusOut
	if r.code != 0 && r.code != 3 {
		b.t.Fatalf("status: want exit 0 or 3 (not ready), got\n%s", r)
	}
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		b.t.Fatalf("brokerd status -format=json: output is not the expected JSON: %v\n%s", err, r.stdout)
	}
	// Exit 3 says exactly that the broker is not ready.
	if (r.code == 3) == s.Ready {
		b.t.Errorf("status: exit %d with ready=%t", r.code, s.Ready)
	}
	return s
}

// bootstrapAdmin makes the first admin token of a fresh broker with a
// recovery token, the only way in, and returns the token.
func (b *broker) bootstrapAdmin(recoveryPath string) string {
	b.t.Helper()
	var out struct {
		Token struct {
			ID   string `json:"id"`
			Role string `json:"role"`
		} `json:"token"`
		Secret string `json:"secret"`
	}
	b.okJSON(&out, recoveryCred(recoveryPath), "tokens create", "-name=admin", "-role=admin")
	if out.Token.Role != "admin" || !strings.HasPrefix(out.Secret, "kmsb.") {
		b.t.Fatalf("tokens create: got role %q, secret with kmsb. prefix %t; want admin and true",
			out.Token.Role, strings.HasPrefix(out.Secret, "kmsb."))
	}
	return out.Secret
}

// createScope creates scope id and checks it starts at version 1.
func (b *broker) createScope(c cred, id string) scopeOut {
	b.t.Helper()
	var sc scopeOut
	b.okJSON(&sc, c, "scopes create", "-id="+id)
	if sc.ID != id || sc.RootKeyVersion != 1 {
		b.t.Fatalf("scopes create -id=%s: got id %q KEK version %d, want %s and 1", id, sc.ID, sc.RootKeyVersion, id)
	}
	return sc
}

// encrypt encrypts a fresh secret in scope's database key, bound to aad.
func (b *broker) encrypt(c cred, scope, aad string) data {
	b.t.Helper()
	d := data{scope: scope, aad: aad, plaintext: secretText(b.t, scope)}
	b.okJSON(&d.envelope, c, "encrypt", "-scope="+scope, "-purpose=database", "-aad="+aad, d.plaintext)
	if d.envelope.Ciphertext == "" || d.envelope.KeyVersion < 1 {
		b.t.Fatalf("encrypt in %s: got %+v, want a ciphertext and a key version", scope, d.envelope)
	}
	return d
}

// decrypt checks that d still decrypts to its plaintext.
func (b *broker) decrypt(c cred, d data) {
	b.t.Helper()
	got := b.ok(c, "decrypt", "-scope="+d.scope, "-purpose=database", "-aad="+d.aad, d.envelope.Ciphertext)
	if got != d.plaintext {
		b.t.Errorf("decrypt in %s (key version %d): got %q, want %q", d.scope, d.envelope.KeyVersion, got, d.plaintext)
	}
}

// keyVersions lists a scope's key versions.
func (b *broker) keyVersions(c cred, scope string) []keyVersionOut {
	b.t.Helper()
	var out struct {
		Versions []keyVersionOut `json:"versions"`
	}
	b.okJSON(&out, c, "scopes key-versions", "-id="+scope)
	return out.Versions
}

// kekWrappers maps each KEK version of scope to the external key id that
// wraps it, the "wrapped by" column of scopes key-versions.
func (b *broker) kekWrappers(c cred, scope string) map[int]string {
	b.t.Helper()
	out := make(map[int]string)
	for _, v := range b.keyVersions(c, scope) {
		if v.Kind == "root" {
			out[v.Version] = v.WrappingKeyID
		}
	}
	if len(out) == 0 {
		b.t.Fatalf("scopes key-versions -id=%s lists no root key version", scope)
	}
	return out
}

// wantKEKsWrappedBy fails the test unless every KEK version of scope is
// wrapped by keyID.
func (b *broker) wantKEKsWrappedBy(c cred, scope, keyID string) {
	b.t.Helper()
	for v, got := range b.kekWrappers(c, scope) {
		if got != keyID {
			b.t.Errorf("scope %s KEK version %d: wrapped by %q, want %q", scope, v, got, keyID)
		}
	}
}

// itoa keeps flag building short.
func itoa(n int) string { return strconv.Itoa(n) }
