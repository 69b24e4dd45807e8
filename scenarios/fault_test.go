package scenarios

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"txtimeout/faultinject"
	"txtimeout/harness"
	"txtimeout/traffic"
)

// load offers traffic to the DUT until ctx ends and reports what it did.
// It adds what it offers to the timeline (Timeline.AddOffered) where it
// can count it.
type load func(ctx context.Context, tl *harness.Timeline) (loadReport, error)

type loadReport struct {
	summary      string
	measurements []harness.Measurement
	// noStall is set when the scenario ended the fault early because
	// tx_packets kept moving (faultScenario.failFast): why, in plain
	// words.
	noStall string
	// race is what the race action did, raceErr why it failed (both
	// empty when the scenario raced nothing).
	race, raceErr string
}

// faultScenario is one scenario of the shape every TxTimeout scenario
// has: baseline, inject the fault, offer traffic, watch, remove the fault,
// check recovery and cleanup, derive the verdict.
type faultScenario struct {
	cfg      harness.Config
	injector faultinject.Injector
	load     load
	// window bounds the fault: how long traffic is offered while the
	// fault is in place.
	window time.Duration
	// untilTimeout ends the window as soon as a timeout signal is on the
	// timeline: the scenario has what it came for.
	untilTimeout bool
	vopts        harness.VerdictOptions
	// failFast, when set, ends the fault window early if tx_packets still
	// moves that long after the load started (over the last
	// failFastSpan): the fault did not stop the device, and waiting for a
	// watchdog that cannot fire only delays the verdict. noStall says why
	// in plain words; its text goes to decide as loadReport.noStall.
	failFast time.Duration
	noStall  func() string
	// race, when set, runs once the first timeout signal is in, while
	// the driver's recovery is pending, concurrently with the fault's
	// release (see raceAction).
	race raceAction
	// decide turns the verdict into a result and a reason in plain words.
	decide func(v harness.Verdict, lr loadReport) (harness.Result, string)

	// hook, when set, is called at each phase (phaseBaseline, ...) in the
	// test's goroutine: the crash-safety tests stop or kill the scenario
	// there. report, when set, receives the outcome instead of the run's
	// report (the soak keeps each run's timeline out of report.json).
	hook   func(ctx context.Context, tl *harness.Timeline, phase string)
	report *harness.Report
}

// preflight caches the preflight checks of this run.
var preflight = sync.OnceValue(func() []harness.Check { return harness.Preflight(config) })

