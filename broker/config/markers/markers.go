// Package markers finds and rewrites the encrypted-value markers of a
// config file, {{encrypt(VALUE)}} and {{decrypt(CIPHERTEXT)}}, through
// functions the caller passes in; it knows nothing of KMS plugins or of the
// ciphertext format.
//
// # Grammar
//
// The scanner reads raw bytes, before any HCL parsing, line by line
// (a line ends at "\n"):
//
//	marker = "{{" op "(" value ")}}"
//	op     = "encrypt" | "decrypt"
//	value  = one or more bytes, none of them "\n", holding neither ")}}"
//	         nor an opening "{{encrypt(" or "{{decrypt("
//
// A value ends at the first ")}}" after its opening, so it may hold
// quotes, parentheses and braces, including a trailing ")" or ")}". A
// marker is found wherever it stands: in a quoted string, a heredoc, a
// comment or bare text. Its value is the bytes exactly as written, so an
// HCL escape such as \" inside a quoted string stays escaped in the value
// and is restored as written.
//
// These are errors (ErrSyntax), never silently skipped text:
//   - an opening with no ")}}" later on its line (unterminated marker);
//   - an empty value;
//   - an opening inside a value (nested marker);
//   - a ")}}" outside any marker on a line that holds a marker. This is
//     how a value containing ")}}" is rejected: its marker ends at that
//     ")}}" and the rest of the intended value leaves a stray one;
//   - a near miss such as "{{ encrypt (x) }}" or "{{Decrypt(x)}}": "{{",
//     optional blanks, an op in any case, optional blanks and "(" that are
//     not exactly an opening. A typo must not leave a secret in clear.
//
// Line and column numbers in errors count from 1; columns count
// characters (Unicode code points).
package markers

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Op is what a marker asks for.
type Op int

// The marker operations.
const (
	// OpEncrypt marks a value still in clear: {{encrypt(VALUE)}}.
	OpEncrypt Op = iota + 1
	// OpDecrypt marks an encrypted value: {{decrypt(CIPHERTEXT)}}.
	OpDecrypt
)

// String returns the op as written in a marker.
func (o Op) String() string {
	switch o {
	case OpEncrypt:
		return "encrypt"
	case OpDecrypt:
		return "decrypt"
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Marker is one marker found in a source.
type Marker struct {
	// Op is the marker's operation.
	Op Op
	// Value is the bytes between the parentheses, as written. It aliases
	// the source.
	Value []byte
	// Start and End are the byte offsets of the whole marker:
	// src[Start:End] is "{{op(value)}}".
	Start, End int
	// Line and Column are where the marker's "{{" stands.
	Line, Column int
}

// ErrSyntax is wrapped by every error about a malformed marker.
var ErrSyntax = errors.New("malformed marker")

// ErrValue is wrapped when a value returned by an encrypt or decrypt
// function cannot be written where its marker stood: it would break the
// grammar above, or, holding a line break, shift the line numbers that
// later errors report.
var ErrValue = errors.New("value cannot be written into the file")

// Error is a problem at one marker. It never holds a value or a
// ciphertext.
type Error struct {
	// Filename, Line and Column locate the marker's "{{".
	Filename     string
	Line, Column int
	// Err says what is wrong; it wraps ErrSyntax, ErrValue or the error
	// of the caller's function.
	Err error
}

// Error formats e as "file:line,column: problem".
func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d,%d: %v", e.Filename, e.Line, e.Column, e.Err)
}

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }

var (
	openEncrypt = []byte("{{encrypt(")
	openDecrypt = []byte("{{decrypt(")
	closing     = []byte(")}}")
	braces      = []byte("{{")
)

// openLen is the length of either opening.
const openLen = len("{{encrypt(")

