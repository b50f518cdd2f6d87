package child

import "syscall"

// sysProcAttr gives the child its own process group, so signals reach
// everything it starts (brokerd's plugins), and asks the kernel to kill it
// when the thread that started it exits, which in practice is when the
// benchmark exits, even by SIGKILL.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup signals the child's whole process group.
func signalGroup(pid int, sig syscall.Signal) {
	_ = syscall.Kill(-pid, sig)
}
