package faultinject

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"txtimeout/internal/procstat"
)

// NapiStarve starves a device's NAPI threads: threaded NAPI on, its NAPI
// kthreads pinned to one CPU at SCHED_FIFO 1, that CPU's ksoftirqd raised
// above the hog, RT throttling off, and a SCHED_FIFO hog process spinning
// on that CPU (see the package documentation and kernel-facts.md section
// 9). It needs no link partner.
type NapiStarve struct {
	iface string
	cfg   NapiConfig
	opt   Options

	// Test seams: the sysfs and procfs roots.
	sys, proc string

	mu       sync.Mutex
	locks    heldLocks // the interfaces' locks, from Inject until nothing is left
	st       *state
	hog      *hog
	own      []ownThread // this process's threads moved off the hog CPU
	started  time.Time
	restored string
}

var _ Injector = (*NapiStarve)(nil)

// ownThread is one of this process's threads with the affinity it had.
type ownThread struct {
	tid  int
	cpus unix.CPUSet
}

// NewNapiStarve validates its input and changes nothing. NapiStarve acts
// in the caller's network namespace only (threaded NAPI is a sysfs
// setting, and sysfs shows the namespace it was mounted in).
func NewNapiStarve(iface string, c NapiConfig, o Options) (*NapiStarve, error) {
	if err := validIfaceName(iface); err != nil {
		return nil, err
	}
	c, err := c.validate()
	if err != nil {
		return nil, err
	}
	if o.NetNS != "" {
		return nil, fmt.Errorf("%w: NAPI starvation acts through sysfs and /proc of the caller's namespace; run it inside %s instead: %w", ErrBadConfig, o.NetNS, ErrUnsupported)
	}
	return &NapiStarve{iface: iface, cfg: c, opt: o, sys: "/sys", proc: "/proc"}, nil
}

// Name implements Injector.
func (n *NapiStarve) Name() string { return "napi" }

// Describe implements Injector.
func (n *NapiStarve) Describe() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	cpu := "the highest online CPU"
	if n.cfg.CPU >= 0 {
		cpu = "CPU " + strconv.Itoa(n.cfg.CPU)
	}
	if n.st != nil && n.st.Napi != nil {
		cpu = "CPU " + strconv.Itoa(n.st.Napi.CPU)
	}
	d := fmt.Sprintf("NAPI starvation of %s: a SCHED_FIFO %d hog on %s for at most %v", n.iface, n.cfg.Priority, cpu, n.cfg.For)
	if n.st != nil && n.st.Napi != nil {
		var names []string
		for _, t := range n.st.Napi.Threads {
			names = append(names, fmt.Sprintf("%s[%d]", t.Name, t.PID))
		}
		d += "; threads " + strings.Join(names, " ")
		if n.hog != nil {
			d += fmt.Sprintf("; hog pid %d since %s", n.hog.pid, n.started.Format("15:04:05.000"))
		}
	}
	if n.restored != "" {
		d += "; " + n.restored
	}
	return d
}

