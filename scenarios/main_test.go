package scenarios

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
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
		rc := rig.ConfigFromEnv()
		final := rc.ReportDir
		if final == "" {
			final = config.ReportDir // the -report flag
		}
		if final != "" {
			rc.ReportDir = filepath.Join(t.TempDir(), "guest")
		}
		rig.RunTest(t, "txtimeout/scenarios", "^"+topLevel+"$", rc)
		if final != "" {
			mergeGuestReport(t, rc.ReportDir, final, topLevel)
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
