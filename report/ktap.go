package report

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"txtimeout/harness"
)

// ktapParent is a parent test's result line from its subtests' results
// (Documentation/dev-tools/ktap.rst): not ok when one failed, a skip
// when all were skipped (inconclusive is a skip), else ok.
func ktapParent(n int, name string, results []harness.Result) string {
	skipped := 0
	for _, r := range results {
		switch r {
		case harness.Fail:
			return fmt.Sprintf("not ok %d %s", n, name)
		case harness.Skip, harness.Inconclusive:
			skipped++
		}
	}
	if skipped == len(results) {
		return fmt.Sprintf("ok %d %s # SKIP every scenario skipped or inconclusive", n, name)
	}
	return fmt.Sprintf("ok %d %s", n, name)
}

func ktapName(s string) string {
	s = strings.ReplaceAll(oneLine(s), "#", "_")
	if s == "" {
		return "unnamed"
	}
	return s
}

// WriteKTAP writes the matrix in KTAP version 1 with nested subtests, two
// spaces a level: one test per kernel, a subtest per NIC, and under it the
// scenarios' lines as report.ktap has them (harness.ScenarioReport's
// KTAPLines), with "# regression: was pass" and the like before a cell
// that changed against the baseline.
func (m *Matrix) WriteKTAP(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString("KTAP version 1\n")
	fmt.Fprintf(&b, "# txtimeout matrix: %s\n", m.Summary())
	var kernels int
	m.groups(func(string, []string, map[string][]Cell) { kernels++ })
	fmt.Fprintf(&b, "1..%d\n", kernels)
	ki := 0
	m.groups(func(kernel string, nics []string, cells map[string][]Cell) {
		ki++
		b.WriteString("  KTAP version 1\n")
		fmt.Fprintf(&b, "  1..%d\n", len(nics))
		var kernelResults []harness.Result
		for ni, nic := range nics {
			b.WriteString("    KTAP version 1\n")
			fmt.Fprintf(&b, "    # txtimeout kernel=%s nic=%s driver=%s\n", kernel, nic, cells[nic][0].Driver)
			fmt.Fprintf(&b, "    1..%d\n", len(cells[nic]))
			var results []harness.Result
			for si, c := range cells[nic] {
				if c.Change != "" && c.Change != Same && c.Change != New {
					fmt.Fprintf(&b, "    # %s: was %s\n", c.Change, c.Was)
				}
				for _, l := range c.Report.KTAPLines(si + 1) {
					b.WriteString("    " + l + "\n")
				}
				results = append(results, c.Result)
			}
			fmt.Fprintf(&b, "  %s\n", ktapParent(ni+1, ktapName(nic), results))
			kernelResults = append(kernelResults, results...)
		}
		fmt.Fprintf(&b, "%s\n", ktapParent(ki, ktapName(kernel), kernelResults))
	})
	_, err := w.Write(b.Bytes())
	return err
}
