package scenarios

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"txtimeout/faultinject"
	"txtimeout/harness"
	"txtimeout/internal/pktgenproc"
	"txtimeout/scenario"
)

// Crash safety: kill the suite at each phase of a scenario, by each way a
// run dies, and check that the DUT is as it was before once the run's own
// restore or a cleanup is done.
//
// TestReliability/CrashSafety runs where the scenarios run (in the virtual
// rig's guest, where netem and pktgen are real, or on a hardware DUT). Each
// case re-executes the test binary as TestCrashChild with the case in
// TXTIMEOUT_CRASH_CHILD. The child runs a scenario with short durations
// and prints a marker line at each phase; at the case's phase it waits (or
// panics), and the parent kills it there. No fixed sleeps: the parent acts
// on the markers, and every wait has a deadline.

// crashEnv carries the case to the child: INJECTOR/LOAD/PHASE/WAY.
const crashEnv = "TXTIMEOUT_CRASH_CHILD"

// crashMarker begins every line the child prints for the parent.
const crashMarker = "TXTO-CRASH "

// Ways of dying.
const (
	waySIGINT         = "sigint"
	waySIGTERM        = "sigterm"
	wayTimeout        = "timeout"         // -test.timeout expires
	wayPanic          = "panic"           // a panic in the scenario
	waySIGKILLCleanup = "sigkill-cleanup" // then txtimeout cleanup -all (faultinject.CleanupAll)
	waySIGKILLNextRun = "sigkill-nextrun" // then the next run: refuses, then cleans with TXTIMEOUT_CLEAN_STALE=1
	// wayStale is not a way of dying: the child only runs the start of a
	// run (the stale-state check) and exits.
	wayStale = "stale"
)

type crashCase struct {
	injector string // "stall", "netem", "napi" or "pause"
	load     string // "icmp" or "pktgen"
	phase    scenario.Phase
	way      string
}

func (c crashCase) String() string {
	return strings.Join([]string{c.injector, c.load, string(c.phase), c.way}, "/")
}

func parseCrashCase(s string) (crashCase, error) {
	f := strings.Split(s, "/")
	if len(f) != 4 {
		return crashCase{}, fmt.Errorf("%s=%q: want INJECTOR/LOAD/PHASE/WAY", crashEnv, s)
	}
	c := crashCase{f[0], f[1], scenario.Phase(f[2]), f[3]}
	switch {
	case !slices.Contains([]string{"stall", "netem", "napi", "pause"}, c.injector):
		return c, fmt.Errorf("%s: unknown injector %q", crashEnv, c.injector)
	case c.load != "icmp" && c.load != "pktgen":
		return c, fmt.Errorf("%s: unknown load %q", crashEnv, c.load)
	case c.phase != scenario.PhaseBaseline && c.phase != scenario.PhaseInjected && c.phase != scenario.PhaseFlood:
		return c, fmt.Errorf("%s: unknown phase %q", crashEnv, c.phase)
	case !slices.Contains([]string{waySIGINT, waySIGTERM, wayTimeout, wayPanic, waySIGKILLCleanup, waySIGKILLNextRun, wayStale}, c.way):
		return c, fmt.Errorf("%s: unknown way %q", crashEnv, c.way)
	}
	return c, nil
}