func (s faultScenario) run(t *testing.T) {
	t.Helper()
	cfg := s.cfg
	// One deadline bounds the whole scenario, whatever hangs, and it ends
	// early enough before the test's own deadline (go test -timeout) for
	// the fault to be removed before the testing package panics.
	margin := restoreMargin(0)
	if s.injector.Name() == "stall" {
		margin = restoreMargin(cfg.StallFor)
	}
	ctx, cancel := scenarioContext(t, s.window+cfg.RecoverWithin+time.Minute, margin)
	defer cancel()

	tl := harness.NewTimeline()
	obs, err := harness.StartObservers(ctx, cfg, tl)
	if err != nil {
		t.Fatalf("starting the observers: %v", err)
	}
	stopObservers := sync.OnceValue(obs.Stop)
	defer stopObservers()

	// The fault is always removed: on success below, here when the test
	// fails, panics or times out first, and by the signal handler on
	// SIGINT or SIGTERM (active).
	restore := sync.OnceValue(func() error {
		rctx, rcancel := context.WithTimeout(context.Background(), faultinject.MaxStall)
		defer rcancel()
		return s.injector.Restore(rctx)
	})
	unregister := active.add(activeEntry{
		what:    s.injector.Name() + " fault on " + cfg.Iface,
		iface:   cfg.Iface,
		stop:    cancel,
		restore: func(context.Context) error { return restore() },
	})
	t.Cleanup(func() {
		if err := restore(); err != nil {
			t.Errorf("restoring the DUT: %v", err)
		}
		unregister()
	})

	// On a kernel with kmemleak, only the leaks of this scenario count:
	// forget the earlier ones now, scan after the recovery.
	leaks := harness.OpenKmemleak("")
	if leaks != nil {
		switch err := leaks.Clear(); {
		case errors.Is(err, harness.ErrKmemleakOff):
			t.Logf("%v", err)
			leaks = nil
		case err != nil:
			// A detector that is there but cannot be driven is a
			// check that would pass by not checking.
			t.Errorf("%v", err)
			leaks = nil
		}
	}

	// A baseline: two samples of the counters before anything changes.
	if err := waitFor(ctx, tl, 10*time.Second, func(tl *harness.Timeline) bool { return len(tl.Samples()) >= 2 }); err != nil {
		t.Fatalf("no baseline samples from the observers within 10s: %v", err)
	}

	// The partner must answer before the fault: this also resolves its
	// neighbour entry. In a fresh boot the first flood would otherwise
	// wait in the neighbour queue for an ARP reply that a stalled partner
	// never sends, the driver queue would never fill, and the run would
	// be inconclusive for a reason that has nothing to do with the driver.
	if dst, _ := peer(cfg.PeerIP, ""); dst != nil {
		if err := echoWithin(ctx, dst, 15*time.Second); err != nil {
			s.finish(t, tl, stopObservers, loadReport{}, harness.Fail, fmt.Sprintf("the partner does not answer before the fault is injected, so recovery could not be judged: %v", err))
			return
		}
	}

	s.phase(ctx, tl, phaseBaseline)
	t.Logf("injecting: %s", s.injector.Describe())
	if err := s.injector.Inject(ctx); err != nil {
		s.finish(t, tl, stopObservers, loadReport{}, harness.Fail, fmt.Sprintf("injecting the fault failed: %v", err))
		return
	}
	tl.Mark(harness.MarkFaultInjected)
	s.phase(ctx, tl, phaseInjected)

	loadCtx, stopLoad := context.WithTimeout(ctx, s.window)
	defer stopLoad()
	type loadDone struct {
		lr  loadReport
		err error
	}
	done := make(chan loadDone, 1)
	finished := make(chan struct{})
	tl.Mark(harness.MarkFloodStart)
	go func() {
		defer close(finished)
		lr, err := s.load(loadCtx, tl)
		done <- loadDone{lr, err}
	}()
	// A failing or panicking test stops its load before the fault is
	// restored (cleanups run last in, first out), and waits for it so
	// that pktgen removes its devices.
	t.Cleanup(func() {
		stopLoad()
		select {
		case <-finished:
		case <-time.After(30 * time.Second):
			t.Errorf("the load did not stop within 30s of its cancellation")
		}
	})
	s.phase(ctx, tl, phaseFlood)

	// The fault window: until the load's deadline, or the first timeout
	// signal when that is all the scenario needs, or (failFast) as soon as
	// it is clear that the fault did not stop the device.
	t.Logf("fault in place; offering traffic for at most %v", s.window)
	loadStart := time.Now()
	var moving uint64
	_ = tl.WaitFor(loadCtx, func(tl *harness.Timeline) bool {
		if s.untilTimeout && tl.Verdict(s.vopts).TimeoutFired {
			return true
		}
		if s.failFast > 0 && time.Since(loadStart) >= s.failFast {
			moving = txMovedOver(tl.Samples(), failFastSpan)
			return moving > 0
		}
		return false
	})
	noStall := ""
	if moving > 0 {
		noStall = fmt.Sprintf("tx_packets still moved by %d in %v, %v after the load started", moving, failFastSpan, time.Since(loadStart).Round(100*time.Millisecond))
		if s.noStall != nil {
			noStall += ": " + s.noStall()
		}
		t.Logf("releasing early: %s", noStall)
	}
	if v := tl.Verdict(s.vopts); v.TimeoutFired {
		t.Logf("timeout signal %d ms after the fault was injected", v.FirstTimeoutMS)
	}
	stopLoad()
	ld := <-done
	ld.lr.noStall = noStall
	tl.Mark(harness.MarkFloodStop)
	if ld.lr.summary != "" {
		t.Logf("load: %s", ld.lr.summary)
	}

	// A last sample before the window closes: a timeout seen first in
	// the kernel log ends the window before the next periodic sample
	// would show the tx_timeout counter's increase.
	if err := obs.SampleNow(); err != nil {
		t.Logf("observers: the sample before the release: %v", err)
	}
	var raced <-chan raceOutcome
	if s.race != nil {
		if tl.Verdict(s.vopts).TimeoutFired {
			// Race the recovery, not the fault: an injector that can
			// end its fault in one quick step (NapiStarve kills its
			// hog) does so first, so that the driver's pending reset
			// runs while the race action goes in.
			if r, ok := s.injector.(releaser); ok {
				if err := r.Release(ctx); err != nil {
					t.Logf("releasing the fault before the race: %v", err)
				}
				tl.Mark(markFaultReleased)
			}
			raced = s.startRace(ctx, t, tl)
		} else {
			ld.lr.raceErr = "no timeout signal came, so nothing was raced"
		}
	}
	t.Logf("removing the fault")
	restoreErr := restore()
	tl.Mark(harness.MarkFaultRemoved)
	t.Logf("removed: %s", s.injector.Describe())
	if raced != nil {
		ld.lr.race, ld.lr.raceErr = s.joinRace(t, tl, raced)
	}

	s.checkRecovery(ctx, t, tl)
	s.checkCleanup(t, tl, restoreErr)
	if leaks != nil {
		evs, err := leaks.Scan()
		if err != nil {
			t.Errorf("%v", err)
		}
		for _, e := range evs {
			tl.AddEvent(sourceKmemleak, e) // a splat: it fails the scenario
		}
		t.Logf("kmemleak: %d new unreferenced objects after the scenario", len(evs))
	}

	if err := ctx.Err(); err != nil {
		s.finish(t, tl, stopObservers, ld.lr, harness.Fail, fmt.Sprintf("the scenario was cut short (%v): its deadline, %v before the test's (go test -timeout), "+
			"or a signal came first; the fault was removed (cleanup_ok %t) but the verdict is incomplete", err, margin, tl.Verdict(s.vopts).CleanupOK))
		return
	}
	if ld.err != nil && !errors.Is(ld.err, context.Canceled) && !errors.Is(ld.err, context.DeadlineExceeded) {
		s.finish(t, tl, stopObservers, ld.lr, harness.Fail, fmt.Sprintf("the traffic generator failed: %v", ld.err))
		return
	}
	v := tl.Verdict(s.vopts)
	res, reason := s.decide(v, ld.lr)
	s.finish(t, tl, stopObservers, ld.lr, res, reason)
}

