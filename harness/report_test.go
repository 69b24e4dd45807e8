package harness

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"txtimeout/kmsg"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// sampleReport is a report as a virtual-rig run would write it, built from
// the synthetic timelines of the verdict tests.
func sampleReport() *Report {
	cfg := DefaultConfig()
	cfg.Iface, cfg.Rig, cfg.Partner, cfg.NIC, cfg.PeerIP = "eth0", true, PartnerInband, "virtio-net-pci", "198.18.0.2"
	r := &Report{Kernel: "6.1.0-50-amd64", Driver: "virtio_net", Iface: "eth0", NIC: "virtio-net-pci", Config: cfg}

	netem := netemTimeline().s
	nv := netem.Verdict(VerdictOptions{})
	r.Add(ScenarioReport{Name: "TxTimeout/NetemDelay", Result: Pass, Verdict: nv, Events: netem.KmsgEvents(), Timeline: netem,
		Reason: "the driver queue never stopped: netem held up to 90 packets; the watchdog fires only when the device stops draining (see PartnerStall)"})

	b := stallTimeline()
	b.event(6200, SourceKmsg, kmsg.KindWatchdog, "eth0").event(6210, SourceKmsg, kmsg.KindDriver, "eth0").
		event(6220, SourceTracepoint, kmsg.KindWatchdog, "eth0")
	stall := b.s
	r.Add(ScenarioReport{Name: "TxTimeout/PartnerStall/ICMP", Result: Pass, Verdict: stall.Verdict(VerdictOptions{}),
		Events: stall.KmsgEvents(), Timeline: stall, Reason: "watchdog fired and the device recovered",
		Measurements: []Measurement{{Name: "flood_pps", Value: 2400.5, Units: "pps"}}})

	r.Add(ScenarioReport{Name: "TxTimeout/PartnerStall/Pktgen", Result: Fail, Verdict: Verdict{FirstTimeoutMS: -1, RecoverMS: -1},
		Events: []kmsg.Event{}, Reason: "the device stalled but no timeout signal came within 20s"})
	r.Add(ScenarioReport{Name: "TxTimeout/PauseFlood", Result: Skip, Verdict: Verdict{FirstTimeoutMS: -1, RecoverMS: -1},
		Events: []kmsg.Event{}, Reason: "no partner port on the virtual rig (set -partner pause -partner-iface PORT on a hardware rig)"})
	r.Add(ScenarioReport{Name: "TxTimeout/PartnerStall/e1000", Result: Inconclusive, Verdict: Verdict{FirstTimeoutMS: -1, RecoverMS: -1},
		Events: []kmsg.Event{}, Reason: "stall not achieved: the emulated NIC never backpressured"})
	r.Add(ScenarioReport{Name: "Pktgen/Throughput", Result: Pass, Verdict: Verdict{FirstTimeoutMS: -1, RecoverMS: -1},
		Events: []kmsg.Event{}, Reason: "2 threads, no errors",
		Measurements: []Measurement{{Name: "pps", Value: 81234, Units: "pps"}, {Name: "mbps", Value: 909.82, Units: "Mb/sec"}}})

	// e1000 with its NAPI thread starved: the watchdog, the reset, the
	// link bouncing after the release (kernel-facts.md 9).
	nb := stallTimeline()
	nb.event(6200, SourceKmsg, kmsg.KindWatchdog, "eth0").reset(6210, "eth0").
		link(7150, "eth0", false).link(9150, "eth0", true)
	napi := nb.s
	r.Add(ScenarioReport{Name: "TxTimeout/NapiStarve/e1000", Result: Pass, Verdict: napi.Verdict(VerdictOptions{}),
		Events: napi.KmsgEvents(), Timeline: napi, Reason: "watchdog fired, the driver reset the device and it recovered"})
	return r
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		mustNoErr(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	mustNoErr(t, err)
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s (-want +got):\n%s\n(run go test ./harness -run %s -update to accept)", name, d, t.Name())
	}
}

