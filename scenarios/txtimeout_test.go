package scenarios

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"txtimeout/faultinject"
	"txtimeout/harness"
	"txtimeout/scenario"
	"txtimeout/traffic"
)

// watchdogTimeo is the kernel's default dev->watchdog_timeo (5*HZ), which
// nearly every driver keeps. sysfs does not show a device's own value.
const watchdogTimeo = 5 * time.Second

// TestTxTimeout runs the transmit-timeout scenarios.
func TestTxTimeout(t *testing.T) {
	cfg, direct := scenario.Setup(t)
	if !direct {
		return
	}
	for _, sc := range txTimeoutScenarios {
		// On the rig, each scenario on its NIC model's interface.
		t.Run(sc.name, func(t *testing.T) {
			c, err := scenario.ConfigFor(cfg, sc.rigNIC)
			if err != nil {
				t.Fatal(err)
			}
			sc.run(t, c)
		})
	}
}

// txTimeoutScenarios are TestTxTimeout's subtests in order, each with the
// NIC model it runs on by default on the virtual rig (txTimeoutPlan).
var txTimeoutScenarios = []struct {
	name, rigNIC string
	run          func(*testing.T, harness.Config)
}{
	{"NetemDelay", "virtio-net-pci", spec(netemDelaySpec)},
	{"PartnerStall", "virtio-net-pci", bySource(partnerStallSpec)},
	{"PauseFlood", "virtio-net-pci", spec(pauseFloodSpec)},
	{"NapiStarve", "e1000", bySource(napiStarveSpec)},
	{"Race", "e1000", subtests(
		named{"LinkDown", raceLinkDown}, named{"RingResize", raceRingResize},
		named{"Unbind", raceUnbind}, named{"ModuleReload", raceModuleReload})},
	{"Repeat", "e1000", repeatTimeouts},
	{"QueueN", "e1000", spec(queueN)},
}

func init() { scenario.RegisterPlan("TestTxTimeout", txTimeoutPlan()) }

// txTimeoutPlan groups txTimeoutScenarios by their rig NIC, in order:
// each scenario on a NIC where it can work, so that no scenario of the
// default run is inconclusive by design. virtio-net is the only model
// whose emulation backpressures when its partner stops reading
// (PartnerStall); QEMU's e1000 never backpressures, but its driver cleans
// TX in NAPI poll and resets the device on a timeout, so NapiStarve fires
// the watchdog there and exercises a real reset (kernel-facts.md section
// 9).
func txTimeoutPlan() []scenario.Boot {
	var plan []scenario.Boot
	for _, sc := range txTimeoutScenarios {
		i := slices.IndexFunc(plan, func(p scenario.Boot) bool { return p.NIC == sc.rigNIC })
		if i < 0 {
			plan = append(plan, scenario.Boot{NIC: sc.rigNIC})
			i = len(plan) - 1
		}
		plan[i].Subtests = append(plan[i].Subtests, sc.name)
	}
	return plan
}

// spec runs the scenario b builds, in this process (the rig was set up by
// the top-level test).
func spec(b scenario.Build) func(*testing.T, harness.Config) {
	return func(t *testing.T, cfg harness.Config) { scenario.Exec(t, cfg, b(t, cfg)) }
}

// bySource runs the scenario as two subtests, ICMP and Pktgen, one per
// load.
func bySource(b func(source string) scenario.Build) func(*testing.T, harness.Config) {
	return subtests(named{"ICMP", b("icmp")}, named{"Pktgen", b("pktgen")})
}

// named is a subtest's name and its scenario.
type named struct {
	name  string
	build scenario.Build
}

// subtests runs the scenarios as subtests, in order.
func subtests(ns ...named) func(*testing.T, harness.Config) {
	return func(t *testing.T, cfg harness.Config) {
		for _, n := range ns {
			t.Run(n.name, func(t *testing.T) { spec(n.build)(t, cfg) })
		}
	}
}

