package pluginhost

import (
	"os"
	"strconv"
	"syscall"
)

// sysProcAttr puts the plugin in its own process group, so that a signal
// sent to the host's group (a terminal's Ctrl-C) does not reach it before
// the host has stopped it, and asks the kernel to SIGKILL it when the
// thread that started it dies (see process.Start).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
	}
}

// killGroup SIGKILLs the process group led by pid. A group that is
// already gone is not an error.
func killGroup(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// pinnedFD is where a pinned executable's open file lands in the child:
// the first of exec.Cmd.ExtraFiles.
const pinnedFD = 3

// execPinned returns the path that executes the child's inherited copy of
// a pinned executable: the kernel resolves it to the very file the host
// hashed, whatever is at the configured path by then. The descriptor is
// not close-on-exec in the child, so scripts work too. It needs /proc;
// without it the host falls back to the path.
func execPinned() (string, bool) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		return "", false
	}
	return "/proc/self/fd/" + strconv.Itoa(pinnedFD), true
}
