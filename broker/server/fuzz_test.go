package server

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzEncryptRequest feeds arbitrary bodies to the HTTP/JSON API's
// request decoding. Whatever the bytes, the answer is a success or a
// client error, never a server error or a panic.
func FuzzEncryptRequest(f *testing.F) {
	ts := startServer(f)
	for _, seed := range []string{
		`{"purpose":"database","plaintext":"c2VjcmV0","aad":"cm93LTE="}`,
		`{"purpose":"database","plaintext":""}`,
		`{"purpose":1}`,
		`{"plaintext":"!!!"}`,
		`[]`,
		`{"purpose":"database","plaintext":"c2VjcmV0","extra":{"a":[1,2,{}]}}`,
	} {
		f.Add([]byte(seed), "/v1/scopes/o_1/encrypt")
		f.Add([]byte(seed), "/v1/scopes/o_1/decrypt")
	}
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		if len(path) == 0 || path[0] != '/' {
			return
		}
		req, err := http.NewRequest("POST", "http://broker"+path, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+ts.admin)
		req.Header.Set("Content-Type", "application/json")
		rr := httptest.NewRecorder()
		ts.srv.handler.ServeHTTP(rr, req)
		if rr.Code >= 500 {
			t.Fatalf("POST %s with %q: status %d, body %s", path, body, rr.Code, rr.Body)
		}
	})
}
