package scenarios

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"txtimeout/faultinject"
	"txtimeout/harness"
	"txtimeout/kmsg"
	"txtimeout/rig/guest"
	"txtimeout/traffic"
)

// watchdogTimeo is the kernel's default dev->watchdog_timeo (5*HZ), which
// nearly every driver keeps. sysfs does not show a device's own value.
const watchdogTimeo = 5 * time.Second

// TestTxTimeout runs the transmit-timeout scenarios.
func TestTxTimeout(t *testing.T) {
	cfg, direct := setup(t, "TestTxTimeout")
	if !direct {
		return
	}
	for _, sc := range txTimeoutScenarios {
		t.Run(sc.name, func(t *testing.T) { sc.run(t, cfg) })
	}
}

// txTimeoutScenarios are TestTxTimeout's subtests in order, each with the
// NIC model it runs on by default on the virtual rig (nicPlan).
var txTimeoutScenarios = []struct {
	name, rigNIC string
	run          func(*testing.T, harness.Config)
}{
	{"NetemDelay", "virtio-net-pci", netemDelay},
	{"PartnerStall", "virtio-net-pci", func(t *testing.T, cfg harness.Config) {
		t.Run("ICMP", func(t *testing.T) { partnerStall(t, cfg, "icmp") })
		t.Run("Pktgen", func(t *testing.T) { partnerStall(t, cfg, "pktgen") })
	}},
	{"PauseFlood", "virtio-net-pci", pauseFlood},
	{"NapiStarve", "e1000", func(t *testing.T, cfg harness.Config) {
		t.Run("ICMP", func(t *testing.T) { napiStarve(t, cfg, "icmp") })
		t.Run("Pktgen", func(t *testing.T) { napiStarve(t, cfg, "pktgen") })
	}},
	{"Race", "e1000", func(t *testing.T, cfg harness.Config) {
		t.Run("LinkDown", func(t *testing.T) { raceLinkDown(t, cfg) })
		t.Run("RingResize", func(t *testing.T) { raceRingResize(t, cfg) })
		t.Run("Unbind", func(t *testing.T) { raceUnbind(t, cfg) })
		t.Run("ModuleReload", func(t *testing.T) { raceModuleReload(t, cfg) })
	}},
	{"Repeat", "e1000", repeatTimeouts},
	{"QueueN", "e1000", queueN},
}

// netemDelay is the seed's method exactly: a netem root qdisc delaying
// every packet by 9 s, and 2048-byte echo requests every 100 ms.
func netemDelay(t *testing.T, cfg harness.Config) { netemDelayScenario(t, cfg).run(t) }

// netemDelayScenario checks what NetemDelay needs (skipping t when it is
// missing) and returns the scenario.
func netemDelayScenario(t *testing.T, cfg harness.Config) faultScenario {
	harness.NeedFor(t, report, preflight(), harness.CheckRoot, harness.CheckKmsg, harness.CheckIface, harness.CheckDriver, harness.CheckNetem)
	dst, _ := peer(cfg.PeerIP, cfg.PeerMAC)
	if dst == nil {
		skip(t, "skipping: NetemDelay needs the partner's IP address to ping (set -peer-ip or TXTIMEOUT_PEER_IP)")
	}
	inj, err := faultinject.NewNetem(cfg.Iface, faultinject.NetemConfig{Delay: cfg.NetemDelay}, faultinject.Options{})
	if err != nil {
		t.Fatal(err)
	}
	window := netemWindow(cfg)
	return faultScenario{
		cfg:      cfg,
		injector: inj,
		load: icmpLoad(traffic.FloodConfig{
			Dst: dst, Iface: cfg.Iface, Size: cfg.Size,
			Interval: 100 * time.Millisecond, Senders: 1, For: window,
		}),
		window: window,
		vopts: harness.VerdictOptions{
			Iface: cfg.Iface,
			// netem alone holds tx_packets still for up to its delay;
			// only a longer standstill means the driver queue stopped.
			StallMin:      cfg.NetemDelay + watchdogTimeo,
			RecoverWithin: cfg.RecoverWithin,
		},
		decide: func(v harness.Verdict, lr loadReport) (harness.Result, string) {
			if r, why, bad := common(v); bad {
				return r, why
			}
			if !v.Recovered {
				return harness.Fail, fmt.Sprintf("no recovery within %v after the netem qdisc was removed", cfg.RecoverWithin)
			}
			if v.TimeoutFired {
				return harness.Pass, fmt.Sprintf("the watchdog fired %d ms after netem was attached (%d tx timeouts) and the device recovered", v.FirstTimeoutMS, v.TxTimeoutCount)
			}
			return harness.Pass, fmt.Sprintf("netem held up to %d packets (%d bytes) in the qdisc and the driver queue never stopped: "+
				"tx_timeout stayed at 0 and no watchdog fired. netem delays packets before the driver sees them, so its ring never fills; "+
				"TxTimeout/PartnerStall (virtual rig), TxTimeout/NapiStarve (drivers that complete TX in NAPI poll) and TxTimeout/PauseFlood (hardware rigs) stop the device itself and do fire the watchdog",
				v.QdiscBacklogMax, v.QdiscBacklogBytesMax)
		},
	}
}

