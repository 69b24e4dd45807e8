package scenarios

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"txtimeout/harness"
)

// kernelRelease is uname -r of the machine the scenarios run on.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// driverOf is the name of iface's driver from sysfs, or "" when unknown.
func driverOf(iface string) string {
	if iface == "" {
		return ""
	}
	l, err := os.Readlink(filepath.Join("/sys/class/net", iface, "device/driver"))
	if err != nil {
		return ""
	}
	return filepath.Base(l)
}

// peer returns the configured partner IP and MAC (either may be nil).
func peer(ip, mac string) (net.IP, net.HardwareAddr) {
	var hw net.HardwareAddr
	if mac != "" {
		hw, _ = net.ParseMAC(mac) // LoadConfig validated it
	}
	return net.ParseIP(ip).To4(), hw
}

// skip records a scenario that cannot run here in the report (so that
// report.json and report.ktap list it with its reason), then skips it.
func skip(t *testing.T, reason string) {
	t.Helper()
	harness.Finish(t, report, harness.ScenarioReport{
		Result:  harness.Skip,
		Reason:  reason,
		Verdict: harness.Verdict{FirstTimeoutMS: -1, RecoverMS: -1},
	})
}

func skipf(t *testing.T, format string, a ...any) {
	t.Helper()
	skip(t, fmt.Sprintf(format, a...))
}
