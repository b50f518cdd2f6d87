package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxResponse caps how much of an answer is read. Every answer the
// harness asks for is well under a kilobyte; the cap keeps a confused
// server from filling memory.
const maxResponse = 1 << 20

// APIError is an answer from Vault with a status other than 2xx.
type APIError struct {
	Method string
	Path   string
	Status int
	// Errors are the messages Vault gave, e.g. "permission denied".
	Errors []string
}

func (e *APIError) Error() string {
	msg := strings.Join(e.Errors, "; ")
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("vault %s /v1/%s: status %d: %s", e.Method, e.Path, e.Status, msg)
}

// Do sends one request to the HTTP API: method on /v1/path, in (if not
// nil) as the JSON body and token (if not empty) as X-Vault-Token. It
// decodes a 2xx answer into out (if not nil) and returns an *APIError for
// any other status. Tokens never appear in its errors.
func (s *Server) Do(ctx context.Context, token, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("vault %s /v1/%s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.Addr+"/v1/"+path, body)
	if err != nil {
		return fmt.Errorf("vault %s /v1/%s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}

	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("vault %s /v1/%s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("vault %s /v1/%s: read answer: %w", method, path, err)
	}

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := &APIError{Method: method, Path: path, Status: resp.StatusCode}
		var e struct {
			Errors []string `json:"errors"`
		}
		if json.Unmarshal(b, &e) == nil {
			apiErr.Errors = e.Errors
		}
		return apiErr
	}
	if out == nil || len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("vault %s /v1/%s: decode answer: %w", method, path, err)
	}
	return nil
}
