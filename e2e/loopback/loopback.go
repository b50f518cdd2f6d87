// Package loopback hands out free TCP ports on the loopback interface for
// the servers the end-to-end tests start.
package loopback

import (
	"net"
	"strconv"
	"testing"
)

// Host is the only interface the e2e servers are asked to listen on, so a
// test never exposes a KMS emulator or a dev Vault to the network.
const Host = "127.0.0.1"

// FreePort returns a TCP port on Host that was free a moment ago. It binds
// port 0, reads the port the kernel chose and closes the listener, so the
// caller must bind it soon: another process may take it in between, and a
// server that then fails to bind shows up as a start failure, not a hang.
// The kernel hands out ephemeral ports in rotation, which makes such a race
// rare. FreePort fails the test when no port can be bound at all.
//
// TODO: a server that loses its port in that window fails the test; the
// harness does not retry on a new port.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(Host, "0"))
	if err != nil {
		t.Fatalf("loopback: find free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("loopback: release port %d: %v", port, err)
	}
	return port
}

// Addr returns "127.0.0.1:PORT" for a port from FreePort.
func Addr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort(Host, strconv.Itoa(FreePort(t)))
}
