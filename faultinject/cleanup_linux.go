package faultinject

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"txtimeout/internal/pktgenproc"
)

// Cleanup restores iface from its state file (left by a run that crashed
// or was killed) and removes anything else the project left on it: a root
// qdisc with the project's handle, and pktgen devices on it (pktgen can
// only empty a whole kernel thread, so other devices on the same thread
// go too; the actions name them). It returns one line per action, and a
// nil error when the interface is clean. It refuses (ErrBusy) while the
// interface's owner runs, and fails with an error wrapping os.ErrNotExist
// for an interface that does not exist and has no state recorded; state
// left for an interface that is gone is cleaned, and the actions say so.
func Cleanup(ctx context.Context, iface string, o Options) (actions []string, err error) {
	if err := validIfaceName(iface); err != nil {
		return nil, err
	}
	// The interface's owner, if alive, holds its lock: cleaning under
	// it would undo a running injection. This process's own lock (an
	// injector whose Restore failed) does not stop it.
	_, statErr := os.Stat(lockPath(o, iface))
	leftLock := statErr == nil // by a dead owner, if tryLock takes it
	release, w, err := tryLock(iface, o)
	if err != nil {
		return nil, err
	}
	if w != nil && w.PID != os.Getpid() {
		return nil, fmt.Errorf("%w: %s is in use by %s; stop it first", ErrBusy, iface, w)
	}
	if release != nil {
		defer release()
	}
	st, err := readState(o, iface)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (inspect or remove %s)", iface, err, statePath(o, iface))
	}
	if st != nil {
		if st.NetNS != "" && o.NetNS == "" {
			o.NetNS = st.NetNS
		}
		if st.PID != os.Getpid() && processAlive(st.PID) {
			return nil, fmt.Errorf("%w: %s: the %s injection was recorded by pid %d, which is still running; stop it first",
				ErrBusy, iface, st.Injector, st.PID)
		}
		if idx, err := currentIndex(o, iface); err == nil && idx == 0 && st.Injector != "netem" {
			actions = append(actions, fmt.Sprintf("%s: no such interface any more; state recorded for it (%s injection, index %d, pid %d)",
				iface, st.Injector, st.Ifindex, st.PID))
		}
		did, err := cleanupState(ctx, o, st)
		actions = append(actions, did...)
		if err != nil {
			return actions, err
		}
		if err := removeState(o, iface); err != nil {
			return actions, err
		}
		actions = append(actions, fmt.Sprintf("%s: removed state file %s", iface, statePath(o, iface)))
	}
	did, err := removeLeftoverQdisc(o, iface)
	actions = append(actions, did...)
	if err != nil {
		return actions, err
	}
	did, err = removeLeftoverPktgen(o, iface)
	actions = append(actions, did...)
	if err != nil {
		return actions, err
	}
	if leftLock && release != nil {
		actions = append(actions, fmt.Sprintf("%s: removed lock file %s left by a process that died", iface, lockPath(o, iface)))
	}
	if len(actions) == 0 {
		if idx, err := currentIndex(o, iface); err == nil && idx == 0 {
			return nil, fmt.Errorf("%s: no such interface and no state recorded for it: %w", iface, os.ErrNotExist)
		}
		actions = append(actions, fmt.Sprintf("%s: clean, nothing to do", iface))
	}
	return actions, nil
}

// currentIndex returns iface's ifindex in o's namespace, or 0 when it does
// not exist.
func currentIndex(o Options, iface string) (int, error) {
	h, err := linkHandle(o)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	l, err := h.LinkByName(iface)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return 0, nil
		}
		return 0, fmt.Errorf("looking up %s: %w", iface, err)
	}
	return l.Attrs().Index, nil
}

