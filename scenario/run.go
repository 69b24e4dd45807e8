package scenario

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"txtimeout/faultinject"
	"txtimeout/harness"
	"txtimeout/traffic"
)

// Run runs the scenario that build describes. On a host with no DUT
// configured it boots the virtual rig instead, runs t's test inside it and
// mirrors the guest's subtests into t (Setup); elsewhere (a hardware
// interface, the rig's guest) it checks the Spec's needs, injects its
// fault, offers its load, removes the fault, checks recovery and cleanup
// and records the result in the run's report (report.json, report.ktap).
func Run(t *testing.T, build Build) {
	t.Helper()
	cfg, direct := Setup(t)
	if !direct {
		return
	}
	Exec(t, cfg, build(t, cfg))
}

// Exec runs s on cfg's DUT in this process (Run without the rig): a
// scenario that builds its Spec from another one (the races, the soak)
// calls it.
func Exec(t *testing.T, cfg harness.Config, s Spec) {
	t.Helper()
	if len(s.Needs) > 0 {
		Need(t, cfg, s.Needs...)
	}
	if s.Fault == nil || s.Load == nil || s.Decide == nil {
		t.Fatal("scenario: a Spec needs Fault, Load and Decide")
	}
	if s.Window == 0 {
		s.Window = cfg.FloodFor
	}
	if s.Verdict.Iface == "" {
		s.Verdict.Iface = cfg.Iface
	}
	if s.Verdict.RecoverWithin == 0 {
		s.Verdict.RecoverWithin = cfg.RecoverWithin
	}
	inj, err := s.Fault()
	if errors.Is(err, errors.ErrUnsupported) {
		Skipf(t, "skipping: the DUT cannot take this fault: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	e := &execution{Spec: s, cfg: cfg, inj: inj}
	e.run(t)
}

// execution is one run of a Spec.
type execution struct {
	Spec
	cfg harness.Config
	inj faultinject.Injector
}

func (s *execution) run(t *testing.T) {
	t.Helper()
	cfg := s.cfg
	// One deadline bounds the whole scenario, whatever hangs, and it ends
	// early enough before the test's own deadline (go test -timeout) for
	// the fault to be removed before the testing package panics.
	margin := restoreMargin(s.inj)
	ctx, cancel := scenarioContext(t, s.Window+cfg.RecoverWithin+time.Minute, margin)
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
		return s.inj.Restore(rctx)
	})
	unregister := active.add(activeEntry{
		what:    s.inj.Name() + " fault on " + cfg.Iface,
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

	leaks := openKmemleak(t)

	// A baseline: two samples of the counters before anything changes.
	if err := waitFor(ctx, tl, 10*time.Second, func(tl *harness.Timeline) bool { return len(tl.Samples()) >= 2 }); err != nil {
		t.Fatalf("no baseline samples from the observers within 10s: %v", err)
	}

	// The partner must answer before the fault: this also resolves its
	// neighbour entry. In a fresh boot the first flood would otherwise
	// wait in the neighbour queue for an ARP reply that a stalled partner
	// never sends, the driver queue would never fill, and the run would
	// be inconclusive for a reason that has nothing to do with the driver.
	if dst, _ := Peer(cfg); dst != nil {
		if err := echoWithin(ctx, dst, 15*time.Second); err != nil {
			s.finish(t, tl, stopObservers, Outcome{}, harness.Fail, fmt.Sprintf("the partner does not answer before the fault is injected, so recovery could not be judged: %v", err))
			return
		}
	}

	s.phase(ctx, tl, PhaseBaseline)
	t.Logf("injecting: %s", s.inj.Describe())
	if err := s.inj.Inject(ctx); err != nil {
		// A kernel or device that cannot take the fault at all (no
		// threaded NAPI before 5.12, no flow control) is a skip with
		// its reason, not a failure of the driver.
		res, why := harness.Fail, "injecting the fault failed: "
		if errors.Is(err, errors.ErrUnsupported) {
			res, why = harness.Skip, "skipping: the DUT cannot take this fault: "
		}
		s.finish(t, tl, stopObservers, Outcome{}, res, why+err.Error())
		return
	}
	tl.Mark(harness.MarkFaultInjected)
	s.phase(ctx, tl, PhaseInjected)

	out, loadErr := s.offer(ctx, t, tl, obs)

	var raced <-chan raceOutcome
	if s.Race != nil {
		if tl.Verdict(s.Verdict).TimeoutFired {
			// Race the recovery, not the fault: an injector that can
			// end its fault in one quick step (NapiStarve kills its
			// hog) does so first, so that the driver's pending reset
			// runs while the race action goes in.
			if r, ok := s.inj.(releaser); ok {
				if err := r.Release(ctx); err != nil {
					t.Logf("releasing the fault before the race: %v", err)
				}
				tl.Mark(MarkFaultReleased)
			}
			raced = startRace(ctx, t, tl, s.Race)
		} else {
			out.RaceErr = "no timeout signal came, so nothing was raced"
		}
	}
	t.Logf("removing the fault")
	restoreErr := restore()
	tl.Mark(harness.MarkFaultRemoved)
	t.Logf("removed: %s", s.inj.Describe())
	if raced != nil {
		out.Race, out.RaceErr = joinRace(t, tl, raced)
	}

	s.checkRecovery(ctx, t, tl)
	checkCleanup(tl, cfg.Iface, restoreErr)
	scanKmemleak(t, tl, leaks)

	if err := ctx.Err(); err != nil {
		s.finish(t, tl, stopObservers, out, harness.Fail, fmt.Sprintf("the scenario was cut short (%v): its deadline, %v before the test's (go test -timeout), "+
			"or a signal came first; the fault was removed (cleanup_ok %t) but the verdict is incomplete", err, margin, tl.Verdict(s.Verdict).CleanupOK))
		return
	}
	if loadErr != nil && !errors.Is(loadErr, context.Canceled) && !errors.Is(loadErr, context.DeadlineExceeded) {
		s.finish(t, tl, stopObservers, out, harness.Fail, fmt.Sprintf("the traffic generator failed: %v", loadErr))
		return
	}
	res, reason := s.Decide(tl.Verdict(s.Verdict), out)
	s.finish(t, tl, stopObservers, out, res, reason)
}

// offer runs the load for the fault window: until the load's deadline,
// or the first timeout signal when that is all the scenario needs, or
// (FailFast) as soon as it is clear that the fault did not stop the
// device. It returns what the load did.
func (s *execution) offer(ctx context.Context, t *testing.T, tl *harness.Timeline, obs *harness.Observers) (Outcome, error) {
	t.Helper()
	loadCtx, stopLoad := context.WithTimeout(ctx, s.Window)
	defer stopLoad()
	type loadDone struct {
		lr  LoadReport
		err error
	}
	done := make(chan loadDone, 1)
	finished := make(chan struct{})
	tl.Mark(harness.MarkFloodStart)
	go func() {
		defer close(finished)
		lr, err := s.Load(loadCtx, tl)
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
	s.phase(ctx, tl, PhaseFlood)

	t.Logf("fault in place; offering traffic for at most %v", s.Window)
	loadStart := time.Now()
	var moving uint64
	_ = tl.WaitFor(loadCtx, func(tl *harness.Timeline) bool {
		if s.UntilTimeout && tl.Verdict(s.Verdict).TimeoutFired {
			return true
		}
		if s.FailFast > 0 && time.Since(loadStart) >= s.FailFast {
			moving = txMovedOver(tl.Samples(), failFastSpan)
			return moving > 0
		}
		return false
	})
	var out Outcome
	if moving > 0 {
		out.NoStall = fmt.Sprintf("tx_packets still moved by %d in %v, %v after the load started", moving, failFastSpan, time.Since(loadStart).Round(100*time.Millisecond))
		if s.NoStall != nil {
			out.NoStall += ": " + s.NoStall(s.inj)
		}
		t.Logf("releasing early: %s", out.NoStall)
	}
	if v := tl.Verdict(s.Verdict); v.TimeoutFired {
		t.Logf("timeout signal %d ms after the fault was injected", v.FirstTimeoutMS)
	}
	stopLoad()
	ld := <-done
	out.Load = ld.lr
	tl.Mark(harness.MarkFloodStop)
	if ld.lr.Summary != "" {
		t.Logf("load: %s", ld.lr.Summary)
	}
	// A last sample before the window closes: a timeout seen first in
	// the kernel log ends the window before the next periodic sample
	// would show the tx_timeout counter's increase.
	if err := obs.SampleNow(); err != nil {
		t.Logf("observers: the sample before the release: %v", err)
	}
	return out, ld.err
}

func (s *execution) phase(ctx context.Context, tl *harness.Timeline, p Phase) {
	if s.Hook != nil {
		s.Hook(ctx, tl, p)
	}
}

// checkRecovery sends echo requests to the partner until one is answered
// or the recovery deadline passes, then waits for tx_packets to move.
func (s *execution) checkRecovery(ctx context.Context, t *testing.T, tl *harness.Timeline) {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RecoverWithin)
	defer cancel()
	if dst, _ := Peer(s.cfg); dst != nil {
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
	_ = tl.WaitFor(rctx, func(tl *harness.Timeline) bool { return tl.Verdict(s.Verdict).Recovered })
}

func (s *execution) finish(t *testing.T, tl *harness.Timeline, stopObservers func() error, out Outcome, res harness.Result, reason string) {
	t.Helper()
	if err := stopObservers(); err != nil {
		t.Logf("observers: %v", err)
	}
	snap := tl.Snapshot()
	v := snap.Verdict(s.Verdict)
	if res == harness.Fail {
		// The kernel-log excerpt belongs with the failure.
		for _, e := range snap.KmsgEvents() {
			t.Logf("kmsg %s: %s", e.Kind, e.Text)
		}
	}
	r := s.Report
	if r == nil {
		r = report
	}
	sr := harness.ScenarioReport{
		Result:       res,
		Reason:       reason,
		Verdict:      v,
		Measurements: out.Load.Measurements,
		Timeline:     snap,
	}
	if base, _ := Config(); s.cfg.Iface != base.Iface {
		sr.Iface, sr.NIC = s.cfg.Iface, s.cfg.NIC
	}
	harness.Finish(t, r, sr)
}

// openKmemleak forgets the earlier leaks on a kernel with kmemleak, so
// that only this scenario's count; it returns nil where there is none.
func openKmemleak(t *testing.T) *harness.Kmemleak {
	t.Helper()
	leaks := harness.OpenKmemleak("")
	if leaks == nil {
		return nil
	}
	switch err := leaks.Clear(); {
	case errors.Is(err, harness.ErrKmemleakOff):
		t.Logf("%v", err)
		return nil
	case err != nil:
		// A detector that is there but cannot be driven is a check
		// that would pass by not checking.
		t.Errorf("%v", err)
		return nil
	}
	return leaks
}

// scanKmemleak adds the leaks found since openKmemleak to the timeline,
// where each is a splat that fails the scenario.
func scanKmemleak(t *testing.T, tl *harness.Timeline, leaks *harness.Kmemleak) {
	t.Helper()
	if leaks == nil {
		return
	}
	evs, err := leaks.Scan()
	if err != nil {
		t.Errorf("%v", err)
	}
	for _, e := range evs {
		tl.AddEvent(SourceKmemleak, e)
	}
	t.Logf("kmemleak: %d new unreferenced objects after the scenario", len(evs))
}

// SourceKmemleak is the timeline source of the leaks a kmemleak scan
// reports after a scenario.
const SourceKmemleak = "kmemleak"

// checkCleanup marks whether the DUT is as the scenario found it: the
// injector restored without error and faultinject finds nothing a fault or
// a load left behind (faultinject.Leftovers).
func checkCleanup(tl *harness.Timeline, iface string, restoreErr error) {
	var problems []string
	if restoreErr != nil {
		problems = append(problems, restoreErr.Error())
	}
	left, err := faultinject.Leftovers(iface, faultinject.Options{})
	if err != nil {
		problems = append(problems, err.Error())
	}
	problems = append(problems, left...)
	if len(problems) > 0 {
		tl.MarkNote(harness.MarkCleanupFailed, strings.Join(problems, "; "))
		return
	}
	tl.Mark(harness.MarkCleanupOK)
}

// failFastSpan is the span over which Spec.FailFast looks for a moving
// tx_packets: a few samples, so that one late completion does not count.
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
