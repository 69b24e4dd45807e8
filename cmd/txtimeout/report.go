package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"txtimeout/harness"
	"txtimeout/report"
)

func init() {
	register(command{
		name:    "report",
		summary: "a run's page (DIR/index.html) and timelines (-o), or the kernel × NIC matrix of runs (-matrix)",
		run:     runReport,
	})
}

const reportUsage = `usage: txtimeout report [-o timeline.svg|.png] [-scenario NAME] DIR | DIR/report.json
       txtimeout report -matrix OUT [-baseline OLD/matrix.json] RUNDIR...

Prints one line per scenario. Given the run's directory, it also writes DIR/index.html, one
self-contained page with every scenario's timeline, events and verdict. With -o, it draws the
tx_packets rate, the qdisc backlog and the tx_timeout counter over time, with the scenario's
markers, one figure per scenario. With -matrix, it reads each RUNDIR/report.json (kernel and
NIC from the report) and writes matrix.json, matrix.ktap, matrix.junit.xml and index.html into
OUT, and each run's own index.html; -baseline marks regressions, fixes and changes.
`

func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("report", stderr)
	out := fs.String("o", "", "draw the timelines into this file (.svg or .png); one file per scenario, named FILE-SCENARIO.ext, when several have samples")
	only := fs.String("scenario", "", "draw only this scenario (default: every scenario with samples)")
	matrix := fs.String("matrix", "", "write the kernel × NIC matrix of the RUNDIRs into this directory")
	baseline := fs.String("baseline", "", "with -matrix: compare with this previous matrix.json")
	fs.Usage = func() {
		fmt.Fprint(stderr, reportUsage)
		fs.PrintDefaults()
	}
	// Flags may follow the report path, as in "report DIR/report.json -o x.svg".
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *matrix != "" {
		if *out != "" || *only != "" {
			return usagef("-matrix draws no timelines: drop -o and -scenario")
		}
		return writeMatrix(*matrix, *baseline, paths, stdout)
	}
	if *baseline != "" {
		return usagef("-baseline compares a matrix: give -matrix OUT")
	}
	if len(paths) != 1 {
		return usagef("want exactly one run directory or report.json, got %d (usage: txtimeout report DIR, or DIR/report.json -o timeline.svg)", len(paths))
	}
	var format string
	if *out != "" {
		switch strings.ToLower(filepath.Ext(*out)) {
		case ".svg":
			format = report.SVG
		case ".png":
			format = report.PNG
		default:
			return usagef("-o %s: the picture is .svg or .png", *out)
		}
	}
	path, page := paths[0], ""
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		page = filepath.Join(path, report.IndexHTML)
		path = filepath.Join(path, harness.ReportJSON)
	}
	r, err := harness.ReadReport(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kernel %s, driver %s, iface %s", orNone(r.Kernel), orNone(r.Driver), orNone(r.Iface))
	if r.NIC != "" {
		fmt.Fprintf(stdout, ", nic %s", r.NIC)
	}
	fmt.Fprintln(stdout)
	for _, s := range r.Scenarios {
		fmt.Fprintf(stdout, "%-32s %-12s %s\n", s.Name, s.Result, strings.Join(strings.Fields(s.Reason), " "))
	}
	// Render everything in memory first, so that a failure leaves no
	// half-written file.
	var files []file
	if *out != "" {
		if files, err = figureFiles(r, path, *out, format, *only); err != nil {
			return err
		}
	}
	if page != "" {
		html, err := report.RunPage(r)
		if err != nil {
			return err
		}
		files = append(files, file{page, html})
	}
	for _, f := range files {
		if err := harness.WriteFileAtomic(f.path, f.data); err != nil {
			return err
		}
	}
	if *out != "" {
		var names []string
		for _, f := range files {
			if f.path != page {
				names = append(names, f.path)
			}
		}
		fmt.Fprintf(stdout, "wrote %s (%d scenarios)\n", strings.Join(names, ", "), len(names))
	}
	if page != "" {
		fmt.Fprintf(stdout, "wrote %s\n", page)
	}
	return nil
}

type file struct {
	path string
	data []byte
}

// figureFiles draws the figures -o asks for: into out when one scenario
// has samples, else one file per scenario named after out and the
// scenario's anchor.
func figureFiles(r *harness.Report, path, out, format, only string) ([]file, error) {
	var draws []harness.ScenarioReport
	for _, s := range r.Scenarios {
		if only != "" && s.Name != only {
			continue
		}
		if report.HasFigure(s) {
			draws = append(draws, s)
		}
	}
	if len(draws) == 0 {
		if only != "" {
			return nil, fmt.Errorf("%s: no scenario %q with timeline samples (scenarios: %s)", path, only, scenarioNames(r))
		}
		return nil, fmt.Errorf("%s: no scenario has timeline samples to draw", path)
	}
	var files []file
	for _, s := range draws {
		img, err := report.Figure(s, format)
		if err != nil {
			return nil, err
		}
		name := out
		if len(draws) > 1 {
			ext := filepath.Ext(out)
			name = strings.TrimSuffix(out, ext) + "-" + report.Anchor(s.Name) + ext
		}
		files = append(files, file{name, img})
	}
	return files, nil
}

// writeMatrix builds the matrix of the run directories and writes its
// files into dir, compared with the baseline file when one is named.
func writeMatrix(dir, baseline string, runDirs []string, stdout io.Writer) error {
	if len(runDirs) == 0 {
		return usagef("-matrix wants one or more run directories (usage: txtimeout report -matrix OUT [-baseline OLD.json] RUNDIR...)")
	}
	var base *report.Matrix
	if baseline != "" {
		var err error
		if base, err = report.ReadMatrix(baseline); err != nil {
			return err
		}
	}
	runs, err := report.ReadRuns(runDirs)
	if err != nil {
		return err
	}
	m, err := report.BuildMatrix(runs)
	if err != nil {
		return err
	}
	if err := m.WriteFiles(dir, base, baseline); err != nil {
		return err
	}
	fmt.Fprintln(stdout, m.Summary())
	fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(dir, report.IndexHTML))
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func scenarioNames(r *harness.Report) string {
	var n []string
	for _, s := range r.Scenarios {
		n = append(n, s.Name)
	}
	return strings.Join(n, ", ")
}
