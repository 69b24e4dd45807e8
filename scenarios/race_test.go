package scenarios

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"txtimeout/faultinject"
	"txtimeout/harness"
	"txtimeout/scenario"
)

// Race scenarios fire the watchdog and then race the driver's recovery
// with what the bugs of real tx-timeout handlers raced (kernel-facts.md
// section 10): ifdown, a ring resize, a rebind, a module reload. They use
// whichever stall works on the DUT: NapiStarve where starving the NAPI
// threads stops TX completions (a driver with a real reset, such as
// e1000), else PartnerStall on the virtual rig. Once the first timeout
// signal is in, NapiStarve's hog is killed first (Release), so that the
// reset work the driver's tx-timeout handler queued runs, and the action
// then races that pending recovery; the rest of the fault's restore
// follows. Any splat, a
// hung task, a netdev refcount wait, a device that is not back up and
// passing traffic within the recovery deadline, or anything left behind
// fails them.

// raceStall returns the stall scenario a race builds on for this DUT, and
// its name.
func raceStall(t *testing.T, cfg harness.Config) (scenario.Spec, string) {
	t.Helper()
	switch raceStallName(cfg) {
	case "NapiStarve":
		return napiStarveSpec("icmp")(t, cfg), "NapiStarve"
	case "PartnerStall":
		return partnerStallSpec("icmp")(t, cfg), "PartnerStall"
	}
	scenario.Skipf(t, "skipping: no stall works on this DUT for the race scenarios (NapiStarve needs a driver that cleans TX in NAPI poll; PartnerStall needs the virtual rig or a partner port running `txtimeout partner`); NIC %q", cfg.NIC)
	return scenario.Spec{}, ""
}

// raceStallName is the stall the races use on cfg's DUT ("" for none):
// NapiStarve on hardware and on the rig's NIC models where it stops TX
// completions under ICMP, else PartnerStall where the partner runs the
// partner program.
func raceStallName(cfg harness.Config) string {
	switch {
	case !cfg.Rig || scenario.RigNapiStalls(cfg.NIC, "icmp"):
		return "NapiStarve"
	case cfg.Partner == harness.PartnerInband:
		return "PartnerStall"
	}
	return ""
}

// raceScenario is a race on cfg's DUT: the stall, then action once the
// first timeout signal is in.
func raceScenario(t *testing.T, cfg harness.Config, what string, action scenario.RaceAction) scenario.Spec {
	t.Helper()
	s, stall := raceStall(t, cfg)
	base := s.Decide
	s.Race = action
	s.Decide = func(v harness.Verdict, o scenario.Outcome) (harness.Result, string) {
		if r, why, bad := scenario.Common(v); bad {
			return r, fmt.Sprintf("%s, racing %s during the recovery from %s", why, what, stall)
		}
		if !v.TimeoutFired {
			r, why := base(v, o)
			return r, why + " (so nothing was raced)"
		}
		if e, ok := strings.CutPrefix(o.RaceErr, scenario.RaceUnsupported); ok {
			return harness.Inconclusive, fmt.Sprintf("%s fired the watchdog after %d ms, but %s could not be raced: %s", stall, v.FirstTimeoutMS, what, e)
		}
		if o.RaceErr != "" {
			return harness.Fail, fmt.Sprintf("racing %s during the recovery from %s: %s", what, stall, o.RaceErr)
		}
		if !v.Recovered {
			return harness.Fail, fmt.Sprintf("%s fired the watchdog after %d ms and %s was raced (%s), but the device was not back up and passing traffic within %v",
				stall, v.FirstTimeoutMS, what, o.Race, cfg.RecoverWithin)
		}
		reset := "no reset line"
		if v.ResetSeen {
			reset = fmt.Sprintf("%d reset lines", v.ResetLines)
		}
		return harness.Pass, fmt.Sprintf("stall %s: the watchdog fired after %d ms; raced %s during the recovery (%s); %s; the device was back up and passing traffic %d ms after the release",
			stall, v.FirstTimeoutMS, what, o.Race, reset, v.RecoverMS)
	}
	return s
}

