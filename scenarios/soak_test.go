package scenarios

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"txtimeout/harness"
	"txtimeout/internal/leakcheck"
	"txtimeout/rig"
	"txtimeout/scenario"
)

// The soak runs TxTimeout/PartnerStall/ICMP N times in one rig boot (issue
// 8): each run must pass, goroutines and descriptors must not leak, and
// memory must stay flat, in the guest's test process and in the host's
// (the link partner and the rig's plumbing).
//
// It is opt-in: TXTIMEOUT_SOAK=N (or -soak N) runs it, `make soak` runs it
// with N=20. On the host of the virtual rig it boots the rig itself and
// passes -soak and the durations to the guest as flags, because the guest
// does not see the host's environment.

var soakFlag = flag.Int("soak", 0, "TestSoak: run PartnerStall/ICMP this many times in one boot (env TXTIMEOUT_SOAK)")

// Flatness bounds. Go returns freed memory to the kernel lazily, so RSS
// moves by a few MiB without leaking; a leak of a timeline or a socket
// buffer per run adds up beyond these over 20 runs.
const (
	soakGuestRSSGrowth = 16 << 10 // KiB
	soakHostRSSGrowth  = 32 << 10 // KiB
)

func soakRuns() (int, error) {
	if *soakFlag != 0 {
		if *soakFlag < 0 {
			return 0, fmt.Errorf("-soak %d: want a positive number of runs", *soakFlag)
		}
		return *soakFlag, nil
	}
	v := os.Getenv("TXTIMEOUT_SOAK")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, fmt.Errorf("TXTIMEOUT_SOAK=%q: want a number of runs, 1..1000", v)
	}
	return n, nil
}

// TestSoak is the soak (opt-in).
func TestSoak(t *testing.T) {
	n, err := soakRuns()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Skip("skipping the soak: set TXTIMEOUT_SOAK=N to run PartnerStall/ICMP N times in one rig boot, e.g. " +
			"TXTIMEOUT_SOAK=20 go test -count=1 -v -timeout 40m -run TestSoak ./scenarios (make soak); TXTIMEOUT_STALL_FOR=4s shortens each run")
	}
	cfg, err := harness.LoadConfig()
	if err != nil {
		t.Fatalf("configuration: %v", err)
	}
	if cfg.VirtualRig() {
		soakOnRig(t, cfg, n)
		return
	}
	cfg, _ = scenario.Setup(t)
	soakDirect(t, cfg, n)
}

// soakDirect runs the soak where the scenarios drive the DUT.
func soakDirect(t *testing.T, cfg harness.Config, n int) {
	var base leakcheck.Snapshot
	var baseRSS int64
	var results []string
	for i := 1; i <= n; i++ {
		// The run's own report: read after t.Run, because an
		// inconclusive or skipped run ends its goroutine in t.Skip.
		r := &harness.Report{}
		t.Run(fmt.Sprintf("Run%02d", i), func(t *testing.T) {
			s := partnerStallSpec("icmp")(t, cfg)
			s.Report = r
			scenario.Exec(t, cfg, s)
		})
		res := harness.ScenarioReport{Result: "none (the run ended before its verdict)"}
		if len(r.Scenarios) == 1 {
			res = r.Scenarios[0]
		}
		snap := leakcheck.Take()
		rss := vmRSS("/proc/self/status")
		results = append(results, string(res.Result))
		t.Logf("soak-sample run=%d result=%s first_timeout_ms=%d recover_ms=%d tx_timeouts=%d goroutines=%d fds=%d vmrss_kb=%d",
			i, res.Result, res.FirstTimeoutMS, res.RecoverMS, res.TxTimeoutCount, snap.Goroutines, len(snap.FDs), rss)
		if i == 1 {
			// The first run warms up what lives for the whole process
			// (cached preflight, the tracefs probe): the baseline.
			base, baseRSS = snap, rss
		}
	}
	for i, r := range results {
		if r != string(harness.Pass) {
			t.Errorf("soak run %d: %q; every run must pass (results: %s)", i+1, r, strings.Join(results, " "))
		}
	}
	if _, err := leakcheck.Settle(base, 10*time.Second); err != nil {
		t.Errorf("soak: after %d runs, compared with after the first: %v", n, err)
	}
	if rss := vmRSS("/proc/self/status"); baseRSS > 0 && rss-baseRSS > soakGuestRSSGrowth {
		t.Errorf("soak: the test process's VmRSS grew from %d KiB after run 1 to %d KiB after run %d (more than %d KiB)", baseRSS, rss, n, soakGuestRSSGrowth)
	} else {
		t.Logf("soak: VmRSS %d KiB after run 1, %d KiB after run %d", baseRSS, rss, n)
	}
}

