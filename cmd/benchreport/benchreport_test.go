package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"txtimeout/harness"
	"txtimeout/kmsg"
)

func TestParseArgs(t *testing.T) {
	o, err := parseArgs(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.steps, ",") != strings.Join(allSteps, ",") || o.out != "bench.json" || o.floodCount != 200000 || o.kmsgRecords != 2000 {
		t.Errorf("defaults: %+v", o)
	}
	o, err = parseArgs([]string{"-steps", "pktgen, flood"}, &bytes.Buffer{})
	if err != nil || strings.Join(o.steps, ",") != "flood,pktgen" {
		t.Errorf("-steps 'pktgen, flood' = %v, %v; want flood,pktgen in run order", o.steps, err)
	}
	for _, args := range [][]string{
		{"-steps", "nope"},
		{"-steps", ","},
		{"-flood-count", "10"},
		{"-kmsg-records", "999"},
		{"-flood-runs", "0"},
		{"-o", ""},
		{"extra"},
		{"-bogus"},
	} {
		_, err := parseArgs(args, &bytes.Buffer{})
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("parseArgs(%q) = %v, want a usage error", args, err)
		}
	}
	if _, err := parseArgs([]string{"-h"}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

// TestRunUsage checks that bad usage exits 2 with one line on stderr and
// writes nothing.
func TestRunUsage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-steps", "nope", "-o", out}, &stdout, &stderr)
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if s := stderr.String(); !strings.HasPrefix(s, "benchreport: ") || strings.Count(s, "\n") != 1 {
		t.Errorf("stderr %q: want one line beginning benchreport:", s)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bad usage wrote %s", out)
	}
}

func TestParseBenchOutput(t *testing.T) {
	for _, tt := range []struct {
		file   string
		want   map[string]map[string]float64 // name: unit: value
		failed []string
	}{
		{
			// go test -count=1 -run '^$' -bench '^BenchmarkFlood$' -benchtime 2000x -json ./traffic
			file: "flood.json",
			want: map[string]map[string]float64{
				"Flood/size=1400/senders=1": {"pps": 0},
				"Flood/size=2048/senders=4": {"pps": 0},
			},
		},
		{
			// go test -count=1 -run '^$' -bench '^(BenchmarkMatch|BenchmarkKmsgLatency)$' -benchtime 1000x -json ./kmsg
			file: "kmsg.json",
			want: map[string]map[string]float64{"Match": {"records/s": 0}, "KmsgLatency": {"p50_ms": 0, "p99_ms": 0}},
		},
		{
			file:   "plain.txt",
			want:   map[string]map[string]float64{"Match": {"records/s": 417881, "ns/op": 2393}, "Flood/size=1400/senders=4": {"pps": 123456.5, "ratio-vs-ping-f": 1.25}},
			failed: []string{"BenchmarkBroken"},
		},
	} {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			res, failed, err := parseBenchOutput(f)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]benchResult{}
			for _, r := range res {
				got[r.Name] = r
			}
			for name, units := range tt.want {
				r, ok := got[name]
				if !ok {
					t.Errorf("no result %q in %v", name, res)
					continue
				}
				if r.N <= 0 {
					t.Errorf("%s: N = %d", name, r.N)
				}
				for unit, v := range units {
					g, ok := r.Metrics[unit]
					switch {
					case !ok:
						t.Errorf("%s: no %s metric in %v", name, unit, r.Metrics)
					case v != 0 && g != v:
						t.Errorf("%s: %s = %v, want %v", name, unit, g, v)
					case g <= 0:
						t.Errorf("%s: %s = %v, want > 0", name, unit, g)
					}
				}
			}
			if strings.Join(failed, ",") != strings.Join(tt.failed, ",") {
				t.Errorf("failed = %v, want %v", failed, tt.failed)
			}
		})
	}
	if _, _, err := parseBenchOutput(strings.NewReader("PASS\nok x 0.1s\n")); err == nil {
		t.Error("output without results: no error")
	}
}

