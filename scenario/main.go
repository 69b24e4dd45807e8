package scenario

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"txtimeout/faultinject"
	"txtimeout/harness"
	"txtimeout/rig"
	"txtimeout/rig/guest"
)

// Main is the TestMain of a package of scenarios:
//
//	func TestMain(m *testing.M) { scenario.Main(m) }
//
// It registers the harness's flags (-iface, -report, ...) and parses
// them. A process that drives the DUT itself (a hardware interface, or
// the guest of the virtual rig) restores it on SIGINT and SIGTERM: the
// loads are stopped, the faults restored, what a load left removed, and
// the process exits with status 1. On the host of the virtual rig nothing
// is injected: the rig's own cancellation stops QEMU.
func Main(m *testing.M) {
	harness.RegisterFlags(flag.CommandLine)
	flag.Parse()
	if pkg == "" {
		pkg = callerPackage()
	}
	if c, err := harness.LoadConfig(); err == nil && !c.VirtualRig() {
		handlerArmed = true
		stop := installSignalHandler(os.Stderr, os.Exit)
		code := m.Run()
		stop()
		os.Exit(code)
	}
	code := m.Run()
	if !rigRuns.finish(os.Stderr, code != 0) && code == 0 {
		code = 1
	}
	os.Exit(code)
}

// handlerArmed is set when Main installed the SIGINT/SIGTERM handler that
// restores the DUT.
var handlerArmed bool

// HandlerArmed reports whether Main installed the handler that restores
// the DUT on SIGINT and SIGTERM.
func HandlerArmed() bool { return handlerArmed }

// pkg is the import path of the test package, built for the rig's guest.
var pkg string

// callerPackage is the import path of the package of the first caller
// outside this package, the testing package and the runtime ("" when
// none is found); an external test package's _test suffix is dropped.
func callerPackage() string {
	pcs := make([]uintptr, 32)
	n := runtime.Callers(2, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if p := funcPackage(f.Function); p != "" && p != "txtimeout/scenario" && p != "testing" && p != "runtime" && p != "main" {
			return strings.TrimSuffix(p, "_test")
		}
		if !more {
			return ""
		}
	}
}

// funcPackage is the package path of a runtime function name
// ("txtimeout/scenarios.TestX.func1" → "txtimeout/scenarios").
func funcPackage(fn string) string {
	slash := strings.LastIndexByte(fn, '/')
	dot := strings.IndexByte(fn[slash+1:], '.')
	if dot < 0 {
		return ""
	}
	return fn[:slash+1+dot]
}

// report collects every scenario's outcome of this run; harness.Finish
// rewrites report.json and report.ktap after each one.
var report = &harness.Report{}

// RunReport is the report of this run.
func RunReport() *harness.Report { return report }

var (
	configOnce sync.Once
	config     harness.Config
	configErr  error
)

// Config resolves this run's configuration once (flags, environment).
func Config() (harness.Config, error) {
	configOnce.Do(func() {
		config, configErr = harness.LoadConfig()
		if configErr != nil {
			return
		}
		report.Config = config
		report.Iface = config.Iface
		report.NIC = config.NIC
		report.Kernel = kernelRelease()
		report.Driver, _ = harness.DriverName(config.Iface)
		if !config.VirtualRig() {
			fmt.Fprintf(os.Stderr, "txtimeout: configuration:\n%s\n", config)
		}
	})
	return config, configErr
}

// preflights caches the preflight checks of this run, one set per DUT
// interface (the rig's guest may have several NICs).
var preflights = struct {
	sync.Mutex
	by map[string][]harness.Check
}{by: map[string][]harness.Check{}}

