package partner

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"txtimeout/faultinject"
)

// The veth rig: the DUT's end txd0 (dutMAC, dutIP/24) in one namespace, the
// partner's end txp0 (DefaultMAC, no address: the partner answers for
// DefaultIP, not the kernel) in another. IPv6 is off in both, so that no
// frame but the test's crosses the link.
const (
	dutIface     = "txd0"
	partnerIface = "txp0"
)

// veth is a veth pair between two namespaces of the test's.
type veth struct {
	dutNS, partnerNS string // names under /run/netns
}

func (v veth) path(ns string) string { return "/run/netns/" + ns }

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("skipping: needs root for network namespaces and AF_PACKET (run as root)")
	}
}

func ipCmd(tb testing.TB, args ...string) {
	tb.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		tb.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

var vethCount atomic.Int32

// newVeth creates the veth rig and removes it in tb's cleanup.
func newVeth(tb testing.TB) veth {
	tb.Helper()
	requireRoot(tb)
	// Unique on the machine: this process's id and a count.
	sfx := fmt.Sprintf("%d-%d", os.Getpid(), vethCount.Add(1))
	v := veth{dutNS: "txto-pd-" + sfx, partnerNS: "txto-pp-" + sfx}
	for _, ns := range []string{v.dutNS, v.partnerNS} {
		ipCmd(tb, "netns", "add", ns)
		tb.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		if out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw",
			"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1").CombinedOutput(); err != nil {
			tb.Fatalf("disabling IPv6 in %s: %v: %s", ns, err, out)
		}
	}
	ipCmd(tb, "-n", v.dutNS, "link", "add", dutIface, "address", dutMAC.String(), "type", "veth",
		"peer", "name", partnerIface, "netns", v.partnerNS, "address", DefaultMAC.String())
	ipCmd(tb, "-n", v.dutNS, "addr", "add", dutIP.String()+"/24", "dev", dutIface)
	ipCmd(tb, "-n", v.dutNS, "link", "set", dutIface, "up")
	ipCmd(tb, "-n", v.partnerNS, "link", "set", partnerIface, "up")
	// Until both ends are up, the qdisc is noop and drops silently.
	end := time.Now().Add(deadline)
	for {
		var running bool
		v.in(tb, v.dutNS, func() error {
			ifi, err := net.InterfaceByName(dutIface)
			running = err == nil && ifi.Flags&net.FlagRunning != 0
			return nil
		})
		if running {
			return v
		}
		if time.Now().After(end) {
			tb.Fatalf("veth not running after %v", deadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// in runs fn on an OS thread in namespace ns: sockets it opens stay there.
// The thread is never unlocked, so the runtime ends it with its goroutine
// instead of handing it, still in ns, to another.
func (v veth) in(tb testing.TB, ns string, fn func() error) {
	tb.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err == nil {
			defer h.Close()
			err = netns.Set(h)
		}
		if err == nil {
			err = fn()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		tb.Fatalf("in namespace %s: %v", ns, err)
	}
}

// pauseSeen is a PAUSE frame the DUT's end received.
type pauseSeen struct {
	at     time.Time
	quanta uint16
	src    net.HardwareAddr
	dst    string
}

// packetEnd is the DUT's end on txd0. Its reader takes every frame off the
// socket at once, so none is lost to a full socket buffer while the test
// waits for something else: PAUSE frames are set apart (pauses), the rest
// queued for recvFrame.
type packetEnd struct {
	c      *packet.Conn
	frames chan []byte
	mu     sync.Mutex
	pauses []pauseSeen
	lost   int // frames dropped for a full queue
}

func (e *packetEnd) readLoop() {
	buf := make([]byte, MaxFrameLen)
	for {
		n, _, err := e.c.ReadFrom(buf)
		if err != nil {
			close(e.frames)
			return
		}
		if q, src, err := faultinject.ParsePause(buf[:n]); err == nil {
			e.mu.Lock()
			e.pauses = append(e.pauses, pauseSeen{time.Now(), q, src, net.HardwareAddr(buf[0:6]).String()})
			e.mu.Unlock()
			continue
		}
		select {
		case e.frames <- append([]byte(nil), buf[:n]...):
		default:
			e.mu.Lock()
			e.lost++
			e.mu.Unlock()
		}
	}
}

func (e *packetEnd) sendFrame(frame []byte) error {
	e.c.SetWriteDeadline(time.Now().Add(deadline))
	_, err := e.c.WriteTo(frame, &packet.Addr{HardwareAddr: net.HardwareAddr(frame[0:6])})
	return err
}

func (e *packetEnd) recvFrame() ([]byte, error) { return e.recvWithin(deadline) }

// recvWithin returns the next frame that is not a PAUSE frame.
func (e *packetEnd) recvWithin(d time.Duration) ([]byte, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case b, ok := <-e.frames:
		if !ok {
			return nil, net.ErrClosed
		}
		return b, nil
	case <-t.C:
		e.mu.Lock()
		defer e.mu.Unlock()
		return nil, fmt.Errorf("no frame within %v (%d lost to a full queue)", d, e.lost)
	}
}

// paused returns the PAUSE frames received so far.
func (e *packetEnd) paused() []pauseSeen {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]pauseSeen(nil), e.pauses...)
}

// packetRig serves c over AF_PACKET on txp0 of a new veth rig, the DUT's
// end an AF_PACKET socket on txd0.
func packetRig(tb testing.TB, c Config) (*rig, veth) {
	tb.Helper()
	v := newVeth(tb)
	var pl *PacketLink
	v.in(tb, v.partnerNS, func() (err error) { pl, err = OpenPacket(partnerIface, tb.Logf); return err })
	end := &packetEnd{frames: make(chan []byte, 4096)}
	v.in(tb, v.dutNS, func() error {
		ifi, err := net.InterfaceByName(dutIface)
		if err != nil {
			return err
		}
		end.c, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		if err != nil {
			return err
		}
		return control(end.c, func(fd int) error {
			return unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
		})
	})
	go end.readLoop()
	c.Logf = tb.Logf
	r := &rig{p: newPartner(tb, c), dut: end, done: make(chan error, 1)}
	o := faultinject.Options{NetNS: v.path(v.partnerNS), StateDir: tb.TempDir()}
	r.serveInBackground(tb, func(ctx context.Context) error { return r.p.ServePacket(ctx, pl, o) }, pl, end.c)
	return r, v
}

func init() {
	linkRigs = append(linkRigs, linkRig{"packet", func(tb testing.TB, c Config) *rig { r, _ := packetRig(tb, c); return r }})
}

// checkPauses checks every PAUSE frame the DUT received: from the
// partner's MAC to the reserved address, asking for 0xFFFF quanta.
func checkPauses(t *testing.T, ps []pauseSeen) {
	t.Helper()
	for i, p := range ps {
		if p.quanta != faultinject.DefaultQuanta || p.src.String() != DefaultMAC.String() || p.dst != faultinject.PauseDst.String() {
			t.Fatalf("PAUSE frame %d: quanta %#x from %s to %s, want %#x from %s to %s",
				i, p.quanta, p.src, p.dst, faultinject.DefaultQuanta, DefaultMAC, faultinject.PauseDst)
		}
	}
}

// expectFloodOver checks that no PAUSE frame comes after the stall's end:
// an ARP round trip started after it orders every frame the flood sent
// before it, and then the link must stay free of PAUSE frames for quiet
// (many resend intervals: 1.7 ms on a veth's 10 Gb/s).
func expectFloodOver(t *testing.T, r *rig, e *packetEnd) []pauseSeen {
	t.Helper()
	r.send(t, arpWho(t, DefaultIP))
	r.recv(t)
	before := e.paused()
	const quiet = 200 * time.Millisecond
	if b, err := e.recvWithin(quiet); err == nil {
		t.Errorf("unexpected frame after the stall: %x", b)
	}
	if after := e.paused(); len(after) != len(before) {
		t.Errorf("%d PAUSE frames after the stall's end", len(after)-len(before))
	}
	return before
}

// TestIntegrationPacketStallFloodsPause: on a stall frame the partner
// floods PAUSE frames at the DUT (the first before its acknowledgement),
// and the flood stops by itself when the stall's time is up.
func TestIntegrationPacketStallFloodsPause(t *testing.T) {
	const d = time.Second
	r, _ := packetRig(t, Config{})
	e := r.dut.(*packetEnd)
	r.send(t, stallFrame(t, d, 0xfeed))
	r.expectAck(t, faultinject.CmdStall, d, 0xfeed)
	if len(e.paused()) == 0 {
		t.Error("no PAUSE frame before the acknowledgement")
	}
	start := r.expectEvent(t, true, 0xfeed)
	// The partner still reads during the flood: an ARP request is answered.
	r.send(t, arpWho(t, DefaultIP))
	r.recv(t)
	end := r.expectEvent(t, false, 0xfeed)
	if end.For < d {
		t.Errorf("stall lasted %v, asked %v", end.For, d)
	}
	ps := expectFloodOver(t, r, e)
	checkPauses(t, ps)
	if len(ps) < 2 {
		t.Fatalf("%d PAUSE frames in a %v stall, want a flood", len(ps), d)
	}
	if last := ps[len(ps)-1].at; last.Before(start.At.Add(d / 2)) {
		t.Errorf("last PAUSE frame %v after the stall's start, before half its %v", last.Sub(start.At), d)
	}
	var gap time.Duration
	for i := 1; i < len(ps); i++ {
		gap = max(gap, ps[i].at.Sub(ps[i-1].at))
	}
	t.Logf("%d PAUSE frames received in %v, longest gap %v as the test's reader saw them", len(ps),
		ps[len(ps)-1].at.Sub(ps[0].at).Round(time.Millisecond), gap.Round(time.Microsecond))
	if s := r.p.Stats(); s.Stalls != 1 || s.Stalled || s.Ctrl != 1 {
		t.Errorf("stats %+v, want 1 stall over, 1 control frame", s)
	}
}

// TestIntegrationPacketResumeEndsFlood: a resume frame ends the flood
// early, and its acknowledgement comes once the flood is over.
func TestIntegrationPacketResumeEndsFlood(t *testing.T) {
	r, _ := packetRig(t, Config{})
	e := r.dut.(*packetEnd)
	r.send(t, stallFrame(t, time.Minute, 0xabc))
	r.expectAck(t, faultinject.CmdStall, time.Minute, 0xabc)
	r.expectEvent(t, true, 0xabc)
	// The flood renews its pause (1.7 ms apart on a veth) before the
	// resume comes.
	for end := time.Now().Add(deadline); len(e.paused()) < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d PAUSE frames %v into the stall, want a flood", len(e.paused()), deadline)
		}
	}
	resume, err := faultinject.CtrlFrame{Command: faultinject.CmdResume, Nonce: 0xdef}.MarshalEthernet(DefaultMAC, dutMAC)
	if err != nil {
		t.Fatal(err)
	}
	r.send(t, resume)
	r.expectAck(t, faultinject.CmdResume, 0, 0xdef)
	acked := len(e.paused())
	end := r.expectEvent(t, false, 0xabc)
	if end.For >= time.Minute {
		t.Errorf("stall lasted %v after the resume frame", end.For)
	}
	ps := expectFloodOver(t, r, e)
	checkPauses(t, ps)
	if len(ps) != acked {
		t.Errorf("%d PAUSE frames after the resume's acknowledgement", len(ps)-acked)
	}
}