// crashMatrix is every way of dying with the fault in place (phase
// injected) for both injectors that run on the virtual rig; each phase
// with SIGKILL and the next run; pktgen as the load for the ways that
// leave pktgen devices behind; and a few ways at the other phases (SIGINT
// and SIGTERM before the injection and during the flood, a panic and
// SIGKILL before netem, the deadline during a netem flood). 22 cases, about
// two minutes of guest time; and five NapiStarve cases (SIGKILL mid-hog then
// cleanup, SIGKILL then the next run, SIGINT, SIGTERM, a panic during a
// pktgen flood, SIGINT before the injection): every injector that runs on
// the rig at every phase (TestCrashMatrixCoverage). Left out (minutes, not
// coverage): every way
// at every phase for every injector and load, and the PAUSE injector,
// whose flow-control restore needs a hardware partner port.
var crashMatrix = []crashCase{
	{"stall", "icmp", scenario.PhaseInjected, waySIGINT},
	{"stall", "icmp", scenario.PhaseInjected, waySIGTERM},
	{"stall", "icmp", scenario.PhaseInjected, wayTimeout},
	{"stall", "icmp", scenario.PhaseInjected, wayPanic},
	{"stall", "icmp", scenario.PhaseInjected, waySIGKILLCleanup},
	{"netem", "icmp", scenario.PhaseInjected, waySIGINT},
	{"netem", "icmp", scenario.PhaseInjected, waySIGTERM},
	{"netem", "icmp", scenario.PhaseInjected, wayTimeout},
	{"netem", "icmp", scenario.PhaseInjected, wayPanic},
	{"netem", "icmp", scenario.PhaseInjected, waySIGKILLCleanup},
	{"stall", "icmp", scenario.PhaseBaseline, waySIGKILLNextRun},
	{"stall", "icmp", scenario.PhaseInjected, waySIGKILLNextRun},
	{"stall", "icmp", scenario.PhaseFlood, waySIGKILLNextRun},
	{"netem", "icmp", scenario.PhaseFlood, waySIGINT},
	{"stall", "pktgen", scenario.PhaseFlood, waySIGTERM},
	{"stall", "pktgen", scenario.PhaseFlood, wayPanic},
	{"stall", "pktgen", scenario.PhaseFlood, waySIGKILLCleanup},
	{"stall", "icmp", scenario.PhaseBaseline, waySIGINT},
	{"stall", "icmp", scenario.PhaseFlood, waySIGTERM},
	{"netem", "icmp", scenario.PhaseBaseline, wayPanic},
	{"netem", "icmp", scenario.PhaseBaseline, waySIGKILLCleanup},
	{"netem", "icmp", scenario.PhaseFlood, wayTimeout},
	// NAPI starvation: SIGKILL mid-hog then txtimeout cleanup -all, the
	// next run, the handled signals and a panic.
	{"napi", "icmp", scenario.PhaseFlood, waySIGKILLCleanup},
	{"napi", "icmp", scenario.PhaseInjected, waySIGKILLNextRun},
	{"napi", "icmp", scenario.PhaseFlood, waySIGINT},
	{"napi", "icmp", scenario.PhaseFlood, waySIGTERM},
	{"napi", "pktgen", scenario.PhaseFlood, wayPanic},
	{"napi", "icmp", scenario.PhaseBaseline, waySIGINT},
	// The PAUSE flood, where there is a partner port (a hardware rig, the
	// loop topology): its flow-control change and its flood.
	{"pause", "icmp", scenario.PhaseBaseline, waySIGTERM},
	{"pause", "icmp", scenario.PhaseInjected, waySIGKILLCleanup},
	{"pause", "icmp", scenario.PhaseInjected, waySIGKILLNextRun},
	{"pause", "icmp", scenario.PhaseFlood, waySIGINT},
}

// Durations of the child's scenario: short, so that the matrix stays
// within about three minutes of guest time.
const (
	crashStall = 4 * time.Second
	// crashTimeoutStall is the stall of a -test.timeout case: long enough
	// that the deadline falls inside it (see childTimeout).
	crashTimeoutStall = 12 * time.Second
	crashNetemDelay   = 2 * time.Second
	crashFlood        = 4 * time.Second
)

// childTimeout is the child's -test.timeout. For the timeout way, the
// scenario's context ends its restore margin (the injector's RestoreBound
// plus 10 s) before it: 44s - (2s ack + 12s stall + 10s + 10s) = 10s after
// the start for a stall (injected at about 2-4s and lasting 12s), and
// 30s - (10s + 10s) = 10s for the others (in place until removed; the
// phase hook holds the scenario there). Either way the fault is in place
// when the deadline comes.
func childTimeout(c crashCase) time.Duration {
	switch {
	case c.way == wayTimeout && c.injector == "stall":
		return 44 * time.Second
	case c.way == wayTimeout:
		return 30 * time.Second
	}
	return 2 * time.Minute
}

// TestReliability runs the crash-safety matrix.
func TestReliability(t *testing.T) {
	cfg, direct := scenario.Setup(t)
	if !direct {
		return
	}
	t.Run("CrashSafety", func(t *testing.T) { crashSafety(t, cfg) })
}

