package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// maxConfigSize caps the config file Load reads. A broker config is a few
// kilobytes; the cap bounds memory when the path names a device or a huge
// file by mistake.
const maxConfigSize = 1 << 20

// Defaults applied by Parse.
const (
	// DefaultAddress is the listener address when none is given: loopback
	// only, so that a fresh install is not reachable from the network.
	DefaultAddress = "127.0.0.1:9200"
	// DefaultStorage is the storage type when no storage block is given.
	DefaultStorage = "sqlite"
	// DefaultLogLevel is the log level when log_level is not set.
	DefaultLogLevel = "info"
)

// maxCacheSize bounds cache_size: ten million scopes of five keys is
// already several GiB of key schedules; more is a typo.
const maxCacheSize = 10_000_000

// LogLevels are the accepted values of log_level, most verbose first.
var LogLevels = []string{"trace", "debug", "info", "warn", "error"}

// Load reads and parses the config file at path. A file that cannot be read
// yields an error that does not wrap ErrInvalid; see Parse for the rest.
func Load(path string) (*Config, error) {
	src, err := readFile(path, maxConfigSize, false)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return Parse(src, path)
}

// Parse parses and checks the config in src; filename names it in errors.
//
// Parse applies the defaults, resolves env:// and file:// references and
// rejects every problem it can see in the file alone: syntax, unknown
// blocks and attributes, unknown plugin types and purposes, a purpose served
// by two blocks, a kms block with no purpose, bad durations, plugin settings
// that are not a string, number or bool, an incomplete TLS listener,
// duplicated listener, storage or plugins blocks. What depends on how the
// config is used, such as whether root is required, is left to Validate.
//
// Every error is an *Error, which wraps ErrInvalid and names the file, line
// and column of each problem, never a setting's value.
func Parse(src []byte, filename string) (*Config, error) {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, asError(diags)
	}
	d := &decoder{}
	c := d.config(file.Body, filename)
	if err := asError(d.diags); err != nil {
		return nil, err
	}
	return c, nil
}

// decoder collects diagnostics while turning HCL into a Config, so that
// one pass reports every problem.
type decoder struct {
	diags hcl.Diagnostics
}

func (d *decoder) add(diags ...*hcl.Diagnostic) {
	d.diags = append(d.diags, diags...)
}

var rootSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "log_level"}, {Name: "cache_size"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "listener", LabelNames: []string{"type"}},
		{Type: "storage", LabelNames: []string{"type"}},
		{Type: "plugins"},
		{Type: "audit"},
		{Type: "auth"},
		{Type: "kms", LabelNames: []string{"type"}},
	},
}

func (d *decoder) config(body hcl.Body, filename string) *Config {
	c := &Config{
		Listener: Listener{Address: DefaultAddress},
		Storage:  Storage{Type: DefaultStorage},
		LogLevel: DefaultLogLevel,
		Auth:     Auth{OneTimeTokenValidity: DefaultOneTimeTokenValidity},
		start:    fileStart(filename),
	}
	content, diags := body.Content(rootSchema)
	d.add(diags...)

	if d.decode(content.Attributes, "log_level", &c.LogLevel) && !slices.Contains(LogLevels, c.LogLevel) {
		d.add(hint(errorf(content.Attributes["log_level"].Expr.Range(),
			"unknown log_level %q (valid: %s)", c.LogLevel, strings.Join(LogLevels, ", ")),
			c.LogLevel, LogLevels))
	}

	var cacheSize string
	if d.decode(content.Attributes, "cache_size", &cacheSize) {
		n, err := strconv.Atoi(cacheSize)
		if err != nil || n <= 0 || n > maxCacheSize {
			d.add(errorf(content.Attributes["cache_size"].Expr.Range(),
				"cache_size must be a whole number from 1 to %d", maxCacheSize))
		} else {
			c.CacheSize = n
		}
	}

	seen := map[string]*hcl.Block{}
	routes := routes{}
	counts := map[string]int{}
	for _, block := range content.Blocks {
		if first, dup := seen[block.Type]; dup && block.Type != "kms" {
			d.add(errorf(block.DefRange, "duplicate %s block (the first is at %s)",
				block.Type, first.DefRange))
			continue
		}
		seen[block.Type] = block

		switch block.Type {
		case "listener":
			c.hasListener = true
			d.listener(block, &c.Listener)
		case "storage":
			d.storage(block, &c.Storage)
		case "plugins":
			attrs := d.attributes(block.Body, "directory")
			d.decode(attrs, "directory", &c.Plugins.Directory)
		case "audit":
			attrs := d.attributes(block.Body, "path")
			d.decode(attrs, "path", &c.Audit.Path)
		case "auth":
			d.auth(block, &c.Auth)
		case "kms":
			k := d.kms(block, routes)
			counts[k.Type]++
			k.Name = blockName(k.Type, counts[k.Type])
			c.KMS = append(c.KMS, k)
		}
	}
	return c
}