func FuzzParseBenchOutput(f *testing.F) {
	for _, name := range []string{"flood.json", "kmsg.json", "plain.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("BenchmarkX-2\n 10\t5 ns/op\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		res, _, err := parseBenchOutput(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, r := range res {
			if r.N < 0 || r.Name == "" || r.Metrics == nil {
				t.Fatalf("bad result %+v", r)
			}
		}
	})
}

// stallReport is a PartnerStall scenario's report: injected at 1 s, first
// timeout 5.6 s later, removed at 7 s, recovered 0.2 s later, cleanup at
// 7.5 s, last sample at 7.6 s.
func stallReport() harness.ScenarioReport {
	t0 := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	at := func(ms int64) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	mark := func(name string, ms int64) harness.TimelineMark {
		return harness.TimelineMark{Name: name, Time: at(ms), SinceMS: ms}
	}
	return harness.ScenarioReport{
		Name:   "TxTimeout/PartnerStall/ICMP",
		Result: harness.Pass,
		Verdict: harness.Verdict{
			TimeoutFired: true, Recovered: true, CleanupOK: true,
			FirstTimeoutMS: 5600, RecoverMS: 200, TxTimeoutCount: 1, WatchdogLines: 1,
		},
		Timeline: harness.Snapshot{
			Start: t0,
			Marks: []harness.TimelineMark{
				mark(harness.MarkFaultInjected, 1000), mark(harness.MarkFloodStart, 1001),
				mark(harness.MarkFloodStop, 6800), mark(harness.MarkFaultRemoved, 7000),
				mark(harness.MarkEchoReply, 7100), mark(harness.MarkCleanupOK, 7500),
			},
			Samples: []harness.Sample{{Time: at(0)}, {Time: at(7600), SinceMS: 7600}},
			Events: []harness.Event{{Time: at(6600), SinceMS: 6600, Source: harness.SourceKmsg,
				Event: kmsg.Event{Kind: kmsg.KindWatchdog, Iface: "eth0", TimedOutMS: 5760}}},
		},
	}
}

func figureMap(fs []figure) map[string]figure {
	m := map[string]figure{}
	for _, f := range fs {
		m[f.Key] = f
	}
	return m
}

func TestVerdictFigures(t *testing.T) {
	got := figureMap(verdictFigures(stallReport(), 15*time.Second))
	for key, want := range map[string]float64{
		"watchdog_timeo_s":          5,
		"first_timeout_s":           5.6,
		"watchdog_line_timed_out_s": 5.76,
		"release_after_timeout_s":   0.4,
		"recover_s":                 0.2,
		// 0.4 s from the first timeout (6.6 s) to the removal (7 s),
		// and 0.1 s from cleanup_ok (7.5 s) to the end (7.6 s).
		"verdict_overhead_s": 0.5,
		"scenario_s":         7.6,
	} {
		f, ok := got[key]
		if !ok || !f.Valid {
			t.Errorf("%s: missing (%+v)", key, f)
			continue
		}
		if d := f.Value - want; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s = %v, want %v", key, f.Value, want)
		}
	}
	if n := got["verdict_overhead_s"].Note; !strings.Contains(n, "cleanup_ok") {
		t.Errorf("verdict_overhead_s note %q does not name the last needed event", n)
	}

	// No timeout: first_timeout_s is missing with the scenario's reason,
	// and the overhead says it is not a full verdict.
	sc := stallReport()
	sc.Result, sc.Reason = harness.Inconclusive, "stall not achieved"
	sc.FirstTimeoutMS, sc.TimeoutFired = -1, false
	got = figureMap(verdictFigures(sc, 15*time.Second))
	if f := got["first_timeout_s"]; f.Valid || !strings.Contains(f.Note, "stall not achieved") {
		t.Errorf("first_timeout_s without a timeout: %+v", f)
	}
	if f := got["verdict_overhead_s"]; !f.Valid || f.Value != 0.1 || !strings.Contains(f.Note, "not a full verdict") {
		t.Errorf("verdict_overhead_s without a timeout: %+v", f)
	}
}

func TestQuantile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := quantile(ds, q); got != want {
			t.Errorf("quantile(%v) = %v, want %v", q, got, want)
		}
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("quantile sorted its input")
	}
	if quantile(nil, 0.5) != 0 {
		t.Error("quantile of nothing")
	}
}

