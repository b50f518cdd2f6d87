package proc

import "syscall"

// sysProcAttr puts the child in its own process group, so Stop reaches
// anything it spawns, and asks the kernel to kill it when the thread that
// started it exits. The Go runtime keeps that thread for the life of the
// test binary unless it was locked with runtime.LockOSThread, so in
// practice the child dies with the test binary, even on SIGKILL.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
