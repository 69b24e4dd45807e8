package rig

import "syscall"

// qemuProcAttr puts QEMU in a process group of its own, so that one kill
// reaches it and anything it starts, and has the kernel SIGKILL it if the
// thread that started it dies (see boot.run), so that a killed test binary
// leaves no orphan QEMU.
func qemuProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
