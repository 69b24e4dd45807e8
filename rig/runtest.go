package rig

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// RunTest runs the test package pkg in the guest (RunPackage) and mirrors
// the guest's tests into t as they run: a guest test named like t itself
// is t, its subtests become t.Run subtests of the same names, and any
// other guest test becomes a subtest of t. Guest log lines arrive through
// t.Log; a guest failure fails the mirrored test; a guest skip skips it
// with the guest's message (so "inconclusive: ..." survives).
//
// run is the guest's -test.run pattern; when it holds no '/', the part of
// the host's own -test.run after its first '/' is appended, so
// `go test -run TxTimeout/NetemDelay` reaches the guest. The host's
// -test.count and -test.failfast are passed on; RunPackage adds
// -test.v=test2json (RunTest parses it) and the guest's -test.timeout,
// from the rig's deadline, which ends before t's.
//
// In -short mode RunTest skips: a boot under TCG takes seconds to minutes.
// A rig failure (QEMU missing, a module missing, no boot, a panic) fails t,
// with where its evidence is kept.
func RunTest(t *testing.T, pkg string, run string, c Config) *Result {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping the virtual rig in -short mode: it boots a Linux kernel under QEMU (run without -short)")
	}
	if c.Progress == nil {
		c.Progress = os.Stderr
	}
	c, err := c.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	c = c.WithinDeadline(t)
	if dl, ok := t.Deadline(); ok && c.Timeout < time.Minute {
		t.Fatalf("rig: the test deadline leaves %v, less than a minute for a guest run (raise -timeout)", time.Until(dl).Round(time.Second))
	}
	pr, pw := io.Pipe()
	type outcome struct {
		r   *Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		r, err := RunPackage(context.Background(), c, pkg, hostTestArgs(run), pw)
		pw.Close()
		done <- outcome{r, err}
	}()
	m := &mirror{events: parseGuestOutput(pr)}
	skip := m.root(t)
	// Drain whatever the parser still holds so Run is never blocked.
	for range m.events {
	}
	o := <-done
	r := o.r
	if r == nil {
		r = &Result{}
	}
	reportRun(t, r, o.err)
	if skip != "" {
		t.Skip(skip)
	}
	return r
}

// reportRun says in t how the guest run went: its boot time, a rig
// failure (which fails t), failed guest tests, and where the evidence of a
// failure is.
func reportRun(t *testing.T, r *Result, err error) {
	t.Helper()
	if r.BootTime > 0 {
		t.Logf("rig: "+progressFirstTest+" ("+progressGuestInit+"; kernel %s, %s)",
			r.BootTime.Seconds(), r.GuestBootTime.Seconds(), r.Kernel, strings.Join(append([]string{r.NIC}, r.ModParams...), ", "))
	}
	if err != nil {
		// The error names the kept work directory and the command line.
		if msg := err.Error(); strings.HasPrefix(msg, "rig: ") {
			t.Fatal(msg)
		}
		t.Fatalf("rig: %v", err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if ev := r.Evidence(); ev != "" {
			t.Log(ev)
		} else if len(r.QEMUCommand) > 0 {
			t.Logf("rig: QEMU command line: %s", CmdlineQuoted(r.QEMUCommand))
		}
	})
	if r.ExitCode != 0 && !t.Failed() {
		t.Errorf("rig: guest test binary exited with status %d (see its output above)", r.ExitCode)
	}
}

// WithinDeadline is c with its Timeout (DefaultTimeout when unset) cut to
// end 30 s before t's deadline (go test -timeout), so that a guest run
// ends, and says why, before the testing package panics.
func (c Config) WithinDeadline(t interface{ Deadline() (time.Time, bool) }) Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if dl, ok := t.Deadline(); ok {
		c.Timeout = min(c.Timeout, time.Until(dl)-30*time.Second)
	}
	return c
}