func TestRigBoot(t *testing.T) {
	out := "rig: booting 6.1.0-56-amd64\nrig: first test running in the guest 11.4s after start\n" +
		"    txtimeout_test.go:19: rig: first test running in the guest 11.4s after start (guest init up 9.4s)\n"
	if s, ok := rigBoot(out); !ok || s != 11.4 {
		t.Errorf("rigBoot = %v, %v", s, ok)
	}
	if s, ok := guestInit(out + "rig: guest init up 9.4s after QEMU started\n"); !ok || s != 9.4 {
		t.Errorf("guestInit = %v, %v", s, ok)
	}
	if _, ok := rigBoot("rig: booting\n"); ok {
		t.Error("rigBoot found a boot time in output without one")
	}
}

func TestResultsJSONAndTable(t *testing.T) {
	r := newResults(machine{CPU: "cpu", Cores: 2, Kernel: "6.18"})
	r.add("flood_pps_ratio_vs_ping_f", 1.23456, "ratio", ">= 1", "note")
	r.missing("first_timeout_s", "s", ">= 5 s", "no timeout signal")
	r.StepErrors["verdict"] = "boom"
	path := filepath.Join(t.TempDir(), "bench.json")
	if err := writeJSON(path, r); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("bench.json does not parse: %v\n%s", err, b)
	}
	if v, ok := doc["flood_pps_ratio_vs_ping_f"].(float64); !ok || v != 1.235 {
		t.Errorf("flood_pps_ratio_vs_ping_f = %v, want 1.235", doc["flood_pps_ratio_vs_ping_f"])
	}
	if v, ok := doc["first_timeout_s"]; !ok || v != nil {
		t.Errorf("first_timeout_s = %v (present %v), want null", v, ok)
	}
	if m, ok := doc["machine"].(map[string]any); !ok || m["cpu"] != "cpu" || m["cores"] != 2.0 {
		t.Errorf("machine = %v", doc["machine"])
	}
	var tab bytes.Buffer
	writeTable(&tab, r)
	for _, want := range []string{"FIGURE", "LIMIT/COMPARISON", "flood_pps_ratio_vs_ping_f  1.235", "first_timeout_s", "verdict: boom"} {
		if !strings.Contains(tab.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tab.String())
		}
	}
	// A NaN is not a figure.
	r.add("x", 0/zero(), "s", "", "")
	if f := r.Figures[len(r.Figures)-1]; f.Valid {
		t.Errorf("NaN recorded as valid: %+v", f)
	}
}

func zero() float64 { return 0 }

func TestPktgenMeasurements(t *testing.T) {
	dir := t.TempDir()
	rep := &harness.Report{}
	rep.Add(harness.ScenarioReport{Name: "BenchPktgen", Result: harness.Pass, Verdict: harness.Verdict{FirstTimeoutMS: -1, RecoverMS: -1},
		Measurements: []harness.Measurement{{Name: "pktgen_ratio_vs_shell", Value: 1.02, Units: "ratio"}, {Name: "pktgen_go_pps", Value: 20000, Units: "pps"}}})
	if err := rep.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	m, err := pktgenMeasurements(harness.ReadReport(filepath.Join(dir, harness.ReportJSON)))
	if err != nil || m["pktgen_ratio_vs_shell"] != 1.02 || m["pktgen_go_pps"] != 20000 {
		t.Errorf("pktgenMeasurements = %v, %v", m, err)
	}

	failed := &harness.Report{}
	failed.Add(harness.ScenarioReport{Name: "BenchPktgen", Result: harness.Fail, Reason: "run 1 (go): pktgen sent nothing", Verdict: harness.Verdict{FirstTimeoutMS: -1, RecoverMS: -1}})
	if err := failed.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := pktgenMeasurements(harness.ReadReport(filepath.Join(dir, harness.ReportJSON))); err == nil || !strings.Contains(err.Error(), "sent nothing") {
		t.Errorf("failed scenario: err = %v", err)
	}
	if _, err := pktgenMeasurements(harness.ReadReport(filepath.Join(dir, "nope.json"))); err == nil {
		t.Error("missing report: no error")
	}
}