// Scan returns every marker in src in order; filename names src in errors.
// The first malformed marker ends the scan with an *Error wrapping
// ErrSyntax.
func Scan(src []byte, filename string) ([]Marker, error) {
	var out []Marker
	lineNo, lineStart := 1, 0
	for lineStart <= len(src) {
		lineEnd := len(src)
		if i := bytes.IndexByte(src[lineStart:], '\n'); i >= 0 {
			lineEnd = lineStart + i
		}
		ms, err := scanLine(src[lineStart:lineEnd], lineStart, lineNo)
		if err != nil {
			err.Filename = filename
			return nil, err
		}
		out = append(out, ms...)
		lineNo, lineStart = lineNo+1, lineEnd+1
	}
	return out, nil
}

// scanLine finds the markers of one line, which starts at byte offset
// base of the source and is line number lineNo.
func scanLine(line []byte, base, lineNo int) ([]Marker, *Error) {
	fail := func(at int, format string, args ...any) *Error {
		return &Error{
			Line:   lineNo,
			Column: utf8.RuneCount(line[:at]) + 1,
			Err:    fmt.Errorf("%w: "+format, append([]any{ErrSyntax}, args...)...),
		}
	}

	var out []Marker
	var gaps [][2]int // the parts of the line outside markers
	pos := 0
	for {
		i := bytes.Index(line[pos:], braces)
		if i < 0 {
			break
		}
		at := pos + i
		op := opening(line[at:])
		if op == 0 {
			if nearMiss(line[at:]) {
				return nil, fail(at, "write {{encrypt(...)}} or {{decrypt(...)}} in lower case without blanks")
			}
			pos = at + 1
			continue
		}

		valueStart := at + openLen
		n := bytes.Index(line[valueStart:], closing)
		if n < 0 {
			return nil, fail(at, "unterminated %s marker: no \")}}\" on its line", op)
		}
		value := line[valueStart : valueStart+n]
		switch {
		case n == 0:
			return nil, fail(at, "empty %s marker", op)
		case hasOpening(value):
			return nil, fail(at, "%s marker holds another marker", op)
		}
		end := valueStart + n + len(closing)
		gaps = append(gaps, [2]int{pos, at})
		out = append(out, Marker{
			Op:     op,
			Value:  value,
			Start:  base + at,
			End:    base + end,
			Line:   lineNo,
			Column: utf8.RuneCount(line[:at]) + 1,
		})
		pos = end
	}
	if len(out) == 0 {
		return nil, nil
	}
	gaps = append(gaps, [2]int{pos, len(line)})
	for _, g := range gaps {
		if i := bytes.Index(line[g[0]:g[1]], closing); i >= 0 {
			return nil, fail(g[0]+i, "\")}}\" outside a marker; a marker's value cannot contain \")}}\"")
		}
	}
	return out, nil
}

// opening returns the op of the marker opening at the start of b, or 0.
func opening(b []byte) Op {
	switch {
	case bytes.HasPrefix(b, openEncrypt):
		return OpEncrypt
	case bytes.HasPrefix(b, openDecrypt):
		return OpDecrypt
	}
	return 0
}

// hasOpening reports whether b holds a marker opening.
func hasOpening(b []byte) bool {
	return bytes.Contains(b, openEncrypt) || bytes.Contains(b, openDecrypt)
}

// nearMiss reports whether b, which starts with "{{" but not with an
// opening, starts like one: blanks, an op in any case, blanks and "(".
func nearMiss(b []byte) bool {
	b = skipBlanks(b[len(braces):])
	if len(b) < len("encrypt") {
		return false
	}
	word := b[:len("encrypt")]
	if !bytes.EqualFold(word, []byte("encrypt")) && !bytes.EqualFold(word, []byte("decrypt")) {
		return false
	}
	b = skipBlanks(b[len(word):])
	return len(b) > 0 && b[0] == '('
}

func skipBlanks(b []byte) []byte {
	return bytes.TrimLeft(b, " \t")
}

// validValue reports whether v can stand between a marker's parentheses
// and be read back as exactly v.
func validValue(v []byte) bool {
	return len(v) > 0 && bytes.IndexByte(v, '\n') < 0 && !bytes.Contains(v, closing) && !hasOpening(v)
}
