package config

import (
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/kmsbroker/kmsbroker/broker/purpose"
)

// KnownTypes are the plugin types built into the broker. A kms block of
// any other type must name its executable with plugin_path.
var KnownTypes = []string{"aead", "awskms", "transit"}

// typePattern is what a plugin type must look like: the type becomes part
// of an executable's file name, so it cannot hold a path separator, a dot
// or a space.
var typePattern = regexp.MustCompile(`^[a-z0-9_-]+$`)

// brokerAttributes are the attributes of a kms block that the broker
// reads itself; every other attribute is a plugin setting.
var brokerAttributes = []string{"purpose", "plugin_path", "plugin_sha256", "timeout", "start_timeout", "health_check_interval", "max_restart_backoff"}

var kmsSchema = func() *hcl.BodySchema {
	s := &hcl.BodySchema{}
	for _, n := range brokerAttributes {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: n})
	}
	return s
}()

// onePerPurpose ends the error for a purpose served twice.
const onePerPurpose = "each purpose is served by exactly one block"

// routes records, per purpose, the block that serves it, to report a
// purpose served twice.
type routes map[purpose.Purpose]*hcl.Block

// Block returns the kms block that serves p, or nil if none does.
func (c *Config) Block(p purpose.Purpose) *KMS {
	for _, k := range c.KMS {
		if slices.Contains(k.Purposes, p) {
			return k
		}
	}
	return nil
}

// kms decodes one kms block. Purposes already claimed by earlier blocks
// are in seen, which kms extends.
func (d *decoder) kms(block *hcl.Block, seen routes) *KMS {
	k := &KMS{
		Type:          block.Labels[0],
		Settings:      map[string]string{},
		Timeout:       DefaultTimeout,
		StartTimeout:  DefaultStartTimeout,
		Range:         block.DefRange,
		settingRanges: map[string]hcl.Range{},
	}
	content, remain, diags := block.Body.PartialContent(kmsSchema)
	d.add(diags...)
	attrs := content.Attributes

	d.decode(attrs, "plugin_path", &k.PluginPath)
	if d.decode(attrs, "plugin_sha256", &k.PluginSHA256) {
		k.PluginSHA256 = strings.ToLower(k.PluginSHA256)
		if b, err := hex.DecodeString(k.PluginSHA256); err != nil || len(b) != 32 {
			d.add(errorf(attrs["plugin_sha256"].Expr.Range(), "plugin_sha256 must be 64 hexadecimal digits"))
		}
	}
	d.checkType(block, k)
	d.duration(attrs, "timeout", &k.Timeout)
	d.duration(attrs, "start_timeout", &k.StartTimeout)
	d.duration(attrs, "health_check_interval", &k.HealthCheckInterval)
	d.duration(attrs, "max_restart_backoff", &k.MaxRestartBackoff)
	d.settings(remain, k)
	d.purposes(block, attrs["purpose"], k, seen)
	return k
}

// checkType rejects a plugin type that the broker cannot run.
func (d *decoder) checkType(block *hcl.Block, k *KMS) {
	rng := block.LabelRanges[0]
	switch {
	case !typePattern.MatchString(k.Type):
		d.add(errorf(rng, "invalid plugin type %q: use lower-case letters, digits, \"_\" and \"-\"", k.Type))
	case k.PluginPath == "" && !slices.Contains(KnownTypes, k.Type):
		diag := errorf(rng, "unknown plugin type %q (built in: %s)", k.Type, strings.Join(KnownTypes, ", "))
		if hint(diag, k.Type, KnownTypes).Detail == "" {
			diag.Detail = "a third-party plugin needs plugin_path"
		}
		d.add(diag)
	}
}

// duration decodes attrs[name], if present, as a positive Go duration.
func (d *decoder) duration(attrs hcl.Attributes, name string, v *time.Duration) {
	var s string
	if !d.decode(attrs, name, &s) {
		return
	}
	rng := attrs[name].Expr.Range()
	t, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.add(errorf(rng, "%s is not a duration such as \"5s\" or \"1m30s\"", name))
	case t <= 0:
		d.add(errorf(rng, "%s must be positive", name))
	default:
		*v = t
	}
}

