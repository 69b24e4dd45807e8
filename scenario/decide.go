package scenario

import (
	"context"
	"fmt"
	"slices"

	"txtimeout/drivers"
	"txtimeout/harness"
	"txtimeout/rig/guest"
)

// Common handles what fails every scenario: a splat or a failed cleanup.
// bad is false when neither happened.
func Common(v harness.Verdict) (res harness.Result, why string, bad bool) {
	switch {
	case v.Splat:
		return harness.Fail, fmt.Sprintf("the kernel splatted (%d splat lines: oops, BUG, WARNING, lockup or hung task)", v.SplatCount), true
	case !v.CleanupOK:
		return harness.Fail, "the DUT was not restored to the state it was found in (see the cleanup_failed mark)", true
	}
	return "", "", false
}

// StallDecision is the verdict of a scenario that stops the device
// itself (what says how, in plain words): the watchdog must fire and the
// device must recover; a device that never stalled makes the run
// inconclusive, except on the virtual rig's virtio-net, which does
// backpressure.
func StallDecision(cfg harness.Config, what string) Decision {
	return func(v harness.Verdict, o Outcome) (harness.Result, string) {
		if r, why, bad := Common(v); bad {
			return r, why
		}
		switch {
		case !v.Stalled && !v.TimeoutFired && cfg.Rig && (cfg.NIC == "" || cfg.NIC == "virtio-net-pci"):
			// The rig's virtio-net backpressures when its partner stops
			// reading (measured): no stall there is a broken rig or
			// injector, not an untestable device.
			return harness.Fail, fmt.Sprintf("stall not achieved on the virtual rig's virtio-net, which does backpressure: %s, yet tx_packets kept moving (%d packets sent during the fault)", what, v.TxPacketsDuringFault)
		case !v.Stalled && !v.TimeoutFired:
			nic := ""
			if cfg.NIC != "" {
				nic = " (" + cfg.NIC + ")"
			}
			return harness.Inconclusive, fmt.Sprintf("stall not achieved: %s, yet tx_packets kept moving (%d packets sent during the fault) — "+
				"the device%s never backpressured, so the watchdog could not be tested", what, v.TxPacketsDuringFault, nic)
		case !v.TimeoutFired:
			return harness.Fail, fmt.Sprintf("the TX queue stood still for %d ms while traffic was offered, but no timeout signal came (no watchdog line, tracepoint hit or tx_timeout increase)", v.StallMS)
		case !v.Recovered:
			return harness.Fail, fmt.Sprintf("the watchdog fired after %d ms but the device did not recover within %v of the fault's removal", v.FirstTimeoutMS, cfg.RecoverWithin)
		}
		return harness.Pass, fmt.Sprintf("the watchdog fired %d ms after %s (%d tx timeouts counted, driver line seen: %t) and the device recovered in %d ms",
			v.FirstTimeoutMS, what, v.TxTimeoutCount, v.HandlerLogged, v.RecoverMS)
	}
}

// RigNapiStalls reports whether starving the NAPI threads stops TX
// completions of the virtual rig's NIC model nic under source ("icmp",
// "pktgen"): measured, and recorded in the driver table.
func RigNapiStalls(nic, source string) bool {
	for _, n := range drivers.NICs() {
		if n.Device == nic {
			return slices.Contains(n.NapiStalls, source)
		}
	}
	return false
}

// NapiDecision is NapiStarve's verdict for driver under source ("icmp" or
// "pktgen"): StallDecision's, with the fail-fast release and the driver's
// reset. A driver whose rows in the kmsg driver table include a reset
// line (e1000 "Reset adapter", ...) must print one: its tx-timeout
// handler schedules a reset, and a reset that never comes is the bug the
// scenario exists to catch.
func NapiDecision(cfg harness.Config, driver, source string) Decision {
	stall := StallDecision(cfg, "its NAPI threads were starved")
	noStall := harness.Inconclusive
	if cfg.Rig && RigNapiStalls(cfg.NIC, source) {
		noStall = harness.Fail
	}
	return func(v harness.Verdict, o Outcome) (harness.Result, string) {
		if r, why, bad := Common(v); bad {
			return r, why
		}
		prefix := "stall not achieved: "
		if noStall == harness.Fail {
			prefix = fmt.Sprintf("stall not achieved on the virtual rig's %s, where NAPI starvation does stop TX completions (measured): ", cfg.NIC)
		}
		if o.NoStall != "" && !v.TimeoutFired {
			return noStall, prefix + "starving the NAPI threads did not stop TX completions (" + o.NoStall + ")"
		}
		if !v.Stalled && !v.TimeoutFired {
			return noStall, prefix + fmt.Sprintf("the NAPI threads were starved, yet tx_packets kept moving (%d packets sent during the fault)", v.TxPacketsDuringFault)
		}
		res, why := stall(v, o)
		if res != harness.Pass {
			return res, why
		}
		if drivers.ResetExpected(driver) && !v.ResetSeen {
			return harness.Fail, fmt.Sprintf("the watchdog fired after %d ms and %s's tx-timeout handler schedules a reset, but no reset line came (see the kmsg events); "+
				"the device recovered in %d ms without one", v.FirstTimeoutMS, driver, v.RecoverMS)
		}
		if v.ResetSeen {
			why += fmt.Sprintf("; the driver reset the device (%d reset lines", v.ResetLines)
			if v.LinkFlap {
				why += ", link down and up again"
			}
			why += ")"
		}
		return harness.Pass, why
	}
}

// RigResume ends a partner stall early on the virtual rig, through the
// rig's control port: a stalled partner cannot read an in-band resume, and
// without it every PartnerStall scenario waits out the whole stall after
// the watchdog has already fired. Elsewhere (nil) the stall runs out by
// itself.
func RigResume(cfg harness.Config) func(context.Context) error {
	if !cfg.Rig {
		return nil
	}
	iface := cfg.Iface
	return func(context.Context) error { return guest.ResumePartnerOn(iface) }
}