// Preflight is the preflight checks of cfg's DUT (harness.Preflight), run
// once per interface.
func Preflight(cfg harness.Config) []harness.Check {
	preflights.Lock()
	c, ok := preflights.by[cfg.Iface]
	preflights.Unlock()
	if ok {
		return c
	}
	if cfg.Rig && cfg.Iface != "" {
		// The guest init waits for the first NIC's carrier only; an
		// e1000 reports its link about 2 s after it came up, and the
		// scenarios on it need not hold up the guest's first test.
		if err := harness.WaitCarrier(context.Background(), cfg.Iface, 15*time.Second); err != nil {
			fmt.Fprintf(os.Stderr, "txtimeout: %v\n", err)
		}
	}
	c = harness.Preflight(cfg)
	preflights.Lock()
	defer preflights.Unlock()
	if prev, ok := preflights.by[cfg.Iface]; ok {
		return prev
	}
	preflights.by[cfg.Iface] = c
	return c
}

// Need skips t, recording the skip in the report, unless every named
// preflight check (harness.CheckRoot, ...) passed on cfg's DUT.
func Need(t *testing.T, cfg harness.Config, checks ...string) {
	t.Helper()
	harness.NeedFor(t, report, Preflight(cfg), checks...)
}

// Skip records a scenario that cannot run here in the report (so that
// report.json and report.ktap list it with its reason), then skips it.
func Skip(t *testing.T, reason string) {
	t.Helper()
	harness.Finish(t, report, harness.Skipped(reason))
}

// Skipf is Skip with a format.
func Skipf(t *testing.T, format string, a ...any) {
	t.Helper()
	Skip(t, fmt.Sprintf(format, a...))
}

// Peer returns the configured partner's IP and MAC (either may be nil).
func Peer(cfg harness.Config) (net.IP, net.HardwareAddr) {
	var hw net.HardwareAddr
	if cfg.PeerMAC != "" {
		hw, _ = net.ParseMAC(cfg.PeerMAC) // LoadConfig validated it
	}
	return net.ParseIP(cfg.PeerIP).To4(), hw
}

// DriverOf is the name of iface's driver, or "" when unknown.
func DriverOf(iface string) string {
	d, _ := harness.DriverName(iface)
	return d
}

// kernelRelease is uname -r of the machine the scenarios run on.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// Setup resolves the configuration. On the host with no DUT configured it
// runs t's test inside the virtual rig instead, mirroring the guest's
// subtests into t, and returns false: the caller returns. Elsewhere it
// refuses (or, with -clean-stale, cleans) state an earlier run left
// behind, and returns true.
//
// On the rig, the top-level tests of a package share one boot (a
// rig.Session): the first test that needs the rig boots it for every test
// the host's -test.run selects, and each test mirrors its own guest test as
// it arrives. A test whose subtests need other NIC models says so with
// RegisterPlan (the boot then has a NIC of each); a subtest that calls Run
// on the host boots on its own.
func Setup(t *testing.T) (harness.Config, bool) {
	t.Helper()
	cfg, err := Config()
	if err != nil {
		t.Fatalf("configuration: %v", err)
	}
	if !cfg.VirtualRig() {
		acts, err := staleOnce()
		for _, a := range acts {
			t.Logf("cleaned state of an earlier run: %s", a)
		}
		if err != nil {
			t.Fatal(err)
		}
		return cfg, true
	}
	if testing.Short() {
		t.Skip("skipping the virtual rig under -short (set TXTIMEOUT_IFACE to run on a hardware interface)")
	}
	if strings.Contains(t.Name(), "/") || repeatedRuns() {
		// A subtest that calls Run on the host, or -count above 1 (a
		// shared boot runs each test once): a boot of its own.
		bootAlone(t, cfg)
		return cfg, false
	}
	var skip string
	hostRun := ""
	if f := flag.Lookup("test.run"); f != nil {
		hostRun = f.Value.String()
	}
	for _, b := range sessionBoots(t.Name(), hostRun, os.Getenv("TXTIMEOUT_NIC"), planTest, plans[planTest]) {
		s, err := rigRuns.session(t, cfg, b)
		if err != nil {
			t.Fatalf("rig: %v", err)
		}
		if msg := s.MirrorInto(t); msg != "" {
			skip = msg
		}
	}
	if skip != "" {
		t.Skip(skip)
	}
	return cfg, false
}

