package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
)

// bearerChallenge is the WWW-Authenticate value of every 401 (RFC 6750
// section 3). The reason is in the response body, not in the header.
const bearerChallenge = `Bearer realm="kmsbroker"`

// jsonMarshaler encodes and decodes the HTTP/JSON API. Field names are the
// proto names (key_version, not keyVersion), as the CLI prints them, and
// an unknown field is an error: a misspelt "aad" must not encrypt without
// the AAD the caller meant to bind.
func jsonMarshaler() runtime.ServeMuxOption {
	return runtime.WithMarshalerOption(runtime.MIMEWildcard, quietJSON{&runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}})
}

// quietJSON is the JSON marshaler with decoding errors that never repeat
// the request's values. protojson quotes the offending value in its
// errors ("invalid value for bytes field plaintext: \"...\""), and the
// value a caller failed to base64-encode is likely the secret itself.
type quietJSON struct{ *runtime.JSONPb }

func (q quietJSON) Unmarshal(data []byte, v any) error {
	return quietDecodeError(q.JSONPb.Unmarshal(data, v))
}

func (q quietJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return quietDecoder{q.JSONPb.NewDecoder(r)}
}

// quietDecoder keeps the Token method the gateway uses to refuse data
// after the body.
type quietDecoder struct{ runtime.Decoder }

func (d quietDecoder) Decode(v any) error { return quietDecodeError(d.Decoder.Decode(v)) }

func (d quietDecoder) Token() (json.Token, error) {
	if td, ok := d.Decoder.(interface{ Token() (json.Token, error) }); ok {
		return td.Token()
	}
	return nil, io.EOF
}

var (
	// fieldValueError is protojson's "invalid value for <type> field
	// <name>: <value>"; the name is kept, the value dropped.
	fieldValueError = regexp.MustCompile(`invalid value for (\w+) field (\w+)`)
	// unknownFieldError is protojson's `unknown field "<name>"`.
	unknownFieldError = regexp.MustCompile(`unknown field "([A-Za-z_][A-Za-z0-9_]{0,63})"`)
	// jsonPosition is protojson's "(line L:C)".
	jsonPosition = regexp.MustCompile(`\(line \d+:\d+\)`)
)

// quietDecodeError rewrites a body decoding error to name the field or
// the position, never a value. io.EOF (an empty body) passes through.
func quietDecodeError(err error) error {
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return err
	case errors.As(err, &tooLarge):
		return fmt.Errorf("the request body is over the limit of %d bytes", tooLarge.Limit)
	}
	msg := err.Error()
	pos := jsonPosition.FindString(msg)
	if pos != "" {
		pos = " " + pos
	}
	if m := fieldValueError.FindStringSubmatch(msg); m != nil {
		hint := ""
		if m[1] == "bytes" {
			hint = " (bytes are base64)"
		}
		return fmt.Errorf("field %s: not a valid %s value%s%s", m[2], m[1], hint, pos)
	}
	if m := unknownFieldError.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("unknown field %q%s", m[1], pos)
	}
	return fmt.Errorf("the request body is not valid JSON for this call%s", pos)
}

// jsonErrorHandler is the gateway's error writer with an RFC 6750
// challenge on 401 in place of the gateway's, which repeats the message.
func jsonErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, challengeWriter{w}, r, err)
}

// challengeWriter replaces the WWW-Authenticate header as the status is
// written.
type challengeWriter struct{ http.ResponseWriter }

func (c challengeWriter) WriteHeader(code int) {
	if code == http.StatusUnauthorized {
		c.Header().Set("WWW-Authenticate", bearerChallenge)
	}
	c.ResponseWriter.WriteHeader(code)
}

// jsonRequests guards the JSON API before the gateway decodes a body: a
// body must be JSON (415 otherwise; no Content-Type is taken as JSON, as
// curl -d sends one only when told) and fit maxBytes (413 when its length
// says it does not; a longer chunked body is cut off at maxBytes and
// refused with 400).
func jsonRequests(maxBytes int64, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
			if ct := r.Header.Get("Content-Type"); ct != "" {
				mt, _, err := mime.ParseMediaType(ct)
				if err != nil || mt != "application/json" {
					writeJSONError(w, http.StatusUnsupportedMediaType, codes.InvalidArgument,
						"the request body must be application/json")
					return
				}
			}
			if r.ContentLength > maxBytes {
				writeJSONError(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument,
					"the request body is over the limit")
				return
			}
		}
		http.MaxBytesHandler(h, maxBytes).ServeHTTP(w, r)
	})
}

// writeJSONError writes an error body shaped like the gateway's.
func writeJSONError(w http.ResponseWriter, httpStatus int, code codes.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	_ = json.NewEncoder(w).Encode(struct {
		Code    codes.Code `json:"code"`
		Message string     `json:"message"`
	}{code, msg})
}