// RunPackage is the one way from a test package to its run in the guest:
// it checks the configuration and QEMU (Preflight), builds pkg for the
// guest (BuildTest) into a temporary directory, and runs it with Run.
// args are the guest test binary's flags (-test.run=..., the package's own
// flags); unless they set them, -test.v=test2json is added (RunTest and
// `txtimeout rig` follow the guest's tests by it) and a -test.timeout that
// leaves the rig's deadline room for the boot and the report
// (the rig's deadline less the boot's and 30 s, at least a minute).
func RunPackage(ctx context.Context, c Config, pkg string, args []string, out io.Writer) (*Result, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := Preflight(ctx, c); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "txtimeout-rig-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "txtimeout.test")
	c.progressf("building %s for the guest", pkg)
	if err := BuildTest(ctx, pkg, bin); err != nil {
		return nil, err
	}
	return RunBinary(ctx, c, bin, args, out)
}

// RunBinary is RunPackage for a test binary built already (BuildTest):
// several boots of one build (the kernels and NIC models of a matrix).
func RunBinary(ctx context.Context, c Config, bin string, args []string, out io.Writer) (*Result, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	args = c.guestArgs(args)
	c.progressf("guest test flags: %s", CmdlineQuoted(args))
	return bootOnceMore(ctx, c.progressf, func() (*Result, error) { return Run(ctx, c, bin, args, out) })
}

// bootOnceMore runs run, and once more when its guest never reached the
// init (ErrBootTimeout). Such a guest ran no test: under TCG a boot hangs
// now and then before userspace (about 1 in 100 boots here, silent after
// the kernel's first lines), the emulator's trouble, not the DUT's. The
// first attempt's work directory and console log are kept, and named in
// the progress line.
func bootOnceMore(ctx context.Context, progressf func(string, ...any), run func() (*Result, error)) (*Result, error) {
	r, err := run()
	if errors.Is(err, ErrBootTimeout) && ctx.Err() == nil {
		progressf("the guest did not reach its init (%v); booting once more", err)
		return run()
	}
	return r, err
}

// guestArgs adds RunPackage's defaults to args, under c with its defaults.
func (c Config) guestArgs(args []string) []string {
	out := slices.Clone(args)
	if !hasTestFlag(args, "v") {
		out = append([]string{"-test.v=test2json"}, out...)
	}
	if !hasTestFlag(args, "timeout") {
		timeout := max(c.Timeout-c.BootTimeout-30*time.Second, time.Minute)
		out = append(out, "-test.timeout="+timeout.Round(time.Second).String())
	}
	return out
}

// hasTestFlag reports whether args set the test binary's flag -test.name.
func hasTestFlag(args []string, name string) bool {
	for _, a := range args {
		f, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && f == "test."+name {
			return true
		}
	}
	return false
}

// BuildTest builds the test binary of pkg for the guest: static
// (CGO_ENABLED=0), linux/amd64.
func BuildTest(ctx context.Context, pkg, out string) error {
	if mod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output(); err == nil {
		if m := strings.TrimSpace(string(mod)); m == "" || m == os.DevNull {
			wd, _ := os.Getwd()
			return fmt.Errorf("building %s needs its Go module, and %s is outside it: run from the txtimeout repository", pkg, wd)
		}
	}
	cmd := exec.CommandContext(ctx, "go", "test", "-c", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("rig: go test -c %s: %w: %s", pkg, err, strings.TrimSpace(string(b)))
	}
	return nil
}

// hostTestArgs returns the guest test binary's flags that come from the
// host's own test run: -test.run (see RunTest), the host's -test.count and
// -test.failfast.
func hostTestArgs(run string) []string {
	if !strings.Contains(run, "/") {
		if sub := hostSubRun(); sub != "" {
			if run == "" {
				run = "."
			}
			run += "/" + sub
		}
	}
	var args []string
	if run != "" {
		args = append(args, "-test.run="+run)
	}
	if f := flag.Lookup("test.count"); f != nil && f.Value.String() != "1" {
		args = append(args, "-test.count="+f.Value.String())
	}
	if f := flag.Lookup("test.failfast"); f != nil && f.Value.String() == "true" {
		args = append(args, "-test.failfast")
	}
	return args
}