func cleanupState(ctx context.Context, o Options, st *state) ([]string, error) {
	var actions []string
	idx, err := currentIndex(o, st.Iface)
	if err != nil {
		return nil, err
	}
	switch st.Injector {
	case "netem":
		if idx != st.Ifindex {
			return []string{fmt.Sprintf("%s: the interface recorded (index %d) is gone, and its qdiscs with it", st.Iface, st.Ifindex)}, nil
		}
		did, err := restoreQdisc(ctx, o, st)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", st.Iface, err)
		}
		actions = append(actions, st.Iface+": "+did)
	case "stall":
		if d := time.Until(st.StallUntil); d > 0 {
			if d > MaxStall+maxAckTimeout {
				return nil, fmt.Errorf("%s: state file says the partner stall lasts until %s, beyond any stall this project requests",
					st.Iface, st.StallUntil.Local().Format(time.RFC3339))
			}
			if err := waitUntil(ctx, st.StallUntil); err != nil {
				return nil, fmt.Errorf("%s: partner stall lasts until %s: %w", st.Iface, st.StallUntil.Local().Format("15:04:05"), err)
			}
			actions = append(actions, fmt.Sprintf("%s: waited for the partner stall to end at %s", st.Iface, st.StallUntil.Local().Format("15:04:05.000")))
		} else {
			actions = append(actions, fmt.Sprintf("%s: the partner stall ended by itself at %s", st.Iface, st.StallUntil.Local().Format("15:04:05.000")))
		}
	case "napi":
		did, err := restoreNapi(ctx, o, st, "/sys", "/proc")
		for _, d := range did {
			actions = append(actions, st.Iface+": "+d)
		}
		if err != nil {
			return actions, fmt.Errorf("%s: %w", st.Iface, err)
		}
	case "pause":
		actions = append(actions, fmt.Sprintf("%s: the PAUSE flood died with pid %d", st.Iface, st.PID))
		if fc := st.FlowControl; fc != nil {
			fo := fc.options(o)
			fidx, err := currentIndex(fo, fc.Iface)
			if err != nil {
				return actions, err
			}
			if fidx != fc.Ifindex {
				actions = append(actions, fmt.Sprintf("%s%s: gone (index %d), flow control not restored", fc.Iface, inNS(fc.NetNS), fc.Ifindex))
				break
			}
			if err := setPause(fo, *fc); err != nil {
				return actions, fmt.Errorf("%s: %w", fc.Iface, err)
			}
			actions = append(actions, fmt.Sprintf("%s%s: flow control back to %s", fc.Iface, inNS(fc.NetNS), fc))
		}
	}
	return actions, nil
}

// removeLeftoverQdisc deletes a root qdisc with the project's handle that
// no state file accounts for.
func removeLeftoverQdisc(o Options, iface string) ([]string, error) {
	idx, qs, err := ifaceQdiscs(o, iface)
	if err != nil {
		return nil, err
	}
	root, ok := rootQdisc(qs)
	if !ok || !IsProjectHandle(root.Handle) {
		return nil, nil
	}
	if err := deleteRoot(o, idx, root.Handle); err != nil {
		return nil, fmt.Errorf("%s: %w", iface, err)
	}
	return []string{fmt.Sprintf("%s: deleted leftover %s qdisc %s; the default qdisc is back", iface, root.Kind, fmtHandle(root.Handle))}, nil
}

// ifaceQdiscs returns iface's index and qdiscs in o's namespace; none for
// an interface that does not exist.
func ifaceQdiscs(o Options, iface string) (int, []qdiscInfo, error) {
	idx, err := currentIndex(o, iface)
	if err != nil || idx == 0 {
		return 0, nil, err
	}
	qs, err := dumpQdiscs(o, idx)
	return idx, qs, err
}

