package harness

import (
	"fmt"
	"strings"
	"testing"

	"txtimeout/drivers"
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
	s := Skipped("skipping: " + c.String())
	if c.Required {
		s.Result, s.Reason = Fail, "preflight "+c.String()
	}
	Finish(tb, r, s)
	if c.Required {
		tb.FailNow()
	}
}

// driverCheck decides the driver check from the driver table
// (drivers.Table), the running kernel's release and, for drivers not in the
// table, whether the driver's module has a function named like a tx_timeout
// handler in /proc/kallsyms (kallsymsHit; empty when none was found or
// kallsyms was not readable).
func driverCheck(iface, driver, release, kallsymsHit string) Check {
	c := Check{Name: CheckDriver}
	if driver == "" {
		c.OK = true
		c.Reason = fmt.Sprintf("%s: driver unknown; cannot tell whether it has a tx-timeout handler", iface)
		return c
	}
	if d, ok := drivers.Lookup(driver); ok {
		switch {
		case !d.TxTimeout:
			c.Reason = fmt.Sprintf("%s: driver %s has no tx-timeout handler (ndo_tx_timeout), so the kernel never arms the TX watchdog for it", iface, driver)
			c.Fix = "run against a NIC whose driver has one (a physical NIC, or the virtual rig's virtio_net)"
		case d.Since != "" && drivers.ReleaseBefore(release, d.Since):
			c.Reason = fmt.Sprintf("%s: driver %s has a tx-timeout handler only since Linux %s; this kernel is %s", iface, driver, d.Since, release)
			c.Fix = "run a kernel from Linux " + d.Since + " on"
		default:
			c.OK = true
			c.Reason = fmt.Sprintf("%s: driver %s has a tx-timeout handler", iface, driver)
			if d.Logs != "" {
				c.Reason += " (logs: " + d.Logs + ")"
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