func crashSafety(t *testing.T, cfg harness.Config) {
	harness.Need(t, scenario.Preflight(cfg), harness.CheckRoot, harness.CheckKmsg, harness.CheckIface)
	dst, mac := scenario.Peer(cfg)
	if dst == nil || mac == nil {
		t.Skip("skipping: crash safety needs the partner's IP and MAC (-peer-ip, -peer-mac) to check that the partner answers again")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("finding the test binary to re-execute: %v", err)
	}
	initial := snapshotDUT(t, cfg.Iface)
	t.Logf("DUT state before the matrix: %s", initial)
	for _, c := range crashMatrix {
		t.Run(c.String(), func(t *testing.T) {
			switch {
			case c.injector == "pause" && cfg.PartnerIface == "":
				t.Skip("skipping: the PAUSE injector needs a partner port wired to the DUT (-partner-iface: a hardware rig, or the rig's loop topology, TXTIMEOUT_RIG_TOPOLOGY=loop)")
			case c.injector == "stall" && cfg.Partner != harness.PartnerInband:
				t.Skipf("skipping: the stall injector needs a partner that runs the partner program (the virtual rig); partner is %q", cfg.Partner)
			case c.injector == "netem":
				harness.Need(t, scenario.Preflight(cfg), harness.CheckNetem)
			case c.load == "pktgen":
				harness.Need(t, scenario.Preflight(cfg), harness.CheckPktgen)
			}
			crashOne(t, cfg, exe, c, dst)
		})
	}
	if final := snapshotDUT(t, cfg.Iface); !final.equal(initial) {
		t.Errorf("DUT state after the matrix differs from before it:\nbefore: %s\nafter:  %s", initial, final)
	}
}

// crashOne runs one case: child, kill, cleanup, compare.
func crashOne(t *testing.T, cfg harness.Config, exe string, c crashCase, dst net.IP) {
	before := snapshotDUT(t, cfg.Iface)
	if len(before.StateFiles) > 0 {
		t.Fatalf("state files before the case: %v (an earlier case was not cleaned)", before.StateFiles)
	}
	if err := scenario.EchoWithin(context.Background(), dst, 15*time.Second); err != nil {
		t.Fatalf("the partner does not answer before the case: %v", err)
	}

	ch := startChild(t, exe, c, childTimeout(c), nil)
	if !ch.waitMarker("phase "+string(c.phase), 90*time.Second) {
		ch.kill()
		t.Fatalf("the child never reached phase %q; its output:\n%s", c.phase, ch.output())
	}
	if l := ch.markerLine("flood not seen running"); l != "" {
		ch.kill()
		t.Fatalf("the child reached phase %q but its flood never ran (%s): killing it now would not test a death during the flood", c.phase, l)
	}
	t.Logf("child at phase %q; dying by %s", c.phase, c.way)
	// The fault must really be in place (or not yet) when the child dies,
	// or restoring it would prove nothing.
	during := snapshotDUT(t, cfg.Iface)
	if msg := faultInPlace(c, before, during); msg != "" {
		ch.kill()
		t.Fatalf("at phase %q: %s\nbefore: %s\nduring: %s\nchild output:\n%s", c.phase, msg, before, during, ch.output())
	}
	switch c.way {
	case waySIGINT:
		ch.signal(t, syscall.SIGINT)
	case waySIGTERM:
		ch.signal(t, syscall.SIGTERM)
	case waySIGKILLCleanup, waySIGKILLNextRun:
		ch.signal(t, syscall.SIGKILL)
	case wayPanic, wayTimeout:
		// The child dies by itself.
	}
	st, err := ch.wait(90 * time.Second)
	out := ch.output()
	if err != nil {
		t.Fatalf("%v; child output:\n%s", err, out)
	}
	t.Logf("child ended: %v", st)

	failf := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format, args...)
		t.Logf("child output:\n%s", out)
	}
	code := exitCode(st)
	switch c.way {
	case waySIGINT, waySIGTERM:
		if code != 1 || !strings.Contains(out, "txtimeout: the DUT is restored") {
			failf("after %s: exit %v, want status 1 and 'the DUT is restored' from the signal handler", c.way, st)
		}
	case wayPanic:
		if code != 2 || !strings.Contains(out, "crash test: panic") {
			failf("after a panic: exit %v, want status 2 and the panic", st)
		}
	case wayTimeout:
		if strings.Contains(out, "panic: test timed out") {
			failf("the testing package's timeout panic came before the scenario ended and restored")
		}
		if code != 1 || !strings.Contains(out, "cut short") {
			failf("after the deadline: exit %v, want status 1 and the scenario's 'cut short' failure", st)
		}
		if l := ch.markerLine("deadline "); l != "" {
			t.Logf("child: %s", l)
		}
	case waySIGKILLCleanup, waySIGKILLNextRun:
		if ws, ok := st.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			failf("child was to die by SIGKILL, ended %v", st)
		}
	}

	switch c.way {
	case waySIGKILLCleanup:
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		acts, err := faultinject.CleanupAll(ctx, faultinject.Options{})
		cancel()
		for _, a := range acts {
			t.Logf("cleanup -all: %s", a)
		}
		if err != nil {
			t.Errorf("cleanup -all: %v", err)
		}
	case waySIGKILLNextRun:
		staleLeft := c.phase != scenario.PhaseBaseline
		next := startChild(t, exe, crashCase{c.injector, c.load, c.phase, wayStale}, time.Minute, nil)
		st, err := next.wait(90 * time.Second)
		nout := next.output()
		switch {
		case err != nil:
			t.Fatalf("next run: %v\n%s", err, nout)
		case staleLeft && (exitCode(st) != 1 || !strings.Contains(nout, "txtimeout cleanup -all") || !strings.Contains(nout, "TXTIMEOUT_CLEAN_STALE=1")):
			t.Errorf("next run over stale state: exit %v, want status 1 and a refusal naming 'txtimeout cleanup -all' and TXTIMEOUT_CLEAN_STALE=1; output:\n%s", st, nout)
		case !staleLeft && exitCode(st) != 0:
			t.Errorf("next run with nothing stale: exit %v, want 0; output:\n%s", st, nout)
		}
		if staleLeft {
			t.Logf("next run refused: %s", firstLineWith(nout, "stale state"))
			clean := startChild(t, exe, crashCase{c.injector, c.load, c.phase, wayStale}, 2*time.Minute, []string{"TXTIMEOUT_CLEAN_STALE=1"})
			st, err := clean.wait(3 * time.Minute)
			cout := clean.output()
			if err != nil || exitCode(st) != 0 || !strings.Contains(cout, "cleaned state of an earlier run") {
				t.Errorf("next run with TXTIMEOUT_CLEAN_STALE=1: exit %v (%v), want 0 after cleaning; output:\n%s", st, err, cout)
			}
		}
	}

	// The partner must answer again: a stall has ended (the restore or
	// the cleanup waited for it), netem is gone.
	if err := scenario.EchoWithin(context.Background(), dst, 15*time.Second); err != nil {
		t.Errorf("the partner does not answer after the case: %v", err)
	}
	after := snapshotDUT(t, cfg.Iface)
	if !after.equal(before) {
		failf("DUT state after the case differs from before:\nbefore: %s\nafter:  %s", before, after)
	} else {
		t.Logf("DUT state restored: %s", after)
	}
}

