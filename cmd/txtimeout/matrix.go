package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"txtimeout/harness"
	"txtimeout/report"
	"txtimeout/rig"
)

func init() {
	register(command{
		name:    "matrix",
		summary: "run scenarios over kernels × NIC models on the virtual rig: matrix.json, .ktap, JUnit and index.html",
		run:     runMatrix,
	})
}

// matrixKernel is a kernel of the matrix: a Debian package (or alias) to
// fetch, or a user's image and module tree.
type matrixKernel struct {
	name            string // as given: "6.12", a package, or the image's path
	image, modules  string // a user kernel's
	fetched         rig.Kernel
	fetchErr        error
	userGiven, done bool
}

func runMatrix(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("matrix", stderr)
	kernels := fs.String("kernels", "6.1", "comma-separated Debian kernels: aliases ("+strings.Join(rig.KernelAliasNames(), ", ")+"), package names or patterns")
	var userKernels, userModules listFlag
	fs.Var(&userKernels, "kernel", "a kernel image of your own (repeatable; each with a -modules)")
	fs.Var(&userModules, "modules", "the module tree (PATH/lib/modules/VERSION) of the -kernel at the same position")
	nics := fs.String("nics", "virtio-net-pci,e1000", "comma-separated NIC models: "+nicNames())
	run := fs.String("run", "TxTimeout", "the scenarios: a go test -run pattern over package scenarios' tests")
	out := fs.String("o", "", "directory of the matrix (default: txtimeout-matrix-DATE-TIME in the current directory)")
	baseline := fs.String("baseline", "", "a previous matrix.json to compare with: regressions and fixes are marked")
	timeout := fs.Duration("timeout", 20*time.Minute, "the deadline of one cell (one boot)")
	pkg := fs.String("pkg", "txtimeout/scenarios", "test package to run in each cell")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: txtimeout matrix [-kernels 5.10,6.1,6.12] [-kernel IMG -modules DIR]... [-nics virtio-net-pci,e1000] [-run TxTimeout] [-o DIR] [-baseline OLD/matrix.json]")
		fmt.Fprintln(stderr, "\nBoots the virtual rig once per kernel × NIC model (each cell runs every scenario on that model),")
		fmt.Fprintln(stderr, "keeps each cell's report in DIR/KERNEL-NIC/, and writes DIR/matrix.json, matrix.ktap,")
		fmt.Fprintln(stderr, "matrix.junit.xml and index.html (open it in a browser; it needs no network).")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (flags only)", fs.Arg(0))
	}
	if len(userKernels.items) != len(userModules.items) {
		return usagef("-kernel and -modules go in pairs: %d -kernel, %d -modules", len(userKernels.items), len(userModules.items))
	}
	if *timeout <= 0 {
		return usagef("-timeout %v: want a positive duration", *timeout)
	}
	var ks []*matrixKernel
	for _, k := range splitList(*kernels) {
		if _, err := regexp.Compile("^" + k + "$"); err != nil {
			return usagef("-kernels %q: not a package name or pattern: %v", k, err)
		}
		ks = append(ks, &matrixKernel{name: k})
	}
	for i, img := range userKernels.items {
		if _, err := os.Stat(img); err != nil {
			return usagef("-kernel %s: %v", img, err)
		}
		if _, err := os.Stat(userModules.items[i]); err != nil {
			return usagef("-modules %s: %v", userModules.items[i], err)
		}
		ks = append(ks, &matrixKernel{name: img, image: img, modules: userModules.items[i], userGiven: true})
	}
	if len(ks) == 0 {
		return usagef("no kernel: give -kernels or -kernel/-modules")
	}
	ns := splitList(*nics)
	if len(ns) == 0 {
		return usagef("no NIC model: give -nics")
	}
	for _, n := range ns {
		if _, err := rig.LookupNIC(n); err != nil {
			return usagef("-nics: %v", err)
		}
	}
	if _, err := regexp.Compile(*run); err != nil {
		return usagef("-run %q: %v", *run, err)
	}
	var base *report.Matrix
	if *baseline != "" {
		var err error
		if base, err = report.ReadMatrix(*baseline); err != nil {
			return usagef("-baseline: %v", err)
		}
	}
	dir := *out
	if dir == "" {
		dir = "txtimeout-matrix-" + time.Now().Format("20060102-150405")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}

	start := time.Now()
	total := len(ks) * len(ns)
	// One build of the scenarios for every cell.
	if err := rig.Preflight(ctx, rig.Config{}); err != nil {
		return err
	}
	build, err := os.MkdirTemp("", "txtimeout-matrix-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(build)
	bin := filepath.Join(build, "scenarios.test")
	fmt.Fprintf(stderr, "matrix: building %s for the guests\n", *pkg)
	if err := rig.BuildTest(ctx, *pkg, bin); err != nil {
		return err
	}
	var runs []report.Run
	cell := 0
	for _, k := range ks {
		for _, n := range ns {
			cell++
			r, err := matrixCell(ctx, k, n, *run, bin, *timeout, dir, fmt.Sprintf("cell %d of %d", cell, total), stderr)
			if err != nil {
				return err // the context ended: stop the matrix
			}
			runs = append(runs, r)
		}
	}
	m, err := report.BuildMatrix(runs)
	if err != nil {
		return err
	}
	if err := m.WriteFiles(dir, base, *baseline); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", m.Summary())
	fmt.Fprintf(stdout, "matrix: %d kernel × NIC boots in %v: %s\n", total, time.Since(start).Round(time.Second), filepath.Join(dir, report.IndexHTML))
	failed := 0
	for _, c := range m.Cells {
		if c.Result == harness.Fail {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d cells failed (see %s)", failed, len(m.Cells), filepath.Join(dir, report.IndexHTML))
	}
	return nil
}

// matrixCell boots kernel k with NIC model nic for the scenarios run, and
// returns the cell's run directory (its report.json written in any case:
// a cell whose kernel or boot failed holds one failed scenario saying why).
func matrixCell(ctx context.Context, k *matrixKernel, nic, run, bin string, timeout time.Duration, dir, label string, stderr io.Writer) (report.Run, error) {
	progressf := func(f string, a ...any) { fmt.Fprintf(stderr, "matrix: "+f+"\n", a...) }
	if !k.done {
		k.done = true
		if k.userGiven {
			k.fetched = rig.Kernel{Image: k.image, Modules: k.modules, Release: filepath.Base(k.modules)}
		} else {
			k.fetched, k.fetchErr = rig.FetchKernelPackage(ctx, k.name, func(f string, a ...any) { progressf(label+": "+f, a...) })
		}
	}
	label += ": " + kernelLabel(k) + " × " + nic
	cellDir := filepath.Join(dir, sanitize(kernelLabel(k))+"-"+sanitize(nic))
	if err := os.MkdirAll(cellDir, 0o755); err != nil {
		return report.Run{}, err
	}
	fail := func(why string) (report.Run, error) {
		r := &harness.Report{Kernel: kernelLabel(k), NIC: nic}
		r.Add(harness.ScenarioReport{Name: "Rig", Result: harness.Fail, Reason: why, Verdict: harness.Unmeasured()})
		if err := r.WriteFiles(cellDir); err != nil {
			return report.Run{}, err
		}
		return report.Run{Dir: cellDir, Report: r}, nil
	}
	if k.fetchErr != nil {
		progressf("%s: %v", label, k.fetchErr)
		return fail(fmt.Sprintf("the kernel %s could not be fetched: %v", k.name, k.fetchErr))
	}
	progressf("%s: booting", label)
	c := rig.Config{
		Kernel: k.fetched.Image, Modules: k.fetched.Modules, NIC: nic, ReportDir: cellDir,
		// Every scenario runs on this model, with honest results for it.
		Timeout: timeout, Progress: prefixWriter("matrix: "+label+": ", stderr),
	}
	// The rig's progress names each test as it starts; the guest's
	// go test output is kept with the cell.
	logf, err := os.Create(filepath.Join(cellDir, "test.log"))
	if err != nil {
		return report.Run{}, err
	}
	w := unframe(logf)
	res, err := rig.RunBinary(ctx, c, bin, []string{"-test.run=" + run}, w)
	w.Flush()
	logf.Close()
	if ctx.Err() != nil {
		return report.Run{}, ctx.Err()
	}
	rr, rerr := report.ReadRun(cellDir)
	switch {
	case err != nil && rerr != nil:
		return fail(fmt.Sprintf("the rig failed: %v", err))
	case rerr != nil:
		return fail(fmt.Sprintf("the guest left no readable report: %v", rerr))
	}
	// A guest whose tests stopped short (a t.Fatal before a verdict, the
	// guest's deadline) leaves a report without the scenarios it never
	// finished: the cell says so instead of showing only what passed.
	why := ""
	switch {
	case err != nil:
		why = fmt.Sprintf("the rig failed after the guest wrote its report: %v", err)
	case res != nil && res.ExitCode != 0 && !anyFailed(rr.Report):
		why = fmt.Sprintf("the guest's test binary exited with status %d although no scenario failed (see %s)", res.ExitCode, filepath.Join(cellDir, "test.log"))
	}
	if why != "" {
		progressf("%s: %s", label, why)
		rr.Report.Add(harness.ScenarioReport{Name: "Rig", Result: harness.Fail, Reason: why, Verdict: harness.Unmeasured()})
		if werr := rr.Report.WriteFiles(cellDir); werr != nil {
			return report.Run{}, werr
		}
	}
	if res != nil && rr.Report.Kernel == "" {
		rr.Report.Kernel = res.Kernel
	}
	var results []harness.Result
	for _, sc := range rr.Report.Scenarios {
		results = append(results, sc.Result)
	}
	progressf("%s: done: %s", label, report.ResultCounts(results))
	return rr, nil
}

// anyFailed reports whether a scenario of r failed.
func anyFailed(r *harness.Report) bool {
	for _, sc := range r.Scenarios {
		if sc.Result == harness.Fail {
			return true
		}
	}
	return false
}

// kernelLabel names a kernel of the matrix: its release once known.
func kernelLabel(k *matrixKernel) string {
	if k.fetched.Release != "" {
		return k.fetched.Release
	}
	return k.name
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._+-]+`)

func sanitize(s string) string { return unsafeName.ReplaceAllString(s, "_") }

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// prefixWriter prefixes every line written to it on w.
func prefixWriter(prefix string, w io.Writer) *lineWriter {
	return &lineWriter{line: func(l []byte) error {
		_, err := fmt.Fprintf(w, "%s%s", prefix, l)
		return err
	}}
}
