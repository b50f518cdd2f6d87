//go:build linux

package child

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStopReachesGrandchildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	p := start(t, "sleep 60 & echo $! > "+pidFile+"; wait")
	var grandchild int
	deadline := time.Now().Add(5 * time.Second)
	for grandchild == 0 && time.Now().Before(deadline) {
		if b, err := os.ReadFile(pidFile); err == nil && len(b) > 1 {
			grandchild, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if grandchild == 0 {
		t.Fatal("grandchild never wrote its pid")
	}
	p.Stop()
	select {
	case <-p.Done():
	default:
		t.Fatal("Stop returned before the child exited")
	}
	// The grandchild is reparented, so it may linger as a zombie briefly;
	// signal 0 fails once it is reaped or gone.
	deadline = time.Now().Add(5 * time.Second)
	for syscall.Kill(grandchild, 0) == nil {
		if time.Now().After(deadline) {
			if b, _ := os.ReadFile("/proc/" + strconv.Itoa(grandchild) + "/stat"); strings.Contains(string(b), ") Z ") {
				return // killed, waiting for init to reap it
			}
			t.Fatalf("grandchild %d still running after Stop", grandchild)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Stop() // a second Stop is harmless
}