// faultInPlace checks the DUT state at the case's phase against the state
// before: unchanged at the baseline; a state file (and for netem the
// project's root qdisc, for a pktgen flood pktgen devices) after the
// injection. It returns what is wrong, or "".
func faultInPlace(c crashCase, before, during dutState) string {
	if c.phase == scenario.PhaseBaseline {
		if !during.equal(before) {
			return "the DUT changed before the injection"
		}
		return ""
	}
	if len(during.StateFiles) == 0 {
		return "no state file: the fault is not recorded as in place"
	}
	if c.injector == "netem" && !slices.ContainsFunc(during.Qdiscs, func(q string) bool { return strings.HasPrefix(q, "netem 7478:") }) {
		return "no netem qdisc with the project's handle 7478:"
	}
	if c.injector == "napi" && during.Napi == before.Napi {
		return "the NAPI starvation changed nothing that the snapshot shows (threaded, RT throttling, thread scheduling)"
	}
	if c.phase == scenario.PhaseFlood && c.load == "pktgen" && len(during.Pktgen) == 0 {
		return "pktgen drives no device during the pktgen flood"
	}
	return ""
}

// TestCrashChild is the child of a crash-safety case; it runs only when
// TestReliability starts it.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashEnv)
	if spec == "" {
		t.Skip("skipping: the child process of TestReliability/CrashSafety (it sets " + crashEnv + ")")
	}
	c, err := parseCrashCase(spec)
	if err != nil {
		t.Fatal(err)
	}
	cfg, direct := scenario.Setup(t)
	if !direct {
		t.Fatal("the crash child runs only where the scenarios drive the DUT")
	}
	if c.way == wayStale {
		return
	}
	cfg.StallFor, cfg.FloodFor, cfg.NetemDelay = crashStall, crashFlood, crashNetemDelay
	if c.way == wayTimeout && c.injector == "stall" {
		cfg.StallFor, cfg.FloodFor = crashTimeoutStall, crashTimeoutStall
	}
	cfg.RecoverWithin = 10 * time.Second
	cfg.Senders, cfg.Interval, cfg.Size = 2, 20*time.Millisecond, 1400
	var s scenario.Spec
	switch c.injector {
	case "netem":
		s = netemDelaySpec(t, cfg)
	case "napi":
		s = napiStarveSpec(c.load)(t, cfg)
	case "pause":
		s = pauseFloodSpec(t, cfg)
	default:
		s = partnerStallSpec(c.load)(t, cfg)
	}
	var inj faultinject.Injector
	fault := s.Fault
	s.Fault = func() (faultinject.Injector, error) {
		var err error
		inj, err = fault()
		return inj, err
	}
	s.Report = &harness.Report{}
	s.Hook = func(ctx context.Context, tl *harness.Timeline, phase scenario.Phase) {
		if phase == scenario.PhaseFlood {
			// Wait until the load really runs, so that the kill comes
			// during the flood.
			fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := tl.WaitFor(fctx, func(tl *harness.Timeline) bool {
				return tl.Verdict(s.Verdict).OfferedDuringFault > 0 || pktgenRunningOn(cfg.Iface)
			})
			cancel()
			if err != nil {
				fmt.Printf("%sflood not seen running: %v\n", crashMarker, err)
			}
		}
		fmt.Printf("%sphase %s\n", crashMarker, phase)
		if phase != c.phase {
			return
		}
		if c.way == wayPanic {
			panic("crash test: panic in the scenario at phase " + string(phase))
		}
		// Wait to be killed, or for the deadline.
		<-ctx.Done()
		left := "n/a"
		if st, ok := inj.(*faultinject.Stall); ok {
			left = time.Until(st.Until()).Round(time.Millisecond).String()
		}
		fmt.Printf("%sdeadline %v; the partner stall had %s left\n", crashMarker, ctx.Err(), left)
	}
	scenario.Exec(t, cfg, s)
}