// linkDownUp is Race/LinkDown's action: ip link set down, then up, over
// netlink, while the driver's reset work (queued by its tx-timeout
// handler, free to run once the hog is gone) takes rtnl and the device
// down and up itself.
func linkDownUp(iface string) scenario.RaceAction {
	return func(ctx context.Context, started func()) (string, error) {
		link, err := netlink.LinkByName(iface)
		if err != nil {
			return "", fmt.Errorf("looking up %s: %w", iface, err)
		}
		started()
		t0 := time.Now()
		if err := netlink.LinkSetDown(link); err != nil {
			return "", fmt.Errorf("ip link set %s down: %w", iface, err)
		}
		down := time.Since(t0)
		t1 := time.Now()
		if err := netlink.LinkSetUp(link); err != nil {
			return "", fmt.Errorf("ip link set %s up (after down): %w", iface, err)
		}
		return fmt.Sprintf("ip link set down returned after %v, up after %v", down.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond)), nil
	}
}

// raceLinkDown is TxTimeout/Race/LinkDown.
func raceLinkDown(t *testing.T, cfg harness.Config) scenario.Spec {
	scenario.Need(t, cfg, harness.CheckRoot, harness.CheckKmsg, harness.CheckIface, harness.CheckDriver)
	t.Cleanup(func() { ensureUp(t, cfg.Iface) })
	return raceScenario(t, cfg, "ip link set down and up", linkDownUp(cfg.Iface))
}

// ensureUp brings iface up again if a race left it down.
func ensureUp(t *testing.T, iface string) {
	t.Helper()
	link, err := netlink.LinkByName(iface)
	if err != nil {
		t.Errorf("after the race: %s: %v", iface, err)
		return
	}
	if link.Attrs().Flags&(1<<0) == 0 { // net.FlagUp
		t.Errorf("the race left %s down; bringing it up", iface)
		if err := netlink.LinkSetUp(link); err != nil {
			t.Errorf("ip link set %s up: %v", iface, err)
		}
	}
}

// resizedRings picks ring sizes other than r's current ones: half of
// each, at least 64 descriptors and a multiple of 8, or twice when half
// is too small, within the maximums.
func resizedRings(r faultinject.Rings) (rx, tx uint32) {
	pick := func(cur, maxv uint32) uint32 {
		n := cur / 2 &^ 7
		if n < 64 {
			n = min(cur*2, maxv) &^ 7
		}
		return n
	}
	return pick(r.RX, r.RXMax), pick(r.TX, r.TXMax)
}

// ringResize is Race/RingResize's action: new TX and RX ring sizes, then
// the old ones again.
func ringResize(iface string, orig faultinject.Rings) scenario.RaceAction {
	return func(ctx context.Context, started func()) (string, error) {
		rx, tx := resizedRings(orig)
		started()
		t0 := time.Now()
		if err := faultinject.SetRings(iface, rx, tx, faultinject.Options{}); err != nil {
			return "", err
		}
		set := time.Since(t0)
		t1 := time.Now()
		if err := faultinject.SetRings(iface, orig.RX, orig.TX, faultinject.Options{}); err != nil {
			return "", fmt.Errorf("putting the rings back to rx %d tx %d: %w", orig.RX, orig.TX, err)
		}
		return fmt.Sprintf("rings rx %d tx %d -> rx %d tx %d in %v, back in %v", orig.RX, orig.TX, rx, tx, set.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond)), nil
	}
}

