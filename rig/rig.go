// Package rig is the virtual rig: a real Linux kernel under QEMU whose
// virtual NIC's other end is the link partner of package rig/partner, so that
// the tx-timeout scenarios run on any Linux machine.
//
// RunPackage is the one way from a test package to its run in the guest: it
// builds the package for the guest, packs it with a Go init (rig/guestinit)
// and the kernel modules into an initramfs, boots QEMU and runs it. A test
// on the host calls RunTest, which runs RunPackage and mirrors the guest's
// tests into the host's testing.T as subtests of the same names, live.
// Inside the guest, guest.Inside (package rig/guest) reports true and the
// same tests run against the DUT interface.
//
// # Environment
//
//	TXTIMEOUT_KERNEL       kernel image (vmlinuz); default: the pinned Debian package
//	TXTIMEOUT_MODULES      its module tree (lib/modules/VERSION); required with TXTIMEOUT_KERNEL
//	TXTIMEOUT_NIC          NIC model: virtio-net-pci (default), e1000, e1000e, igb, rtl8139
//	TXTIMEOUT_RIG_MORE_NICS more NICs, models separated by spaces or commas: eth1,
//	                       eth2, ... each with a host partner of its own (see Link)
//	TXTIMEOUT_RIG_TOPOLOGY host (default: every NIC's partner runs on the host) or
//	                       loop (two NICs cabled to each other; see Config.Topology)
//	TXTIMEOUT_SMP          vCPUs (default 2)
//	TXTIMEOUT_MODPARAMS    parameters for the modules the rig loads, MODULE.PARAM=VALUE
//	                       items separated by spaces or commas (see Config.ModParams),
//	                       e.g. "e1000e.IntMode=1"
//	TXTIMEOUT_EXTRA_MODULES more modules for the init to load (names separated by
//	                       spaces or commas, e.g. "lkdtm"; see Config.ExtraModules)
//	TXTIMEOUT_MEM          guest memory in MiB (default 1024)
//	TXTIMEOUT_ACCEL        tcg (default), kvm, or auto (KVM if a probe boot succeeds)
//	TXTIMEOUT_REPORT_DIR   where the guest's report files and the console log go
//	TXTIMEOUT_RIG_TIMEOUT  hard deadline of one guest run (default 15m), a Go duration
//	TXTIMEOUT_RIG_HANG     how long the guest may send nothing on its control port
//	                       once its tests run before it counts as hung (default 90s)
//	TXTIMEOUT_RIG_KEEP     1 keeps the work directory (initramfs, logs) and prints it
//	TXTIMEOUT_CACHE        cache directory for the kernel (default $XDG_CACHE_HOME/txtimeout)
//
// Inside the guest (host topology) the init sets TXTIMEOUT_RIG=1, TXTIMEOUT_IFACE=eth0,
// TXTIMEOUT_PEER_IP, TXTIMEOUT_PEER_MAC, TXTIMEOUT_PARTNER=inband,
// TXTIMEOUT_NIC, TXTIMEOUT_MODPARAMS (the parameters given, normalised,
// space-separated), TXTIMEOUT_EXTRA_MODULES (Config.ExtraModules,
// space-separated) and TXTIMEOUT_REPORT_DIR=/report; guest.NICs lists
// every NIC (Config.MoreNICs too). The loop topology's guest runs in
// hardware mode instead (see Config.Topology).
//
// # Serial ports
//
// ttyS0 is the kernel console (kept as console.log), ttyS1 the test
// binary's output, ttyS2 the control channel of package
// rig/internal/guestproto (boot, exit status, report files,
// guest.ResumePartner's requests to end a partner stall early, and the init's
// heartbeat).
//
// # Hangs
//
// While the guest's tests run, its init sends a heartbeat every 2 s with
// numbers only a scheduling kernel produces (uptime, load, the test
// binary's CPU time). When the control port stays silent for
// Config.HangTimeout (TXTIMEOUT_RIG_HANG, default 90s), Run asks QEMU's
// monitor for the VM state and each vCPU's instruction pointer, stops QEMU
// and returns ErrGuestHung with the last heartbeat and console lines,
// instead of waiting for the run's deadline.
package rig

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"txtimeout/rig/internal/guestproto"
	"txtimeout/rig/partner"
)