// Boot is one NIC model of a plan and the subtests of a top-level test
// that run on it.
type Boot struct {
	NIC      string
	Subtests []string
}

// plans are the registered NIC plans, by top-level test; planTest is the
// one test of the package that has one.
var (
	plans    = map[string][]Boot{}
	planTest string
)

// RegisterPlan says on which NIC model of the virtual rig each subtest of
// the top-level test runs by default (call it from an init function): the
// package's shared boot gives its guest a NIC of every model of the plan,
// each with a partner of its own (rig.Config.MoreNICs), and the test runs
// each subtest with ConfigFor its model. A NIC chosen by the user
// (TXTIMEOUT_NIC) runs everything on that one NIC. A package has at most
// one test with a plan.
func RegisterPlan(test string, plan []Boot) {
	if planTest != "" && planTest != test {
		panic("scenario.RegisterPlan: " + planTest + " has the package's NIC plan already; " + test + " cannot have another")
	}
	if len(plan) == 0 {
		panic("scenario.RegisterPlan: an empty plan for " + test)
	}
	plans[test], planTest = plan, test
}

// bootAlone runs t's test (a subtest path) in a boot of its own.
func bootAlone(t *testing.T, cfg harness.Config) {
	t.Helper()
	rc := rigConfig(cfg)
	final := rc.ReportDir
	if final != "" {
		rc.ReportDir = filepath.Join(t.TempDir(), "guest")
	}
	rig.RunTest(t, testPackage(), runPattern(t.Name()), rc)
	if final != "" {
		if err := mergeGuestReport(rc.ReportDir, final, strings.ReplaceAll(t.Name(), "/", "-")); err != nil {
			t.Error(err)
		}
	}
}

// rigConfig is the rig's configuration from the environment, with this
// run's settings for the guest and the report directory.
func rigConfig(cfg harness.Config) rig.Config {
	rc := rig.ConfigFromEnv()
	if rc.ReportDir == "" {
		rc.ReportDir = cfg.ReportDir // the -report flag
	}
	rc.GuestEnv = GuestEnv(cfg)
	return rc
}

// testPackage is the import path of the test package the rig builds.
func testPackage() string {
	if pkg != "" {
		return pkg
	}
	return callerPackage()
}

// sessionBoot is one shared boot: its NIC model ("" for the rig's default
// or the user's TXTIMEOUT_NIC), the models of its more NICs (each with a
// partner of its own) and the guest's flags.
type sessionBoot struct {
	nic  string
	more []string
	args []string
}

// ConfigFor is cfg for a scenario that runs on NIC model nic: inside the
// rig's guest with several NICs (a plan's models in one boot), the
// interface of that model and its partner; elsewhere (one NIC, a NIC the
// user chose, a hardware DUT) cfg itself.
//
// A guest with several NICs but none of model nic is a broken boot, not an
// untestable device: ConfigFor says so.
func ConfigFor(cfg harness.Config, nic string) (harness.Config, error) {
	if !cfg.Rig || nic == "" || cfg.NIC == nic {
		return cfg, nil
	}
	nics, err := guest.NICs()
	if err != nil {
		return cfg, fmt.Errorf("the rig's NICs: %w", err)
	}
	for _, n := range nics {
		if n.Model == nic {
			c := cfg
			c.Iface, c.NIC = n.Iface, n.Model
			c.PeerIP, c.PeerMAC = n.PeerIP.String(), n.PeerMAC.String()
			return c, nil
		}
	}
	if len(nics) > 1 {
		return cfg, fmt.Errorf("the rig's guest has NICs %v but none of model %s, which this scenario's plan asks for", nicModels(nics), nic)
	}
	return cfg, nil // one NIC (the user's TXTIMEOUT_NIC): that one, honestly
}