// Inject implements Injector. It refuses a machine with one CPU, a kernel
// without threaded NAPI (before 5.12) and a device without NAPI
// (ErrUnsupported), and otherwise changes, in this order and each only
// after the state file records what it was: threaded, the NAPI threads'
// affinity and policy, ksoftirqd's policy, RT throttling, then starts the
// hog.
func (n *NapiStarve) Inject(ctx context.Context) (err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := startInject(ctx, n.st, "NAPI starvation of "+n.iface); err != nil {
		return err
	}
	if err := n.locks.take(n.opt, n.iface); err != nil {
		return err
	}
	defer func() { n.locks.releaseIf(n.st == nil) }()
	info, err := checkIface(n.opt, n.iface)
	if err != nil {
		return err
	}
	cpu, err := n.pickCPU()
	if err != nil {
		return err
	}
	threadedPath := filepath.Join(n.sys, "class/net", n.iface, "threaded")
	threaded, err := os.ReadFile(threadedPath)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s has no %s: this kernel has no threaded NAPI (Linux 5.12+): %w", n.iface, threadedPath, ErrUnsupported)
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", threadedPath, err)
	}
	if err := checkNoStale(n.opt, n.iface); err != nil {
		return err
	}
	st := &state{
		Injector: "napi", Iface: n.iface, Ifindex: info.Index,
		PID: os.Getpid(), Created: time.Now().UTC(),
		Napi: &savedNapi{CPU: cpu, Threaded: strings.TrimSpace(string(threaded)), Until: time.Now().Add(n.cfg.For + 10*time.Second).UTC()},
	}
	if err := writeState(n.opt, st); err != nil {
		return err
	}
	n.st = st
	// From here on every failure puts back what was changed.
	defer func() {
		if err != nil {
			rctx, cancel := context.WithTimeout(context.Background(), napiRestoreWithin)
			defer cancel()
			if rerr := n.restoreLocked(rctx); rerr != nil {
				err = errors.Join(err, fmt.Errorf("restoring after the failure: %w", rerr))
			}
		}
	}()

	if st.Napi.Threaded != "1" {
		if err := os.WriteFile(threadedPath, []byte("1"), 0); err != nil {
			if errors.Is(err, unix.EOPNOTSUPP) {
				return fmt.Errorf("%s has no NAPI instance to run threaded (writing 1 to %s: %v): %w", n.iface, threadedPath, err, ErrUnsupported)
			}
			return fmt.Errorf("switching %s to threaded NAPI: %w", n.iface, err)
		}
	}
	napis, err := n.napiThreads(info.Index)
	if err != nil {
		return err
	}
	ksoft, err := n.findKthread(fmt.Sprintf("ksoftirqd/%d", cpu))
	if err != nil {
		return err
	}
	for _, t := range append(napis, ksoft) {
		if err := saveThread(&t); err != nil {
			return err
		}
		st.Napi.Threads = append(st.Napi.Threads, t)
	}
	rt, err := os.ReadFile(filepath.Join(n.proc, "sys/kernel/sched_rt_runtime_us"))
	if err != nil {
		return fmt.Errorf("reading RT throttling: %w", err)
	}
	st.Napi.RTRuntime = strings.TrimSpace(string(rt))
	if err := writeState(n.opt, st); err != nil {
		return err
	}

	var one unix.CPUSet
	one.Set(cpu)
	for _, t := range napis {
		if err := unix.SchedSetaffinity(t.PID, &one); err != nil {
			return fmt.Errorf("pinning %s[%d] to CPU %d: %w", t.Name, t.PID, cpu, err)
		}
		if err := setFIFO(t.PID, napiThreadPriority); err != nil {
			return fmt.Errorf("%s[%d]: %w", t.Name, t.PID, err)
		}
	}
	if err := setFIFO(ksoft.PID, uint32(n.cfg.Priority+1)); err != nil {
		return fmt.Errorf("%s[%d]: %w", ksoft.Name, ksoft.PID, err)
	}
	if err := os.WriteFile(filepath.Join(n.proc, "sys/kernel/sched_rt_runtime_us"), []byte("-1"), 0); err != nil {
		return fmt.Errorf("switching RT throttling off: %w", err)
	}
	if n.own, err = moveOwnThreads(cpu); err != nil {
		return err
	}
	h, err := startHog(ctx, cpu, n.cfg.Priority, n.cfg.For)
	if err != nil {
		return err
	}
	n.hog = h
	n.started = time.Now()
	st.Napi.HogPID, st.Napi.HogStart = h.pid, h.start
	st.Napi.Until = n.started.Add(n.cfg.For).UTC()
	return writeState(n.opt, st)
}