// Addresses of the rig's link. They come from 198.18.0.0/15 (RFC 2544
// benchmarking), which no real network routes.
var (
	PeerMAC = net.HardwareAddr{0x02, 0x74, 0x78, 0x00, 0x00, 0x01}
	PeerIP  = net.IPv4(198, 18, 0, 1).To4()
	DUTMAC  = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	DUTIP   = net.IPv4(198, 18, 0, 2).To4()
)

const (
	// DUTIface is the DUT interface's name inside the guest.
	DUTIface = guestproto.FirstIface
)

// Defaults.
const (
	DefaultNIC     = "virtio-net-pci"
	DefaultSMP     = 2
	DefaultMemMB   = 1024
	DefaultTimeout = 15 * time.Minute
	// DefaultBootTimeout bounds QEMU start to the init's first word. TCG
	// boots the Debian kernel in about 2.5 s on an idle machine; this leaves
	// room for a loaded 2-core CI machine.
	DefaultBootTimeout = 2 * time.Minute
	// DefaultHangTimeout is how long a running guest may stay silent
	// (its init sends a heartbeat every 2 s) before it counts as hung:
	// 45 heartbeats, for TCG on a loaded 2-core machine.
	DefaultHangTimeout = 90 * time.Second
)

// Config configures a guest run. The zero value means: the pinned Debian
// kernel, virtio-net-pci, 2 vCPUs, 1024 MiB, TCG, 15 minutes.
type Config struct {
	// Kernel is a kernel image (bzImage/vmlinuz) and Modules its module
	// tree (the lib/modules/VERSION directory). Both empty: the pinned
	// Debian package, fetched into the cache.
	Kernel, Modules string
	// NIC is the QEMU NIC model (see NICModels) of eth0, the DUT.
	NIC string
	// MoreNICs are the models of more NICs, eth1, eth2, ... in order
	// (at most MaxMoreNICs), each cabled to a host partner of its own on
	// a subnet of its own (see Link); the guest init loads every model's
	// modules, and guest.NICs lists them all in the guest. The host
	// topology only.
	MoreNICs []string
	// Topology is TopologyHost ("" too) or TopologyLoop: two NICs of
	// model NIC cabled to each other inside QEMU, the second one (the
	// partner port, eth1) in the guest's network namespace
	// LoopNetNS with the partner's address, served by rig/partner over
	// AF_PACKET there; the test binary runs in hardware mode
	// (TXTIMEOUT_IFACE=eth0, TXTIMEOUT_PARTNER_IFACE=eth1,
	// TXTIMEOUT_PARTNER_NETNS, no TXTIMEOUT_RIG). See LoopEnv.
	Topology string
	// ModParams are parameters for the kernel modules the rig loads, as
	// "MODULE.PARAM=VALUE" items (e.g. "e1000e.IntMode=1"), which the
	// guest init passes to finit_module: a module loaded that way does not
	// read module.param=value from the kernel command line (modprobe does
	// that, and the guest has none). Run refuses an item for a module it
	// does not load or a parameter the module does not declare. See
	// ParseModParams for the syntax.
	ModParams []string
	// ExtraModules are more modules of the module tree for the guest init
	// to load at boot, after the NIC's and the scenarios' (with their
	// dependencies), e.g. "lkdtm" for a test that provokes kernel reports
	// on purpose; guest.ModuleFile finds them. A name the tree lacks fails
	// the run like a missing NIC driver; a built-in one is left out.
	ExtraModules []string
	// SMP is the number of vCPUs, MemMB the memory in MiB.
	SMP, MemMB int
	// Accel is "tcg", "kvm" or "auto".
	Accel string
	// ReportDir receives the guest's report files and console.log.
	ReportDir string
	// Keep keeps the work directory (initramfs, logs) and prints its path.
	Keep bool
	// Timeout is the hard deadline of the whole run; BootTimeout the
	// deadline from QEMU's start to the guest init's first word.
	Timeout, BootTimeout time.Duration
	// HangTimeout is how long the guest may send nothing on its control
	// port once its tests run (its init sends a heartbeat every 2 s)
	// before Run stops QEMU with ErrGuestHung.
	HangTimeout time.Duration
	// GuestEnv is added to the guest test binary's environment
	// (KEY=value items): the host's settings, which the guest does not
	// see otherwise (harness.Config.GuestEnv). A key the rig sets for its
	// guest itself (TXTIMEOUT_IFACE, TXTIMEOUT_RIG, ...) is refused.
	GuestEnv []string
	// Progress receives one line per stage (fetching kernel, building
	// initramfs, booting, running test N). Nil: no progress.
	Progress io.Writer
	// PartnerLogf receives the link partner's log lines. Nil: discarded.
	PartnerLogf func(format string, args ...any)

	// crashForTest makes the guest init crash the kernel (test seam).
	crashForTest bool
	// freezeHeartbeatAfter makes the guest init stop its heartbeat after
	// that many (test seam of the hang detector).
	freezeHeartbeatAfter int
}