func TestReportFilesGolden(t *testing.T) {
	dir := t.TempDir()
	r := sampleReport()
	mustNoErr(t, r.WriteFiles(dir))
	js, err := os.ReadFile(filepath.Join(dir, ReportJSON))
	mustNoErr(t, err)
	kt, err := os.ReadFile(filepath.Join(dir, ReportKTAP))
	mustNoErr(t, err)
	golden(t, "report.json.golden", js)
	golden(t, "report.ktap.golden", kt)

	// The keys the issue names are there, the verdict flattened.
	var doc map[string]any
	mustNoErr(t, json.Unmarshal(js, &doc))
	for _, k := range []string{"kernel", "driver", "iface", "nic", "config", "scenarios"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("report.json lacks key %q", k)
		}
	}
	sc := doc["scenarios"].([]any)[1].(map[string]any)
	for _, k := range []string{"name", "result", "stalled", "timeout_fired", "handler_logged", "recovered", "splat", "cleanup_ok", "first_timeout_ms", "reason", "events", "timeline"} {
		if _, ok := sc[k]; !ok {
			t.Errorf("scenario lacks key %q", k)
		}
	}

	// The report reads back to the same thing, and the timeline in it
	// gives the same verdict.
	back, err := ReadReport(filepath.Join(dir, ReportJSON))
	mustNoErr(t, err)
	if d := cmp.Diff(r.snapshot(), back.snapshot(), cmp.AllowUnexported(Report{}), cmpIgnoreMu); d != "" {
		t.Errorf("read back (-want +got):\n%s", d)
	}
	if d := cmp.Diff(r.Scenarios[1].Verdict, back.Scenarios[1].Timeline.Verdict(VerdictOptions{})); d != "" {
		t.Errorf("verdict from the stored timeline (-want +got):\n%s", d)
	}
	// No temporary files are left behind.
	ents, err := os.ReadDir(dir)
	mustNoErr(t, err)
	if len(ents) != 2 {
		t.Errorf("report directory holds %d files, want 2", len(ents))
	}
}

var cmpIgnoreMu = cmp.FilterPath(func(p cmp.Path) bool {
	return p.Last().String() == ".mu" || p.Last().String() == ".stdout"
}, cmp.Ignore())

func TestReportNonFiniteMeasurement(t *testing.T) {
	dir := t.TempDir()
	r := &Report{}
	s := ScenarioReport{Name: "Pktgen/Throughput", Result: Pass, Measurements: []Measurement{{Name: "pps", Value: math.NaN(), Units: "pps"}, {Name: "mbps", Value: math.Inf(1), Units: "Mb/sec"}}}
	r.Add(s)
	mustNoErr(t, r.WriteFiles(dir))
	back, err := ReadReport(filepath.Join(dir, ReportJSON))
	mustNoErr(t, err)
	wantEq(t, back.Scenarios[0].Measurements[0].Value, 0.0, "NaN read back")
	if d := cmp.Diff([]string{"<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=Pktgen_Throughput RESULT=pass>"}, LAVALines(s)); d != "" {
		t.Errorf("LAVA lines (-want +got):\n%s", d)
	}
}

func TestKTAPEmptyAndOddNames(t *testing.T) {
	r := &Report{}
	var b bytes.Buffer
	mustNoErr(t, r.WriteKTAP(&b))
	wantEq(t, b.String(), "KTAP version 1\n# txtimeout kernel=- driver=- iface=-\n1..0\n", "empty KTAP")

	r.Add(ScenarioReport{Name: "A # B\nC", Result: Skip, Reason: "multi\nline  reason"})
	b.Reset()
	mustNoErr(t, r.WriteKTAP(&b))
	wantContains(t, b.String(), "ok 1 A _ B C # SKIP multi line reason\n")
}

func TestLAVALines(t *testing.T) {
	r := sampleReport()
	var got []string
	for _, s := range r.Scenarios {
		got = append(got, LAVALines(s)...)
	}
	want := []string{
		"<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=TxTimeout_NetemDelay RESULT=pass>",
		"<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=TxTimeout_NetemDelay_recover_ms RESULT=pass MEASUREMENT=100 UNITS=ms>",
		"<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=TxTimeout_PartnerStall_ICMP RESULT=pass MEASUREMENT=5200 UNITS=ms>",
		"<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=TxTimeout_PartnerStall_ICMP_flood_pps RESULT=pass MEASUREMENT=2400.5 UNITS=pps>",
		"<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=TxTimeout_PartnerStall_ICMP_recover_ms RESULT=pass MEASUREMENT=300 UNITS=ms>",
		"<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=TxTimeout_PartnerStall_Pktgen RESULT=fail>",
		"<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=TxTimeout_PauseFlood RESULT=skip>",
		"<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=TxTimeout_PartnerStall_e1000 RESULT=unknown>",
		"<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=Pktgen_Throughput RESULT=pass MEASUREMENT=81234 UNITS=pps>",
		"<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=Pktgen_Throughput_mbps RESULT=pass MEASUREMENT=909.82 UNITS=Mb_sec>",
		"<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=TxTimeout_NapiStarve_e1000 RESULT=pass MEASUREMENT=5200 UNITS=ms>",
		"<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=TxTimeout_NapiStarve_e1000_recover_ms RESULT=pass MEASUREMENT=300 UNITS=ms>",
		"<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=TxTimeout_NapiStarve_e1000_reset_lines RESULT=pass MEASUREMENT=1 UNITS=lines>",
		"<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=TxTimeout_NapiStarve_e1000_link_down_ms RESULT=pass MEASUREMENT=2000 UNITS=ms>",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("LAVA lines (-want +got):\n%s", d)
	}
}

