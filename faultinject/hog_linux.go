package faultinject

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"txtimeout/internal/procstat"
)

// The CPU hog of NapiStarve is a separate process: the binary that
// imports this package, executed again with hogEnv set. A goroutine is not
// enough, since the Go scheduler parks the thread of a preempted locked
// goroutine for a moment every 10 ms, and a NAPI poll needs only that to
// drain a ring. The hog process takes over in this package's init (the
// main goroutine is locked to the main thread there), pins that thread to
// its CPU at SCHED_FIFO and spins in a loop with no function call, so
// that nothing preempts it (GODEBUG=asyncpreemptoff=1 keeps the runtime
// from signalling it).
//
// It is bounded three ways: SIGKILL when its parent thread dies
// (PR_SET_PDEATHSIG), RLIMIT_CPU (the kernel kills it at the hard limit),
// and SIGKILL from the parent when the hog's time is up or Restore runs.

// hogEnv carries "CPU PRIORITY PARENTPID CPUSECONDS" to the hog.
const hogEnv = "TXTIMEOUT_NAPI_HOG"

// hogReady is the line the hog writes on stdout once it is pinned and
// about to spin.
const hogReady = "txtimeout-hog-spinning"

func init() {
	if v, ok := os.LookupEnv(hogEnv); ok {
		os.Exit(runHog(v))
	}
}

// runHog is the hog process. It returns only on a setup error.
func runHog(spec string) int {
	f := strings.Fields(spec)
	if len(f) != 4 {
		fmt.Fprintf(os.Stderr, "txtimeout hog: %s=%q: want CPU PRIORITY PARENTPID CPUSECONDS\n", hogEnv, spec)
		return 2
	}
	var n [4]int
	for i, s := range f {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			fmt.Fprintf(os.Stderr, "txtimeout hog: %s: bad number %q\n", hogEnv, s)
			return 2
		}
		n[i] = v
	}
	cpu, prio, parent, secs := n[0], n[1], n[2], n[3]
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "txtimeout hog: %s: %v\n", what, err)
		return 1
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fail("PR_SET_PDEATHSIG", err)
	}
	if os.Getppid() != parent {
		return fail("parent", fmt.Errorf("parent %d is gone (now %d)", parent, os.Getppid()))
	}
	lim := unix.Rlimit{Cur: uint64(secs), Max: uint64(secs) + 1}
	if err := unix.Setrlimit(unix.RLIMIT_CPU, &lim); err != nil {
		return fail("RLIMIT_CPU", err)
	}
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fail(fmt.Sprintf("pinning to CPU %d", cpu), err)
	}
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: uint32(prio), Flags: unix.SCHED_FLAG_RESET_ON_FORK}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		return fail(fmt.Sprintf("SCHED_FIFO %d", prio), err)
	}
	os.Stdout.WriteString(hogReady + "\n")
	spin()
	return 0
}

// spin never returns and calls nothing: no preemption point.
//
//go:noinline
func spin() {
	//lint:ignore SA5002 the hog is this loop: it spins on purpose, bounded by RLIMIT_CPU, PR_SET_PDEATHSIG and its parent's SIGKILL
	for {
	}
}

// hog is a running hog process.
type hog struct {
	pid   int
	start uint64
	cmd   *exec.Cmd
	done  chan struct{} // closed when the hog was reaped
	err   error         // its exit, valid after done
	timer *time.Timer
}

// startHog starts the hog on cpu at SCHED_FIFO prio for at most d. It
// returns once the hog says it spins. The process is started and reaped
// from one locked OS thread: PR_SET_PDEATHSIG fires when the parent
// *thread* exits, and the Go runtime may end threads.
func startHog(ctx context.Context, cpu, prio int, d time.Duration) (*hog, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("hog: finding this executable: %w", err)
	}
	secs := int((d + time.Second - 1) / time.Second) // CPU seconds, rounded up
	secs += 2
	h := &hog{done: make(chan struct{})}
	started := make(chan error, 1)
	var ready *bufio.Reader
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the hog
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), hogEnv+"="+fmt.Sprintf("%d %d %d %d", cpu, prio, os.Getpid(), secs), "GODEBUG=asyncpreemptoff=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.StdoutPipe()
		if err != nil {
			started <- err
			close(h.done)
			return
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			started <- err
			close(h.done)
			return
		}
		h.cmd, h.pid = cmd, cmd.Process.Pid
		ready = bufio.NewReader(out)
		started <- nil
		err = cmd.Wait()
		if s := strings.TrimSpace(stderr.String()); s != "" {
			err = fmt.Errorf("%w: %s", err, s)
		}
		h.err = err
		close(h.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("hog: starting: %w", err)
	}
	h.timer = time.AfterFunc(d, h.kill)
	line := make(chan error, 1)
	go func() {
		s, err := ready.ReadString('\n')
		if err == nil && strings.TrimSpace(s) != hogReady {
			err = fmt.Errorf("unexpected output %q", s)
		}
		line <- err
	}()
	wait := time.NewTimer(10 * time.Second)
	defer wait.Stop()
	select {
	case err := <-line:
		if err != nil {
			h.stop()
			return nil, fmt.Errorf("hog: %w (%v)", err, h.err)
		}
	case <-ctx.Done():
		h.stop()
		return nil, ctx.Err()
	case <-wait.C:
		h.stop()
		return nil, errors.New("hog: not spinning within 10s")
	}
	if _, start, err := procStart("/proc", h.pid); err == nil {
		h.start = start
	}
	return h, nil
}

// kill sends SIGKILL to the hog (a no-op once it was reaped).
func (h *hog) kill() {
	select {
	case <-h.done:
	default:
		h.cmd.Process.Signal(syscall.SIGKILL)
	}
}

// stop kills the hog and waits until it was reaped.
func (h *hog) stop() {
	if h.timer != nil {
		h.timer.Stop()
	}
	h.kill()
	<-h.done
}

// running reports whether the hog has not exited yet.
func (h *hog) running() bool {
	select {
	case <-h.done:
		return false
	default:
		return true
	}
}

// procStart reads pid's stat under proc and its start time, which with
// the pid is a process's identity.
func procStart(proc string, pid int) (procstat.Stat, uint64, error) {
	st, err := procstat.Read(proc, pid)
	if err != nil {
		return st, 0, err
	}
	start, err := st.StartTime()
	return st, start, err
}

// killIfSame sends SIGKILL to pid only if it is still the process that
// started at start (so that a reused pid is never killed), and reports
// whether it did.
func killIfSame(pid int, start uint64) bool {
	st, now, err := procStart("/proc", pid)
	if err != nil || now != start || st.State() == 'Z' || st.State() == 'X' {
		return false // gone, another process, or dead and not yet reaped
	}
	return unix.Kill(pid, unix.SIGKILL) == nil
}