// attributes decodes body strictly against the named attributes: any
// other attribute or any block is an error with a did-you-mean hint.
func (d *decoder) attributes(body hcl.Body, names ...string) hcl.Attributes {
	schema := &hcl.BodySchema{}
	for _, n := range names {
		schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: n})
	}
	content, diags := body.Content(schema)
	d.add(diags...)
	return content.Attributes
}

// decode evaluates the expression of attrs[name], if present, without
// variables or functions into v (a *string or *bool). It reports whether v
// was set.
func (d *decoder) decode(attrs hcl.Attributes, name string, v any) bool {
	attr, ok := attrs[name]
	return ok && d.value(attr.Expr, name, v)
}

// value evaluates expr, the value of the attribute name, without variables
// or functions into v, a *string or a *bool, and reports whether it
// succeeded. The diagnostic for a value of
// the wrong type names the type wanted, not the value.
func (d *decoder) value(expr hcl.Expression, name string, v any) bool {
	val, diags := expr.Value(nil)
	d.add(diags...)
	if diags.HasErrors() {
		return false
	}
	want := cty.String
	if _, ok := v.(*bool); ok {
		want = cty.Bool
	}
	val, err := convert.Convert(val, want)
	if err != nil || val.IsNull() || !val.IsKnown() {
		d.add(errorf(expr.Range(), "%s must be a %s", name, want.FriendlyName()))
		return false
	}
	switch v := v.(type) {
	case *string:
		*v = val.AsString()
	case *bool:
		*v = val.True()
	}
	return true
}

func (d *decoder) listener(block *hcl.Block, l *Listener) {
	if typ := block.Labels[0]; typ != "tcp" {
		d.add(hint(errorf(block.LabelRanges[0], "unknown listener type %q (valid: tcp)", typ),
			typ, []string{"tcp"}))
		return
	}
	n := len(d.diags)
	attrs := d.attributes(block.Body, "address", "grpc_address", "tls_disable", "tls_cert_file", "tls_key_file",
		"max_plaintext_bytes")
	if d.decode(attrs, "address", &l.Address) {
		if _, _, err := net.SplitHostPort(l.Address); err != nil {
			d.add(errorf(attrs["address"].Expr.Range(), "listener address must be host:port"))
		}
	}
	if d.decode(attrs, "grpc_address", &l.GRPCAddress) {
		rng := attrs["grpc_address"].Expr.Range()
		_, port, err := net.SplitHostPort(l.GRPCAddress)
		switch {
		case err != nil:
			d.add(errorf(rng, "listener grpc_address must be host:port"))
		case l.GRPCAddress == l.Address && port != "0":
			d.add(errorf(rng, "listener grpc_address must differ from address"))
		}
	}
	d.decode(attrs, "tls_disable", &l.TLSDisable)
	d.decode(attrs, "tls_cert_file", &l.TLSCertFile)
	d.decode(attrs, "tls_key_file", &l.TLSKeyFile)
	var maxPlaintext string
	if d.decode(attrs, "max_plaintext_bytes", &maxPlaintext) {
		size, err := strconv.Atoi(maxPlaintext)
		if err != nil || size <= 0 || size > MaxPlaintextBytesLimit {
			d.add(errorf(attrs["max_plaintext_bytes"].Expr.Range(),
				"max_plaintext_bytes must be a whole number from 1 to %d", MaxPlaintextBytesLimit))
		} else {
			l.MaxPlaintextBytes = size
		}
	}
	if len(d.diags) > n {
		return
	}
	if diag := l.checkTLS(block.DefRange); diag != nil {
		d.add(diag)
	}
}

