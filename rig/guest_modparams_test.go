package rig

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestGuestModParams runs inside the guest only: TestIntegrationModParams
// boots e1000e with e1000e.IntMode=1 and mirrors it. The evidence that the
// parameter reached the driver is /proc/interrupts, since e1000e does not
// export IntMode in sysfs: in its default MSI-X mode it requests the
// vectors eth0-rx-0, eth0-tx-0 and eth0, with IntMode 0 (INTx) or 1 (MSI)
// one vector named eth0 (measured with IntMode=1, Debian 6.1 under QEMU
// TCG: "10: 6 IO-APIC 10-fasteoi eth0", the INTx line). Without the parameter (a default e1000e boot, as
// `txtimeout rig -nic e1000e -pkg txtimeout/rig -- -run TestGuestModParams`
// gives) it checks the converse, so that the check is seen to tell them
// apart.
func TestGuestModParams(t *testing.T) {
	needGuest(t, "TestIntegrationModParams")
	if nic := os.Getenv("TXTIMEOUT_NIC"); nic != "e1000e" {
		t.Fatalf("TXTIMEOUT_NIC=%q: this check needs the e1000e NIC", nic)
	}
	mode := ""
	for _, p := range strings.Fields(os.Getenv("TXTIMEOUT_MODPARAMS")) {
		if v, ok := strings.CutPrefix(p, "e1000e.IntMode="); ok {
			mode = v
		}
	}
	b, err := os.ReadFile("/proc/interrupts")
	if err != nil {
		t.Fatal(err)
	}
	names, lines := ifaceIRQs(string(b), DUTIface)
	t.Logf("TXTIMEOUT_MODPARAMS=%q; %s vectors in /proc/interrupts:\n%s", os.Getenv("TXTIMEOUT_MODPARAMS"), DUTIface, strings.Join(lines, "\n"))
	tx := DUTIface + "-tx-0"
	switch mode {
	case "0", "1":
		if slices.Contains(names, tx) || !slices.Equal(names, []string{DUTIface}) {
			t.Errorf("e1000e.IntMode=%s: vectors %q, want the one vector %s (no MSI-X, so no %s)", mode, names, DUTIface, tx)
		}
	case "", "2":
		if !slices.Contains(names, tx) {
			t.Errorf("e1000e in MSI-X mode (IntMode %q): vectors %q, want %s among them", mode, names, tx)
		}
	default:
		t.Fatalf("e1000e.IntMode=%s: this check knows 0, 1 and 2", mode)
	}
}

// ifaceIRQs returns the IRQ names in /proc/interrupts text that belong to
// iface (iface itself or iface-SUFFIX), and the lines they are on. A line
// ends with its handlers' names, separated by ", " when the IRQ is shared.
func ifaceIRQs(text, iface string) (names, lines []string) {
	for _, line := range strings.Split(text, "\n") {
		found := false
		for _, f := range strings.Fields(line) {
			f = strings.TrimSuffix(f, ",")
			if f == iface || strings.HasPrefix(f, iface+"-") {
				names = append(names, f)
				found = true
			}
		}
		if found {
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	return names, lines
}

func TestIfaceIRQs(t *testing.T) {
	// /proc/interrupts of a 2-vCPU guest (Debian 6.1) with e1000e in
	// MSI-X mode, shortened, and a shared INTx line.
	text := `           CPU0       CPU1
  0:         46          0   IO-APIC   2-edge      timer
 11:          0          0   IO-APIC  11-fasteoi   uhci_hcd:usb1, eth0
 24:          0         12   PCI-MSI 16384-edge      eth0-rx-0
 25:         30          0   PCI-MSI 16385-edge      eth0-tx-0
 26:          1          0   PCI-MSI 16386-edge      eth0
 27:          1          0   PCI-MSI 16387-edge      eth01
NMI:          0          0   Non-maskable interrupts
`
	names, lines := ifaceIRQs(text, "eth0")
	want := []string{"eth0", "eth0-rx-0", "eth0-tx-0", "eth0"}
	if !slices.Equal(names, want) || len(lines) != 4 {
		t.Errorf("ifaceIRQs: names %q (want %q), lines %q", names, want, lines)
	}
}
