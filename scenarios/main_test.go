package scenarios

import (
	"flag"
	"fmt"
	"os"
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
		stop := installSignalHandler(os.Stderr, os.Exit)
		code := m.Run()
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

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
		report.Driver = driverOf(config.Iface)
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
		rig.RunTest(t, "txtimeout/scenarios", "^"+topLevel+"$", rig.ConfigFromEnv())
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
