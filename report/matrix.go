package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"txtimeout/harness"
	"txtimeout/kmsg"
)

// Matrix file names inside the matrix directory (with IndexHTML).
const (
	MatrixJSON  = "matrix.json"
	MatrixKTAP  = "matrix.ktap"
	MatrixJUnit = "matrix.junit.xml"
)

// Run is a run directory and the report harness wrote into it.
type Run struct {
	Dir    string
	Report *harness.Report
}

// ReadRun reads a run directory's report.json.
func ReadRun(dir string) (Run, error) {
	r, err := harness.ReadReport(filepath.Join(dir, harness.ReportJSON))
	if err != nil {
		return Run{}, err
	}
	return Run{Dir: dir, Report: r}, nil
}

// ReadRuns reads every directory's report.json; the first failure stops it.
func ReadRuns(dirs []string) ([]Run, error) {
	runs := make([]Run, len(dirs))
	for i, d := range dirs {
		var err error
		if runs[i], err = ReadRun(d); err != nil {
			return nil, err
		}
	}
	return runs, nil
}

// Change is how a cell compares with the baseline matrix.
type Change string

// Changes. A regression is a pass that became a fail or inconclusive; a
// fix, a fail that became a pass; changed, any other change of result.
const (
	Regression Change = "regression"
	Fix        Change = "fix"
	Changed    Change = "changed"
	New        Change = "new" // no such cell in the baseline
	Same       Change = "same"
)

// Cell is one scenario on one kernel and NIC: the scenario's report from
// its run, with the facts a matrix reader wants at hand.
type Cell struct {
	Kernel   string         `json:"kernel"`
	NIC      string         `json:"nic"`
	Driver   string         `json:"driver"`
	Scenario string         `json:"scenario"`
	Result   harness.Result `json:"result"`
	Reason   string         `json:"reason"`
	// FirstTimeoutMS and RecoverMS are the verdict's (-1: none).
	FirstTimeoutMS int64 `json:"first_timeout_ms"`
	RecoverMS      int64 `json:"recover_ms"`
	// Splats is the number of kernel splats the scenario saw.
	Splats int `json:"splats"`
	// RunDir is the run's directory; in matrix.json, relative to the
	// matrix directory when it can be.
	RunDir string `json:"run_dir"`
	// Change and Was compare the cell with the baseline, when there is one.
	Change Change         `json:"change,omitempty"`
	Was    harness.Result `json:"was,omitempty"`
	// Report is the scenario's whole report.
	Report harness.ScenarioReport `json:"report"`
}

// Key identifies a cell across matrices: "kernel × NIC × scenario".
func (c Cell) Key() string { return c.Kernel + " × " + c.NIC + " × " + c.Scenario }

// Comparison sums up a matrix against its baseline.
type Comparison struct {
	Baseline    string   `json:"baseline"` // the baseline's file, as given
	Regressions int      `json:"regressions"`
	Fixes       int      `json:"fixes"`
	Changed     int      `json:"changed"`
	New         int      `json:"new"`
	Same        int      `json:"same"`
	Gone        []string `json:"gone,omitempty"` // keys of baseline cells this matrix lacks
}

// Matrix is the cells of kernel × NIC × scenario runs. Kernels, NICs and
// Scenarios are in the order they first appear in the runs; Cells are
// sorted by kernel, NIC and scenario in those orders.
type Matrix struct {
	Kernels   []string    `json:"kernels"`
	NICs      []string    `json:"nics"`
	Scenarios []string    `json:"scenarios"`
	Cells     []Cell      `json:"cells"`
	Compared  *Comparison `json:"compared,omitempty"`

	runs []Run // what BuildMatrix was given
}

// BuildMatrix makes a matrix of every scenario of every run, with the
// kernel and NIC that each run's report names (its NIC model, else its
// driver). Two runs may share a kernel and NIC but not a scenario.
func BuildMatrix(runs []Run) (*Matrix, error) {
	if len(runs) == 0 {
		return nil, errors.New("report: no runs for the matrix")
	}
	m := &Matrix{runs: runs}
	seen := map[string]string{} // cell key -> run dir
	for _, run := range runs {
		r := run.Report
		kernel, nic := orDash(r.Kernel), nicOf(r)
		m.Kernels = appendNew(m.Kernels, kernel)
		m.NICs = appendNew(m.NICs, nic)
		for _, s := range r.Scenarios {
			m.Scenarios = appendNew(m.Scenarios, s.Name)
			c := Cell{Kernel: kernel, NIC: nic, Driver: orDash(r.Driver), Scenario: s.Name, Result: s.Result,
				Reason: s.Reason, FirstTimeoutMS: s.FirstTimeoutMS, RecoverMS: s.RecoverMS, Splats: splats(s),
				RunDir: run.Dir, Report: s}
			if prev, dup := seen[c.Key()]; dup {
				return nil, fmt.Errorf("report: %s is in two runs: %s and %s", c.Key(), prev, run.Dir)
			}
			seen[c.Key()] = run.Dir
			m.Cells = append(m.Cells, c)
		}
	}
	m.sort()
	return m, nil
}

