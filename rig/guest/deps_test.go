package guest

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The guest init and this package link no host side: not package rig (the
// QEMU launcher, the partner, the initramfs), nor anything under it but
// this package and the protocol.
func TestGuestSideLinksNoLauncher(t *testing.T) {
	for _, pkg := range []string{"txtimeout/rig/guestinit", "txtimeout/rig/guest"} {
		cmd := exec.Command("go", "list", "-deps", pkg)
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		if !slices.Contains(deps, "txtimeout/rig/internal/guestproto") {
			t.Fatalf("go list -deps %s does not list the protocol package: the check below would prove nothing:\n%s", pkg, out)
		}
		for _, d := range deps {
			if d == "txtimeout/rig" || strings.HasPrefix(d, "txtimeout/rig/") && d != pkg &&
				d != "txtimeout/rig/guest" && d != "txtimeout/rig/internal/guestproto" {
				t.Errorf("%s depends on %s, a host-side package", pkg, d)
			}
		}
	}
}