// TestAddVerdictFigures checks the choice of source: the dedicated run
// when its timeout fired, else the suite's run, saying why.
func TestAddVerdictFigures(t *testing.T) {
	inconclusive := stallReport()
	inconclusive.Result, inconclusive.Reason = harness.Inconclusive, "stall not achieved"
	inconclusive.FirstTimeoutMS = -1
	pass := stallReport()
	pass.FirstTimeoutMS = 5200

	b := &bench{res: newResults(machine{})}
	b.verdict = &verdictSource{sc: inconclusive, recoverWithin: 15 * time.Second, run: "the PartnerStall/ICMP run"}
	b.suiteVerdict = &verdictSource{sc: pass, recoverWithin: 15 * time.Second, run: "the suite run"}
	b.addVerdictFigures()
	f := figureMap(b.res.Figures)["first_timeout_s"]
	if !f.Valid || f.Value != 5.2 || !strings.Contains(f.Note, "the suite run, because the PartnerStall/ICMP run alone was inconclusive: stall not achieved") {
		t.Errorf("fallback to the suite: %+v", f)
	}

	dedicated := stallReport()
	b = &bench{res: newResults(machine{})}
	b.verdict = &verdictSource{sc: dedicated, recoverWithin: 15 * time.Second, run: "the PartnerStall/ICMP run"}
	b.suiteVerdict = &verdictSource{sc: pass, recoverWithin: 15 * time.Second, run: "the suite run"}
	b.addVerdictFigures()
	if f := figureMap(b.res.Figures)["first_timeout_s"]; !f.Valid || f.Value != 5.6 || !strings.Contains(f.Note, "from the PartnerStall/ICMP run") {
		t.Errorf("dedicated run: %+v", f)
	}

	b = &bench{res: newResults(machine{})}
	b.addVerdictFigures()
	if len(b.res.Figures) != 0 {
		t.Errorf("no source: %+v", b.res.Figures)
	}
}

func TestMedians(t *testing.T) {
	in := []benchResult{
		{Name: "A", N: 10, Metrics: map[string]float64{"pps": 3, "ratio": 1}},
		{Name: "B", N: 5, Metrics: map[string]float64{"pps": 7}},
		{Name: "A", N: 10, Metrics: map[string]float64{"pps": 1, "ratio": 9}},
		{Name: "A", N: 10, Metrics: map[string]float64{"pps": 2, "ratio": 5}},
	}
	out := medians(in)
	if len(out) != 2 || out[0].Name != "A" || out[1].Name != "B" {
		t.Fatalf("medians = %+v", out)
	}
	if out[0].Metrics["pps"] != 2 || out[0].Metrics["ratio"] != 5 || out[0].N != 10 || out[1].Metrics["pps"] != 7 {
		t.Errorf("medians = %+v", out)
	}
}