func nicModels(nics []guest.NIC) []string {
	var out []string
	for _, n := range nics {
		out = append(out, n.Model)
	}
	return out
}

// sessionBoots are the shared boots the top-level test top is mirrored
// from, for the host's -test.run hostRun, the user's NIC and the
// package's NIC plan (of the test planTest): the default NIC's, which
// runs every test hostRun selects but the subtests the plan sends to other
// models, then one per other model of top's plan that hostRun selects.
func sessionBoots(top, hostRun, userNIC, planTest string, plan []Boot) []sessionBoot {
	if hostRun == "" {
		hostRun = "."
	}
	first := sessionBoot{nic: userNIC, args: []string{"-test.run=" + hostRun}}
	if userNIC != "" || len(plan) == 0 {
		return []sessionBoot{first}
	}
	// One boot for the whole plan: the guest has a NIC of every model,
	// each with a partner of its own, and each subtest runs on its
	// model's (ConfigFor).
	first.nic = plan[0].NIC
	for _, b := range plan[1:] {
		if b.NIC != first.nic && !slices.Contains(first.more, b.NIC) {
			first.more = append(first.more, b.NIC)
		}
	}
	return []sessionBoot{first}
}

// rigRuns are this process's shared boots.
var rigRuns = &sessions{}

// sessions are the shared boots of a test binary on the host, one at a
// time: a boot starts once the earlier ones are over.
type sessions struct {
	mu   sync.Mutex
	runs []*session
}

type session struct {
	key       string
	nic       string
	s         *rig.Session
	guestDir  string // the guest's report files, merged at the end
	reportDir string // where they go ("" for nowhere)
}

// session returns the shared boot b, starting it when it is not running
// yet.
func (ss *sessions) session(t *testing.T, cfg harness.Config, b sessionBoot) (*rig.Session, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	key := b.nic + "\x00" + strings.Join(b.more, ",") + "\x00" + strings.Join(b.args, "\x00")
	for _, r := range ss.runs {
		if r.key == key {
			return r.s, nil
		}
	}
	for _, r := range ss.runs {
		<-r.s.Done()
	}
	rc := rigConfig(cfg).WithinDeadline(t)
	rc.NIC, rc.MoreNICs = b.nic, b.more
	if rc.Topology != "" {
		// The loop topology's guest is a hardware rig of two cabled
		// ports of one model: no partners of the rig's own.
		rc.MoreNICs = nil
	}
	dir, err := os.MkdirTemp("", "txtimeout-guest-report-")
	if err != nil {
		return nil, err
	}
	r := &session{key: key, nic: b.nic, reportDir: rc.ReportDir, guestDir: dir}
	rc.ReportDir = dir
	args := append(slices.Clone(b.args), countFlags()...)
	if r.s, err = rig.StartSession(testPackage(), args, rc); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ss.runs = append(ss.runs, r)
	return r.s, nil
}

// repeatedRuns reports whether the host's -test.count asks for more than
// one run of each test.
func repeatedRuns() bool {
	f := flag.Lookup("test.count")
	return f != nil && f.Value.String() != "1" && f.Value.String() != "0"
}

// countFlags are the host's -test.count and -test.failfast, for the guest.
func countFlags() []string {
	var args []string
	if f := flag.Lookup("test.count"); f != nil && f.Value.String() != "1" {
		args = append(args, "-test.count="+f.Value.String())
	}
	if f := flag.Lookup("test.failfast"); f != nil && f.Value.String() == "true" {
		args = append(args, "-test.failfast")
	}
	if f := flag.Lookup("test.skip"); f != nil && f.Value.String() != "" {
		args = append(args, "-test.skip="+f.Value.String())
	}
	return args
}

