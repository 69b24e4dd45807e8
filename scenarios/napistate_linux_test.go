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
)

// napiState describes iface's threaded setting, RT throttling and the
// kernel threads with non-default scheduling (see dutState.Napi).
func napiState(iface string) string {
	threaded, _ := os.ReadFile(filepath.Join("/sys/class/net", iface, "threaded"))
	rt, _ := os.ReadFile("/proc/sys/kernel/sched_rt_runtime_us")
	online, _ := os.ReadFile("/sys/devices/system/cpu/online")
	all := affinityList(online)
	var odd []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		comm, f, ok := statFields(string(b))
		// Field 9 is flags (f[6]), 40 rt_priority (f[37]), 41 policy (f[38]).
		if !ok || len(f) < 39 || f[0] == "Z" || f[0] == "X" {
			continue // a zombie runs nothing
		}
		flags, _ := strconv.ParseUint(f[6], 10, 64)
		kthread := flags&0x00200000 != 0 // PF_KTHREAD
		var set unix.CPUSet
		cpus := "?"
		if unix.SchedGetaffinity(pid, &set) == nil {
			cpus = cpuList(&set)
		}
		switch {
		case kthread && (strings.HasPrefix(comm, "migration/") || strings.HasPrefix(comm, "idle_inject/") || strings.HasPrefix(comm, "watchdog/")):
			continue // SCHED_FIFO 99 by design
		case f[38] != "0":
			// A real-time thread: a raised ksoftirqd, a NAPI thread
			// left at SCHED_FIFO, or a hog that outlived its run.
		case kthread && strings.HasPrefix(comm, "napi/") && cpus != all:
			// A NAPI thread left pinned.
		default:
			continue
		}
		odd = append(odd, fmt.Sprintf("%s policy %s prio %s cpus %s", comm, f[38], f[37], cpus))
	}
	slices.Sort(odd)
	return fmt.Sprintf("threaded %s; sched_rt_runtime_us %s; threads with own scheduling [%s]",
		strings.TrimSpace(string(threaded)), strings.TrimSpace(string(rt)), strings.Join(odd, ", "))
}

// statFields splits /proc/PID/stat into comm and the fields after it.
func statFields(b string) (string, []string, bool) {
	open, end := strings.IndexByte(b, '('), strings.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", nil, false
	}
	return b[open+1 : end], strings.Fields(b[end+1:]), true
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
