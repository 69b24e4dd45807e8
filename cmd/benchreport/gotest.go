package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"txtimeout/harness"
	"txtimeout/internal/procstat"
	"txtimeout/rig"
)

// goTestRun is what one `go test` child did.
type goTestRun struct {
	Output string        // stdout and stderr, interleaved as they came
	Wall   time.Duration // from start to exit
	Err    error         // the exit error, if any
	// PeakTreeRSS is the highest sum of the resident set sizes of the
	// child and all its descendants (go, the compiler and linker, the
	// test binary, QEMU), sampled every rssInterval; PeakQEMURSS is the
	// highest resident set size of one QEMU process among them.
	PeakTreeRSS, PeakQEMURSS int64
	// MaxRSS is wait4's ru_maxrss: the largest resident set size of any
	// one process of the tree that was waited for.
	MaxRSS int64
}

// failure is the run's exit error with the output's last lines and the
// rig directories it kept, or nil.
func (r goTestRun) failure() error {
	if r.Err == nil {
		return nil
	}
	return fmt.Errorf("go test: %v: %s%s", r.Err, lastLines(r.Output, 3), keptNote(r.Output))
}

// scenarioRun is a go test run of the scenarios on the virtual rig and
// the report.json it wrote.
type scenarioRun struct {
	goTestRun
	Report    *harness.Report
	ReportErr error // why Report is nil
}

// runScenarios runs the scenarios that match pattern on the rig, with env
// and a report directory of its own (benchreport-NAME-*, removed after
// the report is read), forwarding the lines that forward accepts.
func (b *bench) runScenarios(ctx context.Context, name string, env []string, forward func(line string) bool, pattern string) (scenarioRun, error) {
	dir, err := os.MkdirTemp("", "benchreport-"+name+"-")
	if err != nil {
		return scenarioRun{}, err
	}
	defer os.RemoveAll(dir)
	run := scenarioRun{goTestRun: b.goTest(ctx, append(env, "TXTIMEOUT_REPORT_DIR="+dir), forward,
		"-count=1", "-v", "-timeout", "30m", "./scenarios", "-run", pattern)}
	run.Report, run.ReportErr = harness.ReadReport(filepath.Join(dir, harness.ReportJSON))
	return run, nil
}

// rssInterval is how often the process tree's memory is sampled.
const rssInterval = 100 * time.Millisecond

// goTest runs `go test ARGS` in the module with extra environment
// variables, forwards the lines that forward accepts to the progress
// output, and samples the process tree's memory. The child gets a process
// group of its own, so that an interrupt stops the test binary and QEMU
// too.
func (b *bench) goTest(ctx context.Context, env []string, forward func(line string) bool, args ...string) goTestRun {
	cmd := exec.CommandContext(ctx, b.goBin, append([]string{"test"}, args...)...)
	cmd.Dir = b.modDir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The whole group: go, the test binary and QEMU. SIGINT lets go
		// test and the rig clean up; WaitDelay bounds their grace.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	}
	cmd.WaitDelay = 30 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var out bytes.Buffer
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		s := bufio.NewScanner(pr)
		s.Buffer(make([]byte, 64<<10), 4<<20)
		for s.Scan() {
			out.Write(s.Bytes())
			out.WriteByte('\n')
			if l := eventText(s.Text()); forward != nil && l != "" && forward(l) {
				b.progressf("  %s", l)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	r := goTestRun{}
	b.progressf("go test %s", strings.Join(args, " "))
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pw.Close()
		<-lines
		r.Err = err
		return r
	}
	stopSampling := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(rssInterval)
		defer t.Stop()
		for {
			tree, qemu := treeRSS(cmd.Process.Pid)
			r.PeakTreeRSS = max(r.PeakTreeRSS, tree)
			r.PeakQEMURSS = max(r.PeakQEMURSS, qemu)
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
		}
	}()
	r.Err = cmd.Wait()
	r.Wall = time.Since(start)
	close(stopSampling)
	wg.Wait()
	if ctx.Err() != nil {
		// Interrupted: anything of the group still alive (a test
		// binary or QEMU whose go test was killed) is ours; stop it.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	pw.Close()
	<-lines
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.MaxRSS = ru.Maxrss * 1024 // kilobytes on Linux
	}
	r.Output = out.String()
	return r
}