// hostSubRun returns the part of the host's -test.run after its first '/'.
func hostSubRun() string {
	f := flag.Lookup("test.run")
	if f == nil {
		return ""
	}
	_, sub, _ := strings.Cut(f.Value.String(), "/")
	return sub
}

// guestEvent is one line of the guest's test output.
type guestEvent struct {
	// Kind is "run", "pass", "fail", "skip", "pause", "cont", "name" for
	// framing lines and "output" for everything else.
	Kind string
	Name string // the test a framing line names
	Line string // the line, without the framing byte
}

// parseGuestOutput reads test2json-framed output (go test -v=test2json):
// framing lines begin with ^V. It closes the channel at EOF.
func parseGuestOutput(r io.Reader) chan guestEvent {
	ch := make(chan guestEvent, 64)
	go func() {
		defer close(ch)
		s := bufio.NewScanner(r)
		s.Buffer(make([]byte, 64<<10), 1<<20)
		for s.Scan() {
			ch <- parseGuestLine(strings.TrimRight(s.Text(), "\r"))
		}
		// An over-long line or a read error: keep the stream drained so
		// the guest is never blocked.
		io.Copy(io.Discard, r)
	}()
	return ch
}

func parseGuestLine(line string) guestEvent {
	framed, ok := strings.CutPrefix(line, "\x16")
	if !ok {
		return guestEvent{Kind: "output", Line: line}
	}
	f := strings.TrimLeft(framed, " ")
	for _, p := range []struct{ prefix, kind string }{
		{"=== RUN", "run"}, {"=== PAUSE", "pause"}, {"=== CONT", "cont"}, {"=== NAME", "name"},
		{"--- PASS:", "pass"}, {"--- FAIL:", "fail"}, {"--- SKIP:", "skip"},
	} {
		if rest, ok := strings.CutPrefix(f, p.prefix); ok {
			fields := strings.Fields(rest)
			if len(fields) == 0 {
				// "=== NAME" with no name: output that follows
				// belongs to no test.
				return guestEvent{Kind: p.kind, Line: framed}
			}
			return guestEvent{Kind: p.kind, Name: fields[0], Line: framed}
		}
	}
	return guestEvent{Kind: "output", Line: framed}
}

// mirror replays guest events into host tests.
type mirror struct {
	events  chan guestEvent
	pending *guestEvent
}

func (m *mirror) next() (guestEvent, bool) {
	if m.pending != nil {
		ev := *m.pending
		m.pending = nil
		return ev, true
	}
	ev, ok := <-m.events
	return ev, ok
}

func (m *mirror) unread(ev guestEvent) { m.pending = &ev }

// root handles the guest's top-level tests. It returns a skip message when
// the guest test mapped onto t itself was skipped: the caller skips t last,
// after the run has been wound up.
func (m *mirror) root(t *testing.T) (skip string) {
	for {
		ev, ok := m.next()
		if !ok {
			return skip
		}
		switch {
		case ev.Kind == "run" && !strings.Contains(ev.Name, "/"):
			if ev.Name == t.Name() {
				res, msg := m.node(t, ev.Name)
				if res == "skip" {
					skip = msg
				}
				continue
			}
			name := ev.Name
			t.Run(name, func(t *testing.T) {
				if res, msg := m.node(t, name); res == "skip" {
					t.Skip(msg)
				}
			})
		case ev.Kind == "output":
			if strings.TrimSpace(ev.Line) != "" {
				logGuestLine(t, ev.Line)
			}
		case ev.Kind == "pause" || ev.Kind == "cont" || ev.Kind == "name":
			// Interleaving marks: the mirror follows tests in order.
		default:
			t.Logf("guest: %s", ev.Line)
		}
	}
}

var fileLineRE = regexp.MustCompile(`^\s*[\w.+-]+\.go:\d+: `)

