package pluginhost

import "syscall"

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