// child is a running crash child.
type child struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	mark chan string
	done chan struct{}
}

func startChild(t *testing.T, exe string, c crashCase, timeout time.Duration, env []string) *child {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^TestCrashChild$", "-test.v", "-test.count=1", "-test.timeout="+timeout.String())
	cmd.Env = append(append(os.Environ(), crashEnv+"="+c.String()), env...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		t.Fatalf("starting the crash child: %v", err)
	}
	pw.Close()
	ch := &child{cmd: cmd, mark: make(chan string, 64), done: make(chan struct{})}
	go func() {
		defer close(ch.done)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			ch.mu.Lock()
			ch.out.WriteString(line + "\n")
			ch.mu.Unlock()
			if i := strings.Index(line, crashMarker); i >= 0 {
				select {
				case ch.mark <- line[i+len(crashMarker):]:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			ch.kill()
		}
	})
	return ch
}

// waitMarker waits for a marker line beginning with m.
func (c *child) waitMarker(m string, within time.Duration) bool {
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case got := <-c.mark:
			if strings.HasPrefix(got, m) {
				return true
			}
		case <-c.done:
			// Output ended: look at what is still queued.
			for {
				select {
				case got := <-c.mark:
					if strings.HasPrefix(got, m) {
						return true
					}
				default:
					return false
				}
			}
		case <-timer.C:
			return false
		}
	}
}

func (c *child) markerLine(prefix string) string {
	for _, l := range strings.Split(c.output(), "\n") {
		if i := strings.Index(l, crashMarker+prefix); i >= 0 {
			return l[i+len(crashMarker):]
		}
	}
	return ""
}

func (c *child) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signalling the child: %v", err)
	}
}

func (c *child) kill() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// wait waits for the child to exit and its output to end.
func (c *child) wait(within time.Duration) (*os.ProcessState, error) {
	errc := make(chan error, 1)
	go func() { errc <- c.cmd.Wait() }()
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case err := <-errc:
		<-c.done
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			return c.cmd.ProcessState, err
		}
		return c.cmd.ProcessState, nil
	case <-timer.C:
		c.cmd.Process.Kill()
		<-errc
		return c.cmd.ProcessState, fmt.Errorf("the child did not exit within %v (killed)", within)
	}
}

