//go:build !linux

package noop

import "syscall"

// sysProcAttr: outside Linux a killed benchmark can leave the plugin
// running until go-plugin notices its host is gone.
func sysProcAttr() *syscall.SysProcAttr { return nil }
