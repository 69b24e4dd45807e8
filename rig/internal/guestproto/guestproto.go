// Package guestproto is the contract between the virtual rig's host side
// and its guest init: the configuration file the host packs into the
// initramfs and the line protocol the init speaks on the control serial port.
//
// # Serial ports
//
// ttyS0 is the kernel console, ttyS1 carries the test binary's stdout and
// stderr byte for byte, and ttyS2 carries control lines, each beginning with
// Prefix:
//
//	TXTO HELLO                     init started
//	TXTO MODULE name               module loaded (or built in)
//	TXTO READY iface               network up, test binary about to start
//	TXTO ALIVE seq=N uptime_ms=N   heartbeat while the test binary runs
//	  load1=F test_cpu_ms=N        (see Heartbeat)
//	TXTO RESUME nonce [iface]      the test binary asks the host to end the
//	                               stall of iface's link partner now (see
//	                               below); without iface, the first NIC's
//	TXTO FILE name size            a report file follows as base64 lines,
//	...                            ended by
//	TXTO ENDFILE
//	TXTO ERROR message             init failed; EXIT follows
//	TXTO EXIT code                 the test binary's exit status; power-off follows
//
// Every line but RESUME comes from the init. From READY until the test
// binary has exited and its output has drained the init writes only ALIVE
// lines, one every
// HeartbeatInterval, each a single write(2) of the whole line: the host
// takes a silent control port as a hung guest (its kernel no longer
// schedules, or QEMU stalled). The numbers in the line come from the
// guest kernel (/proc/uptime, /proc/loadavg, the test binary's
// /proc/PID/stat), so a heartbeat proves the kernel schedules, not only
// that the init runs, and the last one tells the host where the guest
// stood. RESUME is the one line the test binary
// itself writes, while it runs, as a single write(2) of the whole line (so
// it cannot interleave with anything): a stalled partner does not read the
// DUT link, so the in-band control frame cannot end a stall, but the host,
// which owns the partner, can. The nonce (any token without spaces) only
// names the request in the host's log; iface names the guest interface
// whose partner is meant (Config.NICs), the first NIC's when left out. The
// host answers nothing: the guest sees the effect, its TX queue draining
// again.
package guestproto

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Paths inside the guest.
const (
	ConfigPath = "/rig.json"
	TestPath   = "/txtimeout.test"
	ModuleDir  = "/lib/modules/rig"
	ReportDir  = "/report"
)

// Serial devices inside the guest.
const (
	ConsoleTTY = "ttyS0"
	OutputTTY  = "/dev/ttyS1"
	ControlTTY = "/dev/ttyS2"
)

// Prefix begins every control line.
const Prefix = "TXTO "

// Control line verbs.
const (
	Hello   = "HELLO"
	Module  = "MODULE"
	Ready   = "READY"
	Alive   = "ALIVE"
	Resume  = "RESUME"
	File    = "FILE"
	EndFile = "ENDFILE"
	Error   = "ERROR"
	Exit    = "EXIT"
)

// HeartbeatInterval is how often the init sends ALIVE while the test
// binary runs.
const HeartbeatInterval = 2 * time.Second

// ExitInitFailed is the exit status the init reports when it could not run
// the test binary at all.
const ExitInitFailed = 125

// Config is what the init reads from ConfigPath.
type Config struct {
	// Modules in load order (dependencies first).
	Modules []ModuleFile `json:"modules"`
	// NICs are the guest's NICs, the DUT's first (eth0). The init finds
	// each by its MAC address, names it, gives it its address and brings
	// it up; a NIC with a NetNS is a loop topology's partner port.
	NICs []NIC `json:"nics"`
	// Env is added to the test binary's environment.
	Env []string `json:"env"`
	// Args are the test binary's arguments.
	Args []string `json:"args"`
	// Probe makes the init report HELLO and READY and power off without
	// running anything (the KVM probe boot).
	Probe bool `json:"probe,omitempty"`
	// CrashForTest makes the init crash the kernel (sysrq c) right after
	// HELLO: the rig's test of its panic report.
	CrashForTest bool `json:"crash_for_test,omitempty"`
	// FreezeHeartbeatAfter, when positive, makes the init send that many
	// heartbeats and then no more while the test binary keeps running:
	// the rig's test of its hang detector.
	FreezeHeartbeatAfter int `json:"freeze_heartbeat_after,omitempty"`
}