// pickCPU returns the hog CPU: the configured one if it is online, else
// the highest online CPU. One CPU is refused: the hog would starve the
// suite itself.
func (n *NapiStarve) pickCPU() (int, error) {
	b, err := os.ReadFile(filepath.Join(n.sys, "devices/system/cpu/online"))
	if err != nil {
		return 0, fmt.Errorf("reading the online CPUs: %w", err)
	}
	online, err := parseCPUList(string(b))
	if err != nil {
		return 0, err
	}
	if len(online) < 2 {
		return 0, fmt.Errorf("NAPI starvation needs at least 2 online CPUs (one to starve, one for the suite); this machine has %d: %w", len(online), ErrUnsupported)
	}
	if n.cfg.CPU == AutoCPU {
		return online[len(online)-1], nil
	}
	for _, c := range online {
		if c == n.cfg.CPU {
			return c, nil
		}
	}
	return 0, fmt.Errorf("%w: CPU %d is not online (online: %s)", ErrBadConfig, n.cfg.CPU, formatCPUList(online))
}

// napiThreads finds iface's NAPI kthreads: through the netdev generic
// netlink family where the kernel reports their pids (6.8+), and by name
// in /proc.
func (n *NapiStarve) napiThreads(ifindex int) ([]savedThread, error) {
	var out []savedThread
	seen := map[int]bool{}
	// netdev netlink lists only the NAPI instances that have an id: on
	// 6.12, virtio_net's TX-only instance (napi/eth0-0) is not among them,
	// so the names in /proc are read as well.
	if pids, err := napiPIDsNetlink(ifindex); err == nil {
		for _, pid := range pids {
			st, start, err := procStart("/proc", pid)
			if err != nil {
				return nil, fmt.Errorf("NAPI thread %d: %w", pid, err)
			}
			seen[pid] = true
			out = append(out, savedThread{PID: pid, Name: kthreadName(n.proc, pid, st.Comm), Start: start})
		}
	}
	var truncated []string
	err := n.eachKthread(func(pid int, name string, start uint64) {
		if seen[pid] {
			return
		}
		ok, cut := napiThreadOf(name, n.iface)
		if !ok {
			return
		}
		if cut {
			truncated = append(truncated, name)
		}
		out = append(out, savedThread{PID: pid, Name: name, Start: start})
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no NAPI kthread named napi/%s-N although threaded NAPI is on: %w", n.iface, ErrUnsupported)
	}
	if len(truncated) > 0 {
		// A cut name could be another interface's: refuse when some
		// other interface's threads would match the same cut.
		others, _ := os.ReadDir(filepath.Join(n.sys, "class/net"))
		for _, o := range others {
			if o.Name() == n.iface {
				continue
			}
			for _, name := range truncated {
				if ok, _ := napiThreadOf(name, o.Name()); ok {
					return nil, fmt.Errorf("%w: NAPI thread name %q (cut to %d bytes by this kernel) could belong to %s as well as %s", ErrUnsafeInterface, name, commLen, o.Name(), n.iface)
				}
			}
		}
	}
	return out, nil
}

// findKthread returns the kernel thread named name.
func (n *NapiStarve) findKthread(name string) (savedThread, error) {
	var found []savedThread
	err := n.eachKthread(func(pid int, got string, start uint64) {
		if got == name {
			found = append(found, savedThread{PID: pid, Name: got, Start: start})
		}
	})
	if err != nil {
		return savedThread{}, err
	}
	if len(found) != 1 {
		return savedThread{}, fmt.Errorf("found %d kernel threads named %s, want 1", len(found), name)
	}
	return found[0], nil
}

// eachKthread calls fn for every kernel thread in n's /proc.
func (n *NapiStarve) eachKthread(fn func(pid int, name string, start uint64)) error {
	return eachKthread(n.proc, fn)
}

// eachKthread calls fn for every kernel thread under proc, with its full
// name where the kernel shows it (/proc/PID/status, 5.17+) and its start
// time.
func eachKthread(proc string, fn func(pid int, name string, start uint64)) error {
	pids, err := procstat.PIDs(proc)
	if err != nil {
		return err
	}
	for _, pid := range pids {
		st, start, err := procStart(proc, pid)
		if err != nil || !st.Kthread() {
			continue // gone, or not a kernel thread
		}
		fn(pid, kthreadName(proc, pid, st.Comm), start)
	}
	return nil
}

// kthreadName is the Name: line of /proc/PID/status, which shows a kernel
// thread's whole name since 5.17, or comm.
func kthreadName(proc string, pid int, comm string) string {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "status"))
	if err != nil {
		return comm
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Name:"); ok {
			if v = strings.TrimSpace(v); v != "" {
				return v
			}
		}
	}
	return comm
}

