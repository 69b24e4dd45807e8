package scenario

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"txtimeout/faultinject"
	"txtimeout/harness"
)

// These tests run on the host (no DUT needed): the registry, the signal
// handler, the stale-state refusal, the deadline-derived context, the rig
// boots of a plan and the stock decisions.

func TestRegistryRestoreAll(t *testing.T) {
	r := &registry{}
	var mu sync.Mutex
	var log []string
	rec := func(s string) { mu.Lock(); log = append(log, s); mu.Unlock() }
	r.add(activeEntry{what: "a", iface: "x0", stop: func() { rec("stop a") }, restore: func(context.Context) error { rec("restore a"); return nil }})
	removeB := r.add(activeEntry{what: "b", restore: func(context.Context) error { rec("restore b"); return nil }})
	r.add(activeEntry{what: "c", iface: "x0", stop: func() { rec("stop c") }, restore: func(context.Context) error { rec("restore c"); return errors.New("boom") }})
	removeB()
	if r.len() != 2 {
		t.Fatalf("len %d after removing one of three, want 2", r.len())
	}
	var cleaned []string
	acts, err := r.restoreAll(context.Background(), func(_ context.Context, iface string) ([]string, error) {
		rec("cleanup " + iface)
		cleaned = append(cleaned, iface)
		return []string{iface + ": clean"}, nil
	})
	want := []string{"stop c", "stop a", "restore c", "restore a", "cleanup x0"}
	if !slices.Equal(log, want) {
		t.Errorf("order %q, want %q (loads stopped first, faults newest first, each interface cleaned once)", log, want)
	}
	if err == nil || !strings.Contains(err.Error(), "restoring c: boom") {
		t.Errorf("error %v, want the failed restore named", err)
	}
	if !slices.Contains(acts, "restored a") || slices.Contains(acts, "restored c") || !slices.Contains(acts, "x0: clean") {
		t.Errorf("actions %q", acts)
	}
}

