package scenarios

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"txtimeout/harness"
	"txtimeout/scenario"
)

// These tests run on the host (no DUT needed): the crash matrix, the soak's
// helpers, Repeat's summary and NetemDelay's window.

func TestParseCrashCase(t *testing.T) {
	for _, c := range crashMatrix {
		got, err := parseCrashCase(c.String())
		if err != nil || got != c {
			t.Errorf("round trip of %v: %v %v", c, got, err)
		}
	}
	for _, bad := range []string{"", "stall/icmp/injected", "tbf/icmp/injected/sigint", "stall/udp/injected/sigint", "stall/icmp/later/sigint", "stall/icmp/injected/sighup"} {
		if _, err := parseCrashCase(bad); err == nil {
			t.Errorf("parseCrashCase(%q) accepted", bad)
		}
	}
}

func TestSoakRuns(t *testing.T) {
	for _, c := range []struct {
		env  string
		want int
		bad  bool
	}{{"", 0, false}, {"20", 20, false}, {"0", 0, true}, {"-3", 0, true}, {"many", 0, true}, {"5000", 0, true}} {
		t.Setenv("TXTIMEOUT_SOAK", c.env)
		n, err := soakRuns()
		if (err != nil) != c.bad || n != c.want {
			t.Errorf("TXTIMEOUT_SOAK=%q: %d, %v; want %d (error: %t)", c.env, n, err, c.want, c.bad)
		}
	}
}

func TestVMRSS(t *testing.T) {
	p := filepath.Join(t.TempDir(), "status")
	os.WriteFile(p, []byte("Name:\tx\nVmPeak:\t  9999 kB\nVmRSS:\t   20272 kB\nThreads:\t4\n"), 0o644)
	if got := vmRSS(p); got != 20272 {
		t.Errorf("vmRSS = %d, want 20272", got)
	}
	if got := vmRSS(filepath.Join(t.TempDir(), "none")); got != 0 {
		t.Errorf("vmRSS of a missing file = %d, want 0", got)
	}
	if vmRSS("/proc/self/status") <= 0 {
		t.Error("no VmRSS for this process")
	}
}

func TestLineWriter(t *testing.T) {
	var got []string
	w := &lineWriter{fn: func(l string) { got = append(got, l) }}
	for _, p := range []string{"a", "b\nc\r\n", "", "d\ne"} {
		w.Write([]byte(p))
	}
	w.flush()
	if want := []string{"ab", "c", "d", "e"}; !slices.Equal(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}
}

func TestRepeatSummary(t *testing.T) {
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	cycle := func(i int, res harness.Result, resets int) harness.ScenarioReport {
		inj := start.Add(time.Duration(i) * 9 * time.Second)
		return harness.ScenarioReport{Result: res, Reason: "why " + string(res),
			Verdict:  harness.Verdict{TimeoutFired: true, Recovered: res == harness.Pass, CleanupOK: true, FirstTimeoutMS: 5000, RecoverMS: 3000, TxTimeoutCount: 1, ResetLines: resets, ResetSeen: resets > 0},
			Timeline: harness.Snapshot{Start: inj, Marks: []harness.TimelineMark{{Name: harness.MarkFaultInjected, Time: inj}}}}
	}
	all := []harness.ScenarioReport{cycle(0, harness.Pass, 1), cycle(1, harness.Pass, 2), cycle(2, harness.Pass, 1)}
	s := repeatSummary(3, "NapiStarve", all)
	assert.Equal(t, harness.Pass, s.Result, s.Reason)
	assert.Contains(t, s.Reason, "9s, 9s")
	assert.Equal(t, 4, s.ResetLines)
	assert.Equal(t, uint64(3), s.TxTimeoutCount)
	m := map[string]float64{}
	for _, x := range s.Measurements {
		m[x.Name] = x.Value
	}
	assert.Equal(t, map[string]float64{"cycles": 3, "cycles_passed": 3, "tx_timeouts": 3, "reset_lines": 4, "timeout_interval_min_ms": 9000, "timeout_interval_max_ms": 9000, "timeouts_per_min": 6.7}, m)

	// A cycle that did not recover fails the whole, naming it.
	s = repeatSummary(5, "NapiStarve", []harness.ScenarioReport{cycle(0, harness.Pass, 1), cycle(1, harness.Fail, 0)})
	assert.Equal(t, harness.Fail, s.Result)
	assert.Contains(t, s.Reason, "cycle 2 of 5: fail")
	assert.False(t, s.Recovered)
	// Fewer cycles than asked for, all passing, is no pass either.
	s = repeatSummary(5, "NapiStarve", all)
	assert.Equal(t, harness.Fail, s.Result, s.Reason)
	// An inconclusive first cycle: the device could not be stalled.
	s = repeatSummary(5, "NapiStarve", []harness.ScenarioReport{cycle(0, harness.Inconclusive, 0)})
	assert.Equal(t, harness.Inconclusive, s.Result)
	assert.Equal(t, harness.Fail, repeatSummary(5, "x", nil).Result)
}

func TestNetemWindow(t *testing.T) {
	assert.Equal(t, 16*time.Second, netemWindow(harness.Config{NetemDelay: 9 * time.Second, FloodFor: 20 * time.Second}))
	assert.Equal(t, 10*time.Second, netemWindow(harness.Config{NetemDelay: 9 * time.Second, FloodFor: 10 * time.Second}), "-flood-for caps it")
	assert.Equal(t, 9*time.Second, netemWindow(harness.Config{NetemDelay: 2 * time.Second, FloodFor: 20 * time.Second}))
}

// TestCrashMatrixCoverage checks that the crash matrix kills every
// injector at every phase of a scenario (the PAUSE flood's cases run where
// there is a partner port).
func TestCrashMatrixCoverage(t *testing.T) {
	for _, inj := range []string{"stall", "netem", "napi", "pause"} {
		for _, p := range []scenario.Phase{scenario.PhaseBaseline, scenario.PhaseInjected, scenario.PhaseFlood} {
			if !slices.ContainsFunc(crashMatrix, func(c crashCase) bool { return c.injector == inj && c.phase == p }) {
				t.Errorf("the crash matrix never kills the %s injector at phase %s", inj, p)
			}
		}
	}
}