// The phases of a scenario at which the phase hook is called.
const (
	phaseBaseline = "baseline" // observers running, nothing changed yet
	phaseInjected = "injected" // the fault is in place, no traffic yet
	phaseFlood    = "flood"    // the fault is in place and the load runs
)

func (s faultScenario) phase(ctx context.Context, tl *harness.Timeline, p string) {
	if s.hook != nil {
		s.hook(ctx, tl, p)
	}
}

// checkRecovery sends echo requests to the partner until one is answered
// or the recovery deadline passes, then waits for tx_packets to move.
func (s faultScenario) checkRecovery(ctx context.Context, t *testing.T, tl *harness.Timeline) {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RecoverWithin)
	defer cancel()
	dst, _ := peer(s.cfg.PeerIP, "")
	if dst != nil {
		pace := time.NewTicker(250 * time.Millisecond)
		defer pace.Stop()
		var lastErr error
		for {
			rtt, err := reachable(rctx, dst, time.Second)
			if err == nil {
				tl.MarkNote(harness.MarkEchoReply, fmt.Sprintf("rtt %v", rtt.Round(time.Microsecond)))
				break
			}
			lastErr = err
			select {
			case <-rctx.Done():
			case <-pace.C:
				continue
			}
			t.Logf("no echo reply from %s within %v after the fault was removed: %v", dst, s.cfg.RecoverWithin, lastErr)
			break
		}
	}
	_ = tl.WaitFor(rctx, func(tl *harness.Timeline) bool { return tl.Verdict(s.vopts).Recovered })
}

