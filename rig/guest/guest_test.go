package guest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"txtimeout/rig/internal/guestproto"
)

func TestInsideOnHost(t *testing.T) {
	t.Setenv("TXTIMEOUT_RIG", "1")
	// The test binary's parent is the go command (or a shell), not the
	// guest init: the variable alone must not make the host a guest.
	if os.Getppid() != 1 && Inside() {
		t.Error("Inside() with TXTIMEOUT_RIG=1 but a parent other than PID 1")
	}
	t.Setenv("TXTIMEOUT_RIG", "")
	if Inside() {
		t.Error("Inside() without TXTIMEOUT_RIG")
	}
}

func TestOutsideGuest(t *testing.T) {
	t.Setenv("TXTIMEOUT_RIG", "")
	if err := ResumePartner(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ResumePartner outside the guest = %v, want an error matching os.ErrNotExist", err)
	}
	if err := ResumePartnerOn("eth1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ResumePartnerOn outside the guest = %v, want an error matching os.ErrNotExist", err)
	}
	if _, err := NICs(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("NICs outside the guest = %v, want an error matching os.ErrNotExist", err)
	}
	for _, bad := range []string{"", "eth1 x", "eth1\n"} {
		if err := ResumePartnerOn(bad); err == nil || errors.Is(err, os.ErrNotExist) {
			t.Errorf("ResumePartnerOn(%q) = %v, want a refusal of the name", bad, err)
		}
	}
	if _, err := ModuleFile("e1000e"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ModuleFile outside the guest = %v, want an error matching os.ErrNotExist", err)
	}
}

// moduleIn reads what the host packed for the init (the same JSON) and
// converts its entry, every field kept.
func TestModuleIn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rig.json")
	want := guestproto.ModuleFile{Name: "e1000e", Path: "/lib/modules/rig/e1000e.ko", Compressed: true, Params: "IntMode=1"}
	b, err := json.Marshal(guestproto.Config{Modules: []guestproto.ModuleFile{{Name: "ptp", Path: "/p.ko"}, want}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := moduleIn(path, "e1000e")
	if err != nil {
		t.Fatal(err)
	}
	if got := guestproto.ModuleFile(m); got != want {
		t.Errorf("moduleIn = %+v, want %+v", got, want)
	}
	if _, err := moduleIn(path, "igb"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("moduleIn(igb) = %v, want an error matching os.ErrNotExist", err)
	}
}

// nicsIn reads the NICs the host packed for the init, eth0 first, and
// leaves out a partner port in a namespace (the loop topology's).
func TestNICsIn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rig.json")
	c := guestproto.Config{NICs: []guestproto.NIC{
		{Model: "virtio-net-pci", Iface: "eth0", MAC: "52:54:00:12:34:56", Addr: "198.18.0.2/24", PeerIP: "198.18.0.1", PeerMAC: "02:74:78:00:00:01"},
		{Model: "e1000", Iface: "eth1", MAC: "52:54:00:12:35:56", Addr: "198.18.1.2/24", PeerIP: "198.18.1.1", PeerMAC: "02:74:78:00:01:01"},
		{Model: "e1000", Iface: "eth2", MAC: "52:54:00:12:36:56", Addr: "198.18.2.2/24", PeerIP: "198.18.2.1", PeerMAC: "02:74:78:00:02:01", NetNS: "partner"},
	}}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	nics, err := nicsIn(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(nics) != 2 {
		t.Fatalf("nicsIn = %+v, want eth0 and eth1", nics)
	}
	n := nics[1]
	if n.Model != "e1000" || n.Iface != "eth1" || n.MAC.String() != "52:54:00:12:35:56" || n.IP.String() != "198.18.1.2" ||
		n.PeerIP.String() != "198.18.1.1" || n.PeerMAC.String() != "02:74:78:00:01:01" {
		t.Errorf("eth1 = %+v", n)
	}
	if nics[0].Iface != "eth0" || len(nics[0].PeerIP) != 4 {
		t.Errorf("eth0 = %+v, want eth0 with a 4-byte peer IP", nics[0])
	}
	c.NICs[1].PeerMAC = "nonsense"
	b, _ = json.Marshal(c)
	os.WriteFile(path, b, 0o644)
	if _, err := nicsIn(path); err == nil {
		t.Error("nicsIn accepted a malformed peer MAC")
	}
}
