//go:build !linux

package pluginhost

import "syscall"

// sysProcAttr has no portable way to tie a child's life to the host's
// outside Linux.
// TODO: plugins can outlive a SIGKILLed host on platforms other than Linux.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// killGroup is a no-op without process groups; process.Kill still kills
// the plugin itself.
func killGroup(int) {}