// splats counts a scenario's splats: the verdict's count, or the splat
// events of a report that has none.
func splats(s harness.ScenarioReport) int {
	if s.SplatCount > 0 {
		return s.SplatCount
	}
	n := 0
	for _, e := range s.Events {
		if e.Kind == kmsg.KindSplat {
			n++
		}
	}
	return n
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return len(list)
}

func (m *Matrix) sort() {
	key := func(c Cell) [3]int {
		return [3]int{indexOf(m.Kernels, c.Kernel), indexOf(m.NICs, c.NIC), indexOf(m.Scenarios, c.Scenario)}
	}
	sort.SliceStable(m.Cells, func(i, j int) bool {
		a, b := key(m.Cells[i]), key(m.Cells[j])
		for k := range a {
			if a[k] != b[k] {
				return a[k] < b[k]
			}
		}
		return false
	})
}

// Cell returns the cell of a kernel, NIC and scenario.
func (m *Matrix) Cell(kernel, nic, scenario string) (Cell, bool) {
	for _, c := range m.Cells {
		if c.Kernel == kernel && c.NIC == nic && c.Scenario == scenario {
			return c, true
		}
	}
	return Cell{}, false
}

// Compare marks every cell against the baseline (Change, Was) and sums
// the changes up in m.Compared; name is the baseline's file as the user
// gave it. A nil baseline clears the marks.
func (m *Matrix) Compare(baseline *Matrix, name string) {
	if baseline == nil {
		m.Compared = nil
		for i := range m.Cells {
			m.Cells[i].Change, m.Cells[i].Was = "", ""
		}
		return
	}
	was := map[string]harness.Result{}
	for _, c := range baseline.Cells {
		was[c.Key()] = c.Result
	}
	cmp := &Comparison{Baseline: name}
	here := map[string]bool{}
	for i := range m.Cells {
		c := &m.Cells[i]
		here[c.Key()] = true
		old, ok := was[c.Key()]
		c.Was, c.Change = old, change(old, ok, c.Result)
		switch c.Change {
		case Regression:
			cmp.Regressions++
		case Fix:
			cmp.Fixes++
		case Changed:
			cmp.Changed++
		case New:
			cmp.New++
		case Same:
			cmp.Same++
		}
	}
	for _, c := range baseline.Cells {
		if !here[c.Key()] {
			cmp.Gone = append(cmp.Gone, c.Key())
		}
	}
	m.Compared = cmp
}

func change(was harness.Result, inBaseline bool, now harness.Result) Change {
	switch {
	case !inBaseline:
		return New
	case was == now:
		return Same
	case was == harness.Pass && (now == harness.Fail || now == harness.Inconclusive):
		return Regression
	case was == harness.Fail && now == harness.Pass:
		return Fix
	}
	return Changed
}

// Summary is the matrix in one line: its cells by result and, when
// compared, its changes against the baseline.
func (m *Matrix) Summary() string {
	var results []harness.Result
	for _, c := range m.Cells {
		results = append(results, c.Result)
	}
	s := fmt.Sprintf("%d cells (%d kernels × %d NICs, %d scenarios): %s", len(m.Cells), len(m.Kernels), len(m.NICs),
		len(m.Scenarios), ResultCounts(results))
	if c := m.Compared; c != nil {
		s += fmt.Sprintf("; against %s: %s, %s, %d changed, %d new, %d same", c.Baseline,
			plural(c.Regressions, "regression", "regressions"), plural(c.Fixes, "fix", "fixes"), c.Changed, c.New, c.Same)
		if len(c.Gone) > 0 {
			s += fmt.Sprintf(", %d gone (%s)", len(c.Gone), strings.Join(c.Gone, "; "))
		}
	}
	return s
}

// ReadMatrix reads a matrix.json, such as a previous night's baseline. Its
// cells' RunDir are as matrix.json holds them: relative to its directory.
func ReadMatrix(path string) (*Matrix, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	m, err := ParseMatrix(data)
	if err != nil {
		return nil, fmt.Errorf("report: %s: %w", path, err)
	}
	return m, nil
}

// ParseMatrix decodes a matrix.json document. Every cell must name its
// kernel, NIC and scenario and hold one of the four results.
func ParseMatrix(data []byte) (*Matrix, error) {
	var m Matrix
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("not a matrix.json: %w", err)
	}
	if m.Cells == nil {
		return nil, errors.New("no \"cells\" list")
	}
	for i, c := range m.Cells {
		if c.Kernel == "" || c.NIC == "" || c.Scenario == "" {
			return nil, fmt.Errorf("cell %d lacks its kernel, NIC or scenario", i+1)
		}
		if !c.Result.Valid() {
			return nil, fmt.Errorf("cell %s has result %q (want pass, fail, skip or inconclusive)", c.Key(), c.Result)
		}
	}
	return &m, nil
}
