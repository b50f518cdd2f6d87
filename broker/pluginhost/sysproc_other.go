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

// execPinned is Linux only; elsewhere a pinned executable runs from its
// path.
// TODO: a pinned plugin binary replaced between its check and its start
// runs unchecked on platforms other than Linux.
func execPinned() (string, bool) { return "", false }
