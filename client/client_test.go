package client

import (
	"strings"
	"testing"

	apiv1 "github.com/kmsbroker/kmsbroker/proto/api/v1"
)

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no scheme", Config{Address: "127.0.0.1:9200"}, "is not a URL"},
		{"bad scheme", Config{Address: "ftp://127.0.0.1:9200"}, "must start with http:// or https://"},
		{"missing CA file", Config{Address: "https://127.0.0.1:9200", CACertFile: "testdata/missing.pem"}, "read CA certificate"},
		{"CA file without certificates", Config{Address: "https://127.0.0.1:9200", CACertFile: "client_test.go"}, "no certificate found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.cfg)
			if err == nil {
				c.Close()
				t.Fatalf("New succeeded, want error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}

	c, err := New(Config{})
	if err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	c.Close()
}

func TestWorkerCredentialsNeedAName(t *testing.T) {
	if _, err := WorkerCredentials(t.Context(), "worker.hcl", "", OneTimeOptions{}); err == nil ||
		!strings.Contains(err.Error(), "worker name is required") {
		t.Fatalf("err = %v, want worker name is required", err)
	}
}

// Every retried method exists in the API: a typo would silently turn its
// retries off.
func TestRetryableMethodsExist(t *testing.T) {
	methods := map[string]bool{}
	for _, m := range apiv1.Broker_ServiceDesc.Methods {
		methods[m.MethodName] = true
	}
	for _, m := range retryable {
		if !methods[m] {
			t.Errorf("retryable method %s is not in the Broker service", m)
		}
	}
	for _, m := range []string{"CreateScope", "RotateKeys", "DestroyKeyVersion", "CreateToken"} {
		for _, r := range retryable {
			if r == m {
				t.Errorf("%s is retried, but its first attempt may have been applied", m)
			}
		}
	}
}

// A length beyond uint32 once wrapped around to a valid one and derived a
// key of another length; it is refused before any call.
func TestDeriveKeyLengthOutOfRange(t *testing.T) {
	c, err := New(Config{Address: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, n := range []int{-1, 1<<32 + 32, 1 << 32} {
		if _, _, err := c.DeriveKey(t.Context(), "o_1", "u", "s", n, 0); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("DeriveKey length %d: err = %v, want out of range", n, err)
		}
	}
}
