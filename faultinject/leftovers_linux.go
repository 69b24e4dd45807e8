package faultinject

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"txtimeout/internal/pktgenproc"
	"txtimeout/internal/procstat"
)

// Leftovers says what the project has left behind, after a run that
// should have restored everything, without changing anything: one line
// per leftover, none when all is clean. It looks at
//
//   - the state files in o's state directory (every interface: an
//     injection that did not restore), with what each still records (a
//     NAPI hog, RT throttling, threaded, flow control to set back);
//   - the qdiscs on iface, in o's namespace, with the project's handle
//     (IsProjectHandle);
//   - the pktgen devices in o's namespace, on any interface (the
//     project's loads remove theirs when they end);
//   - NAPI hog processes whose parent has died or is this process;
//   - iface's NAPI kernel threads left at SCHED_FIFO, as NapiStarve
//     sets them.
//
// Cleanup removes what it can of these. The error joins the checks that
// could not be made; the lines found are returned with it.
func Leftovers(iface string, o Options) ([]string, error) {
	if err := validIfaceName(iface); err != nil {
		return nil, err
	}
	var out []string
	var errs []error
	add := func(lines []string, err error) {
		out = append(out, lines...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(leftoverState(o))
	add(leftoverQdiscs(o, iface))
	add(leftoverPktgen(o))
	add(leftoverHogs("/proc", os.Getpid()))
	add(leftoverNapiThreads("/proc", iface))
	return out, errors.Join(errs...)
}

// leftoverState describes every state file left.
func leftoverState(o Options) ([]string, error) {
	ifaces, err := StaleState(o)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, iface := range ifaces {
		st, err := readState(o, iface)
		if err != nil {
			out = append(out, fmt.Sprintf("state file left for %s (%v)", iface, err))
			continue
		}
		if st == nil {
			continue // removed meanwhile
		}
		line := fmt.Sprintf("state file left for %s (%s injection by pid %d)", iface, st.Injector, st.PID)
		if d := stateDetail(st); d != "" {
			line += ": " + d
		}
		out = append(out, line)
	}
	return out, nil
}

// stateDetail names what a state file still records as changed.
func stateDetail(st *state) string {
	var d []string
	if st.Saved != nil || st.QdiscHandle != 0 {
		d = append(d, fmt.Sprintf("root qdisc to put back: %s", st.Saved))
	}
	if fc := st.FlowControl; fc != nil {
		d = append(d, fmt.Sprintf("flow control of %s%s to set back to %s", fc.Iface, inNS(fc.NetNS), fc))
	}
	if n := st.Napi; n != nil {
		if n.HogPID != 0 && hogAlive(n.HogPID, n.HogStart) {
			d = append(d, fmt.Sprintf("NAPI hog pid %d still running", n.HogPID))
		}
		if n.RTRuntime != "" {
			d = append(d, "sched_rt_runtime_us to set back to "+n.RTRuntime)
		}
		if len(n.Threads) > 0 {
			d = append(d, fmt.Sprintf("scheduling of %d threads to set back", len(n.Threads)))
		}
		if n.Threaded != "" {
			d = append(d, "threaded to set back to "+n.Threaded)
		}
	}
	return strings.Join(d, "; ")
}

// hogAlive reports whether the process pid, started at start, still runs.
func hogAlive(pid int, start uint64) bool {
	_, now, err := procStart("/proc", pid)
	return err == nil && now == start
}

// leftoverQdiscs lists iface's qdiscs with the project's handle.
func leftoverQdiscs(o Options, iface string) ([]string, error) {
	_, qs, err := ifaceQdiscs(o, iface)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", iface, err)
	}
	var out []string
	for _, q := range qs {
		if IsProjectHandle(q.Handle) {
			out = append(out, fmt.Sprintf("%s qdisc %s left on %s", q.Kind, fmtHandle(q.Handle), iface))
		}
	}
	return out, nil
}

// leftoverPktgen lists every pktgen device in o's namespace.
func leftoverPktgen(o Options) ([]string, error) {
	var devs []string
	err := inNetNS(o, func() error {
		var err error
		devs, err = pktgenproc.Devices(pktgenproc.ThreadSelfDir)
		return err
	})
	var out []string
	for _, d := range devs {
		out = append(out, "pktgen device left: "+d)
	}
	return out, err
}

// leftoverHogs lists the NAPI hog processes under proc whose parent (as
// the hog's environment names it) is dead or is self: a hog of a running
// injection elsewhere is not left behind.
func leftoverHogs(proc string, self int) ([]string, error) {
	pids, err := procstat.PIDs(proc)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, pid := range pids {
		b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "environ"))
		if err != nil {
			continue // gone, or a kernel thread
		}
		for _, kv := range strings.Split(string(b), "\x00") {
			spec, ok := strings.CutPrefix(kv, hogEnv+"=")
			if !ok {
				continue
			}
			f := strings.Fields(spec)
			parent := 0
			if len(f) == 4 {
				parent, _ = strconv.Atoi(f[2])
			}
			if parent == self || !processAlive(parent) {
				out = append(out, fmt.Sprintf("NAPI hog process %d still running (its parent %d is gone or is this process)", pid, parent))
			}
		}
	}
	return out, nil
}

// leftoverNapiThreads lists iface's NAPI kernel threads (napi/IFACE-ID)
// at SCHED_FIFO: NapiStarve raises them for its starvation and puts back
// their scheduling, which by default is SCHED_OTHER.
func leftoverNapiThreads(proc, iface string) ([]string, error) {
	var out []string
	err := eachKthread(proc, func(pid int, name string, _ uint64) {
		// A name cut at 15 bytes (before 5.17) counts too: a leftover
		// is worth a look even if it may be another interface's.
		if ok, _ := napiThreadOf(name, iface); !ok {
			return
		}
		a, err := unix.SchedGetAttr(pid, 0)
		if err == nil && a.Policy == unix.SCHED_FIFO {
			out = append(out, fmt.Sprintf("NAPI thread %s (pid %d) left at SCHED_FIFO %d", name, pid, a.Priority))
		}
	})
	return out, err
}