// TestGoTest runs goTest against a stand-in for the go command: a shell
// script that prints a rig line and another line, keeps a child alive
// for a moment and fails.
func TestGoTest(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\n" +
		"echo \"args: $*\"\n" +
		"echo \"rig: first test running in the guest 1.5s after start\" >&2\n" +
		"sleep 0.5\n" +
		"exit 3\n"
	if err := os.WriteFile(filepath.Join(dir, "go"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	b := &bench{goBin: filepath.Join(dir, "go"), modDir: dir, start: time.Now(), stderr: &progress}
	run := b.goTest(context.Background(), []string{"BENCH_TEST_ENV=1"}, rigForward, "-run", "X", "./pkg")
	var ee *exec.ExitError
	if !errors.As(run.Err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("Err = %v, want exit status 3", run.Err)
	}
	if !strings.Contains(run.Output, "args: test -run X ./pkg") {
		t.Errorf("Output %q lacks the arguments", run.Output)
	}
	if s, ok := rigBoot(run.Output); !ok || s != 1.5 {
		t.Errorf("rigBoot(Output) = %v, %v", s, ok)
	}
	if !strings.Contains(progress.String(), "rig: first test running") || strings.Contains(progress.String(), "args:") {
		t.Errorf("progress forwarded the wrong lines:\n%s", progress.String())
	}
	if run.Wall < 400*time.Millisecond {
		t.Errorf("Wall = %v, shorter than the script's sleep", run.Wall)
	}
	if run.PeakTreeRSS <= 0 || run.MaxRSS <= 0 {
		t.Errorf("PeakTreeRSS = %d, MaxRSS = %d: want both measured", run.PeakTreeRSS, run.MaxRSS)
	}
}

// TestRunScenarios: the stand-in for the go command writes a report.json
// into the report directory it is given; runScenarios passes the
// pattern and the environment, reads the report and removes the
// directory, and failure names the exit status.
func TestRunScenarios(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\n" +
		"echo \"args: $*; env: $BENCH_TEST_ENV; dir: $TXTIMEOUT_REPORT_DIR\"\n" +
		"echo '{\"kernel\":\"k\",\"scenarios\":[{\"name\":\"S\",\"result\":\"pass\"}]}' > \"$TXTIMEOUT_REPORT_DIR/report.json\"\n" +
		"exit 1\n"
	if err := os.WriteFile(filepath.Join(dir, "go"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	b := &bench{goBin: filepath.Join(dir, "go"), modDir: dir, start: time.Now(), stderr: &bytes.Buffer{}}
	run, err := b.runScenarios(context.Background(), "test", []string{"BENCH_TEST_ENV=1"}, rigForward, "^TestX$")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(run.Output, "-run ^TestX$; env: 1; dir: ") || !strings.Contains(run.Output, "./scenarios") {
		t.Errorf("Output %q lacks the pattern or the environment", run.Output)
	}
	if run.ReportErr != nil || run.Report.Kernel != "k" || len(run.Report.Scenarios) != 1 {
		t.Errorf("Report = %+v, %v", run.Report, run.ReportErr)
	}
	_, reportDir, _ := strings.Cut(strings.TrimSpace(run.Output), "dir: ")
	if _, err := os.Stat(reportDir); reportDir == "" || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("report directory %q not removed: %v", reportDir, err)
	}
	if err := run.failure(); err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("failure() = %v, want the exit status", err)
	}
	if err := (goTestRun{}).failure(); err != nil {
		t.Errorf("failure() of a run that passed = %v", err)
	}
}

func TestNapiFigures(t *testing.T) {
	sc := harness.ScenarioReport{Name: "TxTimeout/NapiStarve/ICMP", Result: harness.Pass, Reason: "ok"}
	sc.FirstTimeoutMS, sc.RecoverMS, sc.ResetLines, sc.LinkFlap = 5012, 3050, 2, true
	got := figureMap(napiFigures(sc))
	if f := got["napi_first_timeout_s"]; !f.Valid || f.Value != 5.012 {
		t.Errorf("napi_first_timeout_s = %+v, want 5.012", f)
	}
	if f := got["napi_recover_s"]; !f.Valid || f.Value != 3.05 || !strings.Contains(f.Note, "reset lines 2") {
		t.Errorf("napi_recover_s = %+v, want 3.05 naming the reset lines", f)
	}
	sc.Result, sc.Reason, sc.FirstTimeoutMS, sc.RecoverMS = harness.Inconclusive, "stall not achieved", -1, -1
	got = figureMap(napiFigures(sc))
	for _, k := range []string{"napi_first_timeout_s", "napi_recover_s"} {
		if f := got[k]; f.Valid || !strings.Contains(f.Note, "stall not achieved") {
			t.Errorf("%s without a timeout: %+v", k, f)
		}
	}
}

func TestKeptNote(t *testing.T) {
	out := "rig: work directory kept: /tmp/txtimeout-rig-1\n    txtimeout_test.go:24: rig: work directory kept: /tmp/txtimeout-rig-1\nrig: work directory kept: /tmp/txtimeout-rig-2\n"
	if got, want := keptNote(out), "; console log kept in /tmp/txtimeout-rig-1, /tmp/txtimeout-rig-2"; got != want {
		t.Errorf("keptNote = %q, want %q", got, want)
	}
	if got := keptNote("ok txtimeout/scenarios 40s\n"); got != "" {
		t.Errorf("keptNote of a run that kept nothing = %q", got)
	}
}
