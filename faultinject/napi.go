package faultinject

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"txtimeout/drivers"
)

// NAPI starvation (kernel-facts.md section 9): with threaded NAPI on, a
// device's poll loops run in kthreads named "napi/IFACE-ID". Pinned to one
// CPU that a SCHED_FIFO hog holds, they never run: TX completions done in
// NAPI poll stop, the ring fills, the driver stops its queue and the TX
// watchdog fires, with no link partner involved. Drivers that clean TX
// elsewhere (in the hard IRQ, or in start_xmit) are not stopped by it, and
// the scenario says so.

// Bounds and defaults of a NAPI starvation.
const (
	// MaxNapiHog bounds the hog: RCU stall warnings start at 21 s of a
	// CPU that never schedules, and 10 s leaves the watchdog (5 s by
	// default) room to fire twice.
	MaxNapiHog = 10 * time.Second
	// DefaultHogPriority is the hog's SCHED_FIFO priority. The NAPI
	// threads run at SCHED_FIFO 1 below it (on 6.12+ the fair server
	// would give ordinary tasks about 5 % under RT load), and the hogged
	// CPU's ksoftirqd at one above it (starved, it would hold every
	// softirq of that CPU, timers and NET_TX frees included).
	DefaultHogPriority = 50
	// napiThreadPriority is the NAPI threads' SCHED_FIFO priority.
	napiThreadPriority = 1
	// AutoCPU asks NewNapiStarve to pick the hog CPU: the highest online
	// CPU.
	AutoCPU = -1
)

// NapiConfig configures a NAPI starvation.
type NapiConfig struct {
	// For is how long the hog runs at most (MaxNapiHog at the most).
	// Restore ends it earlier: scenarios release at the first timeout
	// signal so that the driver's reset can run.
	For time.Duration
	// CPU is the CPU to starve; AutoCPU (-1) picks the highest online
	// CPU. The calling process's own threads are moved off it while the
	// hog runs, so that the suite's observers keep running.
	CPU int
	// Priority is the hog's SCHED_FIFO priority, 2..98;
	// DefaultHogPriority when zero.
	Priority int
}

func (c NapiConfig) validate() (NapiConfig, error) {
	if c.Priority == 0 {
		c.Priority = DefaultHogPriority
	}
	switch {
	case c.For < 100*time.Millisecond || c.For > MaxNapiHog:
		return c, fmt.Errorf("%w: hog duration %v out of range [100ms..%v]", ErrBadConfig, c.For, MaxNapiHog)
	case c.CPU < AutoCPU || c.CPU > 4095:
		return c, fmt.Errorf("%w: CPU %d out of range (-1 for the highest online CPU, or 0..4095)", ErrBadConfig, c.CPU)
	case c.Priority < napiThreadPriority+1 || c.Priority > 98:
		// ksoftirqd goes one above the hog, and 99 is the maximum.
		return c, fmt.Errorf("%w: hog priority %d out of range [2..98]", ErrBadConfig, c.Priority)
	}
	return c, nil
}

// parseCPUList parses a kernel CPU list ("0-3,5,7-8", as in
// /sys/devices/system/cpu/online).
func parseCPUList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("CPU list %q: bad number %q", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("CPU list %q: bad range %q", s, part)
			}
		}
		if b > 4095 {
			return nil, fmt.Errorf("CPU list %q: CPU %d out of range", s, b)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	sort.Ints(cpus)
	return cpus, nil
}

// formatCPUList is the inverse of parseCPUList (for state files and
// messages).
func formatCPUList(cpus []int) string {
	var parts []string
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(cpus[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", cpus[i], cpus[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// commLen is TASK_COMM_LEN-1: kernels before 5.17 show kthread names cut
// to 15 bytes in /proc.
const commLen = 15

// napiThreadOf reports whether a kthread named name is a NAPI thread of
// iface ("napi/IFACE-ID", net/core/dev.c napi_kthread_create). A name cut
// to 15 bytes matches when it is a prefix of that form; truncated says so,
// so that the caller can refuse an ambiguous match (two interfaces whose
// names share the first ten bytes).
func napiThreadOf(name, iface string) (ok, truncated bool) {
	want := "napi/" + iface + "-"
	if rest, found := strings.CutPrefix(name, want); found && allDigits(rest) {
		// 15 bytes may be a name cut inside the id.
		return true, len(name) == commLen
	}
	if len(name) == commLen && strings.HasPrefix(want, name) {
		return true, true // cut inside "napi/IFACE-"
	}
	return false, false
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// txIRQVectors returns the names of the interrupt vectors in text (the
// contents of /proc/interrupts) that belong to iface and carry its TX
// completions alone: "eth0-tx-0" (e1000e in MSI-X mode), "eth0-TxRx-0"
// is both and does not count. A driver that cleans TX in the hard IRQ of
// such a vector is not stopped by starving its NAPI threads.
func txIRQVectors(text, iface string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		name := f[len(f)-1]
		rest, ok := strings.CutPrefix(name, iface+"-")
		if !ok {
			continue
		}
		l := strings.ToLower(rest)
		if strings.HasPrefix(l, "tx") && !strings.HasPrefix(l, "txrx") {
			out = append(out, name)
		}
	}
	return out
}

// NapiDiagnosis says why starving a device's NAPI threads did not stop
// its TX completions, from what the kernel shows: the driver, the
// device's interrupt vectors (interrupts is /proc/interrupts) and the
// load (pktgen or not). It returns the likeliest cause in plain words.
func NapiDiagnosis(driver, iface, interrupts string, pktgen bool) string {
	if v := txIRQVectors(interrupts, iface); len(v) > 0 {
		return fmt.Sprintf("%s has a TX-only interrupt vector (%s in /proc/interrupts): %s cleans TX in its hard IRQ handler, which no thread priority can starve "+
			"(e1000e without MSI-X cleans TX in NAPI: TXTIMEOUT_MODPARAMS=e1000e.IntMode=1)", iface, strings.Join(v, ", "), orUnknown(driver))
	}
	// Drivers known to complete TX outside NAPI poll, and where
	// (measured on the virtual rig, kernel-facts.md section 9).
	if d, ok := drivers.Lookup(driver); ok {
		if d.NapiBypass != "" {
			return d.NapiBypass
		}
		if d.XmitReclaim != "" && !pktgen {
			return d.XmitReclaim + ", so every new packet reclaims the ring; pktgen keeps the ring full: run NapiStarve/Pktgen"
		}
	}
	return fmt.Sprintf("%s completes TX outside its NAPI poll (in the hard IRQ, a tasklet or start_xmit): read its interrupt handler", orUnknown(driver))
}

func orUnknown(driver string) string {
	if driver == "" {
		return "the driver"
	}
	return driver
}
