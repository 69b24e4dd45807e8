package rig

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"txtimeout/harness"
	"txtimeout/rig/guest"
)

// TestGuestMoreNICs runs inside the guest only, for
// TestIntegrationMoreNICs (virtio-net-pci eth0, e1000 eth1): guest.NICs
// lists both with the rig's addressing scheme, each partner answers ping
// on its own link, and a stall of eth1's partner ends early through
// guest.ResumePartnerOn("eth1").
func TestGuestMoreNICs(t *testing.T) {
	needGuest(t, "TestIntegrationMoreNICs")
	nics, err := guest.NICs()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("guest.NICs: %+v", nics)
	if len(nics) != 2 {
		t.Fatalf("guest.NICs lists %d NICs, want eth0 and eth1", len(nics))
	}
	for i, n := range nics {
		want := hostLink(i, n.Model)
		if n.Iface != want.Iface || n.MAC.String() != want.MAC.String() || !n.IP.Equal(want.IP) || !n.PeerIP.Equal(want.PeerIP) || n.PeerMAC.String() != want.PeerMAC.String() {
			t.Errorf("NIC %d = %+v, want %+v", i, n, want)
		}
		ifi, err := net.InterfaceByName(n.Iface)
		if err != nil {
			t.Fatal(err)
		}
		if ifi.HardwareAddr.String() != n.MAC.String() {
			t.Errorf("%s has MAC %s, want %s", n.Iface, ifi.HardwareAddr, n.MAC)
		}
	}
	if nics[0].Model != "virtio-net-pci" || nics[1].Model != "e1000" {
		t.Errorf("models %s, %s: want virtio-net-pci, e1000", nics[0].Model, nics[1].Model)
	}
	for _, n := range nics {
		// The init waits for eth0's carrier only (e1000's comes ~2 s late).
		if err := harness.WaitCarrier(context.Background(), n.Iface, 15*time.Second); err != nil {
			t.Fatal(err)
		}
		if st := pingPeer(t, n.PeerIP, 56, 3); st.PacketsRecv != 3 {
			t.Errorf("%s: %d of 3 echo replies from %s", n.Iface, st.PacketsRecv, n.PeerIP)
		}
	}
	t.Run("ResumeEth1", func(t *testing.T) { testResumeOn(t, nics[1]) })
}

// testResumeOn stalls n's partner for 15 s and has Restore end the stall
// with guest.ResumePartnerOn: Restore must return, with the partner's
// acknowledgement, well before the stall's own end. QEMU's e1000 does
// not backpressure, so TX does not freeze; the host checks that the
// request reached eth1's partner and no other (Result.Resumes, Links).
func testResumeOn(t *testing.T, n guest.NIC) {
	const stall = 15 * time.Second
	hook := func(context.Context) error { return guest.ResumePartnerOn(n.Iface) }
	s, ctx := injectStall(t, n.Iface, n.PeerMAC, stall, hook)
	until := s.Until()
	if err := s.Restore(ctx); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Log(s.Describe())
	if left := time.Until(until); left < 5*time.Second {
		t.Errorf("Restore returned %v before the stall's own end: ResumePartnerOn(%s) did not end it", left, n.Iface)
	}
	if d := s.Describe(); !strings.Contains(d, "ended early") {
		t.Errorf("Describe = %q, want it to say the stall ended early", d)
	}
	if st := pingPeer(t, n.PeerIP, 56, 1); st.PacketsRecv != 1 {
		t.Errorf("no echo reply from %s after the resumed stall", n.PeerIP)
	}
}