// saveThread fills in t's affinity and scheduling as they are now.
func saveThread(t *savedThread) error {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(t.PID, &set); err != nil {
		return fmt.Errorf("affinity of %s[%d]: %w", t.Name, t.PID, err)
	}
	t.CPUs = formatCPUList(cpuSetList(&set))
	a, err := unix.SchedGetAttr(t.PID, 0)
	if err != nil {
		return fmt.Errorf("scheduling of %s[%d]: %w", t.Name, t.PID, err)
	}
	t.Policy, t.Priority, t.Nice = a.Policy, a.Priority, a.Nice
	return nil
}

func cpuSetList(s *unix.CPUSet) []int {
	var out []int
	for c := 0; c < len(s)*64; c++ {
		if s.IsSet(c) {
			out = append(out, c)
		}
	}
	return out
}

func setFIFO(pid int, prio uint32) error {
	a := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: prio}
	if err := unix.SchedSetAttr(pid, &a, 0); err != nil {
		return fmt.Errorf("SCHED_FIFO %d: %w", prio, err)
	}
	return nil
}

// restoreThread puts t's affinity and scheduling back, if the thread is
// still the one recorded. It reports what it did.
func restoreThread(t savedThread) (string, error) {
	_, start, err := procStart("/proc", t.PID)
	if err != nil || start != t.Start {
		return fmt.Sprintf("%s[%d] is gone", t.Name, t.PID), nil
	}
	var errs []error
	cpus, err := parseCPUList(t.CPUs)
	if err != nil {
		errs = append(errs, fmt.Errorf("affinity of %s[%d] not restored: the state file's CPU list: %w", t.Name, t.PID, err))
	}
	var now unix.CPUSet
	// Per-CPU kthreads (ksoftirqd) refuse any affinity change, even to
	// the CPU they are bound to: only what was changed is put back.
	if unix.SchedGetaffinity(t.PID, &now) == nil && formatCPUList(cpuSetList(&now)) == t.CPUs {
		cpus = nil
	}
	if err == nil && len(cpus) > 0 {
		var set unix.CPUSet
		for _, c := range cpus {
			set.Set(c)
		}
		if err := unix.SchedSetaffinity(t.PID, &set); err != nil {
			errs = append(errs, fmt.Errorf("affinity of %s[%d] back to %s: %w", t.Name, t.PID, t.CPUs, err))
		}
	}
	a := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: t.Policy, Priority: t.Priority, Nice: t.Nice}
	if err := unix.SchedSetAttr(t.PID, &a, 0); err != nil {
		errs = append(errs, fmt.Errorf("scheduling of %s[%d] back to policy %d priority %d: %w", t.Name, t.PID, t.Policy, t.Priority, err))
	}
	return fmt.Sprintf("%s[%d] back to CPUs %s, policy %d priority %d nice %d", t.Name, t.PID, t.CPUs, t.Policy, t.Priority, t.Nice), errors.Join(errs...)
}

// moveOwnThreads takes cpu out of the affinity of every thread of this
// process (threads created later inherit it), so that the hog starves
// none of the suite's own goroutines.
func moveOwnThreads(cpu int) ([]ownThread, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("listing this process's threads: %w", err)
	}
	var moved []ownThread
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &set); err != nil {
			continue // gone
		}
		if !set.IsSet(cpu) {
			continue
		}
		rest := set
		rest.Clear(cpu)
		if rest.Count() == 0 {
			restoreOwn(moved, cpu)
			return nil, fmt.Errorf("thread %d of this process may run only on CPU %d, the one to starve: pick another CPU", tid, cpu)
		}
		if err := unix.SchedSetaffinity(tid, &rest); err != nil {
			continue // gone
		}
		moved = append(moved, ownThread{tid: tid, cpus: set})
	}
	return moved, nil
}

