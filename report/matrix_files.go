package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"txtimeout/harness"
)

// WriteJSON writes the matrix as matrix.json holds it: every cell with its
// scenario's whole report.
func (m *Matrix) WriteJSON(w io.Writer) error {
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("report: encoding the matrix: %w", err)
	}
	_, err = w.Write(append(js, '\n'))
	return err
}

// groups calls fn for every kernel, and for every NIC of it that has
// cells, with those cells in scenario order.
func (m *Matrix) groups(fn func(kernel string, nics []string, cells map[string][]Cell)) {
	for _, k := range m.Kernels {
		byNIC := map[string][]Cell{}
		var nics []string
		for _, c := range m.Cells {
			if c.Kernel != k {
				continue
			}
			if _, ok := byNIC[c.NIC]; !ok {
				nics = append(nics, c.NIC)
			}
			byNIC[c.NIC] = append(byNIC[c.NIC], c)
		}
		if len(nics) > 0 {
			fn(k, nics, byNIC)
		}
	}
}

// relative returns a copy of the matrix whose cells' RunDir is relative
// to dir where it can be, as matrix.json and the page link to them.
func (m *Matrix) relative(dir string) *Matrix {
	cp := *m
	cp.Cells = append([]Cell(nil), m.Cells...)
	absDir, errDir := filepath.Abs(dir)
	for i := range cp.Cells {
		run, err := filepath.Abs(cp.Cells[i].RunDir)
		if errDir != nil || err != nil {
			continue
		}
		if rel, err := filepath.Rel(absDir, run); err == nil {
			cp.Cells[i].RunDir = filepath.ToSlash(rel)
		}
	}
	return &cp
}

// WriteFiles writes matrix.json, matrix.ktap, matrix.junit.xml and
// index.html into dir (creating it), after comparing the matrix with the
// baseline when one is given (baselineName is its file, for the summary);
// and it writes the index.html of every run directory it was built from
// (BuildMatrix), the run page that the grid links to. Everything is rendered before the first file is
// written, and each file is written whole or not at all.
func (m *Matrix) WriteFiles(dir string, baseline *Matrix, baselineName string) error {
	if dir == "" {
		return errors.New("report: no matrix directory")
	}
	m.Compare(baseline, baselineName)
	rel := m.relative(dir)
	var files []file
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{{MatrixJSON, rel.WriteJSON}, {MatrixKTAP, rel.WriteKTAP}, {MatrixJUnit, rel.WriteJUnit}, {IndexHTML, rel.WriteHTML}} {
		var b bytes.Buffer
		if err := f.write(&b); err != nil {
			return err
		}
		files = append(files, file{filepath.Join(dir, f.name), b.Bytes()})
	}
	for _, run := range m.runs {
		page, err := RunPage(run.Report)
		if err != nil {
			return err
		}
		files = append(files, file{filepath.Join(run.Dir, IndexHTML), page})
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: matrix directory: %w", err)
	}
	for _, f := range files {
		if err := harness.WriteFileAtomic(f.path, f.data); err != nil {
			return err
		}
	}
	return nil
}

type file struct {
	path string
	data []byte
}
