package child

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func start(t *testing.T, script string) *Process {
	t.Helper()
	p, err := Start("sh", exec.Command("sh", "-c", script), filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(p.Stop)
	return p
}

func TestWaitHTTPReportsExitWithLog(t *testing.T) {
	p := start(t, "echo it broke; exit 3")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.WaitHTTP(ctx, srv.Client(), srv.URL)
	if !errors.Is(err, ErrExited) {
		t.Fatalf("WaitHTTP error = %v, want ErrExited", err)
	}
	if !strings.Contains(err.Error(), "it broke") {
		t.Errorf("WaitHTTP error = %q, want the log tail %q in it", err, "it broke")
	}
}

func TestWaitHTTPWaitsFor200(t *testing.T) {
	p := start(t, "exec sleep 60")
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitHTTP(ctx, srv.Client(), srv.URL); err != nil {
		t.Fatalf("WaitHTTP: %v", err)
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("server saw %d calls, want 3 (two 503s, then 200)", got)
	}
}

func TestWaitHTTPHonoursContext(t *testing.T) {
	p := start(t, "exec sleep 60")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := p.WaitHTTP(ctx, http.DefaultClient, "http://127.0.0.1:1/")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitHTTP error = %v, want DeadlineExceeded", err)
	}
}