// netemDelaySpec is the seed's method exactly: a netem root qdisc
// delaying every packet by 9 s, and 2048-byte echo requests every 100 ms.
func netemDelaySpec(t *testing.T, cfg harness.Config) scenario.Spec {
	dst, _ := scenario.Peer(cfg)
	if dst == nil {
		scenario.Skip(t, "skipping: NetemDelay needs the partner's IP address to ping (set -peer-ip or TXTIMEOUT_PEER_IP)")
	}
	window := netemWindow(cfg)
	return scenario.Spec{
		Needs: []string{harness.CheckRoot, harness.CheckKmsg, harness.CheckIface, harness.CheckDriver, harness.CheckNetem},
		Fault: func() (faultinject.Injector, error) {
			return faultinject.NewNetem(cfg.Iface, faultinject.NetemConfig{Delay: cfg.NetemDelay}, faultinject.Options{})
		},
		Load: scenario.ICMP(traffic.FloodConfig{
			Dst: dst, Iface: cfg.Iface, Size: cfg.Size,
			Interval: 100 * time.Millisecond, Senders: 1, For: window,
		}),
		Window: window,
		Verdict: harness.VerdictOptions{
			Iface: cfg.Iface,
			// netem alone holds tx_packets still for up to its delay;
			// only a longer standstill means the driver queue stopped.
			StallMin:      cfg.NetemDelay + watchdogTimeo,
			RecoverWithin: cfg.RecoverWithin,
		},
		Decide: func(v harness.Verdict, o scenario.Outcome) (harness.Result, string) {
			if r, why, bad := scenario.Common(v); bad {
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

// partnerStallSpec asks the link partner to stop receiving, floods with
// source ("icmp" or "pktgen"), expects the watchdog, and expects recovery
// when the stall ends.
func partnerStallSpec(source string) scenario.Build {
	return func(t *testing.T, cfg harness.Config) scenario.Spec {
		needs := []string{harness.CheckRoot, harness.CheckKmsg, harness.CheckIface, harness.CheckDriver}
		if source == "pktgen" {
			needs = append(needs, harness.CheckPktgen)
		}
		scenario.Need(t, cfg, needs...)
		if cfg.Partner != harness.PartnerInband {
			scenario.Skipf(t, "skipping: PartnerStall needs a link partner that runs the partner program (the virtual rig, or `txtimeout partner` on a hardware rig's partner port: TXTIMEOUT_PARTNER=inband); partner is %q", cfg.Partner)
		}
		dst, mac := scenario.Peer(cfg)
		if dst == nil || mac == nil {
			scenario.Skip(t, "skipping: PartnerStall needs the partner's IP and MAC (-peer-ip, -peer-mac)")
		}
		l := scenario.Pktgen(cfg.Iface, dst, mac, -1)
		if source != "pktgen" {
			l = scenario.ICMP(traffic.FloodConfig{
				Dst: dst, Iface: cfg.Iface, Size: cfg.Size,
				Interval: cfg.Interval, Senders: cfg.Senders, For: cfg.StallFor,
			})
		}
		return scenario.Spec{
			Fault: func() (faultinject.Injector, error) {
				return faultinject.NewStall(cfg.Iface, faultinject.StallConfig{For: cfg.StallFor, PeerMAC: mac, Resume: scenario.RigResume(cfg)}, faultinject.Options{})
			},
			Load:         l,
			Window:       cfg.StallFor,
			UntilTimeout: true,
			Verdict:      harness.VerdictOptions{Iface: cfg.Iface, RecoverWithin: cfg.RecoverWithin},
			Decide:       scenario.StallDecision(cfg, "the partner stopped receiving"),
		}
	}
}

// pauseFloodSpec floods the DUT with 802.3x PAUSE frames from the partner
// port while pinging: the MAC stops transmitting.
func pauseFloodSpec(t *testing.T, cfg harness.Config) scenario.Spec {
	if cfg.Rig {
		scenario.Skip(t, "skipping: PauseFlood needs a hardware rig with a partner port (-partner-iface) wired to the DUT; "+
			"the virtual rig's emulated NIC does not honour PAUSE frames, and PartnerStall covers it")
	}
	if cfg.PartnerIface == "" {
		scenario.Skip(t, "skipping: PauseFlood needs a partner port wired to the DUT that sends the PAUSE frames (-partner-iface or TXTIMEOUT_PARTNER_IFACE)")
	}
	scenario.Need(t, cfg, harness.CheckRoot, harness.CheckKmsg, harness.CheckIface, harness.CheckDriver)
	dst, _ := scenario.Peer(cfg)
	if dst == nil {
		scenario.Skip(t, "skipping: PauseFlood needs the partner's IP address to flood (-peer-ip)")
	}
	return scenario.Spec{
		Fault: func() (faultinject.Injector, error) {
			// The partner port may be in a namespace of its own (the
			// loop rig's); the DUT is always in this process's.
			return faultinject.NewPauseFlood(cfg.PartnerIface,
				faultinject.PauseConfig{For: cfg.StallFor, DUTIface: cfg.Iface, DUTNetNS: ""},
				faultinject.Options{NetNS: cfg.PartnerNetNS})
		},
		Load: scenario.ICMP(traffic.FloodConfig{
			Dst: dst, Iface: cfg.Iface, Size: cfg.Size,
			Interval: cfg.Interval, Senders: cfg.Senders, For: cfg.StallFor,
		}),
		Window:       cfg.StallFor,
		UntilTimeout: true,
		Verdict:      harness.VerdictOptions{Iface: cfg.Iface, RecoverWithin: cfg.RecoverWithin},
		Decide:       scenario.StallDecision(cfg, "PAUSE frames flooded the DUT"),
	}
}

// napiStarveSpec starves the DUT's NAPI threads (faultinject.NapiStarve),
// floods with source, expects the watchdog, releases at the first timeout
// signal so that the driver's reset can run, and expects recovery. It
// needs no link partner; without a peer IP only the pktgen load runs,
// towards a made-up address, and recovery is judged from tx_packets
// alone.
func napiStarveSpec(source string) scenario.Build {
	return func(t *testing.T, cfg harness.Config) scenario.Spec {
		return napiStarveOn(t, cfg, source, -1)
	}
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

// napiStarveOn is NapiStarve with source as its load; pktgen sends on TX
// queue queue (the kernel's choice when negative).
func napiStarveOn(t *testing.T, cfg harness.Config, source string, queue int) scenario.Spec {
	needs := []string{harness.CheckRoot, harness.CheckKmsg, harness.CheckIface, harness.CheckDriver}
	if source == "pktgen" {
		needs = append(needs, harness.CheckPktgen)
	}
	scenario.Need(t, cfg, needs...)
	dst, mac := scenario.Peer(cfg)
	noPeer := dst == nil
	if noPeer && source == "icmp" {
		scenario.Skip(t, "skipping: NapiStarve/ICMP floods the partner's IP address (-peer-ip or TXTIMEOUT_PEER_IP); NapiStarve/Pktgen runs without one")
	}
	hogFor := min(cfg.StallFor, faultinject.MaxNapiHog)
	var l scenario.Load
	if source == "pktgen" {
		pdst, pmac := dst, mac
		if noPeer || pmac == nil {
			pdst, pmac = napiUnknownPeerIP, napiUnknownPeerMAC
		}
		l = scenario.Pktgen(cfg.Iface, pdst, pmac, queue)
	} else {
		l = scenario.ICMP(traffic.FloodConfig{
			Dst: dst, Iface: cfg.Iface, Size: cfg.Size,
			Interval: cfg.Interval, Senders: cfg.Senders, For: hogFor,
		})
	}
	return scenario.Spec{
		Fault: func() (faultinject.Injector, error) {
			return faultinject.NewNapiStarve(cfg.Iface, faultinject.NapiConfig{For: hogFor, CPU: faultinject.AutoCPU}, faultinject.Options{})
		},
		Load:         l,
		Window:       hogFor,
		UntilTimeout: true,
		FailFast:     napiFailFast,
		NoStall: func(inj faultinject.Injector) string {
			return inj.(*faultinject.NapiStarve).Diagnose(source == "pktgen")
		},
		Verdict: harness.VerdictOptions{Iface: cfg.Iface, RecoverWithin: cfg.RecoverWithin, NoEcho: noPeer},
		Decide:  scenario.NapiDecision(cfg, scenario.DriverOf(cfg.Iface), source),
	}
}
