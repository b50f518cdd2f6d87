//go:build !linux

package child

import (
	"os"
	"syscall"
)

// sysProcAttr has no parent-death signal outside Linux.
// TODO: a benchmark killed outside Linux leaves its children running.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// signalGroup signals the child only; its own children are not reached.
func signalGroup(pid int, sig syscall.Signal) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Signal(sig)
	}
}
