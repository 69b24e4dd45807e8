//go:build linux

package traffic

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"txtimeout/rig"
	"txtimeout/rig/guest"
)

// TestIntegrationTrafficRig boots the virtual rig (a Debian kernel under
// QEMU, virtio-net to a Go link partner) with this package's test binary
// and mirrors TestGuestTraffic: pktgen for real, with the seed's
// configuration scaled down, the kernel's own answers to a bad flag and to
// the seed's "config 1", a count-0 run stopped by its deadline, and the
// ICMP flood and Reachable against the partner.
func TestIntegrationTrafficRig(t *testing.T) {
	t.Parallel() // a boot takes seconds: overlap the host's own tests
	c := rig.ConfigFromEnv()
	if c.ReportDir == "" {
		// TXTIMEOUT_REPORT_DIR keeps the guest's pktgen captures.
		c.ReportDir = t.TempDir()
	}
	r := rig.RunTest(t, "txtimeout/traffic", "^TestGuestTraffic$", c)
	t.Logf("partner: %+v", r.PartnerStats)
	if r.PartnerStats.UDP == 0 {
		t.Errorf("the partner received no UDP datagram: pktgen's packets did not reach the wire")
	}
	if r.PartnerStats.EchoReplies == 0 || r.PartnerStats.Fragments == 0 {
		t.Errorf("the partner answered %d echo requests from %d fragments: the flood did not reach it fragmented",
			r.PartnerStats.EchoReplies, r.PartnerStats.Fragments)
	}
}

// TestGuestTraffic runs inside the rig's guest only.
func TestGuestTraffic(t *testing.T) {
	if !guest.Inside() {
		t.Skip("runs only inside the virtual rig's guest (TestIntegrationTrafficRig boots it)")
	}
	iface := os.Getenv("TXTIMEOUT_IFACE")
	peer := rig.PeerIP
	// The rig loads pktgen: a missing one here is a broken rig, not a skip.
	if err := PktgenAvailable(); err != nil {
		t.Fatalf("PktgenAvailable in the rig: %v", err)
	}

	t.Run("PktgenSeedScaledDown", func(t *testing.T) {
		threads := runtime.NumCPU()
		const perThread = 2000
		c := SeedConfig(iface, threads, SeedOptions{
			Packets: perThread * uint64(threads), DstMin: peer, DstMax: peer, DstMAC: rig.PeerMAC,
		})
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		res, err := RunPktgen(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, th := range res.Threads {
			t.Logf("thread %d: sent %d errors %d %.0f pps %.1f Mb/s", th.Thread, th.Sent, th.Errors, th.PPS, th.Mbps)
		}
		saveCapture(t, "seed-scaled", res)
		// pktgen checks the count after each burst, so a thread may send
		// up to burst-1 packets more.
		for i, th := range res.Threads {
			if d := c.Devices[i]; th.Sent < d.Count || th.Sent >= d.Count+uint64(d.Burst) {
				t.Errorf("thread %d sent %d, want %d..%d", th.Thread, th.Sent, d.Count, d.Count+uint64(d.Burst)-1)
			}
		}
		if res.PPS <= 0 || res.Mbps <= 0 {
			t.Errorf("no rate: %+v", res)
		}
		checkPktgenClean(t, iface, threads)
	})

	t.Run("UnknownFlagIsCaught", func(t *testing.T) {
		c := PktgenConfig{Devices: []PktgenDevice{{Iface: iface, Count: 10, Flags: []string{"TXTO_NO_SUCH_FLAG"}}}}
		_, err := RunPktgen(context.Background(), c)
		var pe *PktgenError
		if !errors.As(err, &pe) || pe.Err != nil || !strings.Contains(pe.Result, "TXTO_NO_SUCH_FLAG") {
			t.Fatalf("err = %v, want the kernel's Result line naming the flag after a successful write", err)
		}
		t.Logf("kernel: %v", err)
		checkPktgenClean(t, iface, 1)
	})

	t.Run("SeedConfigParameter", func(t *testing.T) {
		c := PktgenConfig{Devices: []PktgenDevice{{Iface: iface, Count: 10, Config: true}}}
		_, err := RunPktgen(context.Background(), c)
		if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), `No such parameter "config"`) {
			t.Fatalf("err = %v, want EINVAL and No such parameter \"config\"", err)
		}
		t.Logf("kernel: %v", err)
		checkPktgenClean(t, iface, 1)
	})

	t.Run("CountZeroStopsAtDeadline", func(t *testing.T) {
		c := PktgenConfig{Devices: []PktgenDevice{{Iface: iface, PktSize: 1400, Dst: peer, DstMAC: rig.PeerMAC, RateP: 20000}}}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		begin := time.Now()
		res, err := RunPktgen(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("stopped after %v: sent %d, %.0f pps", time.Since(begin), res.Sent, res.PPS)
		saveCapture(t, "count0-stopped", res)
		if res.Sent == 0 {
			t.Errorf("nothing sent in 1 s")
		}
		if took := time.Since(begin); took > 40*time.Second {
			t.Errorf("a 1 s run took %v", took)
		}
		checkPktgenClean(t, iface, 1)
	})

	t.Run("FloodLowRate", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		st, err := Flood(ctx, FloodConfig{Dst: peer, Iface: iface, Size: 2048, Interval: 20 * time.Millisecond, Count: 20, Senders: 2, Linger: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v", st)
		if st.Sent != 20 || st.Received != 20 {
			t.Errorf("sent %d received %d, want 20 and 20", st.Sent, st.Received)
		}
	})

	t.Run("FloodFullRate", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		st, err := Flood(ctx, FloodConfig{Dst: peer, Size: 2048, For: time.Second, Senders: 6, Linger: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v", st)
		if st.Sent == 0 || st.PPS <= 0 {
			t.Errorf("nothing sent: %+v", st)
		}
	})

	t.Run("Reachable", func(t *testing.T) {
		// Right after the full-rate flood the partner may still drop
		// replies on its full transmit queue (as a NIC drops on a full
		// ring): one echo request per second, as a recovery check does,
		// until one is answered, 10 s at most.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pace := time.NewTicker(time.Second)
		defer pace.Stop()
		for {
			rtt, err := Reachable(ctx, peer, 2048, time.Second)
			if err == nil {
				t.Logf("rtt %v", rtt)
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("no echo reply from the partner within 10 s of the flood: %v", err)
			case <-pace.C:
			}
		}
	})
}

// checkPktgenClean fails t if a device of iface is still attached to one
// of the first threads pktgen threads after a run.
func checkPktgenClean(t *testing.T, iface string, threads int) {
	t.Helper()
	for i := 0; i < threads; i++ {
		if _, err := os.Stat(fmt.Sprintf("%s/%s@%d", pktgenRoot, iface, i)); err == nil {
			t.Errorf("%s@%d still attached after the run", iface, i)
		}
	}
}

// saveCapture writes each device file read after a real run to the report
// directory (which the rig copies to the host), as pktgen-NAME-IFACE@N.txt:
// the source of the testdata/pktgen captures.
func saveCapture(t *testing.T, name string, res PktgenResult) {
	t.Helper()
	dir := os.Getenv("TXTIMEOUT_REPORT_DIR")
	if dir == "" {
		return
	}
	for _, th := range res.Threads {
		p := fmt.Sprintf("%s/pktgen-%s-%s@%d.txt", dir, name, th.Iface, th.Thread)
		if err := os.WriteFile(p, []byte(th.Raw), 0o644); err != nil {
			t.Errorf("save capture: %v", err)
		}
	}
}