// ConfigFromEnv reads the Config from the TXTIMEOUT_* variables listed in
// the package documentation. Malformed numbers are ignored (the default
// applies); Run reports values out of range and malformed module
// parameters.
func ConfigFromEnv() Config {
	c := Config{
		Kernel:    os.Getenv("TXTIMEOUT_KERNEL"),
		Modules:   os.Getenv("TXTIMEOUT_MODULES"),
		NIC:       os.Getenv("TXTIMEOUT_NIC"),
		Accel:     os.Getenv("TXTIMEOUT_ACCEL"),
		ReportDir: os.Getenv("TXTIMEOUT_REPORT_DIR"),
		Keep:      os.Getenv("TXTIMEOUT_RIG_KEEP") == "1",
		// Checked by Run (withDefaults): a malformed item must fail the
		// run, not be dropped.
		ModParams:    splitModParams(os.Getenv("TXTIMEOUT_MODPARAMS")),
		ExtraModules: strings.FieldsFunc(os.Getenv("TXTIMEOUT_EXTRA_MODULES"), isListSep),
		Topology:     os.Getenv("TXTIMEOUT_RIG_TOPOLOGY"),
	}
	if more := strings.FieldsFunc(os.Getenv("TXTIMEOUT_RIG_MORE_NICS"), isListSep); len(more) > 0 {
		c.MoreNICs = more
	}
	if n, err := strconv.Atoi(os.Getenv("TXTIMEOUT_SMP")); err == nil {
		c.SMP = n
	}
	if n, err := strconv.Atoi(os.Getenv("TXTIMEOUT_MEM")); err == nil {
		c.MemMB = n
	}
	if d, err := time.ParseDuration(os.Getenv("TXTIMEOUT_RIG_TIMEOUT")); err == nil {
		c.Timeout = d
	}
	if d, err := time.ParseDuration(os.Getenv("TXTIMEOUT_RIG_HANG")); err == nil {
		c.HangTimeout = d
	}
	return c
}

// Result describes a finished guest run.
type Result struct {
	// ExitCode is the guest test binary's exit status (0 pass, 1 fail).
	ExitCode int
	// BootTime runs from the start of Run to the first test running in the
	// guest ("=== RUN"); zero if no test ran. GuestBootTime runs from
	// QEMU's start to the init's first word.
	BootTime, GuestBootTime time.Duration
	// Kernel is the guest kernel's release (the module tree's name).
	Kernel string
	// NIC is the NIC model of eth0.
	NIC string
	// Topology is the topology the guest had (TopologyHost or
	// TopologyLoop).
	Topology string
	// Links are the guest's NICs, eth0 first, with what their host
	// partners counted (zero on the loop topology, whose partner runs
	// in the guest).
	Links []LinkResult
	// ModParams are the module parameters the guest's modules were
	// loaded with (Config.ModParams, normalised).
	ModParams []string
	// ConsoleLog is the kernel console text (the last 4 MiB);
	// ConsoleLogPath the file it is kept in, if it was kept.
	ConsoleLog, ConsoleLogPath string
	// ReportDir holds the report files copied out of the guest, if
	// Config.ReportDir was set; ReportFiles names them.
	ReportDir   string
	ReportFiles []string
	// WorkDir is the kept work directory ("" when removed).
	WorkDir string
	// QEMUCommand is the QEMU command line, for reproduction.
	QEMUCommand []string
	// PartnerStats are eth0's link partner's counters at the end
	// (Links[0].PartnerStats).
	PartnerStats partner.Stats
	// Resumes are the guest's ResumePartner requests, in order.
	Resumes []ResumeRequest
	// Heartbeats counts the guest init's heartbeats, and MaxSilence is the
	// longest time without a control line from READY to EXIT (or to the
	// end, if the guest never reported EXIT).
	Heartbeats int
	MaxSilence time.Duration
}