func TestSignalHandlerRestoresThenExits(t *testing.T) {
	if handlerArmed {
		// A real SIGTERM would also reach TestMain's handler, which
		// restores the DUT and ends the whole run.
		t.Skip("skipping: the suite's own signal handler is armed (this process drives a DUT); the handler is tested where it is not")
	}
	var restored bool
	remove := active.add(activeEntry{what: "test fault", restore: func(context.Context) error { restored = true; return nil }})
	defer remove()
	var stderr bytes.Buffer
	exited := make(chan int, 1)
	stop := installSignalHandler(&syncWriter{w: &stderr}, func(code int) { exited <- code })
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code != 1 {
			t.Errorf("exit status %d, want 1", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the handler did not exit within 30s of SIGTERM")
	}
	stop()
	if !restored {
		t.Error("the handler exited without restoring the registered fault")
	}
	out := stderr.String()
	for _, want := range []string{"txtimeout: caught terminated: restoring the DUT (1 fault(s)", "txtimeout: restored test fault", "txtimeout: the DUT is restored"} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
}

func TestSignalHandlerStopsQuietly(t *testing.T) {
	stop := installSignalHandler(os.Stderr, func(int) { t.Error("exit called without a signal") })
	stop()
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func TestCheckStaleRefuses(t *testing.T) {
	dir := t.TempDir()
	o := faultinject.Options{StateDir: dir}
	acts, err := checkStale(context.Background(), o, false)
	if err != nil || len(acts) != 0 {
		t.Fatalf("empty state dir: %v %v", acts, err)
	}
	// A state file as a run killed during a partner stall leaves it.
	state := `{"version":1,"injector":"stall","iface":"txto0","ifindex":7,"pid":999999999,"created":"2026-01-01T00:00:00Z","stall_until":"2026-01-01T00:00:04Z"}`
	if err := os.WriteFile(filepath.Join(dir, "txto0.json"), []byte(state), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = checkStale(context.Background(), o, false)
	if !errors.Is(err, faultinject.ErrStaleState) {
		t.Fatalf("stale state: err %v, want ErrStaleState", err)
	}
	for _, want := range []string{"txto0", "txtimeout cleanup -all", "-clean-stale", "TXTIMEOUT_CLEAN_STALE=1", dir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not name %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("refusal is not one line: %q", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, "txto0.json")); serr != nil {
		t.Errorf("the refusal changed the state dir: %v", serr)
	}
}

func TestCleanStaleWanted(t *testing.T) {
	t.Setenv("TXTIMEOUT_CLEAN_STALE", "")
	if cleanStaleWanted() {
		t.Error("wanted without the flag or the variable")
	}
	t.Setenv("TXTIMEOUT_CLEAN_STALE", "1")
	if !cleanStaleWanted() {
		t.Error("not wanted with TXTIMEOUT_CLEAN_STALE=1")
	}
}

func TestScenarioContextEndsBeforeTheTestDeadline(t *testing.T) {
	dl, ok := t.Deadline()
	if !ok {
		t.Skip("skipping: run without -timeout 0 (the test has no deadline to derive from)")
	}
	ctx, cancel := scenarioContext(t, 1000*time.Hour, time.Second)
	defer cancel()
	got, ok := ctx.Deadline()
	if !ok || !got.Equal(dl.Add(-time.Second)) {
		t.Errorf("deadline %v, want the test's %v less 1s", got, dl)
	}
	// A margin longer than what is left: the scenario must not start.
	ctx2, cancel2 := scenarioContext(t, time.Hour, time.Until(dl)+time.Minute)
	defer cancel2()
	if ctx2.Err() == nil {
		t.Error("context alive although the margin exceeds the time left")
	}
	ctx3, cancel3 := scenarioContext(t, time.Millisecond, time.Second)
	defer cancel3()
	<-ctx3.Done()
}

// boundedInjector is an injector whose restore may take bound.
type boundedInjector struct {
	faultinject.Injector
	bound time.Duration
}

func (b boundedInjector) RestoreBound() time.Duration { return b.bound }

func TestRestoreMargin(t *testing.T) {
	if m := restoreMargin(boundedInjector{bound: 20 * time.Second}); m <= 20*time.Second {
		t.Errorf("margin %v for a 20s stall leaves no time to wait for its end", m)
	}
}

func TestRunPattern(t *testing.T) {
	assert.Equal(t, "^TestPktgen$", runPattern("TestPktgen"))
	assert.Equal(t, "^TestExample$/^Small$", runPattern("TestExample/Small"))
	assert.Equal(t, `^TestX$/^a\.b\(c\)$`, runPattern("TestX/a.b(c)"))
}

// TestNapiDecision checks NapiStarve's verdict on the timelines it can
// meet: a pass needs the timeout, the recovery and, for a driver whose
// table rows include a reset, the reset; a stall not achieved is
// inconclusive with its cause, but a failure on a rig NIC where it is
// known to work.
func TestNapiDecision(t *testing.T) {
	good := harness.Verdict{Stalled: true, TimeoutFired: true, Recovered: true, CleanupOK: true, FirstTimeoutMS: 5012, RecoverMS: 3050, ResetSeen: true, ResetLines: 1, LinkFlap: true}
	noStall := harness.Verdict{CleanupOK: true, FirstTimeoutMS: -1, RecoverMS: -1, TxPacketsDuringFault: 700}
	hw := harness.Config{Iface: "enp3s0"}
	rigE1000 := harness.Config{Iface: "eth0", Rig: true, NIC: "e1000"}
	rigVirtio := harness.Config{Iface: "eth0", Rig: true, NIC: "virtio-net-pci"}
	cause := Outcome{NoStall: "tx_packets still moved by 700 in 500ms: the driver cleans TX in its hard IRQ"}
	for _, tc := range []struct {
		name           string
		cfg            harness.Config
		driver, source string
		v              harness.Verdict
		lr             Outcome
		want           harness.Result
		reason         string
	}{
		{"e1000 reset", rigE1000, "e1000", "icmp", good, Outcome{}, harness.Pass, "link down and up"},
		{"e1000 without its reset", rigE1000, "e1000", "icmp", func() harness.Verdict { v := good; v.ResetSeen, v.ResetLines = false, 0; return v }(), Outcome{}, harness.Fail, "no reset line"},
		{"virtio logs only", rigVirtio, "virtio_net", "pktgen", func() harness.Verdict { v := good; v.ResetSeen, v.ResetLines = false, 0; return v }(), Outcome{}, harness.Pass, "recovered"},
		{"no recovery", rigE1000, "e1000", "icmp", func() harness.Verdict { v := good; v.Recovered = false; return v }(), Outcome{}, harness.Fail, "did not recover"},
		{"splat", rigE1000, "e1000", "icmp", func() harness.Verdict { v := good; v.Splat, v.SplatCount = true, 1; return v }(), Outcome{}, harness.Fail, "splatted"},
		{"hard IRQ on hardware", hw, "e1000e", "icmp", noStall, cause, harness.Inconclusive, "hard IRQ"},
		{"virtio ICMP on the rig", rigVirtio, "virtio_net", "icmp", noStall, cause, harness.Inconclusive, "did not stop TX completions"},
		{"e1000 on the rig must stall", rigE1000, "e1000", "icmp", noStall, cause, harness.Fail, "where NAPI starvation does stop"},
		{"virtio pktgen on the rig must stall", rigVirtio, "virtio_net", "pktgen", noStall, Outcome{}, harness.Fail, "kept moving"},
		{"stalled, no timeout", hw, "e1000", "icmp", harness.Verdict{Stalled: true, StallMS: 9000, CleanupOK: true, FirstTimeoutMS: -1, RecoverMS: -1}, Outcome{}, harness.Fail, "no timeout signal"},
	} {
		res, why := NapiDecision(tc.cfg, tc.driver, tc.source)(tc.v, tc.lr)
		assert.Equal(t, tc.want, res, "%s: %s", tc.name, why)
		assert.Contains(t, why, tc.reason, tc.name)
	}
}

func TestCutRunPattern(t *testing.T) {
	for _, tc := range []struct{ in, first, rest string }{
		{"", "", ""},
		{"TxTimeout", "TxTimeout", ""},
		{"TxTimeout/NapiStarve/ICMP", "TxTimeout", "NapiStarve/ICMP"},
		{"(A/B|C)/D", "(A/B|C)", "D"},
		{"[/]x/y", "[/]x", "y"},
		{`a\/b/c`, `a\/b`, "c"},
	} {
		f, r := CutRunPattern(tc.in)
		assert.Equal(t, [2]string{tc.first, tc.rest}, [2]string{f, r}, tc.in)
	}
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestSessionBoots(t *testing.T) {
	plan := []Boot{
		{NIC: "virtio-net-pci", Subtests: []string{"NetemDelay", "PartnerStall"}},
		{NIC: "e1000", Subtests: []string{"NapiStarve", "Race"}},
	}
	type sb = sessionBoot
	both := func(run string) []sb {
		return []sb{{nic: "virtio-net-pci", more: []string{"e1000"}, args: []string{"-test.run=" + run}}}
	}
	for _, tc := range []struct {
		top, run, nic string
		want          []sessionBoot
	}{
		// Every test of the package shares one boot, whose guest has a
		// NIC of each model of the plan.
		{"TestExample", "", "", both(".")},
		{"TestTxTimeout", "", "", both(".")},
		{"TestTxTimeout", "TxTimeout/Race/LinkDown", "", both("TxTimeout/Race/LinkDown")},
		// The user's NIC: one boot, that NIC alone, for everything.
		{"TestTxTimeout", "", "igb", []sb{{nic: "igb", args: []string{"-test.run=."}}}},
	} {
		assert.Equal(t, tc.want, sessionBoots(tc.top, tc.run, tc.nic, "TestTxTimeout", plan), "%s run=%q nic=%q", tc.top, tc.run, tc.nic)
	}
	// No plan in the package: one boot on the rig's default NIC.
	assert.Equal(t, []sb{{args: []string{"-test.run=Pktgen"}}}, sessionBoots("TestPktgen", "Pktgen", "", "", nil))
}
