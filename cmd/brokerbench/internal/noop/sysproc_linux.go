package noop

import "syscall"

// sysProcAttr has the kernel kill the plugin when the benchmark dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