// purposes decodes the purpose list of k from attr (nil when absent).
func (d *decoder) purposes(block *hcl.Block, attr *hcl.Attribute, k *KMS, seen routes) {
	if attr == nil {
		diag := errorf(block.DefRange, "kms %q block has no purpose", k.Type)
		for _, name := range slices.Sorted(maps.Keys(k.settingRanges)) {
			if suggest(name, []string{"purpose"}) != "" {
				diag.Detail = fmt.Sprintf("did you mean \"purpose\" instead of %q?", name)
				break
			}
		}
		d.add(diag)
		return
	}
	elems, diags := hcl.ExprList(attr.Expr)
	if diags.HasErrors() {
		d.add(errorf(attr.Expr.Range(), "purpose must be a list such as [\"root\"]"))
		return
	}
	if len(elems) == 0 {
		d.add(errorf(attr.Expr.Range(), "kms %q block has no purpose", k.Type))
		return
	}

	for _, e := range elems {
		var name string
		if !d.value(e, "purpose", &name) {
			continue
		}
		rng := e.Range()
		p, err := purpose.Parse(name)
		if err != nil {
			d.add(hint(errorf(rng, "%s", err), name, purposeNames()))
			continue
		}
		if slices.Contains(k.Purposes, p) {
			d.add(errorf(rng, "purpose %q is listed twice in this block", p))
			continue
		}
		if first, dup := seen[p]; dup {
			d.add(errorf(rng, "purpose %q is already served by kms %q at %s; %s",
				p, first.Labels[0], first.DefRange, onePerPurpose))
			continue
		}
		seen[p] = block
		k.Purposes = append(k.Purposes, p)
	}
	if slices.Contains(k.Purposes, purpose.Root) && slices.Contains(k.Purposes, purpose.PreviousRoot) {
		d.add(errorf(attr.Expr.Range(),
			"one block cannot serve both root and previous-root; previous-root is the key being retired"))
	}
}

func purposeNames() []string {
	var names []string
	for _, p := range purpose.All() {
		names = append(names, string(p))
	}
	return names
}

// settings decodes every attribute of body as a plugin setting. Strings,
// numbers and bools are kept as text; string values that are env:// or
// file:// references are resolved.
func (d *decoder) settings(body hcl.Body, k *KMS) {
	attrs, diags := body.JustAttributes()
	d.add(diags...)
	for _, attr := range sortedAttributes(attrs) {
		rng := attr.Expr.Range()
		k.settingRanges[attr.Name] = attr.NameRange
		val, diags := attr.Expr.Value(nil)
		d.add(diags...)
		if diags.HasErrors() {
			continue
		}
		ty := val.Type()
		switch {
		case val.IsNull():
			d.add(errorf(rng, "setting %q must not be null", attr.Name))
		case ty == cty.String:
			v, diag := resolveRef(attr.Name, val.AsString(), rng)
			if diag != nil {
				d.add(diag)
				continue
			}
			k.Settings[attr.Name] = v
		case ty == cty.Number || ty == cty.Bool:
			s, err := convert.Convert(val, cty.String)
			if err != nil {
				d.add(errorf(rng, "setting %q cannot be written as text", attr.Name))
				continue
			}
			k.Settings[attr.Name] = s.AsString()
		default:
			d.add(errorf(rng, "setting %q must be a string, number or bool, not %s",
				attr.Name, kindOf(ty)))
		}
	}
}

// kindOf names a value type the way an operator writes it.
func kindOf(ty cty.Type) string {
	switch {
	case ty.IsTupleType() || ty.IsListType() || ty.IsSetType():
		return "a list"
	case ty.IsObjectType() || ty.IsMapType():
		return "an object"
	}
	return ty.FriendlyName()
}

// sortedAttributes returns attrs in source order, so that diagnostics come
// out in the order an operator reads the file.
func sortedAttributes(attrs hcl.Attributes) []*hcl.Attribute {
	out := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].NameRange.Start.Byte < out[j].NameRange.Start.Byte
	})
	return out
}

// SettingPosition returns where the setting name is written in k's file,
// as "file:line,col-col", or "" if k does not set it.
func (k *KMS) SettingPosition(name string) string {
	rng, ok := k.settingRanges[name]
	if !ok {
		return ""
	}
	return rng.String()
}

// CheckSettings rejects every setting of k that is not in known, the
// settings the block's plugin declares. Each error names the setting, the
// file, line and column where it is written, and the closest known setting
// or broker attribute when one is a likely typo. The error is an *Error
// that wraps ErrInvalid.
func (k *KMS) CheckSettings(known []string) error {
	names := make([]string, 0, len(k.Settings))
	for name := range k.Settings {
		if !slices.Contains(known, name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	candidates := append(slices.Clone(known), brokerAttributes...)
	var diags hcl.Diagnostics
	for _, name := range names {
		rng, ok := k.settingRanges[name]
		if !ok {
			rng = k.Range
		}
		diags = append(diags, hint(errorf(rng, "unknown setting %q for plugin %q", name, k.Type),
			name, candidates))
	}
	sort.SliceStable(diags, func(i, j int) bool {
		return diags[i].Subject.Start.Byte < diags[j].Subject.Start.Byte
	})
	return asError(diags)
}
