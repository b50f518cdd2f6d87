package pluginhost

import (
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestPluginProcessGroup: a plugin leads a process group of its own, apart
// from the host's, its helpers join that group, and Stop leaves none of
// them running, even the helper that outlives the plugin's clean exit.
func TestPluginProcessGroup(t *testing.T) {
	p := startPlugin(t, Config{Name: "spawn", Type: "spawner", Directory: testBin, Logger: testLogger(t)})
	info := p.Info()
	pid := info.Pid
	child, err := strconv.Atoi(info.Metadata["child_pid"])
	if err != nil {
		t.Fatalf("plugin reported no helper pid: metadata %v", info.Metadata)
	}
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	if !alive(child) {
		t.Fatalf("helper pid %d not alive before Stop", child)
	}

	pgid, err := syscall.Getpgid(pid)
	if err != nil {
		t.Fatal(err)
	}
	if pgid != pid {
		t.Errorf("plugin pid %d is in process group %d; want its own group %d", pid, pgid, pid)
	}
	if hostGroup := syscall.Getpgrp(); pgid == hostGroup {
		t.Errorf("plugin shares the host's process group %d", hostGroup)
	}
	if childGroup, err := syscall.Getpgid(child); err != nil || childGroup != pid {
		t.Errorf("helper pid %d is in process group %d (%v); want the plugin's %d", child, childGroup, err, pid)
	}

	p.Stop()
	if alive(pid) {
		t.Errorf("plugin pid %d alive after Stop", pid)
	}
	waitFor(t, 5*time.Second, "the plugin's helper to be gone after Stop", func() bool { return !alive(child) })
}