// NIC is one of the guest's NICs and its link partner.
type NIC struct {
	// Model is the QEMU model (e1000e); Iface the name the init gives
	// the device (eth1); MAC the device's address, which the init finds
	// it by.
	Model string `json:"model"`
	Iface string `json:"iface"`
	MAC   string `json:"mac"`
	// Addr is the interface's address in CIDR form (198.18.1.2/24).
	Addr string `json:"addr"`
	// PeerIP and PeerMAC are the link partner's addresses.
	PeerIP  string `json:"peer_ip"`
	PeerMAC string `json:"peer_mac"`
	// NetNS, if set, is the name of a network namespace (made under
	// NetNSDir, the way ip netns add does) that the init moves the NIC
	// into: the loop topology's partner port, where the init runs the
	// link partner (LoopPartnerEnv).
	NetNS string `json:"netns,omitempty"`
}

// FirstIface is the first NIC's interface name, the DUT's.
const FirstIface = "eth0"

// NetNSDir is where named network namespaces live (iproute2's
// /run/netns).
const NetNSDir = "/run/netns"

// LoopPartnerEnv, set to an interface name in the environment of the test
// binary, makes it serve the loop topology's link partner (rig/partner over
// AF_PACKET) on that interface instead of running tests: the init starts
// it so in the partner port's namespace (package rig hooks it in). The
// partner answers for LoopPartnerIPEnv's address, writes one line to file
// descriptor 3 once it serves, and stops on SIGTERM.
const (
	LoopPartnerEnv   = "TXTIMEOUT_RIG_LOOP_PARTNER"
	LoopPartnerIPEnv = "TXTIMEOUT_RIG_LOOP_PARTNER_IP"
)

// ModuleFile is one kernel module to load.
type ModuleFile struct {
	Name string `json:"name"`
	// Path inside the guest.
	Path string `json:"path"`
	// Compressed asks the kernel to decompress the file itself
	// (finit_module with MODULE_INIT_COMPRESSED_FILE, CONFIG_MODULE_DECOMPRESS).
	Compressed bool `json:"compressed,omitempty"`
	// Params is finit_module's param_values: "param=value" items
	// separated by spaces, as the host checked them ("IntMode=1").
	Params string `json:"params,omitempty"`
}

// Heartbeat is the argument of an ALIVE line: key=value fields
// separated by spaces. Unknown keys are ignored, so that fields can be
// added; seq and uptime_ms are required.
type Heartbeat struct {
	// Seq counts the heartbeats from 1.
	Seq int
	// Uptime is the guest kernel's uptime (/proc/uptime).
	Uptime time.Duration
	// Load1 is the one-minute load average (/proc/loadavg); -1 unknown.
	Load1 float64
	// TestCPU is the CPU time (user and system) the test binary has used
	// so far (/proc/PID/stat); -1 unknown.
	TestCPU time.Duration
}

// String formats a as the argument of an ALIVE line.
func (a Heartbeat) String() string {
	s := fmt.Sprintf("seq=%d uptime_ms=%d", a.Seq, a.Uptime.Milliseconds())
	if a.Load1 >= 0 {
		s += " load1=" + strconv.FormatFloat(a.Load1, 'f', 2, 64)
	}
	if a.TestCPU >= 0 {
		s += fmt.Sprintf(" test_cpu_ms=%d", a.TestCPU.Milliseconds())
	}
	return s
}

// ParseHeartbeat parses the argument of an ALIVE line.
func ParseHeartbeat(arg string) (Heartbeat, error) {
	a := Heartbeat{Seq: -1, Uptime: -1, Load1: -1, TestCPU: -1}
	for _, f := range strings.Fields(arg) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return Heartbeat{}, fmt.Errorf("heartbeat field %q: want key=value", f)
		}
		var err error
		switch k {
		case "seq":
			a.Seq, err = strconv.Atoi(v)
			if err == nil && a.Seq < 0 {
				err = errors.New("negative")
			}
		case "uptime_ms":
			a.Uptime, err = parseMillis(v)
		case "load1":
			a.Load1, err = strconv.ParseFloat(v, 64)
			if err == nil && !(a.Load1 >= 0 && a.Load1 < 1e6) {
				err = errors.New("out of range")
			}
		case "test_cpu_ms":
			a.TestCPU, err = parseMillis(v)
		default:
			continue
		}
		if err != nil {
			return Heartbeat{}, fmt.Errorf("heartbeat field %s=%q: %w", k, v, err)
		}
	}
	if a.Seq < 0 || a.Uptime < 0 {
		return Heartbeat{}, fmt.Errorf("heartbeat %q: want seq and uptime_ms", arg)
	}
	return a, nil
}

// parseMillis parses a non-negative count of milliseconds that fits a
// time.Duration.
func parseMillis(v string) (time.Duration, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > int64(time.Duration(1<<62)/time.Millisecond) {
		return 0, errors.New("out of range")
	}
	return time.Duration(n) * time.Millisecond, nil
}
