// Package drivers is the suite's one table of what it knows about each network driver: its tx-timeout handler, its kernel log lines, how it completes TX, and the QEMU models that emulate its hardware.
//
// The table is data: Table holds one plain row per driver, Common the
// log lines that many drivers print alike. Packages kmsg (which compiles
// the lines), harness (the preflight's driver check) and faultinject
// (which interfaces to refuse, why NAPI starvation fails) read it; NICs
// lists the QEMU models for the virtual rig. Teach the suite a new driver
// by adding a row, and a line for each of its patterns to kmsg's tests.
package drivers

import (
	"strconv"
	"strings"
)

// Driver is one row of the table.
type Driver struct {
	// Name is the driver's name as the kernel prints it at the start of
	// its log lines (dev_driver_string), as the sysfs device/driver link
	// and ethtool -i give it: "mlx5_core", "bnxt_en". A virtual device
	// known here only by its link kind is named by that kind ("bond").
	Name string
	// Kinds are the link kinds (IFLA_INFO_KIND) of the driver's devices,
	// the kernel's name first, then other names netlink libraries give it
	// (vishvananda/netlink calls "tun" "tuntap"). Physical NICs have none.
	Kinds []string
	// TxTimeout says the driver implements ndo_tx_timeout: without it the
	// kernel never arms the TX watchdog for its devices
	// (net/sched/sch_generic.c, dev_watchdog).
	TxTimeout bool
	// Since is the first kernel version with the handler, when it came
	// later than the driver ("5.16").
	Since string
	// Logs is what the handler logs, in short, for people.
	Logs string
	// Lines are the driver's own kernel log lines that a tx-timeout test
	// watches for.
	Lines []Line
	// NapiBypass says where the driver completes TX outside NAPI poll,
	// so that starving its NAPI threads cannot stop its queue; empty when
	// it cleans TX in NAPI poll or nobody knows.
	NapiBypass string
	// XmitReclaim says where the driver also frees sent buffers in
	// start_xmit, so that a load that sends one packet at a time keeps
	// reclaiming its ring while its NAPI threads starve (a load that keeps
	// the ring full, pktgen, does not).
	XmitReclaim string
	// QEMU are the QEMU NIC models this driver drives, the one the virtual
	// rig offers by default first.
	QEMU []QEMUModel
}

// Line is a kernel log line a driver prints.
type Line struct {
	// Kind says what the line reports.
	Kind LineKind
	// Re is a regular expression (Go syntax) for the message after the
	// kernel's "DRIVER BUS-ID IFACE: " prefix. Named groups carry what
	// the line says: "queue" the transmit queue, "ms" or "usecs" how long
	// it had been stuck, "iface" the interface.
	Re string
	// Whole makes Re match the whole message instead of the text after
	// the prefix: for pr_info lines that begin with the module's own
	// pr_fmt ("e1000: eth0 NIC Link is Down") and name the interface in
	// an "iface" group.
	Whole bool
	// Debug marks a line printed at KERN_DEBUG only (netif_dbg and the
	// like): a default log level never shows it, so no one may expect it.
	Debug bool
	// Source is where the line comes from, for whoever extends the table.
	Source string
}

// LineKind says what a Line reports.
type LineKind string

// The kinds of Line.
const (
	// KindTimeout is a line that reports a transmit timeout or hang.
	KindTimeout LineKind = "timeout"
	// KindReset is a line that says the driver is resetting the device
	// (its reset task runs, or its timeout handler starts or requests a
	// reset), not one that only reports a timeout or a hang.
	KindReset LineKind = "reset"
	// KindLinkUp is a link-state line saying the link came up.
	KindLinkUp LineKind = "link-up"
	// KindLinkDown is a link-state line saying the link went down.
	KindLinkDown LineKind = "link-down"
)

// LineKinds are the kinds a Line may have.
var LineKinds = []LineKind{KindTimeout, KindReset, KindLinkUp, KindLinkDown}

// QEMUModel is a QEMU NIC model that a driver drives.
type QEMUModel struct {
	// Device is QEMU's -device name, what the rig's users select (-nic).
	Device string
	// Modules are the guest modules to load for it, the driver's own
	// last (their dependencies are resolved from the modules themselves).
	Modules []string
	// Note is said when the model is selected.
	Note string
	// NapiStalls are the loads ("icmp", "pktgen") under which starving
	// the driver's NAPI threads stops this model's TX completions
	// (measured on the rig); there, NapiStarve not stalling is a broken
	// rig or injector, not an untestable device.
	NapiStalls []string
}

// NIC is a QEMU model with the driver that drives it.
type NIC struct {
	QEMUModel
	Driver string
}

// Lookup returns the row of the driver named name.
func Lookup(name string) (Driver, bool) {
	for _, d := range Table {
		if d.Name == name {
			return d, true
		}
	}
	return Driver{}, false
}

// LookupKind returns the row of the driver whose devices have link kind
// kind (one of its Kinds).
func LookupKind(kind string) (Driver, bool) {
	for _, d := range Table {
		for _, k := range d.Kinds {
			if k == kind {
				return d, true
			}
		}
	}
	return Driver{}, false
}

// ResetExpected reports whether driver name's rows hold a reset line
// that a default log level shows: its tx-timeout path resets the device
// and says so.
func ResetExpected(name string) bool {
	d, ok := Lookup(name)
	if !ok {
		return false
	}
	for _, l := range d.Lines {
		if l.Kind == KindReset && !l.Debug {
			return true
		}
	}
	return false
}

// NICs returns the QEMU models of the table, in its order, each with its
// driver.
func NICs() []NIC {
	var out []NIC
	for _, d := range Table {
		for _, m := range d.QEMU {
			out = append(out, NIC{QEMUModel: m, Driver: d.Name})
		}
	}
	return out
}

// ReleaseBefore reports whether kernel release ("6.1.0-50-amd64") is
// older than version ("5.16"). A release that does not parse is not
// older.
func ReleaseBefore(release, version string) bool {
	pa, pb := ParseVersion(release), ParseVersion(version)
	if pa == nil || pb == nil {
		return false
	}
	for i := 0; i < len(pb); i++ {
		x := 0
		if i < len(pa) {
			x = pa[i]
		}
		if x != pb[i] {
			return x < pb[i]
		}
	}
	return false
}

// ParseVersion returns the numbers a kernel release or version begins
// with ("6.12.117+deb12-amd64": 6, 12, 117), or nil when it does not
// begin with at least two.
func ParseVersion(s string) []int {
	end := strings.IndexFunc(s, func(r rune) bool { return r != '.' && (r < '0' || r > '9') })
	if end >= 0 {
		s = s[:end]
	}
	var out []int
	for _, f := range strings.Split(s, ".") {
		n, err := strconv.Atoi(f)
		if err != nil {
			break
		}
		out = append(out, n)
	}
	if len(out) < 2 {
		return nil
	}
	return out
}
