package harness

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"txtimeout/internal/unsupported"
)

// Check names, for Need.
const (
	CheckRoot       = "root"       // root or CAP_NET_ADMIN
	CheckKmsg       = "kmsg"       // /dev/kmsg readable
	CheckIface      = "iface"      // the DUT interface exists, is up and has carrier
	CheckDriver     = "driver"     // the driver has a tx-timeout handler (ndo_tx_timeout)
	CheckNetem      = "netem"      // the netem qdisc can be created
	CheckPktgen     = "pktgen"     // /proc/net/pktgen is there
	CheckTracepoint = "tracepoint" // net:net_dev_xmit_timeout can be traced
)

// Check is the outcome of one preflight check. A failed check says why
// and how to fix it. Required marks a check whose failure is a test
// failure, not a skip: netem and pktgen inside the virtual rig, whose
// kernel is known to have them.
type Check struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Reason   string `json:"reason"`
	Fix      string `json:"fix,omitempty"`
	Required bool   `json:"required,omitempty"`
}

// String returns the check on one line.
func (c Check) String() string {
	state := "ok"
	if !c.OK {
		state = "FAILED"
	}
	s := fmt.Sprintf("%s: %s: %s", c.Name, state, c.Reason)
	if !c.OK && c.Fix != "" {
		s += " (fix: " + c.Fix + ")"
	}
	return s
}

// ErrNotSupported is wrapped by feature probes when the kernel lacks the
// feature. A probe returns nil when the feature works, an error wrapping
// ErrNotSupported when it is missing, and any other error when it could
// not tell. It is the project's one "not supported" error (also
// faultinject.ErrUnsupported and traffic.ErrNotSupported), and it matches
// errors.ErrUnsupported: test with errors.Is(err, errors.ErrUnsupported).
var ErrNotSupported = unsupported.Err

// FirstFailed returns the first failed check among names (all checks when
// names is empty), so that a scenario can report a skip through Finish.
func FirstFailed(checks []Check, names ...string) (Check, bool) {
	for _, c := range selectChecks(checks, names) {
		if !c.OK {
			return c, true
		}
	}
	return Check{}, false
}

func selectChecks(checks []Check, names []string) []Check {
	if len(names) == 0 {
		return checks
	}
	var out []Check
	for _, n := range names {
		found := false
		for _, c := range checks {
			if c.Name == n {
				out = append(out, c)
				found = true
			}
		}
		if !found {
			out = append(out, Check{Name: n, Reason: "the preflight did not run this check (no interface configured?)",
				Fix: "configure -iface, or run inside the virtual rig", Required: true})
		}
	}
	return out
}

// Need stops the test when one of the named checks failed: tb.Skip with
// the reason and the fix, or tb.Fatal when the check is Required (a
// missing netem or pktgen inside the virtual rig) or was never run.
func Need(tb testing.TB, checks []Check, names ...string) {
	tb.Helper()
	for _, c := range selectChecks(checks, names) {
		if c.OK {
			continue
		}
		if c.Required {
			tb.Fatalf("preflight %s", c)
		}
		tb.Skipf("skipping: %s", c)
	}
}

// NeedFor is Need for a scenario whose outcome belongs in the report: a
// failed check is recorded in r through Finish, as a skip with the reason
// and the fix, or as a failure when the check is Required or was never
// run, so that report.json and report.ktap list the scenario too.
func NeedFor(tb testing.TB, r *Report, checks []Check, names ...string) {
	tb.Helper()
	c, failed := FirstFailed(checks, names...)
	if !failed {
		return
	}
	s := ScenarioReport{Result: Skip, Reason: "skipping: " + c.String(), Verdict: Verdict{FirstTimeoutMS: -1, RecoverMS: -1}}
	if c.Required {
		s.Result, s.Reason = Fail, "preflight "+c.String()
	}
	Finish(tb, r, s)
	if c.Required {
		tb.FailNow()
	}
}

// DriverInfo says whether a driver implements ndo_tx_timeout, the hook
// without which the kernel never arms the TX watchdog for a device.
type DriverInfo struct {
	Driver    string // as /sys/class/net/IFACE/device/driver or ethtool -i names it
	TxTimeout bool   // has ndo_tx_timeout
	Since     string // first kernel version with the handler, when it came later
	Line      string // what the handler logs, in short
}