// soakOnRig boots the rig, runs the soak in the guest and samples the
// host's memory at each of the guest's runs.
func soakOnRig(t *testing.T, cfg harness.Config, n int) {
	if testing.Short() {
		t.Skip("skipping the virtual rig under -short")
	}
	leakcheck.Check(t)
	rc := rig.ConfigFromEnv().WithinDeadline(t)
	rc.Progress = os.Stderr
	// A run takes about the stall plus recovery; the boot up to two minutes.
	if need := time.Duration(n)*(cfg.StallFor+cfg.RecoverWithin) + 3*time.Minute; need > rc.Timeout {
		t.Fatalf("the soak of %d runs needs about %v, more than the %v left (raise -timeout or TXTIMEOUT_RIG_TIMEOUT, or shorten TXTIMEOUT_STALL_FOR)", n, need.Round(time.Second), rc.Timeout.Round(time.Second))
	}
	// Plain -test.v: RunPackage then adds no test2json framing, and
	// the guest's -test.timeout is derived from the rig's deadline.
	args := []string{
		"-test.v", "-test.count=1", "-test.run=^TestSoak$",
		"-soak=" + strconv.Itoa(n),
		"-stall-for=" + cfg.StallFor.String(), "-recover-within=" + cfg.RecoverWithin.String(),
		"-size=" + strconv.Itoa(cfg.Size), "-interval=" + cfg.Interval.String(), "-senders=" + strconv.Itoa(cfg.Senders),
	}
	t.Logf("soak: %d runs of PartnerStall/ICMP in one boot; guest flags: %s", n, strings.Join(args, " "))

	var mu sync.Mutex
	var hostRSS []int64
	lw := &lineWriter{fn: func(line string) {
		t.Log(line)
		if strings.Contains(line, "soak-sample ") {
			rss := vmRSS("/proc/self/status")
			mu.Lock()
			hostRSS = append(hostRSS, rss)
			mu.Unlock()
			t.Logf("host: test process VmRSS %d KiB", rss)
		}
	}}
	r, err := rig.RunPackage(context.Background(), rc, "txtimeout/scenarios", args, lw)
	lw.flush()
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	if r.ExitCode != 0 {
		t.Errorf("the soak failed in the guest (exit status %d; see its output above)", r.ExitCode)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hostRSS) != n {
		t.Errorf("saw %d soak samples from the guest, want %d", len(hostRSS), n)
	}
	if len(hostRSS) > 1 {
		first, last := hostRSS[0], hostRSS[len(hostRSS)-1]
		t.Logf("soak: host VmRSS %d KiB after run 1, %d KiB after run %d (samples %v)", first, last, len(hostRSS), hostRSS)
		if last-first > soakHostRSSGrowth {
			t.Errorf("soak: the host test process's VmRSS grew by %d KiB over the soak (more than %d KiB)", last-first, soakHostRSSGrowth)
		}
	}
}

var vmRSSRE = regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`)

// vmRSS reads VmRSS in KiB from a /proc/PID/status file; 0 when unknown.
func vmRSS(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	m := vmRSSRE.FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// lineWriter calls fn with each complete line written to it.
type lineWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	fn  func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		i := bytes.IndexByte(w.buf.Bytes(), '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(w.buf.Next(i+1)), "\r\n")
		w.fn(line)
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() > 0 {
		w.fn(w.buf.String())
		w.buf.Reset()
	}
}