// finish waits for every shared boot, merges its guest's report into the
// run's report directory, and says what failed in a guest without a host
// test to show it. It returns false when something did.
func (ss *sessions) finish(stderr io.Writer, mirroredFailure bool) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ok := true
	for _, r := range ss.runs {
		res, lost, err := r.s.Wait()
		for _, l := range lost {
			fmt.Fprintf(stderr, "txtimeout: %s\n", l)
			ok = false
		}
		if err != nil {
			fmt.Fprintf(stderr, "txtimeout: %v\n", err)
			ok = false
		} else if res.ExitCode != 0 && len(lost) == 0 && !mirroredFailure {
			// Something failed in the guest after every test's result
			// (a log after a test completed, a panic at exit).
			fmt.Fprintf(stderr, "txtimeout: the shared guest's test binary exited with status %d after its tests (see the guest output above)\n", res.ExitCode)
			ok = false
		}
		if r.reportDir != "" {
			name := r.nic
			if name == "" {
				name = res.NIC
			}
			if err := mergeGuestReport(r.guestDir, r.reportDir, name); err != nil {
				fmt.Fprintf(stderr, "txtimeout: %v\n", err)
				ok = false
			}
		}
		os.RemoveAll(r.guestDir)
	}
	return ok
}

// GuestEnv is the environment that carries this run's settings into
// the rig's guest, which sees neither the host's environment nor its
// flags: the resolved configuration (harness.Config.GuestEnv), and the
// scenarios' own knobs where they are set.
func GuestEnv(cfg harness.Config) []string {
	env := cfg.GuestEnv()
	for _, k := range GuestKnobs {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// GuestKnobs are environment variables of scenarios (not of the harness's
// configuration) that reach the rig's guest when set on the host.
var GuestKnobs = []string{"TXTIMEOUT_REPEAT", "TXTIMEOUT_QUEUE", "TXTIMEOUT_BENCH"}

// runPattern is the -test.run pattern that selects exactly the test
// named name (t.Name(): a top-level test or a subtest path).
func runPattern(name string) string {
	levels := strings.Split(name, "/")
	for i, l := range levels {
		levels[i] = "^" + regexp.QuoteMeta(l) + "$"
	}
	return strings.Join(levels, "/")
}

// CutRunPattern splits a -test.run pattern at its first '/' outside
// brackets and parentheses, as the testing package splits its levels.
func CutRunPattern(p string) (first, rest string) {
	depth := 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++ // an escaped character
		case '[', '(':
			depth++
		case ']', ')':
			if depth > 0 {
				depth--
			}
		case '/':
			if depth == 0 {
				return p[:i], p[i+1:]
			}
		}
	}
	return p, ""
}

// guestReportMerged is set once the first guest report was merged.
var guestReportMerged bool

// mergeGuestReport adds the scenarios of one guest run's report to this
// run's report and rewrites the report files in dir, so that the report
// directory describes the whole run. The guest's console log is kept as
// console-NAME.log.
func mergeGuestReport(guestDir, dir, name string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report directory: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(guestDir, "console.log")); err == nil {
		if err := os.WriteFile(filepath.Join(dir, "console-"+name+".log"), b, 0o644); err != nil {
			return fmt.Errorf("keeping the guest console log: %w", err)
		}
	}
	g, err := harness.ReadReport(filepath.Join(guestDir, "report.json"))
	if err != nil {
		return fmt.Errorf("the guest left no readable report (%w); its scenarios (%s) are not in %s", err, name, dir)
	}
	if !guestReportMerged {
		// The DUT is the guest's: its kernel, driver and configuration.
		report.Kernel, report.Driver, report.Iface, report.NIC = g.Kernel, g.Driver, g.Iface, g.NIC
		report.Config = g.Config
		guestReportMerged = true
	}
	for _, sc := range g.Scenarios {
		report.Add(sc)
	}
	if err := report.WriteFiles(dir); err != nil {
		return fmt.Errorf("writing the merged report: %w", err)
	}
	return nil
}

