package main

import (
	"bytes"
	"encoding/xml"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"txtimeout/harness"
	"txtimeout/kmsg"
	"txtimeout/report"
)

// reportTestFile writes a report.json with one stalled scenario (samples,
// marks and events) and one skipped scenario without samples.
func reportTestFile(t *testing.T) string {
	t.Helper()
	start := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	at := func(ms int64) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	snap := harness.Snapshot{Start: start}
	for ms := int64(0); ms <= 10000; ms += 150 {
		s := harness.Sample{Time: at(ms), SinceMS: ms, HaveQdisc: true, TxPackets: uint64(ms / 10), Offered: uint64(ms / 10)}
		if ms > 1000 && ms < 7000 {
			s.TxPackets, s.QdiscBacklog = 100, uint32(ms-1000)/10
		}
		if ms >= 6300 {
			s.TxTimeout = 1
		}
		snap.Samples = append(snap.Samples, s)
	}
	for _, m := range []struct {
		name string
		ms   int64
	}{{harness.MarkFaultInjected, 1000}, {harness.MarkFaultRemoved, 7000}, {harness.MarkEchoReply, 7300}, {harness.MarkCleanupOK, 9000}} {
		snap.Marks = append(snap.Marks, harness.TimelineMark{Name: m.name, Time: at(m.ms), SinceMS: m.ms})
	}
	snap.Events = append(snap.Events, harness.Event{Time: at(6200), SinceMS: 6200, Source: harness.SourceKmsg,
		Event: kmsg.Event{Kind: kmsg.KindDriver, Iface: "eth0", Queue: 0, Text: "TX timeout on queue: 0"}})
	r := &harness.Report{Kernel: "6.1.0-50-amd64", Driver: "virtio_net", Iface: "eth0", NIC: "virtio-net-pci", Config: harness.DefaultConfig()}
	r.Add(harness.ScenarioReport{Name: "TxTimeout/PartnerStall/ICMP", Result: harness.Pass, Reason: "fired and recovered",
		Verdict: snap.Verdict(harness.VerdictOptions{}), Events: snap.KmsgEvents(), Timeline: snap})
	r.Add(harness.ScenarioReport{Name: "TxTimeout/PauseFlood", Result: harness.Skip, Reason: "no partner port",
		Verdict: harness.Verdict{FirstTimeoutMS: -1, RecoverMS: -1}})
	dir := t.TempDir()
	if err := r.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, harness.ReportJSON)
}

func TestReportDrawsSVGAndPNG(t *testing.T) {
	path := reportTestFile(t)
	dir := t.TempDir()

	svg := filepath.Join(dir, "timeline.svg")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"report", path, "-o", svg}, &stdout, &stderr); code != 0 {
		t.Fatalf("report -o svg: exit %d, stderr %q", code, stderr.String())
	}
	for _, want := range []string{"kernel 6.1.0-50-amd64, driver virtio_net, iface eth0, nic virtio-net-pci",
		"TxTimeout/PartnerStall/ICMP", "pass", "TxTimeout/PauseFlood", "skip", "no partner port", "wrote " + svg + " (1 scenarios)"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	var root struct {
		XMLName xml.Name
	}
	if err := xml.Unmarshal(b, &root); err != nil || root.XMLName.Local != "svg" {
		t.Fatalf("timeline.svg is not an SVG document (root %q): %v", root.XMLName.Local, err)
	}
	for _, want := range []string{"fault injected", "first watchdog", "handler line", "fault removed", "recovered", "tx_packets rate", "qdisc backlog", "tx_timeout"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("timeline.svg lacks the text %q", want)
		}
	}

	pngPath := filepath.Join(dir, "timeline.png")
	stdout.Reset()
	if code := run([]string{"report", "-o", pngPath, path}, &stdout, &stderr); code != 0 {
		t.Fatalf("report -o png: exit %d, stderr %q", code, stderr.String())
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("timeline.png does not decode: %v", err)
	}
	if img.Bounds().Dx() < 500 || img.Bounds().Dy() < 500 {
		t.Errorf("timeline.png is %v, too small to read", img.Bounds())
	}
}

func TestReportSummaryOnly(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"report", reportTestFile(t)}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if lines := strings.Count(stdout.String(), "\n"); lines != 3 {
		t.Errorf("want a header and one line per scenario, got:\n%s", stdout.String())
	}
}