// fakeTB records what Finish does to a test.
type fakeTB struct {
	testing.TB
	name      string
	logs      []string
	errors    []string
	skipped   string
	failedNow bool
}

func (f *fakeTB) Helper()                      {}
func (f *fakeTB) Name() string                 { return f.name }
func (f *fakeTB) Logf(format string, a ...any) { f.logs = append(f.logs, fmt.Sprintf(format, a...)) }
func (f *fakeTB) Errorf(format string, a ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, a...))
}
func (f *fakeTB) Skip(a ...any) { f.skipped = fmt.Sprint(a...) }
func (f *fakeTB) FailNow()      { f.failedNow = true }

func TestFinishMapsResults(t *testing.T) {
	dir := t.TempDir()
	var lava bytes.Buffer
	r := &Report{Config: Config{ReportDir: dir, LAVA: true}, stdout: &lava}
	stall := stallTimeline().s

	pass := &fakeTB{name: "TestTxTimeout/PartnerStall/ICMP"}
	Finish(pass, r, ScenarioReport{Result: Pass, Reason: "fired and recovered", Verdict: stall.Verdict(VerdictOptions{}), Timeline: stall})
	if len(pass.errors) != 0 || pass.skipped != "" {
		t.Errorf("pass: errors %q, skipped %q", pass.errors, pass.skipped)
	}
	wantContains(t, strings.Join(pass.logs, "\n"), "TxTimeout/PartnerStall/ICMP: pass: fired and recovered")
	wantContains(t, strings.Join(pass.logs, "\n"), "the device stalled")

	fail := &fakeTB{name: "TestTxTimeout/NetemDelay"}
	Finish(fail, r, ScenarioReport{Result: Fail, Reason: "splat"})
	if len(fail.errors) != 1 || !strings.Contains(fail.errors[0], "TxTimeout/NetemDelay failed: splat") {
		t.Errorf("fail: errors %q", fail.errors)
	}

	skip := &fakeTB{name: "TestTxTimeout/PauseFlood"}
	Finish(skip, r, ScenarioReport{Result: Skip, Reason: "no partner port"})
	wantEq(t, skip.skipped, "no partner port", "skip message")

	inc := &fakeTB{name: "TestTxTimeout/PartnerStall/Pktgen"}
	Finish(inc, r, ScenarioReport{Result: Inconclusive, Reason: "stall not achieved"})
	wantEq(t, inc.skipped, "inconclusive: stall not achieved", "inconclusive message")

	bad := &fakeTB{name: "TestX"}
	Finish(bad, r, ScenarioReport{Result: "maybe"})
	if len(bad.errors) != 1 {
		t.Errorf("an invalid result must fail the test, got errors %q", bad.errors)
	}

	// Five scenarios, and the recover_ms of the one that recovered.
	wantEq(t, strings.Count(lava.String(), "<LAVA_SIGNAL_TESTCASE"), 6, "LAVA lines printed")
	back, err := ReadReport(filepath.Join(dir, ReportJSON))
	mustNoErr(t, err)
	wantEq(t, len(back.Scenarios), 5, "scenarios in report.json")
	wantEq(t, back.Scenarios[0].Name, "TxTimeout/PartnerStall/ICMP", "name from the test")
	wantEq(t, back.Scenarios[4].Result, Fail, "invalid result stored as")
	kt, err := os.ReadFile(filepath.Join(dir, ReportKTAP))
	mustNoErr(t, err)
	wantContains(t, string(kt), "ok 4 TxTimeout/PartnerStall/Pktgen # SKIP inconclusive: stall not achieved")
}