// echoWithin sends echo requests to dst until one is answered or d passes.
func echoWithin(ctx context.Context, dst net.IP, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		_, err := reachable(ctx, dst, time.Second)
		if err == nil {
			return nil
		}
		// Pace the retries of a request that failed at once (no route,
		// no buffer) rather than spin.
		select {
		case <-ctx.Done():
			return fmt.Errorf("no echo reply from %s within %v: %w", dst, d, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// reachable is traffic.Reachable with a 56-byte payload. It returns by
// its timeout even on a device whose queue never drains again (it retries
// ENOBUFS only until its deadline).
func reachable(ctx context.Context, dst net.IP, timeout time.Duration) (time.Duration, error) {
	return traffic.Reachable(ctx, dst, 56, timeout)
}

// checkCleanup marks whether the DUT is as the scenario found it: the
// injector restored without error, no state file is left, and no qdisc
// with the project's handle remains.
func (s faultScenario) checkCleanup(t *testing.T, tl *harness.Timeline, restoreErr error) {
	t.Helper()
	var problems []string
	if restoreErr != nil {
		problems = append(problems, restoreErr.Error())
	}
	stale, err := faultinject.StaleState(faultinject.Options{})
	if err != nil {
		problems = append(problems, fmt.Sprintf("reading state files: %v", err))
	}
	for _, iface := range stale {
		problems = append(problems, "state file left for "+iface)
	}
	if link, err := netlink.LinkByName(s.cfg.Iface); err == nil {
		qs, err := netlink.QdiscList(link)
		if err != nil {
			problems = append(problems, fmt.Sprintf("listing qdiscs: %v", err))
		}
		for _, q := range qs {
			if faultinject.IsProjectHandle(q.Attrs().Handle) {
				problems = append(problems, fmt.Sprintf("%s qdisc %s left on %s", q.Type(), netlink.HandleStr(q.Attrs().Handle), s.cfg.Iface))
			}
		}
	}
	for _, d := range pktgenDevices() {
		problems = append(problems, "pktgen device left: "+d)
	}
	if len(problems) > 0 {
		tl.MarkNote(harness.MarkCleanupFailed, strings.Join(problems, "; "))
		return
	}
	tl.Mark(harness.MarkCleanupOK)
}

func (s faultScenario) finish(t *testing.T, tl *harness.Timeline, stopObservers func() error, lr loadReport, res harness.Result, reason string) {
	t.Helper()
	if err := stopObservers(); err != nil {
		t.Logf("observers: %v", err)
	}
	snap := tl.Snapshot()
	v := snap.Verdict(s.vopts)
	if res == harness.Fail {
		// The kernel-log excerpt belongs with the failure.
		for _, e := range snap.KmsgEvents() {
			t.Logf("kmsg %s: %s", e.Kind, e.Text)
		}
	}
	r := s.report
	if r == nil {
		r = report
	}
	harness.Finish(t, r, harness.ScenarioReport{
		Result:       res,
		Reason:       reason,
		Verdict:      v,
		Measurements: lr.measurements,
		Timeline:     snap,
	})
}

// sourceKmemleak is the timeline source of the leaks a kmemleak scan
// reports after a scenario.
const sourceKmemleak = "kmemleak"

// failFastSpan is the span over which faultScenario.failFast looks for a
// moving tx_packets: a few samples, so that one late completion does not
// count.
const failFastSpan = 500 * time.Millisecond

// txMovedOver returns how much tx_packets grew over the last span of
// samples (0 when the samples do not cover span yet).
func txMovedOver(samples []harness.Sample, span time.Duration) uint64 {
	if len(samples) < 2 {
		return 0
	}
	last := samples[len(samples)-1]
	for i := len(samples) - 2; i >= 0; i-- {
		if last.Time.Sub(samples[i].Time) >= span {
			if last.TxPackets > samples[i].TxPackets {
				return last.TxPackets - samples[i].TxPackets
			}
			return 0
		}
	}
	return 0
}

// waitFor waits on the timeline for pred, at most d.
func waitFor(ctx context.Context, tl *harness.Timeline, d time.Duration, pred func(*harness.Timeline) bool) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return tl.WaitFor(ctx, pred)
}

// icmpLoad floods dst with echo requests as c says, counting every
// attempt (failed sends included) as offered.
func icmpLoad(c traffic.FloodConfig) load {
	return func(ctx context.Context, tl *harness.Timeline) (loadReport, error) {
		var mu sync.Mutex
		var counted int64
		offer := func(st traffic.FloodStats) {
			total := st.Sent
			for _, n := range st.Errors {
				total += n
			}
			mu.Lock()
			defer mu.Unlock()
			if total > counted {
				tl.AddOffered(uint64(total - counted))
				counted = total
			}
		}
		c.Progress = offer
		c.Linger = -1
		st, err := traffic.Flood(ctx, c)
		offer(st)
		errs := make([]string, 0, len(st.Errors))
		for name, n := range st.Errors {
			errs = append(errs, fmt.Sprintf("%s=%d", name, n))
		}
		return loadReport{
			summary: fmt.Sprintf("%d echo requests of %d bytes from %d sender(s) in %v (%.0f/s), %d replies, send errors: %s",
				st.Sent, c.Size, c.Senders, st.Elapsed.Round(time.Millisecond), st.PPS, st.Received, orNone(errs)),
			measurements: []harness.Measurement{
				{Name: "flood_pps", Value: round(st.PPS), Units: "pps"},
				{Name: "flood_sent", Value: float64(st.Sent), Units: "packets"},
			},
		}, err
	}
}

// pktgenLoad runs pktgen on one thread towards the partner until ctx
// ends. pktgen calls the driver directly, bypassing the qdisc, so what it
// offers is not counted; the verdict relies on the flood marks instead.
func pktgenLoad(iface string, dst net.IP, dstMAC net.HardwareAddr) load {
	return func(ctx context.Context, tl *harness.Timeline) (loadReport, error) {
		res, err := traffic.RunPktgen(ctx, traffic.PktgenConfig{Devices: []traffic.PktgenDevice{{
			Thread:  0,
			Iface:   iface,
			Count:   50_000_000, // a count bound as well as ctx's deadline
			PktSize: 1400,
			Dst:     dst,
			DstMAC:  dstMAC,
		}}})
		return loadReport{
			summary: fmt.Sprintf("pktgen sent %d packets (%.0f pps, %.1f Mb/s), %d errors", res.Sent, res.PPS, res.Mbps, res.Errors),
			measurements: []harness.Measurement{
				{Name: "pktgen_pps", Value: round(res.PPS), Units: "pps"},
				{Name: "pktgen_sent", Value: float64(res.Sent), Units: "packets"},
			},
		}, err
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}

func round(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
