package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kmsbroker/kmsbroker/e2e/awskms"
	"github.com/kmsbroker/kmsbroker/e2e/vault"
)

// kmsBlock is one `kms "<type>" { ... }` block of a broker config.
type kmsBlock struct {
	Type     string
	Purposes []string
	// Settings are the plugin's settings, written in sorted order.
	Settings map[string]string
}

// brokerConfig is a `brokerd server` config file.
type brokerConfig struct {
	Address string // listener address, host:port, plain HTTP
	DBPath  string // SQLite file
	// AuditPath, when set, is the audit log.
	AuditPath string
	// WorkerScopes, when set, are the scopes workers may derive keys in.
	WorkerScopes []string
	Blocks       []kmsBlock
}

// hcl renders c as the HCL an operator would write.
func (c brokerConfig) hcl(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "log_level = \"debug\"\n\n")
	fmt.Fprintf(&b, "listener \"tcp\" {\n  address     = %s\n  tls_disable = true\n}\n\n", hclString(t, c.Address))
	fmt.Fprintf(&b, "storage \"sqlite\" {\n  path = %s\n}\n\n", hclString(t, c.DBPath))
	if c.AuditPath != "" {
		fmt.Fprintf(&b, "audit {\n  path = %s\n}\n\n", hclString(t, c.AuditPath))
	}
	if c.WorkerScopes != nil {
		fmt.Fprintf(&b, "auth {\n  worker_scopes = %s\n}\n\n", hclList(t, c.WorkerScopes))
	}
	for _, blk := range c.Blocks {
		b.WriteString(blk.hcl(t))
		b.WriteString("\n")
	}
	return b.String()
}

// hcl renders the block alone, as a recovery or worker-auth client file
// holds it.
func (k kmsBlock) hcl(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "kms %s {\n  purpose = %s\n", hclString(t, k.Type), hclList(t, k.Purposes))
	names := make([]string, 0, len(k.Settings))
	for n := range k.Settings {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %s = %s\n", n, hclString(t, k.Settings[n]))
	}
	b.WriteString("}\n")
	return b.String()
}

// hclList writes a list of strings.
func hclList(t testing.TB, list []string) string {
	t.Helper()
	quoted := make([]string, len(list))
	for i, s := range list {
		quoted[i] = hclString(t, s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// hclString quotes s as an HCL string literal. Template sequences are
// escaped so that a value is taken literally; control characters have no
// place in any value the scenarios write.
func hclString(t testing.TB, s string) string {
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
			t.Fatalf("config value holds control character %#x", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// writeFile writes content to name in dir, readable by the owner only,
// as an operator keeps a file with secrets, and returns its path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	return path
}

// aeadBlock is a local AES-GCM block with a fresh random key.
func aeadBlock(t testing.TB, keyID string, purposes ...string) kmsBlock {
	t.Helper()
	return kmsBlock{Type: "aead", Purposes: purposes, Settings: map[string]string{
		"key":    base64.StdEncoding.EncodeToString(randomBytes(t, 32)),
		"key_id": keyID,
	}}
}

// awsBlock is a block on key keyRef (id, ARN or alias) of the AWS KMS API
// server s, with every connection setting given in the config.
func awsBlock(s *awskms.Server, keyRef string, purposes ...string) kmsBlock {
	return kmsBlock{Type: "awskms", Purposes: purposes, Settings: map[string]string{
		"kms_key_id": keyRef,
		"region":     s.Region,
		"endpoint":   s.Endpoint,
		"access_key": s.AccessKey,
		"secret_key": s.SecretKey,
	}}
}

// transitBlock is a block on the transit key name at address (a Vault
// URL) under mount, using token.
func transitBlock(address, mount, name, token string, purposes ...string) kmsBlock {
	return kmsBlock{Type: "transit", Purposes: purposes, Settings: map[string]string{
		"address":    address,
		"mount_path": mount + "/",
		"key_name":   name,
		"token":      token,
	}}
}

// vaultBlock is transitBlock on a harness Vault server.
func vaultBlock(v *vault.Server, tr *vault.Transit, name string, tok vault.Token, purposes ...string) kmsBlock {
	return transitBlock(v.Addr, tr.Mount, name, tok.Value(), purposes...)
}

// uniqueAlias is an AWS KMS alias name no other test or run uses, as a
// shared endpoint (BROKER_E2E_AWS_ENDPOINT) requires.
func uniqueAlias(t testing.TB, name string) string {
	t.Helper()
	return "alias/" + name + "-" + hex.EncodeToString(randomBytes(t, 6))
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return b
}

// secretText is a plaintext no code could guess, so a decrypt that
// returns it proves a real round trip.
func secretText(t testing.TB, label string) string {
	t.Helper()
	return label + "-" + hex.EncodeToString(randomBytes(t, 12))
}