// CleanupAll runs Cleanup for every interface with a state file and every
// interface (in o's namespace) with a leftover project qdisc, then removes
// the project's pktgen devices (IFACE@N) left on any other interface.
func CleanupAll(ctx context.Context, o Options) ([]string, error) {
	ifaces, err := StaleState(o)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var actions []string
	var errs []error
	for _, i := range ifaces {
		seen[i] = true
		a, err := Cleanup(ctx, i, o)
		actions = append(actions, a...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	qs, err := dumpQdiscs(o, 0)
	if err != nil {
		return actions, errors.Join(append(errs, err)...)
	}
	h, err := linkHandle(o)
	if err != nil {
		return actions, errors.Join(append(errs, err)...)
	}
	defer h.Close()
	for _, q := range qs {
		if q.Parent != tcHRoot || !IsProjectHandle(q.Handle) {
			continue
		}
		l, err := h.LinkByIndex(q.Ifindex)
		if err != nil {
			errs = append(errs, fmt.Errorf("interface index %d: %w", q.Ifindex, err))
			continue
		}
		if seen[l.Attrs().Name] {
			continue
		}
		a, err := Cleanup(ctx, l.Attrs().Name, o)
		actions = append(actions, a...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	// pktgen devices on interfaces without a state file or a leftover
	// qdisc (a killed "txtimeout pktgen" or scenario leaves only those).
	a, err := removeProjectPktgen(o)
	actions = append(actions, a...)
	if err != nil {
		errs = append(errs, err)
	}
	if len(actions) == 0 && len(errs) == 0 {
		actions = append(actions, "clean, nothing to do")
	}
	return actions, errors.Join(errs...)
}

// removeProjectPktgen runs cleanupProjectPktgen in o's namespace.
func removeProjectPktgen(o Options) ([]string, error) {
	var acts []string
	err := inNetNS(o, func() error {
		var err error
		acts, err = cleanupProjectPktgen(pktgenproc.ThreadSelfDir)
		return err
	})
	return acts, err
}

// cleanupProjectPktgen removes, under dir (a /proc/net/pktgen), the pktgen
// devices this project leaves behind, whatever interface they are on: the
// project adds every device as IFACE@THREAD (traffic.PktgenDevice), so any
// device with an @ tag counts as the project's. A device added by hand
// without a tag is left alone unless it shares a kernel thread with one of
// them: pktgen can only empty a whole thread (rem_device_all), and the
// actions name every device that goes. pktgen is stopped first when one
// of the devices is still running. A kernel without pktgen is clean.
func cleanupProjectPktgen(dir string) ([]string, error) {
	threads, err := pktgenproc.Threads(dir)
	if err != nil {
		return nil, err
	}
	// First read every thread, so that pktgen is stopped before any
	// thread is emptied.
	type thread struct {
		pktgenproc.Thread
		mine, others []string
	}
	var todo []thread
	running := false
	for _, th := range threads {
		t := thread{Thread: th}
		for i, d := range th.Devices() {
			if pktgenproc.Tagged(d) {
				t.mine = append(t.mine, d)
				running = running || i < len(th.Running)
			} else {
				t.others = append(t.others, d)
			}
		}
		if len(t.mine) > 0 {
			todo = append(todo, t)
		}
	}
	var actions []string
	if running {
		if err := os.WriteFile(filepath.Join(dir, "pgctrl"), []byte("stop"), 0); err != nil {
			return nil, fmt.Errorf("pktgen: stopping: %w", err)
		}
		actions = append(actions, "pktgen: stopped pktgen, which was still sending")
	}
	for _, t := range todo {
		if err := os.WriteFile(t.Path, []byte("rem_device_all"), 0); err != nil {
			return actions, fmt.Errorf("pktgen: rem_device_all on %s: %w", t.Name(), err)
		}
		a := fmt.Sprintf("pktgen: removed leftover devices %s from %s", strings.Join(t.mine, " "), t.Name())
		if len(t.others) > 0 {
			a += fmt.Sprintf(" (rem_device_all removed %s with them: pktgen empties a whole thread)", strings.Join(t.others, " "))
		}
		actions = append(actions, a)
	}
	return actions, nil
}

// processAlive reports whether pid is a running process.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
