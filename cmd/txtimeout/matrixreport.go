package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"txtimeout/report"
)

func init() {
	register(command{
		name:    "matrix-report",
		summary: "build the kernel × NIC matrix files and page from run directories (-baseline OLD/matrix.json)",
		run:     runMatrixReport,
	})
}

func runMatrixReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("matrix-report", stderr)
	out := fs.String("o", "", "write the matrix files here (default: the run directories' common parent)")
	baseline := fs.String("baseline", "", "compare with this previous matrix.json: regressions, fixes, changes")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: txtimeout matrix-report [-baseline OLD/matrix.json] [-o DIR] RUNDIR...")
		fmt.Fprintln(stderr, "\nReads each RUNDIR/report.json (kernel and NIC from the report) and writes matrix.json,")
		fmt.Fprintln(stderr, "matrix.ktap, matrix.junit.xml and index.html into DIR, and each run's own index.html.")
		fs.PrintDefaults()
	}
	dirs, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(dirs) == 0 {
		return usagef("want one or more run directories (usage: txtimeout matrix-report [-baseline OLD.json] [-o DIR] RUNDIR...)")
	}
	dir := *out
	if dir == "" {
		if dir, err = commonParent(dirs); err != nil {
			return err
		}
	}
	var base *report.Matrix
	if *baseline != "" {
		if base, err = report.ReadMatrix(*baseline); err != nil {
			return err
		}
	}
	runs, err := report.ReadRuns(dirs)
	if err != nil {
		return err
	}
	m, err := report.BuildMatrix(runs)
	if err != nil {
		return err
	}
	if err := m.WriteFiles(dir, base, *baseline); err != nil {
		return err
	}
	fmt.Fprintln(stdout, m.Summary())
	fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(dir, report.IndexHTML))
	return nil
}

// commonParent is the directory that holds every run directory, as the
// runs of one night sit side by side.
func commonParent(dirs []string) (string, error) {
	parent := ""
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return "", err
		}
		p := filepath.Dir(abs)
		if parent != "" && p != parent {
			return "", usagef("the run directories %s and %s have no common parent: give -o DIR", dirs[0], d)
		}
		parent = p
	}
	return parent, nil
}
