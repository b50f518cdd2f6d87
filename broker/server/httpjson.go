package server

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"

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
	return runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	})
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