func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

func exitCode(st *os.ProcessState) int {
	if st == nil {
		return -1
	}
	return st.ExitCode()
}

func firstLineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// dutState is what a run may change on the DUT and must put back.
type dutState struct {
	// Qdiscs are every qdisc on the interface: kind, handle, parent and
	// options (statistics left out).
	Qdiscs []string
	// Pktgen lists the devices each pktgen thread drives ("kpktgend_0:
	// eth0@0"); empty when pktgen is not loaded or idle.
	Pktgen []string
	// StateFiles are the interfaces with a crash-recovery state file.
	StateFiles []string
	// FlowControl is the pause setting, or why it is not compared.
	FlowControl string
	// Napi is what NAPI starvation changes: threaded, RT throttling,
	// every real-time process or thread (a raised ksoftirqd, a NAPI thread
	// left at SCHED_FIFO, a surviving hog) but the per-CPU kthreads that
	// are SCHED_FIFO by design, and NAPI threads not free to run on every
	// online CPU. The NAPI threads that threaded NAPI creates stay after
	// it is switched off, so only their scheduling is compared, not their
	// existence.
	Napi string
}

func (s dutState) equal(o dutState) bool {
	return slices.Equal(s.Qdiscs, o.Qdiscs) && slices.Equal(s.Pktgen, o.Pktgen) &&
		slices.Equal(s.StateFiles, o.StateFiles) && s.FlowControl == o.FlowControl && s.Napi == o.Napi
}

func (s dutState) String() string {
	return fmt.Sprintf("qdiscs [%s]; pktgen devices [%s]; state files [%s]; flow control %s; %s",
		strings.Join(s.Qdiscs, " | "), strings.Join(s.Pktgen, " "), strings.Join(s.StateFiles, " "), s.FlowControl, s.Napi)
}

func snapshotDUT(t *testing.T, iface string) dutState {
	t.Helper()
	var s dutState
	link, err := netlink.LinkByName(iface)
	if err != nil {
		t.Fatalf("DUT %s: %v", iface, err)
	}
	qs, err := netlink.QdiscList(link)
	if err != nil {
		t.Fatalf("listing the qdiscs of %s: %v", iface, err)
	}
	for _, q := range qs {
		s.Qdiscs = append(s.Qdiscs, describeQdisc(q))
	}
	slices.Sort(s.Qdiscs)
	s.Pktgen, _ = pktgenproc.Devices(pktgenproc.Dir)
	s.StateFiles, err = faultinject.StaleState(faultinject.Options{})
	if err != nil {
		t.Fatalf("state files: %v", err)
	}
	// Flow control only changes with the PAUSE injector, which needs a
	// hardware partner port; virtio and the other emulated NICs have no
	// pause parameters at all.
	if fc, err := faultinject.FlowControl(iface, faultinject.Options{}); err != nil {
		s.FlowControl = "N/A (" + scenario.DriverOf(iface) + ": " + err.Error() + ")"
	} else {
		s.FlowControl = fc
	}
	s.Napi = napiState(iface)
	return s
}

// describeQdisc is a qdisc's kind, handle, parent and options as netlink
// decodes them, without its statistics (which change all the time).
func describeQdisc(q netlink.Qdisc) string {
	a := q.Attrs()
	v := reflect.ValueOf(q)
	opts := ""
	if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
		cp := reflect.New(v.Elem().Type()).Elem()
		cp.Set(v.Elem())
		if f := cp.FieldByName("QdiscAttrs"); f.IsValid() {
			f.Set(reflect.Zero(f.Type()))
		}
		opts = qdiscAttrsRE.ReplaceAllString(fmt.Sprintf("%+v", cp.Interface()), "")
	}
	return fmt.Sprintf("%s %s parent %s %s", q.Type(), netlink.HandleStr(a.Handle), netlink.HandleStr(a.Parent), opts)
}

var qdiscAttrsRE = regexp.MustCompile(`QdiscAttrs:\{[^{}]*\} ?`)

// pktgenRunningOn reports whether a pktgen thread is sending on iface.
func pktgenRunningOn(iface string) bool {
	ok, _ := pktgenproc.RunningOn(pktgenproc.Dir, iface)
	return ok
}
