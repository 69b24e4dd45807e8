package rig

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inLoopGuest reports whether this process is the loop topology's test
// binary: a child of the guest init in hardware mode, with the partner
// port's namespace named.
func inLoopGuest() bool {
	return os.Getppid() == 1 && os.Getenv("TXTIMEOUT_PARTNER_NETNS") == LoopNetNSPath
}

// TestGuestLoop runs inside the loop topology's guest only, for
// TestIntegrationLoop: the hardware-mode environment, the partner port in
// its namespace with the partner's addresses, ping answered once (by the
// partner, not the port's kernel), and a measurement of the cable: frames
// cross in both directions, and what a receiver that has stopped (the
// partner port down) does to the sender's TX.
func TestGuestLoop(t *testing.T) {
	if !inLoopGuest() {
		t.Skip("runs only inside the loop topology's guest (TestIntegrationLoop boots it)")
	}
	for _, kv := range LoopEnv() {
		k, want, _ := strings.Cut(kv, "=")
		if got := os.Getenv(k); got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	if _, err := net.InterfaceByName(LoopPartnerIface); err == nil {
		t.Errorf("%s is in the DUT's namespace, want it in %s only", LoopPartnerIface, LoopNetNSPath)
	}
	ns, err := netns.GetFromPath(LoopNetNSPath)
	if err != nil {
		t.Fatalf("the partner port's namespace: %v", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	port := func() *netlink.LinkAttrs {
		t.Helper()
		l, err := h.LinkByName(LoopPartnerIface)
		if err != nil {
			t.Fatalf("%s in %s: %v", LoopPartnerIface, LoopNetNSPath, err)
		}
		return l.Attrs()
	}
	if a := port(); a.HardwareAddr.String() != PeerMAC.String() || a.Flags&net.FlagUp == 0 {
		t.Errorf("partner port %s: MAC %s, flags %v; want %s, up", a.Name, a.HardwareAddr, a.Flags, PeerMAC)
	}
	l, _ := h.LinkByName(LoopPartnerIface)
	addrs, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 || !addrs[0].IP.Equal(PeerIP) {
		t.Errorf("partner port addresses %v (%v), want %s/24", addrs, err, PeerIP)
	}

	st := ping(t, 56, 3)
	if st.PacketsRecv != 3 || st.PacketsRecvDuplicates != 0 {
		t.Errorf("ping of %s: %d of 3 replies, %d duplicates; want 3, none (the partner answers, the port's kernel does not)", PeerIP, st.PacketsRecv, st.PacketsRecvDuplicates)
	}

	// A stopped receiver: the partner port down. Offer UDP for 2 s and
	// count what eth0 sent and what the port received.
	txPort := func() uint64 { return port().Statistics.RxPackets }
	if err := h.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var attempts, sent atomic.Uint64
	tx0, rx0 := txPackets(t), txPort()
	stop := offerUDP(t, ctx, &attempts, &sent)
	time.Sleep(2 * time.Second) // the measurement's window
	stop()
	txDown, rxDown := txPackets(t)-tx0, txPort()-rx0
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	t.Logf("partner port down for 2 s: %d datagrams offered, %d sent; eth0 tx_packets +%d, the port received %d: %s",
		attempts.Load(), sent.Load(), txDown, rxDown, backpressure(txDown, sent.Load()))
	// Up again, the cable carries both ways.
	deadline := time.Now().Add(10 * time.Second)
	for port().RawFlags&unix.IFF_LOWER_UP == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := ping(t, 56, 3); st.PacketsRecv == 0 {
		t.Errorf("no echo reply after the partner port came back up")
	}
}

// backpressure says what a sender whose TX counter moved by tx while its
// receiver was stopped, of sent datagrams its socket took, saw.
func backpressure(tx, sent uint64) string {
	switch {
	case tx == 0:
		return "the sender's TX stopped (backpressure)"
	case tx*20 >= sent*19:
		return "the sender's TX went on (no backpressure: the frames were dropped)"
	default:
		return fmt.Sprintf("the sender's TX slowed to %d%% of what was offered (partial backpressure)", tx*100/sent)
	}
}