// Errors of Run, for errors.Is.
var (
	// ErrQEMUMissing: qemu-system-x86_64 is not installed.
	ErrQEMUMissing = errors.New("qemu-system-x86_64 not found in PATH (install the Debian package qemu-system-x86)")
	// ErrKernelMissing: the kernel image or its module tree is missing.
	ErrKernelMissing = errors.New("kernel not found")
	// ErrModuleNotFound: a module the rig needs is neither a file in the
	// module tree nor built in. See ModuleError.
	ErrModuleNotFound = errors.New("kernel module not found")
	// ErrNICUnsupported: the NIC model is unknown or this QEMU lacks it.
	ErrNICUnsupported = errors.New("NIC model not supported")
	// ErrBootTimeout: the guest init did not speak by the boot deadline.
	ErrBootTimeout = errors.New("guest did not boot by its deadline")
	// ErrGuestPanic: the guest kernel panicked.
	ErrGuestPanic = errors.New("guest kernel panicked")
	// ErrGuestDied: QEMU exited before the guest reported an exit status.
	ErrGuestDied = errors.New("guest stopped before reporting a result")
	// ErrGuestInit: the guest init could not prepare the guest or run the tests.
	ErrGuestInit = errors.New("guest init failed")
	// ErrGuestHung: the guest sent nothing on its control port for
	// Config.HangTimeout while its tests ran (no heartbeat): its kernel
	// hung or QEMU stalled. Run stopped QEMU.
	ErrGuestHung = errors.New("the guest made no progress")
	// ErrRunTimeout: the run exceeded Config.Timeout.
	ErrRunTimeout = errors.New("guest run exceeded its deadline")
)

// ModuleError names a module the rig needs but the kernel lacks.
type ModuleError struct {
	Module string // e.g. "sch_netem"
	Kernel string // kernel release, e.g. "6.1.0-56-amd64"
	Dir    string // module tree searched
	// Reason says why the rig needs it.
	Reason string
}

func (e *ModuleError) Error() string {
	s := fmt.Sprintf("kernel module %s not found for kernel %s (neither a .ko file under %s nor listed in modules.builtin)", e.Module, e.Kernel, e.Dir)
	if e.Reason != "" {
		s += "; needed for " + e.Reason
	}
	return s
}

// Is makes errors.Is(err, ErrModuleNotFound) true.
func (e *ModuleError) Is(target error) bool { return target == ErrModuleNotFound }

// NICModel describes a QEMU NIC model the rig can give the guest.
type NICModel struct {
	// Name is what users select (-nic), QEMU's -device name.
	Name string
	// Modules are the guest drivers to load (dependencies are resolved
	// from the modules themselves). virtio_net does not depend on the
	// PCI transport, so virtio_pci is named explicitly.
	Modules []string
	// Note is said when the model is selected.
	Note string
}

// NICModels are the NIC models the rig knows, default first.
var NICModels = []NICModel{
	{Name: "virtio-net-pci", Modules: []string{"virtio_pci", "virtio_net"}},
	{Name: "e1000", Modules: []string{"e1000"}, Note: "QEMU's e1000 always completes TX descriptors, so a partner stall cannot stop its queue; NapiStarve does (its driver cleans TX in NAPI poll and resets on a timeout)"},
	{Name: "e1000e", Modules: []string{"e1000e"}},
	{Name: "igb", Modules: []string{"igb"}, Note: "QEMU has the igb model since 8.0"},
	// QEMU's rtl8139 reports PCI revision 0x20 (an RTL8139C+), which
	// 8139too refuses ("use 8139cp") and 8139cp drives.
	{Name: "rtl8139", Modules: []string{"8139cp"}},
}

// scenarioModules are loaded whatever the NIC: the scenarios need netem
// and pktgen, and a rig without them is broken, not a reason to skip.
var scenarioModules = []struct{ name, reason string }{
	{"sch_netem", "the NetemDelay scenario (CONFIG_NET_SCH_NETEM)"},
	{"pktgen", "the Pktgen scenarios (CONFIG_NET_PKTGEN)"},
}

