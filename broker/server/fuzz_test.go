package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fuzzContentTypes are the content types every route is seeded with: the
// JSON the API takes, none (taken as JSON), JSON with a parameter, and
// types it refuses.
var fuzzContentTypes = []string{
	"application/json",
	"",
	"application/json; charset=utf-8",
	"text/plain",
	"multipart/form-data; boundary=x",
}

// FuzzEncryptRequest feeds arbitrary requests to the HTTP/JSON API: every
// route of the API, health and metrics is seeded with a valid body, and
// the fuzzer varies the method, the path, the content type and the body.
// Whatever they are, the answer is a success or a client error, never a
// server error or a panic.
func FuzzEncryptRequest(f *testing.F) {
	ts := startServer(f, func(c *Config) { c.Metrics = prometheus.NewRegistry() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env, _, err := ts.client.Encrypt(ctx, "o_1", "database", []byte("fuzz seed"), []byte("row-1"))
	if err != nil {
		f.Fatalf("encrypt a seed envelope: %v", err)
	}
	envelope := base64.StdEncoding.EncodeToString(env)

	for _, r := range []struct{ method, path, body string }{
		{"GET", "/v1/sys/health", ""},
		{"GET", "/metrics", ""},
		{"GET", "/v1/sys/status", ""},
		{"POST", "/v1/scopes", `{"id":"o_fuzz","name":"fuzz"}`},
		{"GET", "/v1/scopes", ""},
		{"GET", "/v1/scopes/o_1", ""},
		{"POST", "/v1/scopes/o_1/encrypt", `{"purpose":"database","plaintext":"c2VjcmV0","aad":"cm93LTE="}`},
		{"POST", "/v1/scopes/o_1/encrypt", `{"purpose":"database","plaintext":""}`},
		{"POST", "/v1/scopes/o_1/encrypt", `{"purpose":1}`},
		{"POST", "/v1/scopes/o_1/encrypt", `{"purpose":"database","plaintext":"c2VjcmV0","extra":{"a":[1,2,{}]}}`},
		{"POST", "/v1/scopes/o_1/decrypt", `{"purpose":"database","ciphertext":"` + envelope + `","aad":"cm93LTE="}`},
		{"POST", "/v1/scopes/o_1/decrypt", `{"plaintext":"!!!"}`},
		{"POST", "/v1/scopes/o_1/reencrypt", `{"purpose":"database","ciphertext":"` + envelope + `","aad":"cm93LTE="}`},
		{"POST", "/v1/scopes/o_1/derive-key", `{"user_id":"u_1","session_id":"s_1","length":32}`},
		{"POST", "/v1/scopes/o_2/rotate-keys", `{"rewrap":true}`},
		{"POST", "/v1/sys/rewrap", `{"scope_id":"o_2"}`},
		{"POST", "/v1/sys/rewrap", `{"all":true}`},
		{"GET", "/v1/scopes/o_1/key-versions", ""},
		{"POST", "/v1/scopes/o_2/key-versions/kv_none/destroy", ""},
		{"POST", "/v1/tokens", `{"name":"fuzz","role":"app","scopes":["o_1"],"ttl_seconds":60}`},
		{"GET", "/v1/tokens", ""},
		{"POST", "/v1/tokens/t_none/revoke", ""},
		{"DELETE", "/v1/scopes/o_1", ""},
		{"PUT", "/v1/scopes/o_1/encrypt", `[]`},
	} {
		for _, ct := range fuzzContentTypes {
			f.Add(r.method, r.path, ct, []byte(r.body))
		}
	}
	f.Fuzz(func(t *testing.T, method, path, contentType string, body []byte) {
		if len(path) == 0 || path[0] != '/' {
			return
		}
		req, err := http.NewRequest(method, "http://broker"+path, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		req.Header.Set("Authorization", "Bearer "+ts.admin)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		rr := httptest.NewRecorder()
		ts.srv.handler.ServeHTTP(rr, req)
		if rr.Code >= 500 {
			t.Fatalf("%s %s (Content-Type %q) with %q: status %d, body %s",
				method, path, contentType, body, rr.Code, rr.Body)
		}
	})
}