func TestNeedForRecordsTheScenario(t *testing.T) {
	r := &Report{}
	checks := []Check{
		{Name: CheckRoot, OK: true, Reason: "root"},
		{Name: CheckPktgen, Reason: "no pktgen", Fix: "modprobe pktgen"},
		{Name: CheckNetem, Reason: "no netem", Fix: "modprobe sch_netem", Required: true},
	}
	ok := &fakeTB{name: "TestTxTimeout/A"}
	NeedFor(ok, r, checks, CheckRoot)
	if ok.skipped != "" || len(ok.errors) > 0 || ok.failedNow || len(r.Scenarios) != 0 {
		t.Errorf("passing checks: %+v, %d scenarios", ok, len(r.Scenarios))
	}
	skip := &fakeTB{name: "TestPktgen/Throughput"}
	NeedFor(skip, r, checks, CheckRoot, CheckPktgen)
	wantEq(t, skip.skipped, "skipping: pktgen: FAILED: no pktgen (fix: modprobe pktgen)", "skip message")
	fail := &fakeTB{name: "TestTxTimeout/NetemDelay"}
	NeedFor(fail, r, checks, CheckNetem)
	if !fail.failedNow || len(fail.errors) != 1 {
		t.Errorf("a required check must fail the test: %+v", fail)
	}
	var b bytes.Buffer
	mustNoErr(t, r.WriteKTAP(&b))
	wantContains(t, b.String(), "ok 1 Pktgen/Throughput # SKIP skipping: pktgen: FAILED: no pktgen (fix: modprobe pktgen)\n")
	wantContains(t, b.String(), "not ok 2 TxTimeout/NetemDelay\n")
}

func TestReadReportErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"", "report is empty"},
		{"{", "not valid JSON"},
		{`{"scenarios": 3}`, "not a txtimeout report"},
		{`{"kernel": "x"}`, `no "scenarios" list`},
		{`{"scenarios": [{"name": "", "result": "pass"}]}`, "scenario 1 has no name"},
		{`{"scenarios": [{"name": "A", "result": "great"}]}`, `scenario "A" has result "great"`},
		{`{"config": {"stall_for": "forever"}, "scenarios": []}`, "not a duration"},
	} {
		_, err := ParseReport([]byte(tc.doc))
		wantErrContains(t, err, tc.want)
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("error is not one line: %q", err)
		}
	}
	_, err := ReadReport(filepath.Join(t.TempDir(), "nope.json"))
	wantIs(t, err, os.ErrNotExist)
}

// FuzzParseReport checks that no input makes the report parser panic and
// that what it accepts it can write again.
func FuzzParseReport(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "report.json.golden"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"scenarios":[]}`))
	f.Add([]byte(`{"scenarios":[{"name":"A","result":"skip","timeline":{"samples":[{"tx_packets":1}]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		r, err := ParseReport(data)
		if err != nil {
			return
		}
		var b bytes.Buffer
		if err := r.WriteKTAP(&b); err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
		for _, s := range r.Scenarios {
			_ = s.Timeline.Verdict(VerdictOptions{})
			_ = LAVALines(s)
		}
	})
}

// A report.json written before the reset, link and carrier fields gives
// the same verdicts from its timelines as it stored.
func TestOldReportSameVerdicts(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "report.json.golden"))
	mustNoErr(t, err)
	var doc map[string]any
	mustNoErr(t, json.Unmarshal(data, &doc))
	var kept []any
	for _, sc := range doc["scenarios"].([]any) {
		m := sc.(map[string]any)
		if m["reset_seen"] == true || m["link_flap"] == true {
			continue // new evidence an old report cannot hold
		}
		for _, k := range []string{"reset_seen", "reset_lines", "link_flap", "link_down_ms", "watchdog_queues", "tx_timeout_by_queue"} {
			delete(m, k)
		}
		tl, _ := m["timeline"].(map[string]any)
		smp, _ := tl["samples"].([]any)
		for _, s := range smp {
			for _, k := range []string{"have_carrier", "carrier", "carrier_changes"} {
				delete(s.(map[string]any), k)
			}
		}
		kept = append(kept, m)
	}
	doc["scenarios"] = kept
	old, err := json.Marshal(doc)
	mustNoErr(t, err)
	r, err := ParseReport(old)
	mustNoErr(t, err)
	n := 0
	for _, sc := range r.Scenarios {
		if len(sc.Timeline.Samples) == 0 {
			continue
		}
		n++
		// Fields added since are derived from what old timelines hold
		// too; they are new, not changed.
		added := cmpopts.IgnoreFields(Verdict{}, "WatchdogQueues", "TxTimeoutByQueue")
		if d := cmp.Diff(sc.Verdict, sc.Timeline.Verdict(VerdictOptions{}), added); d != "" {
			t.Errorf("%s: verdict from the old timeline (-stored +derived):\n%s", sc.Name, d)
		}
	}
	wantEq(t, n, 2, "old scenarios with a timeline")
}
