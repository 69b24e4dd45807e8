package scenarios

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"txtimeout/harness"
	"txtimeout/rig"
)

// report collects every scenario's outcome of this run; harness.Finish
// rewrites report.json and report.ktap after each one.
var report = &harness.Report{}

func TestMain(m *testing.M) {
	harness.RegisterFlags(flag.CommandLine)
	flag.Parse()
	// A process that drives the DUT itself (a hardware interface, or the
	// guest of the virtual rig) restores it on SIGINT and SIGTERM. On the
	// host of the virtual rig nothing is injected: the rig's own
	// cancellation stops QEMU.
	if c, err := harness.LoadConfig(); err == nil && !c.VirtualRig() {
		suiteHandlerArmed = true
		stop := installSignalHandler(os.Stderr, os.Exit)
		code := m.Run()
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// suiteHandlerArmed is set when TestMain installed the SIGINT/SIGTERM
// handler that restores the DUT.
var suiteHandlerArmed bool

var (
	configOnce sync.Once
	config     harness.Config
	configErr  error
)

// setup resolves the configuration. On the host with no DUT configured it
// runs the named top-level test inside the virtual rig instead, mirroring
// the guest's subtests into t, and returns false: the caller returns.
func setup(t *testing.T, topLevel string) (harness.Config, bool) {
	t.Helper()
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
	if configErr != nil {
		t.Fatalf("configuration: %v", configErr)
	}
	if config.VirtualRig() {
		if testing.Short() {
			t.Skip("skipping the virtual rig under -short (set TXTIMEOUT_IFACE to run on a hardware interface)")
		}
		base := rig.ConfigFromEnv()
		final := base.ReportDir
		if final == "" {
			final = config.ReportDir // the -report flag
		}
		base.GuestEnv = guestSettings(config)
		for _, b := range bootsFor(topLevel, base.NIC, hostRunSub()) {
			rc := base
			rc.NIC = b.nic
			name := topLevel
			if final != "" {
				rc.ReportDir = filepath.Join(t.TempDir(), "guest")
				if b.nic != "" {
					name += "-" + b.nic
				}
			}
			rig.RunTest(t, "txtimeout/scenarios", b.run, rc)
			if final != "" {
				mergeGuestReport(t, rc.ReportDir, final, name)
			}
		}
		return config, false
	}
	acts, err := staleOnce()
	for _, a := range acts {
		t.Logf("cleaned state of an earlier run: %s", a)
	}
	if err != nil {
		t.Fatal(err)
	}
	return config, true
}

// guestSettings is the environment that carries this run's settings into
// the rig's guest, which sees neither the host's environment nor its
// flags: the resolved configuration (harness.Config.GuestEnv), and the
// scenarios' own knobs where they are set.
func guestSettings(cfg harness.Config) []string {
	env := cfg.GuestEnv()
	for _, k := range []string{"TXTIMEOUT_REPEAT", "TXTIMEOUT_QUEUE"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// rigBoot is one guest boot of a top-level test: the NIC model ("" for
// the rig's default or the user's TXTIMEOUT_NIC) and the guest's -test.run.
type rigBoot struct {
	nic, run string
}

// nicPlan says, for a top-level test, on which NIC model each of its
// subtests runs by default on the virtual rig: each scenario on a NIC
// where it can work, so that no scenario of the default run is
// inconclusive by design. virtio-net is the only model whose emulation
// backpressures when its partner stops reading (PartnerStall); QEMU's
// e1000 never backpressures, but its driver cleans TX in NAPI poll and
// resets the device on a timeout, so NapiStarve fires the watchdog there
// and exercises a real reset (kernel-facts.md section 9). A test without
// a plan boots once, on the default NIC.
var nicPlan = map[string][]planBoot{
	"TestTxTimeout": txTimeoutPlan(),
}

// planBoot is one NIC model of a plan and the subtests it runs.
type planBoot struct {
	nic      string
	subtests []string
}

// txTimeoutPlan groups txTimeoutScenarios by their rig NIC, in order.
func txTimeoutPlan() []planBoot {
	var plan []planBoot
	for _, sc := range txTimeoutScenarios {
		i := slices.IndexFunc(plan, func(p planBoot) bool { return p.nic == sc.rigNIC })
		if i < 0 {
			plan = append(plan, planBoot{nic: sc.rigNIC})
			i = len(plan) - 1
		}
		plan[i].subtests = append(plan[i].subtests, sc.name)
	}
	return plan
}

// bootsFor returns the guest boots that run topLevel with the host's
// -test.run sub-pattern sub (the part after the first '/'). A NIC chosen
// by the user (TXTIMEOUT_NIC) runs everything in one boot; otherwise each
// NIC of the plan boots once for the subtests the pattern selects, and
// not at all when it selects none of them.
func bootsFor(topLevel, userNIC, sub string) []rigBoot {
	top := "^" + topLevel + "$"
	plan, ok := nicPlan[topLevel]
	if userNIC != "" || !ok {
		run := top
		if sub != "" {
			run += "/" + sub
		}
		return []rigBoot{{nic: userNIC, run: run}}
	}
	first, rest := cutRunPattern(sub)
	re, err := regexp.Compile(first)
	if err != nil {
		// go test itself refuses a bad -run pattern; pass it on.
		return []rigBoot{{run: top + "/" + sub}}
	}
	var boots []rigBoot
	for _, p := range plan {
		var names []string
		for _, n := range p.subtests {
			if re.MatchString(n) {
				names = append(names, regexp.QuoteMeta(n))
			}
		}
		if len(names) == 0 {
			continue
		}
		run := top + "/^(" + strings.Join(names, "|") + ")$"
		if rest != "" {
			run += "/" + rest
		}
		boots = append(boots, rigBoot{nic: p.nic, run: run})
	}
	return boots
}

// hostRunSub is the part of this process's -test.run after its first
// level.
func hostRunSub() string {
	f := flag.Lookup("test.run")
	if f == nil {
		return ""
	}
	_, sub := cutRunPattern(f.Value.String())
	return sub
}

// cutRunPattern splits a -test.run pattern at its first '/' outside
// brackets and parentheses, as the testing package splits its levels.
func cutRunPattern(p string) (first, rest string) {
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
// run's report and rewrites the report files in dir. Each top-level test
// boots its own guest, whose report holds only its own scenarios; merged,
// the report directory describes the whole run. The guest's console log is
// kept as console-TOPLEVEL.log.
func mergeGuestReport(t *testing.T, guestDir, dir, topLevel string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("report directory: %v", err)
		return
	}
	if b, err := os.ReadFile(filepath.Join(guestDir, "console.log")); err == nil {
		if err := os.WriteFile(filepath.Join(dir, "console-"+topLevel+".log"), b, 0o644); err != nil {
			t.Errorf("keeping the guest console log: %v", err)
		}
	}
	g, err := harness.ReadReport(filepath.Join(guestDir, "report.json"))
	if err != nil {
		t.Errorf("the guest left no readable report (%v); %s is not in %s", err, topLevel, dir)
		return
	}
	if !guestReportMerged {
		// The DUT is the guest's: its kernel, driver and configuration.
		report.Kernel, report.Driver, report.Iface, report.NIC = g.Kernel, g.Driver, g.Iface, g.NIC
		report.Config = g.Config
		guestReportMerged = true
	}
	for _, s := range g.Scenarios {
		report.Add(s)
	}
	if err := report.WriteFiles(dir); err != nil {
		t.Errorf("writing the merged report: %v", err)
		return
	}
	t.Logf("report: %d scenario(s) of %s merged into %s", len(g.Scenarios), topLevel, dir)
}
