package report

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"txtimeout/harness"
)

func fixtureMatrix(tb testing.TB) (*Matrix, []string) {
	tb.Helper()
	dirs := fixtureRuns(tb)
	runs, err := ReadRuns(dirs)
	if err != nil {
		tb.Fatal(err)
	}
	m, err := BuildMatrix(runs)
	if err != nil {
		tb.Fatal(err)
	}
	return m, dirs
}

func TestBuildMatrix(t *testing.T) {
	m, dirs := fixtureMatrix(t)
	if want := []string{"6.1.0-56-amd64", "6.12.117+deb12-amd64"}; !slices.Equal(m.Kernels, want) {
		t.Errorf("kernels %q, want %q", m.Kernels, want)
	}
	if want := []string{"e1000", "virtio-net-pci"}; !slices.Equal(m.NICs, want) {
		t.Errorf("NICs %q, want %q", m.NICs, want)
	}
	total := 0
	for _, d := range dirs {
		r, err := ReadRun(d)
		if err != nil {
			t.Fatal(err)
		}
		total += len(r.Report.Scenarios)
	}
	if len(m.Cells) != total {
		t.Errorf("%d cells, want one per scenario of every run (%d)", len(m.Cells), total)
	}
	// 6.1 × virtio-net-pci comes from two runs, one per scenario set.
	napi, ok1 := m.Cell("6.1.0-56-amd64", "virtio-net-pci", "TxTimeout/NapiStarve/ICMP")
	race, ok2 := m.Cell("6.1.0-56-amd64", "virtio-net-pci", "TxTimeout/Race/Unbind")
	if !ok1 || !ok2 || napi.RunDir == race.RunDir {
		t.Errorf("6.1 × virtio-net-pci: NapiStarve from %q, Race from %q: want both, from two runs", napi.RunDir, race.RunDir)
	}
	c, ok := m.Cell("6.12.117+deb12-amd64", "e1000", "TxTimeout/NapiStarve/ICMP")
	if !ok {
		t.Fatal("no 6.12 × e1000 × NapiStarve/ICMP cell")
	}
	want := Cell{Kernel: "6.12.117+deb12-amd64", NIC: "e1000", Driver: "e1000", Scenario: "TxTimeout/NapiStarve/ICMP",
		Result: harness.Pass, Reason: c.Report.Reason, FirstTimeoutMS: 5739, RecoverMS: 3073, RunDir: filepath.Join(filepath.Dir(dirs[0]), "6.12-e1000")}
	want.Report = c.Report
	if !reflect.DeepEqual(want, c) {
		c.Report, want.Report = harness.ScenarioReport{}, harness.ScenarioReport{}
		t.Errorf("cell\n got %+v\nwant %+v", c, want)
	}
	// Cells follow the kernel, NIC and scenario orders.
	last := [3]int{}
	for i, c := range m.Cells {
		k := [3]int{indexOf(m.Kernels, c.Kernel), indexOf(m.NICs, c.NIC), indexOf(m.Scenarios, c.Scenario)}
		if i > 0 && fmt.Sprint(k) < fmt.Sprint(last) {
			t.Errorf("cell %d (%s) is out of order", i, c.Key())
		}
		last = k
	}
}

func TestBuildMatrixErrors(t *testing.T) {
	if _, err := BuildMatrix(nil); err == nil {
		t.Error("a matrix of no runs built")
	}
	dirs := fixtureRuns(t)
	runs, err := ReadRuns([]string{dirs[0], dirs[0]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := BuildMatrix(runs); err == nil || !strings.Contains(err.Error(), "is in two runs") {
		t.Errorf("the same run twice: %v, want an error naming the cell in two runs", err)
	}
	if _, err := ReadRuns([]string{dirs[0], t.TempDir()}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("a directory without report.json: %v", err)
	}
}

func TestChange(t *testing.T) {
	const P, F, S, I = harness.Pass, harness.Fail, harness.Skip, harness.Inconclusive
	for _, tc := range []struct {
		was  harness.Result
		in   bool
		now  harness.Result
		want Change
	}{
		{"", false, P, New}, {P, true, P, Same}, {F, true, F, Same},
		{P, true, F, Regression}, {P, true, I, Regression}, {F, true, P, Fix},
		{P, true, S, Changed}, {S, true, P, Changed}, {I, true, P, Changed}, {F, true, I, Changed},
	} {
		if got := change(tc.was, tc.in, tc.now); got != tc.want {
			t.Errorf("was %q (in baseline %v), now %q: %s, want %s", tc.was, tc.in, tc.now, got, tc.want)
		}
	}
}

func TestCompareMarksChangedCells(t *testing.T) {
	m, _ := fixtureMatrix(t)
	base, _ := fixtureMatrix(t)
	const key = "6.12.117+deb12-amd64 × e1000 × TxTimeout/NapiStarve/ICMP"
	for i := range base.Cells {
		if base.Cells[i].Key() == key {
			base.Cells[i].Result = harness.Fail
		}
	}
	base.Cells = append(base.Cells, Cell{Kernel: "5.10.0-32-amd64", NIC: "e1000", Scenario: "TxTimeout/NapiStarve/ICMP", Result: harness.Skip})
	m.Compare(base, "old.json")
	for _, c := range m.Cells {
		want := Same
		if c.Key() == key {
			want = Fix
		}
		if c.Change != want {
			t.Errorf("%s: %s, want %s", c.Key(), c.Change, want)
		}
	}
	s := m.Summary()
	for _, want := range []string{"against old.json: 0 regressions, 1 fix, 0 changed, 0 new, 24 same", "1 gone (5.10.0-32-amd64 × e1000 × TxTimeout/NapiStarve/ICMP)"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary %q lacks %q", s, want)
		}
	}
	m.Compare(nil, "")
	if m.Compared != nil || m.Cells[0].Change != "" {
		t.Error("a nil baseline left the marks")
	}
}

func TestMatrixJSONRoundTrip(t *testing.T) {
	m, dirs := fixtureMatrix(t)
	dir := filepath.Dir(dirs[0])
	base, _ := fixtureMatrix(t)
	base.Cells[0].Result = harness.Fail
	if err := m.WriteFiles(dir, base, "base.json"); err != nil {
		t.Fatal(err)
	}
	got, err := ReadMatrix(filepath.Join(dir, MatrixJSON))
	if err != nil {
		t.Fatal(err)
	}
	// What was read writes the same matrix.json again.
	var again bytes.Buffer
	if err := got.WriteJSON(&again); err != nil {
		t.Fatal(err)
	}
	written, err := os.ReadFile(filepath.Join(dir, MatrixJSON))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(written, again.Bytes()) {
		t.Errorf("matrix.json does not round-trip: %d bytes written, %d after reading it back", len(written), again.Len())
	}
	if len(got.Cells) != len(m.Cells) || got.Cells[3].Report.Timeline.Samples == nil ||
		len(got.Cells[3].Report.Timeline.Samples) != len(m.Cells[3].Report.Timeline.Samples) {
		t.Errorf("matrix.json lost cells or their scenario reports")
	}
	if got.Cells[0].RunDir != "6.1-e1000" || got.Cells[0].Change != Fix || got.Cells[0].Was != harness.Fail {
		t.Errorf("first cell: run %q, change %q, was %q: want the run relative to the matrix and its fix", got.Cells[0].RunDir, got.Cells[0].Change, got.Cells[0].Was)
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, IndexHTML)); err != nil {
			t.Errorf("run %s has no page for the grid to link to: %v", d, err)
		}
	}
}

func TestReadMatrixErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"garbage":   "not json",
		"no cells":  `{"kernels": []}`,
		"no kernel": `{"cells": [{"nic": "e1000", "scenario": "A", "result": "pass"}]}`,
		"result":    `{"cells": [{"kernel": "6.1", "nic": "e1000", "scenario": "A", "result": "great"}]}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".json")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadMatrix(p)
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want a one-line error", name, err)
		}
	}
	if _, err := ReadMatrix(filepath.Join(dir, "none.json")); err == nil {
		t.Error("a missing file read")
	}
}

func TestMatrixPage(t *testing.T) {
	m, _ := fixtureMatrix(t)
	base, _ := fixtureMatrix(t)
	base.Cells[0].Result = harness.Fail
	m.Compare(base, "old/matrix.json")
	var b bytes.Buffer
	if err := m.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	doc := parsePage(t, b.Bytes())
	checkSelfContained(t, doc)
	cells := findAll(doc, func(n *html.Node) bool { return n.Data == "td" && hasClass(n, "cell") })
	if want := len(m.Kernels) * len(m.NICs) * len(m.Scenarios); len(cells) != want {
		t.Fatalf("%d grid cells, want %d", len(cells), want)
	}
	links, notRun := 0, 0
	for _, c := range cells {
		if a := findAll(c, tag("a")); len(a) == 1 {
			links++
			if !strings.HasSuffix(strings.SplitN(attr(a[0], "href"), "#", 2)[0], IndexHTML) {
				t.Errorf("cell links to %q, want a run's index.html", attr(a[0], "href"))
			}
		}
		if hasClass(c, "none") {
			notRun++
		}
		if attr(c, "title") == "" {
			t.Error("a cell without hover text")
		}
	}
	if links != len(m.Cells) || links+notRun != len(cells) {
		t.Errorf("%d linked cells and %d not run, want %d linked of %d", links, notRun, len(m.Cells), len(cells))
	}
	first := m.Cells[0]
	if !hasClass(cells[0], "fix") || !strings.Contains(attr(cells[0], "title"), first.Reason) {
		t.Errorf("first cell: class %q, title %q: want the fix and its reason", attr(cells[0], "class"), attr(cells[0], "title"))
	}
	if len(findAll(doc, func(n *html.Node) bool { return attr(n, "id") == "changes" })) != 1 {
		t.Error("no table of changes against the baseline")
	}
}

// FuzzParseMatrix: any input gives a matrix or an error of one line, and
// a matrix it accepts writes a matrix.json that it accepts again.
func FuzzParseMatrix(f *testing.F) {
	f.Add([]byte(`{"cells": [{"kernel": "6.1", "nic": "e1000", "scenario": "TxTimeout/NapiStarve/ICMP", "result": "pass", "change": "fix", "was": "fail"}]}`))
	f.Add([]byte(`{"cells": []}`))
	f.Add([]byte(`{"cells": [{"kernel": "6.1", "nic": "e1000", "scenario": "A", "result": "great"}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		m, err := ParseMatrix(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error of several lines: %q", err)
			}
			return
		}
		var b bytes.Buffer
		if err := m.WriteJSON(&b); err != nil {
			t.Fatalf("a matrix read from JSON does not write: %v", err)
		}
		if _, err := ParseMatrix(b.Bytes()); err != nil {
			t.Errorf("the matrix it accepted, written again, is refused: %v", err)
		}
	})
}

func BenchmarkMatrixWriteFiles(b *testing.B) {
	m, dirs := fixtureMatrix(b)
	dir := filepath.Dir(dirs[0])
	for b.Loop() {
		if err := m.WriteFiles(dir, nil, ""); err != nil {
			b.Fatal(err)
		}
	}
}