// TestIntegrationStallInjectorAgainstPartner runs faultinject's stall
// injector on the DUT's end against the partner, as PartnerStall does on
// a hardware rig: Inject returns once the partner has acknowledged and
// floods; Restore with a resume hook ends the flood early, and without
// one waits for the stall to run out.
func TestIntegrationStallInjectorAgainstPartner(t *testing.T) {
	r, v := packetRig(t, Config{})
	e := r.dut.(*packetEnd)
	// The test's DUT end counts PAUSE frames while the injector talks to
	// the partner on its own socket.
	opt := faultinject.Options{NetNS: v.path(v.dutNS), StateDir: t.TempDir(), AllowNoTxTimeout: true}
	for _, tc := range []struct {
		name   string
		d      time.Duration
		resume func(context.Context) error
		early  bool
	}{
		{"resume hook", time.Minute, func(context.Context) error { return nil }, true},
		{"runs out", 500 * time.Millisecond, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := faultinject.NewStall(dutIface, faultinject.StallConfig{For: tc.d, Resume: tc.resume}, opt)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			n0 := len(e.paused())
			if err := s.Inject(ctx); err != nil {
				t.Fatalf("Inject: %v", err)
			}
			if !r.p.Stalled() {
				t.Error("partner not stalled after Inject returned")
			}
			if err := s.Restore(ctx); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			t.Log(s.Describe())
			if got := strings.Contains(s.Describe(), "ended early"); got != tc.early {
				t.Errorf("Describe %q: ended early %v, want %v", s.Describe(), got, tc.early)
			}
			if n := len(e.paused()) - n0; n == 0 {
				t.Error("no PAUSE frame reached the DUT during the stall")
			}
			// Restore returns once the flood is over (the resume
			// acknowledged) or the stall's time is up; the partner's
			// own end follows at once.
			end := time.Now().Add(deadline)
			for r.p.Stalled() && time.Now().Before(end) {
				time.Sleep(5 * time.Millisecond)
			}
			if r.p.Stalled() {
				t.Errorf("partner still stalled %v after Restore", deadline)
			}
		})
	}
}
