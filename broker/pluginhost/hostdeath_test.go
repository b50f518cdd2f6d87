package pluginhost

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostModeEnv, when set to a plugin directory, makes the test binary act
// as a broker: it starts three plugins from that directory, prints their
// pids on one line and waits to be killed.
const hostModeEnv = "PLUGINHOST_TEST_HOST_DIR"

func runAsHost() {
	dir := os.Getenv(hostModeEnv)
	var pids []string
	for _, typ := range []string{"aead", "noaad", "aead"} {
		p, err := Start(context.Background(), Config{
			Name: typ + "#" + strconv.Itoa(len(pids)), Type: typ, Directory: dir,
			Settings: map[string]string{"key": testKey},
		})
		if err != nil {
			fmt.Println("ERROR", err)
			return
		}
		pids = append(pids, strconv.Itoa(p.Info().Pid))
	}
	fmt.Println("PIDS", strings.Join(pids, " "))
	time.Sleep(time.Hour)
}

// TestPluginsDieWithHost SIGKILLs a host with three plugins running and
// checks that no plugin process and no new temporary file is left.
func TestPluginsDieWithHost(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	host := exec.Command(self)
	host.Env = append(os.Environ(), hostModeEnv+"="+testBin, "TMPDIR="+tmp)
	host.Stderr = os.Stderr
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Process.Kill(); _ = host.Wait() })

	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("read host output: %v", err)
	}
	fields := strings.Fields(line)
	if len(fields) != 4 || fields[0] != "PIDS" {
		t.Fatalf("host said %q; want PIDS and three pids", line)
	}
	var pids []int
	for _, f := range fields[1:] {
		pid, err := strconv.Atoi(f)
		if err != nil || !alive(pid) {
			t.Fatalf("plugin pid %q not alive before the host dies", f)
		}
		pids = append(pids, pid)
	}

	if err := host.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = host.Wait()

	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("plugin pid %d outlived its SIGKILLed host", pid)
		}
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left in the host's temporary directory: %s", e.Name())
	}
}
