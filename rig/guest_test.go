package rig

import (
	"context"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	probing "github.com/prometheus-community/pro-bing"

	"txtimeout/faultinject"
	"txtimeout/rig/guest"
)

// TestGuestChecks runs inside the rig's guest only: TestIntegrationRigBoot
// boots the rig with this package's test binary and mirrors it. All guest
// checks share one boot, because a boot under TCG costs seconds.
func TestGuestChecks(t *testing.T) {
	if !guest.Inside() {
		t.Skip("runs only inside the virtual rig's guest (TestIntegrationRigBoot boots it)")
	}
	t.Run("Environment", func(t *testing.T) {
		for k, want := range map[string]string{
			"TXTIMEOUT_IFACE":      DUTIface,
			"TXTIMEOUT_PEER_IP":    PeerIP.String(),
			"TXTIMEOUT_PEER_MAC":   PeerMAC.String(),
			"TXTIMEOUT_PARTNER":    "inband",
			"TXTIMEOUT_REPORT_DIR": "/report",
		} {
			if got := os.Getenv(k); got != want {
				t.Errorf("%s=%q, want %q", k, got, want)
			}
		}
		if _, err := LookupNIC(os.Getenv("TXTIMEOUT_NIC")); err != nil || os.Getenv("TXTIMEOUT_NIC") == "" {
			t.Errorf("TXTIMEOUT_NIC=%q: not a NIC model", os.Getenv("TXTIMEOUT_NIC"))
		}
		// The scenarios need these; the rig loads the modules.
		for _, p := range []string{
			"/sys/module/sch_netem",
			"/proc/net/pktgen/pgctrl",
			"/sys/kernel/tracing/events/net/net_dev_xmit_timeout/enable",
			"/dev/kmsg",
		} {
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%v", err)
			}
		}
		// A report file travels to the host's report directory.
		if err := os.WriteFile("/report/guest-checks.txt", []byte("written in the guest\n"), 0o644); err != nil {
			t.Error(err)
		}
	})
	t.Run("Eth0Up", func(t *testing.T) {
		ifi, err := net.InterfaceByName(DUTIface)
		if err != nil {
			t.Fatal(err)
		}
		if ifi.Flags&net.FlagUp == 0 {
			t.Errorf("%s is not up", DUTIface)
		}
		if ifi.HardwareAddr.String() != DUTMAC.String() {
			t.Errorf("%s MAC %s, want %s", DUTIface, ifi.HardwareAddr, DUTMAC)
		}
		if got := readSys(t, "carrier"); got != "1" {
			t.Errorf("carrier %q, want 1", got)
		}
		// The NIC's driver is the last module the rig loads for it.
		nic, _ := LookupNIC(os.Getenv("TXTIMEOUT_NIC"))
		want := nic.Modules[len(nic.Modules)-1]
		drv, err := os.Readlink("/sys/class/net/" + DUTIface + "/device/driver")
		if err != nil || !strings.HasSuffix(drv, "/"+want) {
			t.Errorf("driver link %q (%v), want .../%s", drv, err, want)
		}
		addrs, _ := ifi.Addrs()
		found := false
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(DUTIP) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s has %v, want %s", DUTIface, addrs, DUTIP)
		}
	})
	t.Run("Ping", func(t *testing.T) {
		// 1472 bytes fill one 1500-byte frame exactly; 2048 bytes
		// (the seed's size) travel as two fragments each way.
		for _, size := range []int{1472, 2048} {
			t.Run(strconv.Itoa(size), func(t *testing.T) {
				st := ping(t, size, 3)
				t.Logf("%d-byte echo: sent %d, received %d, rtt avg %v", size, st.PacketsSent, st.PacketsRecv, st.AvgRtt)
				if st.PacketsSent != 3 || st.PacketsRecv != st.PacketsSent {
					t.Errorf("sent %d echo requests of %d bytes, got %d replies; want 3 and 3", st.PacketsSent, size, st.PacketsRecv)
				}
			})
		}
	})
	t.Run("StallFreezesTX", testStallFreezesTX)
	t.Run("ResumeEndsStall", testResumeEndsStall)
}

// needGuest skips a test that runs only inside the rig's guest, where
// the host test bootedBy boots it.
func needGuest(t *testing.T, bootedBy string) {
	t.Helper()
	if !guest.Inside() {
		t.Skip("runs only inside the virtual rig's guest (" + bootedBy + " boots it)")
	}
}

func readSys(t *testing.T, name string) string {
	t.Helper()
	return readSysOf(t, DUTIface, name)
}