// restoreOwn puts back the affinity of the threads moveOwnThreads moved
// off cpu, and of the threads the Go runtime created meanwhile, which
// inherited a moved thread's narrowed affinity.
func restoreOwn(moved []ownThread, cpu int) {
	widened := map[unix.CPUSet]unix.CPUSet{}
	for _, t := range moved {
		_ = unix.SchedSetaffinity(t.tid, &t.cpus) // a thread that ended is fine
		narrow := t.cpus
		narrow.Clear(cpu)
		widened[narrow] = t.cpus
	}
	if len(moved) == 0 {
		return
	}
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var set unix.CPUSet
		if unix.SchedGetaffinity(tid, &set) != nil {
			continue
		}
		if full, ok := widened[set]; ok {
			_ = unix.SchedSetaffinity(tid, &full)
		}
	}
}

// RestoreBound implements Injector: killing the hog and writing back
// what it changed are Restore's own steps.
func (n *NapiStarve) RestoreBound() time.Duration { return RestoreSteps }

// Status implements Injector: whether the hog still spins.
func (n *NapiStarve) Status(context.Context) string {
	if n.Running() {
		return "hog spinning"
	}
	return "the hog has ended"
}

// Done implements Injector: nil, the hog is bounded by its own time.
func (n *NapiStarve) Done() <-chan struct{} { return nil }

// Running reports whether the hog is still spinning.
func (n *NapiStarve) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hog != nil && n.hog.running()
}

// Release ends the starvation at once, the first step of Restore: the
// hog is killed, so the NAPI threads run again and the driver's pending
// reset can proceed, while the rest (scheduling, RT throttling, threaded,
// which needs rtnl) waits for Restore. Race scenarios race the driver's
// recovery between the two.
func (n *NapiStarve) Release(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.hog != nil && n.hog.running() {
		n.hog.stop()
		n.restored = fmt.Sprintf("hog killed after %v by Release", time.Since(n.started).Round(time.Millisecond))
	}
	if n.st != nil && n.st.Napi != nil {
		restoreOwn(n.own, n.st.Napi.CPU)
	}
	n.own = nil
	return nil
}

// Restore implements Injector: the hog goes first, then RT throttling,
// ksoftirqd and the NAPI threads' scheduling, and threaded last (it needs
// rtnl, which a driver reset that waits for the starved NAPI thread may
// hold until the hog is gone).
func (n *NapiStarve) Restore(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	defer func() { n.locks.releaseIf(n.st == nil) }()
	return n.restoreLocked(ctx)
}

func (n *NapiStarve) restoreLocked(ctx context.Context) error {
	if n.st == nil {
		return nil
	}
	var did []string
	if n.hog != nil {
		ran := time.Since(n.started)
		wasRunning := n.hog.running()
		n.hog.stop()
		switch {
		case wasRunning:
			did = append(did, fmt.Sprintf("hog killed after %v", ran.Round(time.Millisecond)))
		case n.restored != "":
			did = append(did, n.restored)
		default:
			did = append(did, fmt.Sprintf("hog had ended by itself (%v)", n.hog.err))
		}
		n.hog = nil
	}
	if n.st.Napi != nil {
		restoreOwn(n.own, n.st.Napi.CPU)
	}
	n.own = nil
	acts, err := restoreNapi(ctx, n.opt, n.st, n.sys, n.proc)
	if err != nil {
		return err
	}
	if err := removeState(n.opt, n.iface); err != nil {
		return err
	}
	n.st = nil
	n.restored = "restored: " + strings.Join(append(did, acts...), "; ")
	return nil
}

