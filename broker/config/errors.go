package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// ErrInvalid is wrapped by every error that reports a problem in the
// configuration text itself, as opposed to a failure to read the file.
// Callers test for it with errors.Is to tell an operator's mistake from a
// broken environment.
var ErrInvalid = errors.New("invalid config")

// ErrCycle is wrapped, together with ErrInvalid, when the kms block that
// serves the config purpose holds an encrypted-value marker: that block
// would be needed to decrypt its own settings.
var ErrCycle = errors.New("config kms block holds an encrypted-value marker")

// Error reports every problem found in a configuration, each with its file,
// line and column. It wraps ErrInvalid, and ErrCycle when a diagnostic is a
// cycle.
//
// Diagnostics never carry a setting's value. Do not render them with source
// snippets (hcl.NewDiagnosticTextWriter with a file map): a snippet prints
// the offending line, and that line may hold a secret.
type Error struct {
	Diagnostics hcl.Diagnostics
}

// Error lists the diagnostics on one line, separated by "; ".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(ErrInvalid.Error())
	for i, d := range e.Diagnostics {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(formatDiag(d))
	}
	return b.String()
}

// Unwrap returns ErrInvalid and the sentinel of each diagnostic that has
// one.
func (e *Error) Unwrap() []error {
	errs := []error{ErrInvalid}
	for _, d := range e.Diagnostics {
		if k, ok := d.Extra.(kind); ok && k.err != nil && !slices.Contains(errs, k.err) {
			errs = append(errs, k.err)
		}
	}
	return errs
}

// kind marks a diagnostic made by this package, and tags it with the
// sentinel error it stands for, if any.
type kind struct{ err error }

// formatDiag renders one diagnostic as "file:line,col-col: summary: detail"
// in the project's error style: lower-case first word, no trailing period.
func formatDiag(d *hcl.Diagnostic) string {
	var b strings.Builder
	if d.Subject != nil {
		b.WriteString(d.Subject.String())
		b.WriteString(": ")
	}
	b.WriteString(lowerFirst(d.Summary))
	if d.Detail != "" {
		b.WriteString(": ")
		b.WriteString(strings.TrimSuffix(d.Detail, "."))
	}
	return b.String()
}

// lowerFirst lower-cases the first letter of s unless the word is an
// acronym such as "TLS".
func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || !unicode.IsUpper(r) {
		return s
	}
	if r2, _ := utf8.DecodeRuneInString(s[n:]); unicode.IsUpper(r2) {
		return s
	}
	return string(unicode.ToLower(r)) + s[n:]
}

// errorf makes a diagnostic of the package's own at rng. The message must
// not include any setting's value.
func errorf(rng hcl.Range, format string, args ...any) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
		Extra:    kind{},
	}
}

// hint adds a did-you-mean suggestion to d when one is found.
func hint(d *hcl.Diagnostic, given string, candidates []string) *hcl.Diagnostic {
	if s := suggest(given, candidates); s != "" {
		d.Detail = fmt.Sprintf("did you mean %q?", s)
	}
	return d
}

// safeDetail lists the summaries of hcl's own diagnostics whose detail
// names only attributes, blocks or types. Every other hcl diagnostic loses
// its detail: some quote fragments of the source text (an escape sequence,
// a template keyword), and the source text may be a secret.
var safeDetail = []string{
	"Unsupported argument",
	"Unsupported block type",
	"Missing required argument",
	"Attribute redefined",
	"Extraneous label for ",
	"Unexpected ",
}

// scrub returns hcl-made diagnostics with any detail that could quote the
// source removed, and every diagnostic forced to error severity so that
// nothing is silently ignored.
func scrub(diags hcl.Diagnostics) hcl.Diagnostics {
	out := make(hcl.Diagnostics, 0, len(diags))
	for _, d := range diags {
		c := *d
		c.Severity = hcl.DiagError
		if _, ours := d.Extra.(kind); !ours && !hasSafeDetail(d.Summary) {
			c.Detail = ""
		}
		c.Expression, c.EvalContext = nil, nil
		out = append(out, &c)
	}
	return out
}

func hasSafeDetail(summary string) bool {
	for _, s := range safeDetail {
		if summary == s || strings.HasSuffix(s, " ") && strings.HasPrefix(summary, s) {
			return true
		}
	}
	return false
}

// asError returns diags as an *Error, or nil when there are none.
func asError(diags hcl.Diagnostics) error {
	if len(diags) == 0 {
		return nil
	}
	return &Error{Diagnostics: scrub(diags)}
}