// node follows the guest test name, mirrored by t, until its result. It
// returns "pass", "fail", "skip" (with the guest's skip message) or "" when
// the guest output ended first.
func (m *mirror) node(t *testing.T, name string) (result, skipMsg string) {
	var lines []string
	for {
		ev, ok := m.next()
		if !ok {
			t.Errorf("rig: the guest's output ended before %s finished (see the rig error and console log)", name)
			return "", ""
		}
		switch ev.Kind {
		case "run":
			if parent, sub, ok := cutLast(ev.Name); ok && parent == name {
				child := ev.Name
				t.Run(sub, func(t *testing.T) {
					if res, msg := m.node(t, child); res == "skip" {
						t.Skip(msg)
					}
				})
				continue
			}
			if !strings.HasPrefix(ev.Name, name+"/") {
				// Someone else's test (parallel tests): let an
				// ancestor handle it; this test's result never came.
				m.unread(ev)
				t.Errorf("rig: guest started %s before reporting %s", ev.Name, name)
				return "", ""
			}
			t.Logf("guest: %s", ev.Line)
		case "pass", "fail", "skip":
			if ev.Name == name {
				if d := guestDuration(ev.Line); d != "" {
					// A test mirrored from a shared boot's buffer ends
					// here at once: its own time is the guest's.
					t.Logf("rig: took %s in the guest", d)
				}
				switch ev.Kind {
				case "fail":
					if !t.Failed() { // a failed subtest already says so
						t.Errorf("failed in the guest")
					}
				case "skip":
					return "skip", skipMessage(lines)
				}
				return ev.Kind, ""
			}
			if strings.HasPrefix(ev.Name, name+"/") {
				t.Logf("guest: %s", ev.Line)
				continue
			}
			m.unread(ev)
			t.Errorf("rig: guest reported %s before %s", ev.Name, name)
			return "", ""
		case "output":
			if strings.TrimSpace(ev.Line) == "" {
				continue
			}
			lines = append(lines, ev.Line)
			logGuestLine(t, ev.Line)
		}
	}
}

// guestDuration is the "(12.34s)" of a test's result line, without the
// parentheses ("" when there is none).
func guestDuration(line string) string {
	open, end := strings.LastIndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open || !strings.HasSuffix(line[open+1:end], "s") {
		return ""
	}
	return line[open+1 : end]
}

// skipMessage recovers the message of t.Skip from a test's output: its last
// "file.go:NN: " line and the continuation lines after it, without the
// file:line prefix.
func skipMessage(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if loc := fileLineRE.FindStringIndex(lines[i]); loc != nil {
			msg := []string{lines[i][loc[1]:]}
			for _, l := range lines[i+1:] {
				msg = append(msg, strings.TrimSpace(l))
			}
			return strings.Join(msg, "\n")
		}
	}
	return "skipped in the guest"
}

func cutLast(name string) (parent, sub string, ok bool) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", "", false
	}
	return name[:i], name[i+1:], true
}

// CmdlineQuoted is a command line as a POSIX shell reads it back: every
// argument that holds anything but letters, digits and -_./=:,+@% is
// single-quoted (QEMU's -append holds spaces), so that a logged command
// can be pasted to reproduce a run.
func CmdlineQuoted(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = shellQuote(a)
	}
	return strings.Join(out, " ")
}

func shellQuote(a string) string {
	if a == "" {
		return "''"
	}
	for _, r := range a {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r)) {
			return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return a
}

// lavaOut receives the guest's LAVA test-case lines as they are (a test
// seam).
var lavaOut io.Writer = os.Stdout

// logGuestLine mirrors one line of guest output into t. A LAVA test-case
// signal (the guest ran with -lava or TXTIMEOUT_LAVA=1) also goes to
// stdout as it is, at the start of a line, where lava-test-shell's pattern
// looks for it: through t.Log it would be indented and prefixed.
func logGuestLine(t *testing.T, line string) {
	l := strings.TrimLeft(line, " ")
	t.Log(l)
	if strings.HasPrefix(l, "<LAVA_SIGNAL_") {
		fmt.Fprintln(lavaOut, l)
	}
}
