package config

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/kmsbroker/kmsbroker/broker/config/markers"
	"github.com/kmsbroker/kmsbroker/broker/purpose"
)

// ConfigBlock returns the kms block of src that serves the config purpose,
// decoded as Parse would decode it, or nil and no error when no block
// serves config. filename names src in errors.
//
// It reads src before its markers are decrypted, so it looks only at kms
// blocks and decodes only the one that serves config: the rest of the file
// may still hold {{decrypt(...)}} values. Markers must therefore sit in
// quoted strings, heredocs or comments, so that src parses as HCL.
//
// The config block itself cannot hold a marker: its settings are needed to
// decrypt the markers. A marker anywhere between its header and its closing
// brace, comments included, is reported at the marker as an *Error that
// wraps ErrCycle and ErrInvalid, before any plugin would be started.
func ConfigBlock(src []byte, filename string) (*KMS, error) {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, asError(diags)
	}
	body := file.Body.(*hclsyntax.Body) // hclsyntax.ParseConfig always makes one

	var found *hclsyntax.Block
	counts := map[string]int{}
	name := ""
	for _, b := range body.Blocks {
		if b.Type != "kms" || len(b.Labels) != 1 {
			continue
		}
		counts[b.Labels[0]]++
		if !servesConfig(b) {
			continue
		}
		if found != nil {
			return nil, asError(hcl.Diagnostics{errorf(b.DefRange(),
				"purpose %q is already served by kms %q at %s; %s",
				purpose.Config, found.Labels[0], found.DefRange(), onePerPurpose)})
		}
		found = b
		name = blockName(b.Labels[0], counts[b.Labels[0]])
	}
	if found == nil {
		return nil, nil
	}

	if diags := cycle(src, found.Range()); len(diags) > 0 {
		return nil, asError(diags)
	}
	d := &decoder{}
	k := d.kms(found.AsHCLBlock(), routes{})
	if err := asError(d.diags); err != nil {
		return nil, err
	}
	k.Name = name
	return k, nil
}

// servesConfig reports whether the purpose list of b names config. A list
// it cannot read counts as not naming it; Parse reports it later.
func servesConfig(b *hclsyntax.Block) bool {
	attr, ok := b.Body.Attributes["purpose"]
	if !ok {
		return false
	}
	elems, diags := hcl.ExprList(attr.Expr)
	if diags.HasErrors() {
		return false
	}
	for _, e := range elems {
		v, diags := e.Value(nil)
		if diags.HasErrors() || !v.Type().Equals(cty.String) || v.IsNull() {
			continue
		}
		if v.AsString() == string(purpose.Config) {
			return true
		}
	}
	return false
}

// cycle reports every marker in the bytes of rng, at the marker's own line
// and column, and a malformed marker there at its position.
func cycle(src []byte, rng hcl.Range) hcl.Diagnostics {
	ms, err := markers.Scan(src[rng.Start.Byte:rng.End.Byte], rng.Filename)
	var mErr *markers.Error
	if errors.As(err, &mErr) {
		return hcl.Diagnostics{errorf(markerRange(rng, mErr.Line, mErr.Column, 0),
			"%v", mErr.Err)}
	}
	var diags hcl.Diagnostics
	for _, m := range ms {
		width := utf8.RuneCount(src[rng.Start.Byte+m.Start : rng.Start.Byte+m.End])
		diag := errorf(markerRange(rng, m.Line, m.Column, width),
			"the kms block serving purpose %q cannot hold {{%s(...)}}: it would be needed to decrypt itself",
			purpose.Config, m.Op)
		diag.Extra = kind{ErrCycle}
		diags = append(diags, diag)
	}
	return diags
}

// markerRange turns a line and column counted from the start of rng into
// a range of width characters on that line of the file.
func markerRange(rng hcl.Range, line, col, width int) hcl.Range {
	start := hcl.Pos{Line: rng.Start.Line + line - 1, Column: col}
	if line == 1 {
		start.Column += rng.Start.Column - 1
	}
	end := start
	end.Column += width
	return hcl.Range{Filename: rng.Filename, Start: start, End: end}
}

// blockName is the Name of the n-th kms block of type typ.
func blockName(typ string, n int) string {
	if n < 2 {
		return typ
	}
	return fmt.Sprintf("%s#%d", typ, n)
}