// restoreNapi puts back what st.Napi recorded, after the hog: RT
// throttling, the threads, threaded. Shared by Restore and Cleanup.
func restoreNapi(ctx context.Context, o Options, st *state, sys, proc string) ([]string, error) {
	sn := st.Napi
	if sn == nil {
		return nil, nil
	}
	var acts []string
	var errs []error
	if sn.HogPID > 0 && killIfSame(sn.HogPID, sn.HogStart) {
		acts = append(acts, fmt.Sprintf("killed the hog (pid %d)", sn.HogPID))
	}
	if sn.RTRuntime != "" {
		if err := os.WriteFile(filepath.Join(proc, "sys/kernel/sched_rt_runtime_us"), []byte(sn.RTRuntime), 0); err != nil {
			errs = append(errs, fmt.Errorf("RT throttling back to %s: %w", sn.RTRuntime, err))
		} else {
			acts = append(acts, "sched_rt_runtime_us back to "+sn.RTRuntime)
		}
	}
	for i := len(sn.Threads) - 1; i >= 0; i-- {
		a, err := restoreThread(sn.Threads[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		acts = append(acts, a)
	}
	if sn.Threaded != "" && sn.Threaded != "1" {
		idx, err := currentIndex(o, st.Iface)
		switch {
		case err != nil:
			errs = append(errs, err)
		case idx != st.Ifindex:
			acts = append(acts, fmt.Sprintf("%s (index %d) is gone: threaded not restored", st.Iface, st.Ifindex))
		default:
			p := filepath.Join(sys, "class/net", st.Iface, "threaded")
			if err := writeWithin(ctx, p, sn.Threaded); err != nil {
				errs = append(errs, fmt.Errorf("threaded back to %s: %w", sn.Threaded, err))
			} else {
				acts = append(acts, "threaded back to "+sn.Threaded)
			}
		}
	}
	return acts, errors.Join(errs...)
}

// napiRestoreWithin bounds a restore that has no deadline of its own (an
// Inject that failed half-way).
const napiRestoreWithin = 30 * time.Second

// writeWithin writes val to the sysfs file path, giving up when ctx ends:
// writing threaded takes rtnl, which a driver reset stuck in the kernel
// can hold forever. The write itself then stays blocked in the kernel; the
// state file is kept, so that a later cleanup can finish the job.
func writeWithin(ctx context.Context, path, val string) error {
	done := make(chan error, 1)
	go func() { done <- os.WriteFile(path, []byte(val), 0) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("writing %s to %s did not return (%w): rtnl is held, by a driver reset stuck in the kernel?", val, path, ctx.Err())
	}
}

// The netdev generic netlink family (Documentation/netlink/specs/netdev.yaml):
// NAPI_GET reports each NAPI instance's kthread pid since Linux 6.8.
const (
	netdevCmdNapiGet   = 11
	netdevANapiIfindex = 1
	netdevANapiPID     = 4
)

// napiPIDsNetlink returns the pids of ifindex's NAPI threads from the
// netdev family, or an error when the kernel does not say.
func napiPIDsNetlink(ifindex int) ([]int, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	fam, err := c.GetFamily("netdev")
	if err != nil {
		return nil, err
	}
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(netdevANapiIfindex, uint32(ifindex))
	body, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	msgs, err := c.Execute(genetlink.Message{Header: genetlink.Header{Command: netdevCmdNapiGet, Version: fam.Version}, Data: body},
		fam.ID, netlink.Request|netlink.Dump)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, m := range msgs {
		ad, err := netlink.NewAttributeDecoder(m.Data)
		if err != nil {
			return nil, err
		}
		idx, pid := 0, 0
		for ad.Next() {
			switch ad.Type() {
			case netdevANapiIfindex:
				idx = int(ad.Uint32())
			case netdevANapiPID:
				pid = int(ad.Uint32())
			}
		}
		if ad.Err() != nil {
			return nil, ad.Err()
		}
		if idx == ifindex && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Diagnose says why starving the NAPI threads did not stop iface's TX
// completions (see NapiDiagnosis), from this machine's sysfs and
// /proc/interrupts. pktgen says whether the load bypasses the qdisc.
func (n *NapiStarve) Diagnose(pktgen bool) string {
	driver := ""
	if l, err := os.Readlink(filepath.Join(n.sys, "class/net", n.iface, "device/driver")); err == nil {
		driver = filepath.Base(l)
	}
	irq, _ := os.ReadFile(filepath.Join(n.proc, "interrupts"))
	return NapiDiagnosis(driver, n.iface, string(irq), pktgen)
}