// checkTLS rejects a listener that can neither serve TLS nor has TLS
// turned off explicitly, and one that asks for both.
func (l *Listener) checkTLS(rng hcl.Range) *hcl.Diagnostic {
	switch {
	case l.TLSDisable && (l.TLSCertFile != "" || l.TLSKeyFile != ""):
		return errorf(rng, "listener sets tls_disable = true and a TLS certificate or key file; remove one")
	case !l.TLSDisable && (l.TLSCertFile == "" || l.TLSKeyFile == ""):
		return errorf(rng, "listener needs tls_cert_file and tls_key_file unless tls_disable = true")
	}
	return nil
}

// storageTypes are the storage block labels, the default first.
var storageTypes = []string{"sqlite", "postgres"}

// auth decodes the auth block.
func (d *decoder) auth(block *hcl.Block, a *Auth) {
	attrs := d.attributes(block.Body, "one_time_token_validity", "worker_scopes")
	d.duration(attrs, "one_time_token_validity", &a.OneTimeTokenValidity)
	if a.OneTimeTokenValidity > MaxOneTimeTokenValidity {
		d.add(errorf(attrs["one_time_token_validity"].Expr.Range(),
			"one_time_token_validity must be at most %s", MaxOneTimeTokenValidity))
	}
	attr, ok := attrs["worker_scopes"]
	if !ok {
		return
	}
	val, diags := attr.Expr.Value(nil)
	d.add(diags...)
	if diags.HasErrors() {
		return
	}
	list, err := convert.Convert(val, cty.List(cty.String))
	if err != nil || list.IsNull() || !list.IsWhollyKnown() {
		d.add(errorf(attr.Expr.Range(), "worker_scopes must be a list of scope ids"))
		return
	}
	for _, v := range list.AsValueSlice() {
		if v.IsNull() || v.AsString() == "" {
			d.add(errorf(attr.Expr.Range(), "worker_scopes must not hold empty ids"))
			return
		}
		a.WorkerScopes = append(a.WorkerScopes, v.AsString())
	}
}

func (d *decoder) storage(block *hcl.Block, s *Storage) {
	typ := block.Labels[0]
	var name string
	switch typ {
	case "sqlite":
		name = "path"
	case "postgres":
		name = "url"
	default:
		d.add(hint(errorf(block.LabelRanges[0], "unknown storage type %q (valid: %s)",
			typ, strings.Join(storageTypes, ", ")), typ, storageTypes))
		return
	}
	content, diags := block.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: name, Required: true},
	}})
	d.add(diags...)
	var v string
	if !d.decode(content.Attributes, name, &v) {
		return
	}
	s.Type = typ
	if name == "path" {
		s.Path = v
		return
	}
	url, diag := resolveRef(name, v, content.Attributes[name].Expr.Range())
	if diag != nil {
		d.add(diag)
		return
	}
	s.URL = url
}

// fileStart is a zero-width range at the start of filename, for problems
// that belong to the file as a whole.
func fileStart(filename string) hcl.Range {
	return hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos}
}

// readFile reads at most limit bytes of path; a longer file is an error.
// With regular set, anything but a regular file (after symbolic links) is
// refused, so that a FIFO or a device cannot stall or flood the read.
func readFile(path string, limit int64, regular bool) ([]byte, error) {
	if regular {
		// Stat before opening: opening a FIFO blocks until a writer comes.
		fi, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, errNotRegular
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", errTooLarge, limit)
	}
	return b, nil
}

// Errors of readFile.
var (
	errTooLarge   = errors.New("file too large")
	errNotRegular = errors.New("not a regular file")
)
