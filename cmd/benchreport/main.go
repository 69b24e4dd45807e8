// Command benchreport measures the suite against its limits and the usual
// tools, side by side in one run on this machine: it prints a table and
// writes bench.json. `make bench` runs it.
//
// The steps, each selectable with -steps:
//
//	flood    Flood vs iputils ping -f on one veth pair (BenchmarkFlood in ./traffic)
//	kmsg     /dev/kmsg write to harness event latency, and the matcher's records/s
//	verdict  time to verdict of TxTimeout/PartnerStall/ICMP on the virtual rig
//	suite    the whole `go test ./scenarios -run TxTimeout` on the rig: wall time, boot, peak RSS,
//	         and NapiStarve/ICMP's time from the hog's start to the first timeout and to recovery
//	pktgen   pktgen driven by the Go driver vs the seed's shell pattern, in one guest boot
//
// It needs root (namespaces, /dev/kmsg, the rig's pktgen run inside the
// guest needs nothing from the host) and runs for several minutes; progress
// goes to stderr. Benchmarks measure; they assert nothing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// allSteps are the steps in the order they run.
var allSteps = []string{"flood", "kmsg", "verdict", "suite", "soak", "pktgen"}

// usageError marks bad usage: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the parsed flags.
type options struct {
	out         string
	steps       []string
	floodCount  int
	floodRuns   int
	kmsgRecords int
}

func parseArgs(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var steps string
	fs.StringVar(&o.out, "o", "bench.json", "where to write the results as JSON")
	fs.StringVar(&steps, "steps", strings.Join(allSteps, ","), "comma-separated steps to run: "+strings.Join(allSteps, ", "))
	fs.IntVar(&o.floodCount, "flood-count", 200000, "echo requests per BenchmarkFlood case (and as many for ping -f), at least 1000")
	fs.IntVar(&o.floodRuns, "flood-runs", 3, "runs of each BenchmarkFlood case; the figures are their medians")
	fs.IntVar(&o.kmsgRecords, "kmsg-records", 2000, "marked records written to /dev/kmsg for the latency figures, at least 1000")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: benchreport [-o bench.json] [-steps LIST] [-flood-count N] [-flood-runs N] [-kmsg-records N]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return o, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	seen := map[string]bool{}
	for _, s := range strings.Split(steps, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		known := false
		for _, a := range allSteps {
			known = known || a == s
		}
		if !known {
			return o, usageError{fmt.Sprintf("-steps: unknown step %q (known: %s)", s, strings.Join(allSteps, ", "))}
		}
		seen[s] = true
	}
	for _, a := range allSteps { // run order, whatever the flag's order
		if seen[a] {
			o.steps = append(o.steps, a)
		}
	}
	switch {
	case len(o.steps) == 0:
		return o, usageError{"-steps: no step selected"}
	case o.out == "":
		return o, usageError{"-o: empty file name"}
	case o.floodCount < 1000 || o.floodCount > 10_000_000:
		return o, usageError{fmt.Sprintf("-flood-count %d out of range 1000..10000000", o.floodCount)}
	case o.floodRuns < 1 || o.floodRuns > 20:
		return o, usageError{fmt.Sprintf("-flood-runs %d out of range 1..20", o.floodRuns)}
	case o.kmsgRecords < 1000 || o.kmsgRecords > 1_000_000:
		return o, usageError{fmt.Sprintf("-kmsg-records %d out of range 1000..1000000", o.kmsgRecords)}
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "benchreport: %v\n", err)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "benchreport: needs root for network namespaces, /dev/kmsg and the virtual rig (run as root: sudo make bench)")
		return 1
	}
	b, err := newBench(ctx, o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "benchreport: %v\n", err)
		return 1
	}
	b.run(ctx)
	b.res.Machine.LoadAvgEnd = loadAvg()
	if err := writeJSON(o.out, b.res); err != nil {
		fmt.Fprintf(stderr, "benchreport: %v\n", err)
		return 1
	}
	writeTable(stdout, b.res)
	fmt.Fprintf(stdout, "\nwritten to %s\n", o.out)
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "benchreport: interrupted; the figures so far are written")
		return 1
	}
	if n := len(b.res.StepErrors); n > 0 {
		// A failed step must not hide behind a table of the others.
		for _, s := range b.o.steps {
			if e, ok := b.res.StepErrors[s]; ok {
				fmt.Fprintf(stderr, "benchreport: step %s failed: %s\n", s, e)
			}
		}
		fmt.Fprintf(stderr, "benchreport: %d of %d steps failed; the figures of the others are written\n", n, len(b.o.steps))
		return 1
	}
	return 0
}

// bench runs the steps and collects their figures.
type bench struct {
	o      options
	goBin  string
	modDir string
	start  time.Time
	stderr io.Writer
	res    *results
	// boots collects rig_boot_s from every rig run, for the note.
	boots []string
	// verdict and suiteVerdict are PartnerStall/ICMP's reports from the
	// verdict and suite steps.
	verdict, suiteVerdict *verdictSource
}

func newBench(ctx context.Context, o options, stderr io.Writer) (*bench, error) {
	goBin, modDir, err := findModule(ctx)
	if err != nil {
		return nil, err
	}
	b := &bench{o: o, goBin: goBin, modDir: modDir, start: time.Now(), stderr: stderr}
	b.res = newResults(machineInfo(ctx, goBin))
	return b, nil
}

// progressf prints one progress line with the time since the start.
func (b *bench) progressf(format string, a ...any) {
	fmt.Fprintf(b.stderr, "benchreport: [%6.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, a...))
}

func (b *bench) run(ctx context.Context) {
	steps := map[string]func(context.Context) error{
		"flood":   b.stepFlood,
		"kmsg":    b.stepKmsg,
		"verdict": b.stepVerdict,
		"suite":   b.stepSuite,
		"soak":    b.stepSoak,
		"pktgen":  b.stepPktgen,
	}
	for i, s := range b.o.steps {
		if ctx.Err() != nil {
			break
		}
		b.progressf("step %d/%d: %s (load average %s)", i+1, len(b.o.steps), s, loadAvg())
		t0 := time.Now()
		if err := steps[s](ctx); err != nil {
			b.res.StepErrors[s] = err.Error()
			b.progressf("step %s failed after %.1fs: %v", s, time.Since(t0).Seconds(), err)
			continue
		}
		b.progressf("step %s done in %.1fs", s, time.Since(t0).Seconds())
	}
	b.addVerdictFigures()
}
