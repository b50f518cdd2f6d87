package e2e

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// TestHCLString checks the scenarios' config writer against the HCL
// parser: every value reads back exactly as written, template sequences
// included.
func TestHCLString(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"plain", "alias/broker-root"},
		{"url", "http://127.0.0.1:8200"},
		{"base64", "q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k="},
		{"quotes and backslash", `a"b\c`},
		{"interpolation", "${var.x}"},
		{"directive", "%{ if true }x%{ endif }"},
		{"lone dollar and percent", "$ % ${"},
		{"config marker", "{{encrypt(s3cret)}}"},
		{"non-ASCII", "clé"},
		{"empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "v = " + hclString(t, tc.value) + "\n"
			f, diags := hclsyntax.ParseConfig([]byte(src), "test.hcl", hcl.Pos{Line: 1, Column: 1})
			if diags.HasErrors() {
				t.Fatalf("parse %q: %v", src, diags)
			}
			attrs, diags := f.Body.JustAttributes()
			if diags.HasErrors() {
				t.Fatalf("attributes of %q: %v", src, diags)
			}
			got, diags := attrs["v"].Expr.Value(nil)
			if diags.HasErrors() {
				t.Fatalf("evaluate %q: %v", src, diags)
			}
			if got.AsString() != tc.value {
				t.Errorf("hclString(%q) reads back as %q", tc.value, got.AsString())
			}
		})
	}
}