// LookupNIC returns the NIC model named name ("" is the default).
func LookupNIC(name string) (NICModel, error) {
	if name == "" {
		name = DefaultNIC
	}
	for _, m := range NICModels {
		if m.Name == name {
			return m, nil
		}
	}
	names := make([]string, len(NICModels))
	for i, m := range NICModels {
		names[i] = m.Name
	}
	return NICModel{}, fmt.Errorf("%w: %q (choose one of %s)", ErrNICUnsupported, name, strings.Join(names, ", "))
}

// withDefaults fills in defaults and checks ranges.
func (c Config) withDefaults() (Config, error) {
	if c.NIC == "" {
		c.NIC = DefaultNIC
	}
	if c.SMP == 0 {
		c.SMP = DefaultSMP
	}
	if c.MemMB == 0 {
		c.MemMB = DefaultMemMB
	}
	if c.Accel == "" {
		c.Accel = "tcg"
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.BootTimeout == 0 {
		c.BootTimeout = DefaultBootTimeout
	}
	if c.HangTimeout == 0 {
		c.HangTimeout = DefaultHangTimeout
	}
	if c.BootTimeout > c.Timeout {
		c.BootTimeout = c.Timeout
	}
	switch {
	case c.SMP < 1 || c.SMP > 64:
		return c, fmt.Errorf("rig: %d vCPUs out of range 1..64", c.SMP)
	case c.MemMB < 256 || c.MemMB > 65536:
		return c, fmt.Errorf("rig: %d MiB of guest memory out of range 256..65536", c.MemMB)
	case c.Accel != "tcg" && c.Accel != "kvm" && c.Accel != "auto":
		return c, fmt.Errorf("rig: accelerator %q: want tcg, kvm or auto", c.Accel)
	case c.Timeout < 0 || c.BootTimeout < 0 || c.HangTimeout < 0:
		return c, fmt.Errorf("rig: negative timeout")
	case c.HangTimeout < 2*guestproto.HeartbeatInterval:
		return c, fmt.Errorf("rig: hang timeout %v is shorter than two heartbeats (%v)", c.HangTimeout, 2*guestproto.HeartbeatInterval)
	case (c.Kernel == "") != (c.Modules == ""):
		return c, fmt.Errorf("rig: a kernel needs its modules and modules their kernel (give both -kernel and -modules): %w", ErrKernelMissing)
	}
	if err := c.checkTopology(); err != nil {
		return c, err
	}
	mp, err := normalizeModParams(c.ModParams)
	if err != nil {
		return c, fmt.Errorf("rig: %w", err)
	}
	c.ModParams = mp
	em, err := normalizeExtraModules(c.ExtraModules)
	if err != nil {
		return c, fmt.Errorf("rig: %w", err)
	}
	c.ExtraModules = em
	return c, nil
}

func isListSep(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }

// normalizeExtraModules checks Config.ExtraModules: module names (dashes
// become underscores, as the kernel spells them), each once, in order.
func normalizeExtraModules(names []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" || strings.ContainsAny(n, "/=. \t\n\"'") {
			return nil, fmt.Errorf("extra module %q: want a module name such as lkdtm (no path, no .ko)", n)
		}
		n = modName(n)
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

// wantedModules lists the modules a run loads, before dependencies: the
// NICs' (each model's once), the scenarios', then the extra ones, with why
// each is needed.
func wantedModules(nics []NICModel, extra []string) ([]string, map[string]string) {
	var want []string
	reasons := map[string]string{}
	for _, nic := range nics {
		for _, m := range nic.Modules {
			if _, ok := reasons[m]; !ok {
				want = append(want, m)
				reasons[m] = "the " + nic.Name + " NIC"
			}
		}
	}
	for _, m := range scenarioModules {
		want = append(want, m.name)
		reasons[m.name] = m.reason
	}
	for _, m := range extra {
		if _, ok := reasons[m]; !ok {
			want = append(want, m)
			reasons[m] = "-extra-module / TXTIMEOUT_EXTRA_MODULES"
		}
	}
	return want, reasons
}

func (c Config) progressf(format string, a ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, "rig: "+format+"\n", a...)
	}
}