// Drivers is the table of drivers whose tx-timeout handling is known
// (kernel-facts.md sections 1 and 3). New drivers are new rows.
var Drivers = []DriverInfo{
	{Driver: "virtio_net", TxTimeout: true, Since: "5.16", Line: "TX timeout on queue: N, sq: ..., usecs ago (no reset)"},
	{Driver: "e1000", TxTimeout: true, Line: "reset task: Reset adapter"},
	{Driver: "e1000e", TxTimeout: true, Line: "Reset adapter unexpectedly"},
	{Driver: "igb", TxTimeout: true, Line: "Reset adapter"},
	{Driver: "ixgbe", TxTimeout: true, Line: "initiating reset due to tx timeout"},
	{Driver: "i40e", TxTimeout: true, Line: "tx_timeout recovery level N, txqueue N"},
	{Driver: "ice", TxTimeout: true, Line: "tx_timeout recovery level N, txqueue N"},
	{Driver: "mlx5_core", TxTimeout: true, Line: "TX timeout on queue: N, SQ: ..."},
	{Driver: "bnxt_en", TxTimeout: true, Line: "TX timeout detected, starting reset task!"},
	{Driver: "tg3", TxTimeout: true, Line: "transmit timed out, resetting"},
	{Driver: "r8169", TxTimeout: true, Line: "(no line of its own; resets)"},
	{Driver: "8139too", TxTimeout: true, Line: "Transmit timeout (debug level only)"},
	{Driver: "veth", TxTimeout: false},
	{Driver: "dummy", TxTimeout: false},
	{Driver: "loopback", TxTimeout: false},
	{Driver: "bridge", TxTimeout: false},
	{Driver: "macvlan", TxTimeout: false},
	{Driver: "ipvlan", TxTimeout: false},
	{Driver: "vxlan", TxTimeout: false},
	{Driver: "tun", TxTimeout: false},
	{Driver: "wireguard", TxTimeout: false},
}

// LookupDriver returns the table row of a driver.
func LookupDriver(name string) (DriverInfo, bool) {
	for _, d := range Drivers {
		if d.Driver == name {
			return d, true
		}
	}
	return DriverInfo{}, false
}

// driverCheck decides the driver check from the table, the running
// kernel's release and, for drivers not in the table, whether the driver's
// module has a function named like a tx_timeout handler in /proc/kallsyms
// (kallsymsHit; empty when none was found or kallsyms was not readable).
func driverCheck(iface, driver, release, kallsymsHit string) Check {
	c := Check{Name: CheckDriver}
	if driver == "" {
		c.OK = true
		c.Reason = fmt.Sprintf("%s: driver unknown; cannot tell whether it has a tx-timeout handler", iface)
		return c
	}
	if d, ok := LookupDriver(driver); ok {
		switch {
		case !d.TxTimeout:
			c.Reason = fmt.Sprintf("%s: driver %s has no tx-timeout handler (ndo_tx_timeout), so the kernel never arms the TX watchdog for it", iface, driver)
			c.Fix = "run against a NIC whose driver has one (a physical NIC, or the virtual rig's virtio_net)"
		case d.Since != "" && versionLess(release, d.Since):
			c.Reason = fmt.Sprintf("%s: driver %s has a tx-timeout handler only since Linux %s; this kernel is %s", iface, driver, d.Since, release)
			c.Fix = "run a kernel from Linux " + d.Since + " on"
		default:
			c.OK = true
			c.Reason = fmt.Sprintf("%s: driver %s has a tx-timeout handler", iface, driver)
			if d.Line != "" {
				c.Reason += " (logs: " + d.Line + ")"
			}
		}
		return c
	}
	c.OK = true
	if kallsymsHit != "" {
		c.Reason = fmt.Sprintf("%s: driver %s (not in the table) has a function %s, likely its tx-timeout handler", iface, driver, kallsymsHit)
	} else {
		c.Reason = fmt.Sprintf("%s: driver %s is not in the table and no tx_timeout function was found for it; the watchdog may never fire", iface, driver)
	}
	return c
}

// versionLess reports whether kernel release a ("6.1.0-50-amd64") is
// older than version b ("5.16"). Unparsable releases are not older.
func versionLess(a, b string) bool {
	pa, pb := parseVersion(a), parseVersion(b)
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

func parseVersion(s string) []int {
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

// kallsymsTxTimeout finds, in /proc/kallsyms text, a function of module
// mod whose name contains "tx_timeout" ("virtnet_tx_timeout [virtio_net]").
func kallsymsTxTimeout(text, mod string) string {
	tag := "[" + mod + "]"
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != tag {
			continue
		}
		if (f[1] == "t" || f[1] == "T") && strings.Contains(f[2], "tx_timeout") && !strings.HasPrefix(f[2], "__pfx_") {
			return f[2]
		}
	}
	return ""
}
