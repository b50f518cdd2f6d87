package brokerd

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Storage types, as the config's storage block names them.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Config is a `brokerd server` config file. Zero values are left out of
// the file, so brokerd's own defaults apply.
type Config struct {
	// Address is the listener's host:port; it always serves plain HTTP.
	Address string
	// Storage is SQLite (with DBPath) or Postgres (with PostgresURL).
	Storage     string
	DBPath      string
	PostgresURL string
	// LogLevel is the config's log_level; "" leaves brokerd's default.
	LogLevel string
	// AuditPath, when set, is the audit log.
	AuditPath string
	// WorkerScopes, when set, are the scopes workers may derive keys in.
	WorkerScopes []string
	Blocks       []Block
}

// Block is one `kms "<type>" { ... }` block.
type Block struct {
	Type     string
	Purposes []string
	// Settings are every other attribute of the block: plugin settings
	// and host settings such as plugin_path, timeout and
	// health_check_interval. They are written as strings, sorted by name.
	Settings map[string]string
}

// AEAD returns an aead block with a fresh random key, and the key's raw
// bytes so a test can look for them.
func AEAD(t testing.TB, keyID string, purposes ...string) (Block, []byte) {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatalf("brokerd: make aead key: %v", err)
	}
	return Block{Type: "aead", Purposes: purposes, Settings: map[string]string{
		"key":    base64.StdEncoding.EncodeToString(key),
		"key_id": keyID,
	}}, key
}

// HCL renders the config as an operator would write it.
func (c Config) HCL(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	if c.LogLevel != "" {
		fmt.Fprintf(&b, "log_level = %s\n\n", quote(t, c.LogLevel))
	}
	fmt.Fprintf(&b, "listener \"tcp\" {\n  address     = %s\n  tls_disable = true\n}\n\n", quote(t, c.Address))
	switch c.Storage {
	case SQLite, "":
		fmt.Fprintf(&b, "storage \"sqlite\" {\n  path = %s\n}\n\n", quote(t, c.DBPath))
	case Postgres:
		fmt.Fprintf(&b, "storage \"postgres\" {\n  url = %s\n}\n\n", quote(t, c.PostgresURL))
	default:
		t.Fatalf("brokerd: unknown storage %q", c.Storage)
	}
	if c.AuditPath != "" {
		fmt.Fprintf(&b, "audit {\n  path = %s\n}\n\n", quote(t, c.AuditPath))
	}
	if c.WorkerScopes != nil {
		fmt.Fprintf(&b, "auth {\n  worker_scopes = %s\n}\n\n", quoteList(t, c.WorkerScopes))
	}
	for _, blk := range c.Blocks {
		b.WriteString(blk.HCL(t))
		b.WriteString("\n")
	}
	return b.String()
}

// HCL renders the block alone, as a recovery or worker-auth client file
// holds it.
func (k Block) HCL(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "kms %s {\n  purpose = %s\n", quote(t, k.Type), quoteList(t, k.Purposes))
	names := make([]string, 0, len(k.Settings))
	for n := range k.Settings {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %s = %s\n", n, quote(t, k.Settings[n]))
	}
	b.WriteString("}\n")
	return b.String()
}

func quoteList(t testing.TB, list []string) string {
	t.Helper()
	quoted := make([]string, len(list))
	for i, s := range list {
		quoted[i] = quote(t, s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// quote writes s as an HCL string literal taken literally: quotes and
// backslashes are escaped, and so are the template openers ${ and %{.
// No value the tests write needs a control character.
func quote(t testing.TB, s string) string {
	t.Helper()
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case (c == '$' || c == '%') && i+1 < len(s) && s[i+1] == '{':
			b.WriteByte(c)
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			t.Fatalf("brokerd: config value holds control character %#x", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
