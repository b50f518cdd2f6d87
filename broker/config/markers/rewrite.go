package markers

import (
	"bytes"
	"context"
	"fmt"
)

// EncryptFunc encrypts one marker value and returns the text to write
// between the parentheses of {{decrypt(...)}}. For the broker that is the
// base64 of a proto-encoded BlobInfo made by the config purpose; this
// package only requires that it is a valid marker value (see the grammar).
type EncryptFunc func(ctx context.Context, plaintext []byte) (string, error)

// DecryptFunc reverses an EncryptFunc: it returns the plaintext of one
// {{decrypt(...)}} marker's ciphertext.
type DecryptFunc func(ctx context.Context, ciphertext string) ([]byte, error)

// Encrypt returns src with every {{encrypt(V)}} replaced by
// {{decrypt(enc(V))}}. Decrypt markers and all other bytes are copied
// unchanged, so encrypting a file twice changes nothing the second time.
//
// src is scanned in full before enc is first called: a malformed marker
// anywhere costs no KMS call. The first failure ends the rewrite with an
// *Error naming the marker's line; an error from enc is wrapped and must
// not itself hold the plaintext.
func Encrypt(ctx context.Context, src []byte, filename string, enc EncryptFunc) ([]byte, error) {
	return rewrite(ctx, src, filename, func(ctx context.Context, m Marker) ([]byte, error) {
		if m.Op != OpEncrypt {
			return marker(m.Op, m.Value), nil
		}
		ct, err := enc(ctx, m.Value)
		if err != nil {
			return nil, fmt.Errorf("encrypt: %w", err)
		}
		if !validValue([]byte(ct)) {
			return nil, fmt.Errorf("%w: the ciphertext is empty or holds a line break or marker syntax", ErrValue)
		}
		return marker(OpDecrypt, []byte(ct)), nil
	})
}

// Decrypt reverses Encrypt: it returns src with every {{decrypt(C)}}
// replaced by {{encrypt(dec(C))}}, and everything else unchanged. For a
// src without decrypt markers and functions that invert each other,
// Decrypt(Encrypt(src)) is src, byte for byte. A plaintext that is not a
// valid marker value is an error wrapping ErrValue.
func Decrypt(ctx context.Context, src []byte, filename string, dec DecryptFunc) ([]byte, error) {
	return rewrite(ctx, src, filename, func(ctx context.Context, m Marker) ([]byte, error) {
		if m.Op != OpDecrypt {
			return marker(m.Op, m.Value), nil
		}
		pt, err := decrypt(ctx, dec, m)
		if err != nil {
			return nil, err
		}
		if !validValue(pt) {
			return nil, fmt.Errorf("%w: the plaintext is empty or holds a line break or marker syntax", ErrValue)
		}
		return marker(OpEncrypt, pt), nil
	})
}

// Strip returns src as brokerd reads it: every {{decrypt(C)}} replaced by
// dec(C) and every {{encrypt(V)}} by V, without marker syntax. A plaintext
// holding a line break is an error wrapping ErrValue, so that the line
// numbers of later parse errors still match the file on disk; columns after
// a replaced marker shift.
//
// Callers that must refuse a file whose values are not yet encrypted check
// Scan for OpEncrypt markers first.
//
// TODO: map the columns of later parse errors back to the file on disk;
// only line numbers are kept stable today.
func Strip(ctx context.Context, src []byte, filename string, dec DecryptFunc) ([]byte, error) {
	return rewrite(ctx, src, filename, func(ctx context.Context, m Marker) ([]byte, error) {
		if m.Op == OpEncrypt {
			return m.Value, nil
		}
		pt, err := decrypt(ctx, dec, m)
		if err != nil {
			return nil, err
		}
		if bytes.IndexByte(pt, '\n') >= 0 {
			return nil, fmt.Errorf("%w: the plaintext holds a line break", ErrValue)
		}
		return pt, nil
	})
}

func decrypt(ctx context.Context, dec DecryptFunc, m Marker) ([]byte, error) {
	pt, err := dec(ctx, string(m.Value))
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	return pt, nil
}

// marker writes {{op(value)}}.
func marker(op Op, value []byte) []byte {
	b := make([]byte, 0, openLen+len(value)+len(closing))
	b = append(b, "{{"...)
	b = append(b, op.String()...)
	b = append(b, '(')
	b = append(b, value...)
	return append(b, closing...)
}

// rewrite scans src, then replaces each marker by what replace returns for
// it. A marker is kept as written by returning marker(m.Op, m.Value).
func rewrite(ctx context.Context, src []byte, filename string,
	replace func(context.Context, Marker) ([]byte, error)) ([]byte, error) {
	ms, err := Scan(src, filename)
	if err != nil {
		return nil, err
	}

	out := make([]byte, 0, len(src))
	last := 0
	for _, m := range ms {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r, err := replace(ctx, m)
		if err != nil {
			return nil, &Error{Filename: filename, Line: m.Line, Column: m.Column, Err: err}
		}
		out = append(out, src[last:m.Start]...)
		out = append(out, r...)
		last = m.End
	}
	return append(out, src[last:]...), nil
}
