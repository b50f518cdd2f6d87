package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a parent that starts a server and
// then waits to be killed.
const helperEnv = "PROC_TEST_PARENT_PID_FILE"

func TestHelperParent(t *testing.T) {
	pidFile := os.Getenv(helperEnv)
	if pidFile == "" {
		t.Skip("helper for TestServerDiesWithTestBinary, not a test")
	}
	p := Start(t, "sleep", exec.Command("sleep", "300"))
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(p.Pid())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Minute)
}

func TestServerDiesWithTestBinary(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "server.pid")
	parent := exec.Command(os.Args[0], "-test.run=^TestHelperParent$")
	parent.Env = append(os.Environ(), helperEnv+"="+pidFile)
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = parent.Process.Kill(); _ = parent.Wait() })

	server := readPid(t, pidFile)
	if !alive(t, server) {
		t.Fatalf("server pid %d not running before its parent died", server)
	}
	if err := parent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()
	waitGone(t, server, 5*time.Second)
}
