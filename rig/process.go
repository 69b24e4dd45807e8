package rig

import (
	"io"
	"os/exec"
	"runtime"
	"syscall"
)

// qemuProcess is a started QEMU: the seam between the rig and the process,
// so that the rig's handling of a QEMU that fails, panics its guest or
// hangs is tested with a fake (rig's boot tests) as well as for real.
type qemuProcess interface {
	// Exited receives the process's exit status, once, when it has ended.
	Exited() <-chan error
	// Kill stops the process and everything it started, at once.
	Kill()
	// Pid is the process ID (0 for a fake).
	Pid() int
}

// launcher starts QEMU: bin with args, its stdout and stderr into log.
type launcher func(bin string, args []string, log io.Writer) (qemuProcess, error)

// execQEMU is the real launcher: QEMU in a process group of its own, killed
// by the kernel if the thread that started it dies (qemuProcAttr).
func execQEMU(bin string, args []string, log io.Writer) (qemuProcess, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = qemuProcAttr()
	exited, err := startReaped(cmd)
	if err != nil {
		return nil, err
	}
	return &execProcess{pid: cmd.Process.Pid, exited: exited}, nil
}

type execProcess struct {
	pid    int
	exited <-chan error
}

func (p *execProcess) Exited() <-chan error { return p.exited }
func (p *execProcess) Pid() int             { return p.pid }
func (p *execProcess) Kill()                { syscall.Kill(-p.pid, syscall.SIGKILL) }

// startReaped starts cmd (whose SysProcAttr is qemuProcAttr) and returns a
// channel that receives cmd.Wait's result. The parent-death signal fires
// when the thread that forked the child ends, not the process: the child is
// started from a goroutine locked to its thread, which then waits for it,
// so that thread outlives the child.
func startReaped(cmd *exec.Cmd) (<-chan error, error) {
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	return exited, <-started
}