// EchoWithin sends echo requests to dst until one is answered or d passes.
func EchoWithin(ctx context.Context, dst net.IP, d time.Duration) error {
	return echoWithin(ctx, dst, d)
}

// What a run does when it is interrupted, times out or finds a mess.
//
// A scenario registers every fault and load it puts in place with active.
// SIGINT or SIGTERM (Ctrl-C, a CI job cancelled) reaches the handler that
// TestMain installs: it stops the loads, restores the faults, removes what
// a load left on the interface (pktgen devices) and exits with status 1,
// so the DUT is as it was found. SIGKILL cannot be caught: the state files
// under /run/txtimeout let `txtimeout cleanup -all` (or the next run with
// -clean-stale) put it back.
//
// `go test -timeout` panics without running cleanups, so a scenario's
// context ends restoreMargin before the test's deadline: the scenario
// removes its fault and fails with the reason before the panic comes.

// cleanStale makes a run that finds state left by an earlier one clean it
// first instead of refusing (env TXTIMEOUT_CLEAN_STALE=1).
var cleanStale = flag.Bool("clean-stale", false, "restore the DUT from state left by an earlier (killed) run before starting, instead of refusing (env TXTIMEOUT_CLEAN_STALE=1)")

// active holds what the scenarios of this process have in place now.
var active = &registry{}

// registry is a set of things to undo.
type registry struct {
	mu      sync.Mutex
	next    int
	entries map[int]activeEntry
}

type activeEntry struct {
	what string
	// iface is cleaned with faultinject.Cleanup after every restore,
	// which removes pktgen devices and any leftover project qdisc.
	iface string
	// stop ends a load (cancels its context); restore puts a fault back.
	// Either may be nil.
	stop    func()
	restore func(context.Context) error
}

// add registers e and returns the function that unregisters it.
func (r *registry) add(e activeEntry) (remove func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.entries == nil {
		r.entries = map[int]activeEntry{}
	}
	id := r.next
	r.next++
	r.entries[id] = e
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.entries, id)
	}
}

