//go:build linux

package scenarios

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"txtimeout/internal/procstat"
)

// napiState describes iface's threaded setting, RT throttling and the
// kernel threads with non-default scheduling (see dutState.Napi).
func napiState(iface string) string {
	threaded, _ := os.ReadFile(filepath.Join("/sys/class/net", iface, "threaded"))
	rt, _ := os.ReadFile("/proc/sys/kernel/sched_rt_runtime_us")
	online, _ := os.ReadFile("/sys/devices/system/cpu/online")
	all := affinityList(online)
	var odd []string
	pids, _ := procstat.PIDs("/proc")
	for _, pid := range pids {
		st, err := procstat.Read("/proc", pid)
		if err != nil {
			continue
		}
		prio, err1 := st.RTPriority()
		policy, err2 := st.Policy()
		if err1 != nil || err2 != nil || st.State() == 'Z' || st.State() == 'X' {
			continue // a zombie runs nothing
		}
		comm, kthread := st.Comm, st.Kthread()
		var set unix.CPUSet
		cpus := "?"
		if unix.SchedGetaffinity(pid, &set) == nil {
			cpus = cpuList(&set)
		}
		switch {
		case kthread && (strings.HasPrefix(comm, "migration/") || strings.HasPrefix(comm, "idle_inject/") || strings.HasPrefix(comm, "watchdog/")):
			continue // SCHED_FIFO 99 by design
		case policy != 0:
			// A real-time thread: a raised ksoftirqd, a NAPI thread
			// left at SCHED_FIFO, or a hog that outlived its run.
		case kthread && strings.HasPrefix(comm, "napi/") && cpus != all:
			// A NAPI thread left pinned.
		default:
			continue
		}
		odd = append(odd, fmt.Sprintf("%s policy %d prio %d cpus %s", comm, policy, prio, cpus))
	}
	slices.Sort(odd)
	return fmt.Sprintf("threaded %s; sched_rt_runtime_us %s; threads with own scheduling [%s]",
		strings.TrimSpace(string(threaded)), strings.TrimSpace(string(rt)), strings.Join(odd, ", "))
}

// affinityList normalises a kernel CPU list ("0-1") to cpuList's form.
func affinityList(b []byte) string {
	var set unix.CPUSet
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		z := a
		if isRange {
			z, _ = strconv.Atoi(hi)
		}
		for c := a; c <= z; c++ {
			set.Set(c)
		}
	}
	return cpuList(&set)
}

func cpuList(s *unix.CPUSet) string {
	var cpus []string
	for c := 0; c < len(s)*64; c++ {
		if s.IsSet(c) {
			cpus = append(cpus, strconv.Itoa(c))
		}
	}
	return strings.Join(cpus, ",")
}
