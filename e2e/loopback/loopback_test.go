package loopback

import (
	"net"
	"strconv"
	"testing"
)

func TestFreePortCanBeBound(t *testing.T) {
	port := FreePort(t)
	if port <= 0 || port > 65535 {
		t.Fatalf("FreePort() = %d, want a port in 1..65535", port)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(Host, strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("listen on port from FreePort: got %v, want nil", err)
	}
	t.Cleanup(func() { l.Close() })
}

func TestAddrIsLoopback(t *testing.T) {
	addr := Addr(t)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("SplitHostPort(%q): %v", addr, err)
	}
	if host != Host {
		t.Errorf("Addr() host = %q, want %q", host, Host)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 {
		t.Errorf("Addr() port = %q, want a positive number", port)
	}
}
