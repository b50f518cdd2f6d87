//go:build unix && !linux

package proc

import "syscall"

// sysProcAttr puts the child in its own process group, so Stop reaches
// anything it spawns.
//
// TODO: outside Linux there is no Pdeathsig, so a test binary killed with
// SIGKILL leaves its servers running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