// len is the number of registered entries.
func (r *registry) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// restoreAll stops every load, then restores every fault (newest first),
// then cleans every interface named. It reports one line per action and
// the errors.
func (r *registry) restoreAll(ctx context.Context, cleanup func(context.Context, string) ([]string, error)) ([]string, error) {
	r.mu.Lock()
	ids := make([]int, 0, len(r.entries))
	for id := range r.entries {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	slices.Reverse(ids)
	entries := make([]activeEntry, 0, len(ids))
	for _, id := range ids {
		entries = append(entries, r.entries[id])
	}
	r.mu.Unlock()

	var actions []string
	var errs []error
	var ifaces []string
	for _, e := range entries {
		if e.stop != nil {
			e.stop()
			actions = append(actions, "stopped "+e.what)
		}
		if e.iface != "" && !slices.Contains(ifaces, e.iface) {
			ifaces = append(ifaces, e.iface)
		}
	}
	for _, e := range entries {
		if e.restore == nil {
			continue
		}
		if err := e.restore(ctx); err != nil {
			errs = append(errs, fmt.Errorf("restoring %s: %w", e.what, err))
			continue
		}
		actions = append(actions, "restored "+e.what)
	}
	for _, iface := range ifaces {
		acts, err := cleanup(ctx, iface)
		actions = append(actions, acts...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return actions, errors.Join(errs...)
}

// cleanupIface is faultinject.Cleanup in the default state directory.
func cleanupIface(ctx context.Context, iface string) ([]string, error) {
	return faultinject.Cleanup(ctx, iface, faultinject.Options{})
}

// restoreBudget bounds what the signal handler spends restoring: a
// partner stall cannot be ended early and lasts at most MaxStall.
const restoreBudget = faultinject.MaxStall + time.Minute

// installSignalHandler makes SIGINT and SIGTERM restore the DUT and exit
// with status 1. A second signal while restoring says what is going on;
// SIGKILL is the way out that leaves the state files for a cleanup.
func installSignalHandler(stderr io.Writer, exit func(int)) (stop func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	handling := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var sig os.Signal
		select {
		case sig = <-ch:
		case <-done:
			return
		}
		close(handling)
		fmt.Fprintf(stderr, "txtimeout: caught %v: restoring the DUT (%d fault(s) and load(s) in place)\n", sig, active.len())
		go func() {
			for s := range ch {
				fmt.Fprintf(stderr, "txtimeout: caught %v while restoring the DUT; a partner stall cannot be cut short. SIGKILL abandons the restore (then run 'txtimeout cleanup -all')\n", s)
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), restoreBudget)
		defer cancel()
		actions, err := active.restoreAll(ctx, cleanupIface)
		for _, a := range actions {
			fmt.Fprintf(stderr, "txtimeout: %s\n", a)
		}
		if err != nil {
			fmt.Fprintf(stderr, "txtimeout: restoring after %v failed: %s (run 'txtimeout cleanup -all')\n", sig, oneLine(err))
		} else {
			fmt.Fprintf(stderr, "txtimeout: the DUT is restored; exiting after %v\n", sig)
		}
		exit(1)
	}()
	// stop: once a signal is being handled, the handler ends the process
	// when the DUT is restored; the tests finishing first (their contexts
	// were cancelled) must not exit before that.
	return func() {
		select {
		case <-handling:
			<-finished // never closes when exit is os.Exit
		default:
		}
		signal.Stop(ch)
		close(done)
	}
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// checkStale refuses to run over state an earlier run left behind (a run
// killed with SIGKILL, a machine that lost power), or cleans it first when
// -clean-stale or TXTIMEOUT_CLEAN_STALE=1 asks. It returns what it did.
func checkStale(ctx context.Context, o faultinject.Options, clean bool) ([]string, error) {
	stale, err := faultinject.StaleState(o)
	if err != nil {
		return nil, fmt.Errorf("checking for state left by an earlier run: %w", err)
	}
	if len(stale) == 0 {
		return nil, nil
	}
	if !clean {
		return nil, fmt.Errorf("%w: an earlier run left its fault recorded on %s (state in %s); run 'txtimeout cleanup -all' first, or rerun with -clean-stale (TXTIMEOUT_CLEAN_STALE=1) to restore it before the run",
			faultinject.ErrStaleState, strings.Join(stale, ", "), stateDirOf(o))
	}
	acts, err := faultinject.CleanupAll(ctx, o)
	if err != nil {
		return acts, fmt.Errorf("cleaning state left by an earlier run on %s: %s", strings.Join(stale, ", "), oneLine(err))
	}
	return acts, nil
}

func stateDirOf(o faultinject.Options) string {
	if o.StateDir != "" {
		return o.StateDir
	}
	return faultinject.DefaultStateDir
}

func cleanStaleWanted() bool {
	return *cleanStale || os.Getenv("TXTIMEOUT_CLEAN_STALE") == "1"
}

// staleOnce runs checkStale once per process.
var staleOnce = sync.OnceValues(func() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), restoreBudget)
	defer cancel()
	return checkStale(ctx, faultinject.Options{}, cleanStaleWanted())
})

// restoreMargin is how long before the test's deadline a scenario ends,
// so that it can remove its fault before `go test -timeout` panics: the
// injector's restore (a partner stall cannot be ended early: up to its
// whole length) plus stopping the observers and writing the report.
func restoreMargin(inj faultinject.Injector) time.Duration {
	return inj.RestoreBound() + 10*time.Second
}

// scenarioContext bounds a scenario by d and by the test's deadline less
// margin, whichever comes first.
func scenarioContext(t *testing.T, d, margin time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	if dl, ok := t.Deadline(); ok {
		c2, cancel2 := context.WithDeadline(ctx, dl.Add(-margin))
		return c2, func() { cancel2(); cancel() }
	}
	return ctx, cancel
}