func TestReportErrors(t *testing.T) {
	good := reportTestFile(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"scenarios": [{"name": "A", "result": "great"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.svg")
	mout := filepath.Join(dir, "matrix")
	_, runs := matrixRuns(t)
	badBase := filepath.Join(dir, "base.json")
	if err := os.WriteFile(badBase, []byte(`{"cells": [{"kernel": "k", "nic": "n", "scenario": "s", "result": "great"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no report", []string{"report"}, 2, "want exactly one run directory or report.json"},
		{"two reports", []string{"report", good, good}, 2, "want exactly one run directory or report.json"},
		{"bad extension", []string{"report", good, "-o", filepath.Join(dir, "x.pdf")}, 2, "the picture is .svg or .png"},
		{"bad flag", []string{"report", "-frobnicate", good}, 2, "flag provided but not defined"},
		{"missing file", []string{"report", filepath.Join(dir, "nope.json"), "-o", out}, 1, "no such file"},
		{"invalid report", []string{"report", bad, "-o", out}, 1, `has result "great"`},
		{"unknown scenario", []string{"report", good, "-o", out, "-scenario", "Nope"}, 1, `no scenario "Nope"`},
		{"scenario without samples", []string{"report", good, "-o", out, "-scenario", "TxTimeout/PauseFlood"}, 1, "no scenario"},
		{"matrix of no runs", []string{"report", "-matrix", mout}, 2, "-matrix wants one or more run directories"},
		{"matrix with -o", []string{"report", "-matrix", mout, "-o", out, runs[0]}, 2, "drop -o"},
		{"baseline without matrix", []string{"report", "-baseline", badBase, runs[0]}, 2, "give -matrix OUT"},
		{"matrix run without report", []string{"report", "-matrix", mout, runs[0], dir}, 1, "no such file"},
		{"matrix bad baseline", []string{"report", "-matrix", mout, "-baseline", badBase, runs[0]}, 1, `has result "great"`},
		{"matrix missing baseline", []string{"report", "-matrix", mout, "-baseline", filepath.Join(dir, "none.json"), runs[0]}, 1, "no such file"},
		{"matrix of one run twice", []string{"report", "-matrix", mout, runs[0], runs[0]}, 1, "is in two runs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, stderr.String())
			}
			msg := stderr.String()
			last := msg
			if i := strings.LastIndex(strings.TrimSuffix(msg, "\n"), "\n"); i >= 0 {
				last = msg[i+1:] // the flag package prints usage before a bad flag's line
			}
			if code == 1 && strings.Count(msg, "\n") != 1 {
				t.Errorf("want one line on stderr, got %q", msg)
			}
			if !strings.Contains(msg, tc.want) || !strings.HasPrefix(last, "txtimeout:") {
				t.Errorf("stderr %q: want a txtimeout: line containing %q", msg, tc.want)
			}
			if strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine") {
				t.Errorf("stderr shows a crash: %q", msg)
			}
			for _, f := range []string{out, mout} {
				if _, err := os.Stat(f); err == nil {
					t.Errorf("a failed run wrote %s", f)
				}
			}
		})
	}
}

func TestReportDirWritesPage(t *testing.T) {
	dir := filepath.Dir(reportTestFile(t))
	var stdout, stderr bytes.Buffer
	if code := run([]string{"report", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	page := filepath.Join(dir, "index.html")
	if !strings.Contains(stdout.String(), "wrote "+page) {
		t.Errorf("stdout does not name the page:\n%s", stdout.String())
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id="TxTimeout-PartnerStall-ICMP"`, "<svg", "no partner port", "virtio-net-pci"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("index.html lacks %q", want)
		}
	}
}

func TestReportDirWithoutReport(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"report", dir}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "no such file") {
		t.Fatalf("exit %d, stderr %q: want 1 and no such file", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "index.html")); err == nil {
		t.Error("a directory without report.json got an index.html")
	}
}

func TestReportOneFigurePerScenario(t *testing.T) {
	path := reportTestFile(t)
	r, err := harness.ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	second := r.Scenarios[0]
	second.Name = "TxTimeout/PartnerStall/Pktgen"
	r.Add(second)
	if err := r.WriteFiles(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "tl.svg")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"report", path, "-o", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	for _, name := range []string{"tl-TxTimeout-PartnerStall-ICMP.svg", "tl-TxTimeout-PartnerStall-Pktgen.svg"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(out), name))
		if err != nil {
			t.Errorf("no figure %s: %v (stdout %q)", name, err, stdout.String())
			continue
		}
		if bytes.Count(b, []byte("tx_packets rate")) != 1 {
			t.Errorf("%s: want one figure of one scenario", name)
		}
	}
	if !strings.Contains(stdout.String(), "(2 scenarios)") {
		t.Errorf("stdout %q", stdout.String())
	}
}

// matrixRuns writes two run directories side by side, one per kernel, from
// reportTestFile's report.
func matrixRuns(t *testing.T) (root string, dirs []string) {
	t.Helper()
	r, err := harness.ReadReport(reportTestFile(t))
	if err != nil {
		t.Fatal(err)
	}
	root = t.TempDir()
	for _, k := range []string{"6.1.0-56-amd64", "6.12.117+deb12-amd64"} {
		r.Kernel = k
		dir := filepath.Join(root, k)
		if err := r.WriteFiles(dir); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	return root, dirs
}

func TestReportMatrix(t *testing.T) {
	root, dirs := matrixRuns(t)
	out := filepath.Join(root, "matrix")
	var stdout, stderr bytes.Buffer
	if code := run(append([]string{"report", "-matrix", out}, dirs...), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "4 cells (2 kernels × 1 NICs, 2 scenarios): 2 pass, 2 skip") {
		t.Errorf("stdout %q", stdout.String())
	}
	for _, f := range []string{filepath.Join(out, report.MatrixJSON), filepath.Join(out, report.MatrixKTAP),
		filepath.Join(out, report.MatrixJUnit), filepath.Join(out, report.IndexHTML), filepath.Join(dirs[0], report.IndexHTML)} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("no %s: %v", f, err)
		}
	}

	// Yesterday the first cell failed: today it is a fix.
	base, err := report.ReadMatrix(filepath.Join(out, report.MatrixJSON))
	if err != nil {
		t.Fatal(err)
	}
	base.Cells[0].Result = harness.Fail
	var js bytes.Buffer
	if err := base.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(t.TempDir(), "old.json")
	if err := os.WriteFile(old, js.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if code := run(append([]string{"report", "-matrix", out, "-baseline", old}, dirs...), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "against "+old+": 0 regressions, 1 fix, 0 changed, 0 new, 3 same") {
		t.Errorf("stdout %q: want the fix counted", stdout.String())
	}
	now, err := report.ReadMatrix(filepath.Join(out, report.MatrixJSON))
	if err != nil {
		t.Fatal(err)
	}
	c := now.Cells[0]
	if c.Change != report.Fix || filepath.IsAbs(c.RunDir) || filepath.Join(out, filepath.FromSlash(c.RunDir)) != dirs[0] {
		t.Errorf("first cell: change %q, run %q: want a fix, and its run relative to %s", c.Change, c.RunDir, out)
	}
}
