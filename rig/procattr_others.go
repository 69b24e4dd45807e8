//go:build !linux

package rig

import "syscall"

// qemuProcAttr puts QEMU in a process group of its own. Only Linux has a
// parent-death signal; elsewhere a killed host may leave QEMU running.
func qemuProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