// netemMargin is how much longer than netem's delay plus the watchdog
// period NetemDelay offers traffic: a few samples.
const netemMargin = 2 * time.Second

// netemWindow is how long NetemDelay keeps its qdisc and offers traffic:
// long enough that a driver queue that did stop would stand still for the
// netem delay plus watchdog_timeo (the verdict's StallMin) and the
// watchdog could fire, with a margin; the flood bound (-flood-for) caps
// it. With the defaults: 9 s + 5 s + 2 s = 16 s.
func netemWindow(cfg harness.Config) time.Duration {
	return min(cfg.FloodFor, cfg.NetemDelay+watchdogTimeo+netemMargin)
}

// partnerStall asks the link partner to stop receiving, floods, expects
// the watchdog, and expects recovery when the stall ends by itself.
func partnerStall(t *testing.T, cfg harness.Config, source string) {
	partnerStallScenario(t, cfg, source).run(t)
}

// partnerStallScenario checks what PartnerStall needs (skipping t when it
// is missing) and returns the scenario with source ("icmp" or "pktgen") as
// its load.
func partnerStallScenario(t *testing.T, cfg harness.Config, source string) faultScenario {
	checks := []string{harness.CheckRoot, harness.CheckKmsg, harness.CheckIface, harness.CheckDriver}
	if source == "pktgen" {
		checks = append(checks, harness.CheckPktgen)
	}
	harness.NeedFor(t, report, preflight(), checks...)
	if cfg.Partner != harness.PartnerInband {
		skipf(t, "skipping: PartnerStall needs a link partner that runs the partner program (the virtual rig: leave TXTIMEOUT_IFACE unset); partner is %q", cfg.Partner)
	}
	dst, mac := peer(cfg.PeerIP, cfg.PeerMAC)
	if dst == nil || mac == nil {
		skip(t, "skipping: PartnerStall needs the partner's IP and MAC (-peer-ip, -peer-mac)")
	}
	inj, err := faultinject.NewStall(cfg.Iface, faultinject.StallConfig{For: cfg.StallFor, PeerMAC: mac, Resume: rigResume(cfg)}, faultinject.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var l load
	if source == "pktgen" {
		l = pktgenLoad(cfg.Iface, dst, mac)
	} else {
		l = icmpLoad(traffic.FloodConfig{
			Dst: dst, Iface: cfg.Iface, Size: cfg.Size,
			Interval: cfg.Interval, Senders: cfg.Senders, For: cfg.StallFor,
		})
	}
	return faultScenario{
		cfg:          cfg,
		injector:     inj,
		load:         l,
		window:       cfg.StallFor,
		untilTimeout: true,
		vopts:        harness.VerdictOptions{Iface: cfg.Iface, RecoverWithin: cfg.RecoverWithin, NoEcho: false},
		decide:       stallDecision(cfg, "the partner stopped receiving"),
	}
}

// pauseFlood floods the DUT with 802.3x PAUSE frames from the partner
// port while pinging: the MAC stops transmitting.
func pauseFlood(t *testing.T, cfg harness.Config) {
	if cfg.Rig {
		skip(t, "skipping: PauseFlood needs a hardware rig with a partner port (-partner-iface) wired to the DUT; "+
			"the virtual rig's emulated NIC does not honour PAUSE frames, and PartnerStall covers it")
	}
	if cfg.PartnerIface == "" {
		skip(t, "skipping: PauseFlood needs a partner port wired to the DUT that sends the PAUSE frames (-partner-iface or TXTIMEOUT_PARTNER_IFACE)")
	}
	harness.NeedFor(t, report, preflight(), harness.CheckRoot, harness.CheckKmsg, harness.CheckIface, harness.CheckDriver)
	dst, _ := peer(cfg.PeerIP, cfg.PeerMAC)
	if dst == nil {
		skip(t, "skipping: PauseFlood needs the partner's IP address to flood (-peer-ip)")
	}
	inj, err := faultinject.NewPauseFlood(cfg.PartnerIface, faultinject.PauseConfig{For: cfg.StallFor, DUTIface: cfg.Iface}, faultinject.Options{})
	if err != nil {
		t.Fatal(err)
	}
	faultScenario{
		cfg:      cfg,
		injector: inj,
		load: icmpLoad(traffic.FloodConfig{
			Dst: dst, Iface: cfg.Iface, Size: cfg.Size,
			Interval: cfg.Interval, Senders: cfg.Senders, For: cfg.StallFor,
		}),
		window:       cfg.StallFor,
		untilTimeout: true,
		vopts:        harness.VerdictOptions{Iface: cfg.Iface, RecoverWithin: cfg.RecoverWithin},
		decide:       stallDecision(cfg, "PAUSE frames flooded the DUT"),
	}.run(t)
}

// common handles what fails every scenario: a splat or a failed cleanup.
func common(v harness.Verdict) (harness.Result, string, bool) {
	switch {
	case v.Splat:
		return harness.Fail, fmt.Sprintf("the kernel splatted (%d splat lines: oops, BUG, WARNING, lockup or hung task)", v.SplatCount), true
	case !v.CleanupOK:
		return harness.Fail, "the DUT was not restored to the state it was found in (see the cleanup_failed mark)", true
	}
	return "", "", false
}

// stallDecision is the verdict of a scenario that stops the device
// itself: the watchdog must fire and the device must recover; a device
// that never stalled makes the run inconclusive.
func stallDecision(cfg harness.Config, what string) func(harness.Verdict, loadReport) (harness.Result, string) {
	return func(v harness.Verdict, lr loadReport) (harness.Result, string) {
		if r, why, bad := common(v); bad {
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

// rigResume ends a partner stall early on the virtual rig, through the
// rig's control port: a stalled partner cannot read an in-band resume, and
// without it every PartnerStall scenario waits out the whole stall after
// the watchdog has already fired. Elsewhere the stall runs out by itself.
func rigResume(cfg harness.Config) func(context.Context) error {
	if !cfg.Rig {
		return nil
	}
	return func(context.Context) error { return guest.ResumePartner() }
}

// napiStarve starves the DUT's NAPI threads (faultinject.NapiStarve),
// floods, expects the watchdog, releases at the first timeout signal so
// that the driver's reset can run, and expects recovery. It needs no link
// partner; without a peer IP only the pktgen load runs, towards a made-up
// address, and recovery is judged from tx_packets alone.
func napiStarve(t *testing.T, cfg harness.Config, source string) {
	napiStarveScenario(t, cfg, source).run(t)
}

// napiUnknownPeer is where NapiStarve/Pktgen sends without a peer: a
// locally administered MAC and an address of 198.18.0.0/15 that nothing
// answers.
var (
	napiUnknownPeerIP  = net.IPv4(198, 19, 255, 254).To4()
	napiUnknownPeerMAC = net.HardwareAddr{0x02, 0x74, 0x78, 0xff, 0xff, 0xfe}
)

// napiFailFast is how long tx_packets may keep moving after the load
// starts before NapiStarve gives up: a ring of a few hundred descriptors
// fills within milliseconds of a flood once its completions stop.
const napiFailFast = time.Second

func napiStarveScenario(t *testing.T, cfg harness.Config, source string) faultScenario {
	checks := []string{harness.CheckRoot, harness.CheckKmsg, harness.CheckIface, harness.CheckDriver}
	if source == "pktgen" {
		checks = append(checks, harness.CheckPktgen)
	}
	harness.NeedFor(t, report, preflight(), checks...)
	dst, mac := peer(cfg.PeerIP, cfg.PeerMAC)
	noPeer := dst == nil
	if noPeer && source == "icmp" {
		skip(t, "skipping: NapiStarve/ICMP floods the partner's IP address (-peer-ip or TXTIMEOUT_PEER_IP); NapiStarve/Pktgen runs without one")
	}
	hogFor := min(cfg.StallFor, faultinject.MaxNapiHog)
	inj, err := faultinject.NewNapiStarve(cfg.Iface, faultinject.NapiConfig{For: hogFor, CPU: faultinject.AutoCPU}, faultinject.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var l load
	if source == "pktgen" {
		pdst, pmac := dst, mac
		if noPeer || pmac == nil {
			pdst, pmac = napiUnknownPeerIP, napiUnknownPeerMAC
		}
		l = pktgenLoad(cfg.Iface, pdst, pmac)
	} else {
		l = icmpLoad(traffic.FloodConfig{
			Dst: dst, Iface: cfg.Iface, Size: cfg.Size,
			Interval: cfg.Interval, Senders: cfg.Senders, For: hogFor,
		})
	}
	driver := driverOf(cfg.Iface)
	return faultScenario{
		cfg:          cfg,
		injector:     inj,
		load:         l,
		window:       hogFor,
		untilTimeout: true,
		failFast:     napiFailFast,
		noStall:      func() string { return inj.Diagnose(source == "pktgen") },
		vopts:        harness.VerdictOptions{Iface: cfg.Iface, RecoverWithin: cfg.RecoverWithin, NoEcho: noPeer},
		decide:       napiDecision(cfg, driver, source),
	}
}

// rigNapiStalls are the virtual rig's NIC models on which starving the NAPI
// threads stops TX completions, with the loads it works with (measured:
// e1000 cleans TX only in NAPI poll; virtio_net also reclaims in
// start_xmit, which only pktgen's full ring defeats). There, a stall not
// achieved is a broken rig or injector, not an untestable device.
var rigNapiStalls = map[string][]string{
	"e1000":          {"icmp", "pktgen"},
	"igb":            {"icmp", "pktgen"}, // QEMU 8.0+; measured with 10.0.2
	"virtio-net-pci": {"pktgen"},
}

// napiDecision is NapiStarve's verdict: stallDecision's, with the fail-fast
// release and the driver's reset. A driver whose rows in the kmsg driver
// table include a reset line (e1000 "Reset adapter", ...) must print one:
// its tx-timeout handler schedules a reset, and a reset that never comes is
// the bug this scenario exists to catch.
func napiDecision(cfg harness.Config, driver, source string) func(harness.Verdict, loadReport) (harness.Result, string) {
	stall := stallDecision(cfg, "its NAPI threads were starved")
	noStall := harness.Inconclusive
	if cfg.Rig && slices.Contains(rigNapiStalls[cfg.NIC], source) {
		noStall = harness.Fail
	}
	return func(v harness.Verdict, lr loadReport) (harness.Result, string) {
		if r, why, bad := common(v); bad {
			return r, why
		}
		prefix := "stall not achieved: "
		if noStall == harness.Fail {
			prefix = fmt.Sprintf("stall not achieved on the virtual rig's %s, where NAPI starvation does stop TX completions (measured): ", cfg.NIC)
		}
		if lr.noStall != "" && !v.TimeoutFired {
			return noStall, prefix + "starving the NAPI threads did not stop TX completions (" + lr.noStall + ")"
		}
		if !v.Stalled && !v.TimeoutFired {
			return noStall, prefix + fmt.Sprintf("the NAPI threads were starved, yet tx_packets kept moving (%d packets sent during the fault)", v.TxPacketsDuringFault)
		}
		res, why := stall(v, lr)
		if res != harness.Pass {
			return res, why
		}
		if resetExpected(driver) && !v.ResetSeen {
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

// resetExpected reports whether the kmsg driver table holds a reset line
// of driver that a default log level shows: its tx-timeout path resets the
// device and says so.
func resetExpected(driver string) bool {
	for _, p := range kmsg.DriverPatterns {
		if p.Driver == driver && p.Reset && !p.Debug {
			return true
		}
	}
	return false
}
