package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"txtimeout/harness"
	"txtimeout/report"
)

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

func TestMatrixReport(t *testing.T) {
	root, dirs := matrixRuns(t)
	var stdout, stderr bytes.Buffer
	if code := run(append([]string{"matrix-report"}, dirs...), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "4 cells (2 kernels × 1 NICs, 2 scenarios): 2 pass, 2 skip") {
		t.Errorf("stdout %q", stdout.String())
	}
	for _, f := range []string{report.MatrixJSON, report.MatrixKTAP, report.MatrixJUnit, report.IndexHTML,
		filepath.Join(filepath.Base(dirs[0]), report.IndexHTML)} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("no %s in the runs' parent: %v", f, err)
		}
	}

	// Yesterday the first cell failed: today it is a fix.
	base, err := report.ReadMatrix(filepath.Join(root, report.MatrixJSON))
	if err != nil {
		t.Fatal(err)
	}
	base.Cells[0].Result = harness.Fail
	js, err := json.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(t.TempDir(), "old.json")
	if err := os.WriteFile(old, js, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "m")
	stdout.Reset()
	if code := run(append([]string{"matrix-report", "-baseline", old, "-o", out}, dirs...), &stdout, &stderr); code != 0 {
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

func TestMatrixReportErrors(t *testing.T) {
	_, dirs := matrixRuns(t)
	tmp := t.TempDir()
	bad := filepath.Join(tmp, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"cells": [{"kernel": "k", "nic": "n", "scenario": "s", "result": "great"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(tmp, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "out")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no runs", []string{"matrix-report", "-o", out}, 2, "want one or more run directories"},
		{"no common parent", []string{"matrix-report", dirs[0], empty}, 2, "no common parent"},
		{"run without report", []string{"matrix-report", "-o", out, dirs[0], empty}, 1, "no such file"},
		{"bad baseline", []string{"matrix-report", "-o", out, "-baseline", bad, dirs[0]}, 1, `has result "great"`},
		{"missing baseline", []string{"matrix-report", "-o", out, "-baseline", filepath.Join(tmp, "none.json"), dirs[0]}, 1, "no such file"},
		{"same run twice", []string{"matrix-report", "-o", out, dirs[0], dirs[0]}, 1, "is in two runs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) ||
				strings.Count(stderr.String(), "\n") != 1 || !strings.HasPrefix(stderr.String(), "txtimeout: matrix-report:") {
				t.Errorf("exit %d, stderr %q: want exit %d and one txtimeout line with %q", code, stderr.String(), tc.code, tc.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a failed run created %s", out)
			}
		})
	}
}