// treeRSS sums the resident memory of pid and its descendants, and
// returns the largest QEMU among them.
func treeRSS(root int) (total, qemu int64) {
	pids, err := procstat.PIDs("/proc")
	if err != nil {
		return 0, 0
	}
	children := map[int][]int{}
	for _, pid := range pids {
		st, err := procstat.Read("/proc", pid)
		if err != nil {
			continue
		}
		if ppid, err := st.PPID(); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	page := int64(os.Getpagesize())
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		queue = append(queue, children[pid]...)
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		pages, _ := strconv.ParseInt(f[1], 10, 64)
		total += pages * page
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.HasPrefix(string(comm), "qemu-system") {
			qemu = max(qemu, pages*page)
		}
	}
	return total, qemu
}

// benchResult is one benchmark result line.
type benchResult struct {
	Name    string // without the "Benchmark" prefix and the -GOMAXPROCS suffix
	N       int64
	Metrics map[string]float64 // by unit: "ns/op", "pps", ...
}

// maxBenchOutput caps what parseBenchOutput reads.
const maxBenchOutput = 16 << 20

var (
	benchLineRe  = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+(\d+)\s+(.+)$`)
	benchNameEnd = regexp.MustCompile(`^Benchmark\S+\s*$`)
)

// parseBenchOutput reads `go test -bench -json` output (test2json events)
// or plain `go test -bench` output and returns the benchmark result lines.
// test2json may split a result line across events (the name, then the
// numbers), so the output text is joined before it is split into lines.
// It also returns the names of the tests and benchmarks that failed.
func parseBenchOutput(r io.Reader) (res []benchResult, failed []string, err error) {
	data, err := io.ReadAll(io.LimitReader(r, maxBenchOutput+1))
	if err != nil {
		return nil, nil, err
	}
	if len(data) > maxBenchOutput {
		return nil, nil, fmt.Errorf("benchmark output: more than %d bytes", maxBenchOutput)
	}
	var text strings.Builder
	for _, line := range strings.SplitAfter(string(data), "\n") {
		t := strings.TrimSpace(line)
		if !strings.HasPrefix(t, "{") {
			text.WriteString(line)
			continue
		}
		var ev struct {
			Action, Test, Output string
		}
		if json.Unmarshal([]byte(t), &ev) != nil {
			text.WriteString(line)
			continue
		}
		switch ev.Action {
		case "output":
			text.WriteString(ev.Output)
		case "fail":
			if ev.Test != "" {
				failed = append(failed, ev.Test)
			}
		}
	}
	pending := "" // a benchmark name printed alone on its line
	for _, line := range strings.Split(text.String(), "\n") {
		l := strings.TrimSpace(line)
		// A name alone on its line and the numbers on a later one: go
		// test prints the name when the benchmark starts, and output of
		// its own may come in between.
		if benchNameEnd.MatchString(l) {
			pending = l
			continue
		}
		if pending != "" && l != "" && l[0] >= '0' && l[0] <= '9' {
			l = pending + " " + l
			pending = ""
		}
		if strings.HasPrefix(l, "--- FAIL: Benchmark") {
			if f := strings.Fields(l); len(f) >= 3 {
				failed = append(failed, f[2])
			}
		}
		m := benchLineRe.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n, err := strconv.ParseInt(m[2], 10, 64)
		if err != nil {
			continue
		}
		f := strings.Fields(m[3])
		if len(f)%2 != 0 {
			continue
		}
		br := benchResult{Name: m[1], N: n, Metrics: map[string]float64{}}
		ok := true
		for j := 0; j < len(f); j += 2 {
			v, err := strconv.ParseFloat(f[j], 64)
			if err != nil {
				ok = false
				break
			}
			br.Metrics[f[j+1]] = v
		}
		if ok {
			res = append(res, br)
		}
	}
	if len(res) == 0 && len(failed) == 0 {
		return nil, nil, errors.New("no benchmark result in the output")
	}
	return res, failed, nil
}

// keptNote names the rig work directories a failed run kept, so that a
// failed step says where its console log is.
func keptNote(out string) string {
	dirs := rig.ParseProgress(out).Kept
	if len(dirs) == 0 {
		return ""
	}
	return "; console log kept in " + strings.Join(dirs, ", ")
}

// lastLines returns the last n non-empty lines of s, for error messages.
func lastLines(s string, n int) string {
	var out []string
	ls := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(ls) - 1; i >= 0 && len(out) < n; i-- {
		if l := strings.TrimSpace(ls[i]); l != "" {
			out = append([]string{l}, out...)
		}
	}
	return strings.Join(out, " | ")
}

// eventText returns the trimmed output text of a test2json event line, or
// the trimmed line itself when it is not one.
func eventText(line string) string {
	t := strings.TrimSpace(line)
	if strings.HasPrefix(t, "{") {
		var ev struct{ Action, Output string }
		if json.Unmarshal([]byte(t), &ev) == nil && ev.Action != "" {
			return strings.TrimSpace(ev.Output)
		}
	}
	return t
}
