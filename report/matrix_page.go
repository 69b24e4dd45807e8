package report

import (
	"bytes"
	"fmt"
	"io"
	"path"

	"txtimeout/harness"
)

type gridCell struct {
	Class  string // the result, and the change against the baseline
	Text   string // the result, or "not run"
	Change string // the change's label, "" for none or same
	Title  string // the hover text: the cell, its reason and its change
	Link   string // the run page's section of the scenario
}

type gridRow struct {
	Scenario string
	Cells    []gridCell
}

type changeItem struct {
	Key, Change, Was, Now, Reason, Link string
}

type matrixView struct {
	Title    string
	Summary  string
	Counts   []count
	Kernels  []string
	NICs     []string
	Rows     []gridRow
	Compared *Comparison
	Changes  []changeItem
}

// cellLink is the cell's section on its run's page, relative to the
// matrix directory when its RunDir is.
func cellLink(c Cell) string {
	return path.Join(c.RunDir, IndexHTML) + "#" + Anchor(c.Scenario)
}

// WriteHTML writes the matrix's index.html: one self-contained page with
// the grid of scenarios (rows) by kernel and NIC (columns), each cell
// coloured by its result, its reason on hover (the title attribute) and a
// link to the scenario's section of its run's page; and, against a
// baseline, each cell's change and a list of the cells that changed.
func (m *Matrix) WriteHTML(w io.Writer) error {
	v := matrixView{Title: "txtimeout matrix", Summary: m.Summary(), Kernels: m.Kernels, NICs: m.NICs, Compared: m.Compared}
	var results []harness.Result
	for _, c := range m.Cells {
		results = append(results, c.Result)
	}
	v.Counts = resultCounts(results)
	for _, sc := range m.Scenarios {
		row := gridRow{Scenario: sc}
		for _, k := range m.Kernels {
			for _, n := range m.NICs {
				c, ok := m.Cell(k, n, sc)
				if !ok {
					row.Cells = append(row.Cells, gridCell{Class: "none", Text: "not run", Title: fmt.Sprintf("%s × %s × %s: not run", k, n, sc)})
					continue
				}
				g := gridCell{Class: string(c.Result), Text: string(c.Result), Link: cellLink(c),
					Title: fmt.Sprintf("%s (%s): %s: %s", c.Key(), c.Driver, c.Result, oneLine(c.Reason))}
				if c.Change != "" && c.Change != Same {
					g.Class += " " + string(c.Change)
					g.Change = string(c.Change)
					if c.Was != "" {
						g.Title += fmt.Sprintf(" [%s: was %s]", c.Change, c.Was)
					} else {
						g.Title += " [new: not in the baseline]"
					}
				}
				row.Cells = append(row.Cells, g)
			}
		}
		v.Rows = append(v.Rows, row)
	}
	for _, want := range []Change{Regression, Fix, Changed} {
		for _, c := range m.Cells {
			if c.Change == want {
				v.Changes = append(v.Changes, changeItem{Key: c.Key(), Change: string(c.Change), Was: string(c.Was),
					Now: string(c.Result), Reason: c.Reason, Link: cellLink(c)})
			}
		}
	}
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, "matrix", v); err != nil {
		return fmt.Errorf("report: rendering the matrix page: %w", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}