// raceRingResize is TxTimeout/Race/RingResize.
func raceRingResize(t *testing.T, cfg harness.Config) scenario.Spec {
	scenario.Need(t, cfg, harness.CheckRoot, harness.CheckKmsg, harness.CheckIface, harness.CheckDriver)
	if cfg.Rig && raceStallName(cfg) == "PartnerStall" {
		// Measured with QEMU 7.2: resizing virtio-net's rings resets
		// its TX queue while a packet to the stalled backend is still
		// in flight, and QEMU itself aborts (hw/net/virtio-net.c,
		// flush_or_purge_queued_packets: Assertion
		// `!virtio_net_get_subqueue(nc)->async_tx.elem' failed), taking
		// the guest and every later test with it. That is the rig's
		// emulator failing, not the DUT's driver.
		scenario.Skipf(t, "skipping: on the virtual rig a ring resize against the stalled partner aborts QEMU's virtio-net model "+
			"(flush_or_purge_queued_packets: Assertion `!virtio_net_get_subqueue(nc)->async_tx.elem' failed, QEMU 7.2); run it on a NapiStarve NIC (e1000)")
	}
	orig, err := faultinject.GetRings(cfg.Iface, faultinject.Options{})
	if errors.Is(err, errors.ErrUnsupported) {
		scenario.Skipf(t, "skipping: %s's driver (%s) has no ring parameters: %v", cfg.Iface, scenario.DriverOf(cfg.Iface), err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if rx, tx := resizedRings(orig); rx == orig.RX && tx == orig.TX {
		scenario.Skipf(t, "skipping: %s's rings (rx %d/%d tx %d/%d) leave no other size to pick", cfg.Iface, orig.RX, orig.RXMax, orig.TX, orig.TXMax)
	}
	t.Cleanup(func() {
		now, err := faultinject.GetRings(cfg.Iface, faultinject.Options{})
		if err != nil {
			t.Errorf("after the race, reading %s's rings: %v", cfg.Iface, err)
			return
		}
		if now.RX != orig.RX || now.TX != orig.TX {
			t.Errorf("the race left %s's rings at rx %d tx %d (were rx %d tx %d); putting them back", cfg.Iface, now.RX, now.TX, orig.RX, orig.TX)
			if err := faultinject.SetRings(cfg.Iface, orig.RX, orig.TX, faultinject.Options{}); err != nil {
				t.Errorf("%v", err)
			}
		}
	})
	return raceScenario(t, cfg, "a TX/RX ring resize", ringResize(cfg.Iface, orig))
}

// repeatDefault and repeatMax bound TxTimeout/Repeat.
const (
	repeatDefault = 5
	repeatMax     = 20
)

// repeatCount is TXTIMEOUT_REPEAT (default 5, at most 20).
func repeatCount() (int, error) {
	v := os.Getenv("TXTIMEOUT_REPEAT")
	if v == "" {
		return repeatDefault, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > repeatMax {
		return 0, fmt.Errorf("TXTIMEOUT_REPEAT=%q: want 1..%d back-to-back timeouts", v, repeatMax)
	}
	return n, nil
}

// repeatTimeouts is TxTimeout/Repeat: N back-to-back stalls on the same
// device, each of which must fire the watchdog and recover. Drivers
// escalate on repeated timeouts (gve kicks a queue first and resets only
// on a second timeout), so the report counts, per cycle, the timeouts, the
// driver's lines and resets, and the time between successive timeouts.
func repeatTimeouts(t *testing.T, cfg harness.Config) {
	scenario.Need(t, cfg, harness.CheckRoot, harness.CheckKmsg, harness.CheckIface, harness.CheckDriver)
	n, err := repeatCount()
	if err != nil {
		t.Fatal(err)
	}
	var cycles []harness.ScenarioReport
	stall := ""
	for i := 1; i <= n; i++ {
		r := &harness.Report{}
		skipped := false
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			s, name := raceStall(t, cfg)
			stall = name
			s.Report = r
			scenario.Exec(t, cfg, s)
		})
		if skipped && i == 1 && (len(r.Scenarios) == 0 || r.Scenarios[0].Result == harness.Skip) {
			// The DUT cannot take the stall at all (no threaded NAPI,
			// no partner): nothing to repeat.
			why := "its first cycle was skipped (see TxTimeout/Repeat/1)"
			if len(r.Scenarios) == 1 {
				why = r.Scenarios[0].Reason
			}
			scenario.Skip(t, why)
		}
		if len(r.Scenarios) != 1 {
			break // the cycle ended before its verdict (t.Fatal): stop
		}
		cycles = append(cycles, r.Scenarios[0])
		if r.Scenarios[0].Result != harness.Pass {
			break // no point stalling a device that did not come back
		}
	}
	s := repeatSummary(n, stall, cycles)
	harness.Finish(t, scenario.RunReport(), s)
}

// repeatSummary turns the cycles of TxTimeout/Repeat into one scenario
// report: it passes when all n cycles passed.
func repeatSummary(n int, stall string, cycles []harness.ScenarioReport) harness.ScenarioReport {
	s := harness.ScenarioReport{Verdict: harness.Unmeasured()}
	var lines []string
	var firsts []time.Time
	passed, timeouts, resets := 0, uint64(0), 0
	s.CleanupOK, s.TimeoutFired, s.Recovered = len(cycles) > 0, len(cycles) > 0, len(cycles) > 0
	for i, c := range cycles {
		if c.Result == harness.Pass {
			passed++
		}
		s.Splat = s.Splat || c.Splat
		s.SplatCount += c.SplatCount
		s.CleanupOK = s.CleanupOK && c.CleanupOK
		s.TimeoutFired = s.TimeoutFired && c.TimeoutFired
		s.Recovered = s.Recovered && c.Recovered
		s.ResetSeen = s.ResetSeen || c.ResetSeen
		s.LinkFlap = s.LinkFlap || c.LinkFlap
		s.ResetLines += c.ResetLines
		s.DriverLines += c.DriverLines
		s.WatchdogLines += c.WatchdogLines
		s.TracepointHits += c.TracepointHits
		s.TxTimeoutCount += c.TxTimeoutCount
		timeouts += c.TxTimeoutCount
		resets += c.ResetLines
		if i == 0 {
			s.FirstTimeoutMS = c.FirstTimeoutMS
		}
		s.RecoverMS = max(s.RecoverMS, c.RecoverMS)
		s.Events = append(s.Events, c.Events...)
		if m, ok := c.Timeline.FindMark(harness.MarkFaultInjected); ok && c.FirstTimeoutMS >= 0 {
			firsts = append(firsts, m.Time.Add(time.Duration(c.FirstTimeoutMS)*time.Millisecond))
		}
		lines = append(lines, fmt.Sprintf("cycle %d %s: first timeout %d ms, tx_timeout +%d, %d driver lines, %d reset lines, recovered in %d ms",
			i+1, c.Result, c.FirstTimeoutMS, c.TxTimeoutCount, c.DriverLines, c.ResetLines, c.RecoverMS))
	}
	var gaps []string
	minGap, maxGap := time.Duration(0), time.Duration(0)
	for i := 1; i < len(firsts); i++ {
		g := firsts[i].Sub(firsts[i-1])
		gaps = append(gaps, g.Round(10*time.Millisecond).String())
		if i == 1 || g < minGap {
			minGap = g
		}
		maxGap = max(maxGap, g)
	}
	s.Measurements = []harness.Measurement{
		{Name: "cycles", Value: float64(len(cycles)), Units: "cycles"},
		{Name: "cycles_passed", Value: float64(passed), Units: "cycles"},
		{Name: "tx_timeouts", Value: float64(timeouts), Units: "timeouts"},
		{Name: "reset_lines", Value: float64(resets), Units: "lines"},
	}
	if len(gaps) > 0 {
		s.Measurements = append(s.Measurements,
			harness.Measurement{Name: "timeout_interval_min_ms", Value: float64(minGap.Milliseconds()), Units: "ms"},
			harness.Measurement{Name: "timeout_interval_max_ms", Value: float64(maxGap.Milliseconds()), Units: "ms"},
			// The rate of the whole loop, each cycle's stall, recovery
			// and the scenario's own steps in between.
			harness.Measurement{Name: "timeouts_per_min", Value: round(float64(len(gaps)) / firsts[len(firsts)-1].Sub(firsts[0]).Minutes()), Units: "1/min"})
	}
	detail := strings.Join(lines, "; ")
	if len(gaps) > 0 {
		detail += "; time between successive timeouts: " + strings.Join(gaps, ", ")
	}
	switch {
	case len(cycles) == 0:
		s.Result, s.Reason = harness.Fail, fmt.Sprintf("no cycle of %d reached its verdict", n)
	case passed == n:
		s.Result, s.Reason = harness.Pass, fmt.Sprintf("%d back-to-back %s timeouts fired and recovered: %s", n, stall, detail)
	case cycles[len(cycles)-1].Result == harness.Inconclusive && passed == len(cycles)-1:
		s.Result, s.Reason = harness.Inconclusive, fmt.Sprintf("cycle %d of %d was inconclusive (%s): %s", len(cycles), n, cycles[len(cycles)-1].Reason, detail)
	case cycles[len(cycles)-1].Result == harness.Pass:
		s.Result, s.Reason = harness.Fail, fmt.Sprintf("only %d of %d cycles reached their verdict: %s", len(cycles), n, detail)
	default:
		last := cycles[len(cycles)-1]
		s.Result, s.Reason = harness.Fail, fmt.Sprintf("cycle %d of %d: %s: %s; %s", len(cycles), n, last.Result, last.Reason, detail)
	}
	return s
}

// queueNDefault is the queue TxTimeout/QueueN stalls (TXTIMEOUT_QUEUE).
const queueNDefault = 1

// txQueues counts iface's TX queues in sysfs.
func txQueues(iface string) int {
	qs, _ := filepath.Glob(filepath.Join("/sys/class/net", iface, "queues", "tx-*"))
	return len(qs)
}

// queueN is TxTimeout/QueueN: the NAPI threads are starved while pktgen
// sends on one TX queue other than 0 (its queue_map pinned there), so
// that queue alone fills and stops. Its own tx_timeout counter must move,
// and the watchdog must name it, not queue 0: drivers have recovered one
// queue of many badly (mtk_eth_soc timed out on queue 4 again and again).
func queueN(t *testing.T, cfg harness.Config) scenario.Spec {
	scenario.Need(t, cfg, harness.CheckRoot, harness.CheckKmsg, harness.CheckIface, harness.CheckDriver, harness.CheckPktgen)
	q := queueNDefault
	if v := os.Getenv("TXTIMEOUT_QUEUE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TXTIMEOUT_QUEUE=%q: want a TX queue number other than 0", v)
		}
		q = n
	}
	n := txQueues(cfg.Iface)
	if n <= q {
		scenario.Skipf(t, "skipping: %s has %d TX queue(s), so there is no queue %d to stall; QueueN needs a multi-queue device "+
			"(on the virtual rig: -nic igb, which needs QEMU 8.0 or later; virtio-net's multiqueue needs a tap backend the rig does not use)", cfg.Iface, n, q)
	}
	if cfg.Rig && !scenario.RigNapiStalls(cfg.NIC, "pktgen") {
		scenario.Skipf(t, "skipping: QueueN starves the NAPI threads, which does not stop TX completions on the rig's %s", cfg.NIC)
	}
	s := napiStarveOn(t, cfg, "pktgen", q)
	base := s.Decide
	s.Decide = func(v harness.Verdict, o scenario.Outcome) (harness.Result, string) {
		res, why := base(v, o)
		if res != harness.Pass {
			return res, why
		}
		moved := func(i int) uint64 {
			if i < len(v.TxTimeoutByQueue) {
				return v.TxTimeoutByQueue[i]
			}
			return 0
		}
		switch {
		case moved(q) == 0:
			return harness.Fail, fmt.Sprintf("the watchdog fired, but queue %d's own tx_timeout counter did not move (by queue: %v): the timeout was counted on another queue", q, v.TxTimeoutByQueue)
		case !slices.Contains(v.WatchdogQueues, q):
			return harness.Fail, fmt.Sprintf("queue %d's counter moved, but no watchdog line or tracepoint hit named it (they named %v)", q, v.WatchdogQueues)
		case len(v.WatchdogQueues) > 1 || moved(0) > 0:
			return harness.Fail, fmt.Sprintf("only queue %d was stalled, yet the watchdog named queues %v and the counters moved by queue %v", q, v.WatchdogQueues, v.TxTimeoutByQueue)
		}
		return harness.Pass, fmt.Sprintf("%s; queue %d alone timed out (its tx_timeout +%d, the watchdog named queue %d)", why, q, moved(q), q)
	}
	return s
}