func readSysOf(t *testing.T, iface, name string) string {
	t.Helper()
	b, err := os.ReadFile("/sys/class/net/" + iface + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func txPackets(t *testing.T) uint64 { return txPacketsOf(t, DUTIface) }

func txPacketsOf(t *testing.T, iface string) uint64 {
	n, err := strconv.ParseUint(readSysOf(t, iface, "statistics/tx_packets"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func ping(t *testing.T, size, count int) *probing.Statistics {
	t.Helper()
	return pingPeer(t, PeerIP, size, count)
}

func pingPeer(t *testing.T, peer net.IP, size, count int) *probing.Statistics {
	t.Helper()
	p, err := probing.NewPinger(peer.String())
	if err != nil {
		t.Fatal(err)
	}
	p.SetPrivileged(true)
	p.SetLogger(probing.NoopLogger{})
	p.Size = size
	p.Count = count
	p.Interval = 200 * time.Millisecond
	p.Timeout = 20 * time.Second
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	return p.Statistics()
}

// testStallFreezesTX asks the partner to stall with the in-band control
// frame, keeps offering UDP datagrams, and checks that the driver's TX
// counter stood still for a while during the stall and moves again after it.
func testStallFreezesTX(t *testing.T) {
	const stall = 6 * time.Second
	ifi, err := net.InterfaceByName(DUTIface)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := packet.Listen(ifi, packet.Raw, faultinject.EtherTypeCtrl, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	nonce := rand.Uint32()
	req, err := faultinject.CtrlFrame{Command: faultinject.CmdStall, Duration: stall, Nonce: nonce}.MarshalEthernet(PeerMAC, ifi.HardwareAddr)
	if err != nil {
		t.Fatal(err)
	}
	// Send until acknowledged (the partner acknowledges repeats without
	// stalling again).
	var ackAt time.Time
	buf := make([]byte, 1514)
	for deadline := time.Now().Add(10 * time.Second); ackAt.IsZero() && time.Now().Before(deadline); {
		if _, err := pc.WriteTo(req, &packet.Addr{HardwareAddr: PeerMAC}); err != nil {
			t.Fatal(err)
		}
		pc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				break
			}
			f, _, err := faultinject.ParseCtrlEthernet(buf[:n])
			if err == nil && f.Command == faultinject.CmdStall|faultinject.AckBit && f.Nonce == nonce {
				ackAt = time.Now()
				break
			}
		}
	}
	if ackAt.IsZero() {
		t.Fatal("the partner did not acknowledge the stall request within 10s")
	}
	stallEnd := ackAt.Add(stall)

	ctx, cancel := context.WithDeadline(context.Background(), stallEnd.Add(20*time.Second))
	defer cancel()
	var attempts, sent atomic.Uint64
	stopUDP := offerUDP(t, ctx, &attempts, &sent)
	defer stopUDP()

	type sample struct {
		at           time.Time
		tx, attempts uint64
	}
	var samples []sample
	for time.Now().Before(stallEnd.Add(-300 * time.Millisecond)) {
		samples = append(samples, sample{time.Now(), txPackets(t), attempts.Load()})
		time.Sleep(100 * time.Millisecond)
	}
	// Frozen: a window of at least 2 s inside the stall in which tx_packets
	// did not move although the sender kept offering datagrams.
	var frozen time.Duration
	var frozenAt uint64
	for i := range samples {
		for j := len(samples) - 1; j > i; j-- {
			d := samples[j].at.Sub(samples[i].at)
			if samples[j].tx == samples[i].tx && samples[j].attempts > samples[i].attempts && d > frozen {
				frozen, frozenAt = d, samples[i].tx
				break
			}
		}
	}
	first, last := samples[0], samples[len(samples)-1]
	t.Logf("during the %v stall: tx_packets %d -> %d, %d datagrams offered (%d accepted); longest frozen window %v",
		stall, first.tx, last.tx, last.attempts-first.attempts, sent.Load(), frozen.Round(100*time.Millisecond))
	if frozen < 2*time.Second {
		t.Errorf("tx_packets never stood still for 2s during the stall (longest %v): the stall did not stop the device", frozen)
	}
	// After the stall, the queue drains and the counter moves again.
	deadline := time.Now().Add(20 * time.Second)
	for txPackets(t) <= frozenAt {
		if time.Now().After(deadline) {
			t.Fatalf("tx_packets stayed at %d for 20s after the stall ended", frozenAt)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopUDP()
	t.Logf("tx_packets moving again %v after the stall's end", time.Since(stallEnd).Round(10*time.Millisecond))
	st := ping(t, 56, 1)
	if st.PacketsRecv != 1 {
		t.Errorf("no echo reply after the stall")
	}
}

// offerUDP sends 1400-byte datagrams to the partner's discard port every
// 2 ms until ctx ends or stop is called, counting attempts and successful
// writes; a write deadline keeps it offering when a stalled queue has
// filled the socket's send buffer. stop may be called more than once.
func offerUDP(t *testing.T, ctx context.Context, attempts, sent *atomic.Uint64) (stop func()) {
	t.Helper()
	return offerUDPTo(t, ctx, PeerIP, attempts, sent)
}

func offerUDPTo(t *testing.T, ctx context.Context, peer net.IP, attempts, sent *atomic.Uint64) (stop func()) {
	t.Helper()
	udp, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: peer, Port: 9})
	if err != nil {
		t.Fatalf("UDP socket to the partner: %v", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer udp.Close()
		payload := make([]byte, 1400)
		for ctx.Err() == nil {
			attempts.Add(1)
			udp.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
			if _, err := udp.Write(payload); err == nil {
				sent.Add(1)
			}
			time.Sleep(2 * time.Millisecond) // pacing, not a wait for an event
		}
	}()
	return func() { cancel(); <-done }
}
