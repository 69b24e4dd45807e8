package partner

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"txtimeout/faultinject"
)

func TestNewValidates(t *testing.T) {
	for _, c := range []Config{
		{MAC: net.HardwareAddr{1, 2, 3}},
		{MAC: net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}},
		{IP: net.IPv6loopback},
		{IP: net.IPv4zero},
		{IP: net.IPv4bcast},
		{IP: net.IPv4(224, 0, 0, 1)},
		{MTU: 67},
		{MTU: 65536},
		{MaxStall: -time.Second},
		{MaxStall: faultinject.MaxStall + time.Millisecond},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) = nil error, want one", c)
		}
	}
	p, err := New(Config{})
	if err != nil {
		t.Fatalf("New(Config{}): %v", err)
	}
	if p.MAC().String() != "02:74:78:00:00:01" || p.IP().String() != "198.18.0.1" {
		t.Errorf("defaults %s %s, want 02:74:78:00:00:01 198.18.0.1", p.MAC(), p.IP())
	}
}

func TestARPReply(t *testing.T) {
	for _, lr := range linkRigs {
		t.Run(lr.name, func(t *testing.T) {
			r := lr.new(t, Config{})
			r.send(t, arpWho(t, DefaultIP))
			b := r.recv(t)

			want := serialize(t,
				&layers.Ethernet{SrcMAC: DefaultMAC, DstMAC: dutMAC, EthernetType: layers.EthernetTypeARP},
				&layers.ARP{
					AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
					HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPReply,
					SourceHwAddress: DefaultMAC, SourceProtAddress: DefaultIP,
					DstHwAddress: dutMAC, DstProtAddress: dutIP,
				},
				gopacket.Payload(make([]byte, 60-42)),
			)
			if !bytes.Equal(b, want) {
				t.Errorf("ARP reply:\n got %x\nwant %x", b, want)
			}

			// A request for another address is counted and not answered: the next
			// frame the partner sends must be the reply to a request for itself.
			r.send(t, arpWho(t, net.IPv4(198, 18, 0, 9)))
			r.send(t, arpWho(t, DefaultIP))
			if b := r.recv(t); !bytes.Equal(b, want) {
				t.Errorf("after a request for another address, got %x, want the reply %x", b, want)
			}
			s := r.waitStats(t, "3 ARP frames in, 2 out", func(s Stats) bool { return s.ARP == 3 && s.TxFrames == 2 })
			if s.TxFrames != 2 || s.TxBytes != 120 || s.RxFrames != 3 {
				t.Errorf("stats %+v, want 3 frames in, 2 frames (120 bytes) out", s)
			}
		})
	}
}

func TestEchoReply(t *testing.T) {
	cases := []struct {
		name      string
		size, mtu int
		frags     int
	}{
		{"64-byte", 56, 1500, 1},
		{"full MTU", 1472, 1500, 1},
		{"one byte over", 1473, 1500, 2}, // a 1-byte last fragment
		{"2048-byte", 2048, 1500, 2},
		{"largest", 65507, 1500, 45},
		{"small MTU", 2048, 576, 4},
	}
	for _, lr := range linkRigs {
		for _, tc := range cases {
			t.Run(lr.name+"/"+tc.name, func(t *testing.T) {
				r := lr.new(t, Config{MTU: tc.mtu})
				for seq := uint16(1); seq <= 2; seq++ {
					req := echoRequest(t, DefaultIP, tc.size, tc.mtu, 100+seq, seq)
					if len(req) != tc.frags {
						t.Fatalf("test built %d request fragments, want %d", len(req), tc.frags)
					}
					wait := concurrently(func() {
						for _, f := range req {
							r.send(t, f)
						}
					})
					rep := r.recvEchoReply(t, tc.mtu)
					wait()
					if rep.icmp.TypeCode != layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoReply, 0) {
						t.Errorf("reply type %v, want echo reply", rep.icmp.TypeCode)
					}
					if rep.icmp.Id != 0x4242 || rep.icmp.Seq != seq {
						t.Errorf("reply id %#x seq %d, want 0x4242 %d", rep.icmp.Id, rep.icmp.Seq, seq)
					}
					want := echoRequest(t, DefaultIP, tc.size, 65535, 0, seq)[0][14+20+8:]
					if !bytes.Equal(rep.data, want) {
						t.Errorf("reply carries %d bytes of data, not the request's %d", len(rep.data), len(want))
					}
					if len(rep.frames) != tc.frags {
						t.Errorf("reply in %d frames, want %d", len(rep.frames), tc.frags)
					}
				}
				frags := uint64(0)
				if tc.frags > 1 {
					frags = uint64(2 * tc.frags)
				}
				s := r.waitStats(t, "two echo replies written", func(s Stats) bool { return s.TxFrames == uint64(2*tc.frags) })
				if s.EchoRequests != 2 || s.Fragments != frags || s.Malformed != 0 || s.TxDropped != 0 || s.TxFrames != uint64(2*tc.frags) {
					t.Errorf("stats %+v, want 2 requests, %d fragments, %d frames sent", s, frags, 2*tc.frags)
				}
			})
		}
	}
}

// TestDropsWhatTheKernelWould checks that frames the DUT's kernel would drop
// get no answer and are counted: wrong destination, corrupt checksums.
func TestDropsWhatTheKernelWould(t *testing.T) {
	r := pipeRig(t, Config{})
	other := echoRequest(t, net.IPv4(198, 18, 0, 77), 56, 1500, 1, 1)[0]
	badIP := echoRequest(t, DefaultIP, 56, 1500, 2, 2)[0]
	badIP[14+10] ^= 0xff
	badICMP := echoRequest(t, DefaultIP, 56, 1500, 3, 3)[0]
	badICMP[14+20+2] ^= 0xff
	truncated := echoRequest(t, DefaultIP, 56, 1500, 4, 4)[0][:40]
	udpIP := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: dutIP, DstIP: DefaultIP}
	udpL4 := &layers.UDP{SrcPort: 9, DstPort: 9}
	udpL4.SetNetworkLayerForChecksum(udpIP)
	udp := serialize(t,
		&layers.Ethernet{SrcMAC: dutMAC, DstMAC: DefaultMAC, EthernetType: layers.EthernetTypeIPv4},
		udpIP, udpL4, gopacket.Payload(make([]byte, 1400)),
	)
	ipv6 := serialize(t,
		&layers.Ethernet{SrcMAC: dutMAC, DstMAC: DefaultMAC, EthernetType: layers.EthernetTypeIPv6},
		gopacket.Payload(make([]byte, 40)),
	)
	for _, f := range [][]byte{other, badIP, badICMP, truncated, udp, ipv6} {
		r.send(t, f)
	}
	// Then a good one, whose reply must be the first frame sent.
	r.send(t, echoRequest(t, DefaultIP, 56, 1500, 5, 5)[0])
	if rep := r.recvEchoReply(t, 1500); rep.icmp.Seq != 5 {
		t.Errorf("first reply is for seq %d, want 5", rep.icmp.Seq)
	}
	s := r.waitStats(t, "7 frames in, 1 out", func(s Stats) bool { return s.RxFrames == 7 && s.TxFrames == 1 })
	want := Stats{RxFrames: 7, RxBytes: s.RxBytes, TxFrames: 1, TxBytes: 98,
		EchoRequests: 2, EchoReplies: 1, UDP: 1, Other: 1, Malformed: 3}
	if s != want {
		t.Errorf("stats\n got %+v\nwant %+v", s, want)
	}
}

func stallFrame(t *testing.T, d time.Duration, nonce uint32) []byte {
	t.Helper()
	b, err := faultinject.CtrlFrame{Command: faultinject.CmdStall, Duration: d, Nonce: nonce}.MarshalEthernet(DefaultMAC, dutMAC)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// expectAck reads the acknowledgement of a stall with nonce.
func (r *rig) expectAck(t *testing.T, cmd faultinject.CtrlCommand, d time.Duration, nonce uint32) {
	t.Helper()
	b := r.recv(t)
	c, src, err := faultinject.ParseCtrlEthernet(b)
	if err != nil {
		t.Fatalf("partner's first frame after the stall request is not a control frame: %v (%x)", err, b)
	}
	want := faultinject.CtrlFrame{Command: cmd | faultinject.AckBit, Duration: d, Nonce: nonce}
	if c != want {
		t.Errorf("ack %+v, want %+v", c, want)
	}
	if src.String() != DefaultMAC.String() || net.HardwareAddr(b[0:6]).String() != dutMAC.String() {
		t.Errorf("ack from %s to %s, want from %s to the requester %s", src, net.HardwareAddr(b[0:6]), DefaultMAC, dutMAC)
	}
}

func (r *rig) expectEvent(t *testing.T, start bool, nonce uint32) StallEvent {
	t.Helper()
	select {
	case e := <-r.p.StallEvents():
		if e.Start != start || e.Nonce != nonce {
			t.Fatalf("stall event %+v, want start=%v nonce %#x", e, start, nonce)
		}
		return e
	case <-time.After(deadline):
		t.Fatalf("no stall event (start=%v) within %v", start, deadline)
	}
	return StallEvent{}
}

// TestStallStopsReading proves that a stalled partner reads nothing: on a
// net.Pipe a write completes only when the other end reads, so a frame
// written during the stall must not complete before the stall's end.
func TestStallStopsReading(t *testing.T) {
	const d = time.Second
	r := pipeRig(t, Config{})
	r.send(t, stallFrame(t, d, 0xdeadbeef))
	r.expectAck(t, faultinject.CmdStall, d, 0xdeadbeef)
	start := r.expectEvent(t, true, 0xdeadbeef)
	if start.For != d {
		t.Errorf("start event For %v, want %v", start.For, d)
	}
	// (Unless a loaded machine kept this goroutine away for the whole
	// stall, which a late clock reading shows.)
	if s := r.p.Stats(); s.Stalls != 1 || (!s.Stalled || !s.StallEnds.Equal(start.At.Add(d))) && time.Now().Before(start.At.Add(d)) {
		t.Errorf("stats during the stall %+v, want stalled until %v", s, start.At.Add(d))
	}

	// A short write deadline during the stall expires: nobody reads.
	r.qemu.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	err := WriteFrame(r.qemu, arpWho(t, DefaultIP))
	if err == nil && time.Now().Before(start.At.Add(d)) {
		t.Fatalf("a frame was read during the stall")
	}
	// The frame goes through once the stall ends by itself, not before.
	r.send(t, arpWho(t, DefaultIP))
	if done := time.Now(); done.Before(start.At.Add(d)) {
		t.Errorf("frame read %v before the stall's end", start.At.Add(d).Sub(done))
	}
	end := r.expectEvent(t, false, 0xdeadbeef)
	if end.For < d {
		t.Errorf("stall lasted %v, asked %v", end.For, d)
	}
	r.recv(t) // the ARP reply
	if s := r.p.Stats(); s.Stalled || !s.StallEnds.IsZero() || s.Ctrl != 1 {
		t.Errorf("stats after the stall %+v, want not stalled, 1 control frame", s)
	}
}

// TestStallCapped: a request above Config.MaxStall is obeyed for MaxStall,
// and the acknowledgement says so.
func TestStallCapped(t *testing.T) {
	const max = 100 * time.Millisecond
	r := pipeRig(t, Config{MaxStall: max})
	r.send(t, stallFrame(t, time.Minute, 11))
	r.expectAck(t, faultinject.CmdStall, max, 11)
	if start := r.expectEvent(t, true, 11); start.For != max {
		t.Errorf("stall of %v started, want the maximum %v", start.For, max)
	}
	end := r.expectEvent(t, false, 11) // fails after deadline (10 s) if it lasts the minute asked
	if end.For < max {
		t.Errorf("stall lasted %v, want %v", end.For, max)
	}
}

func TestResumeEndsStallEarly(t *testing.T) {
	const d = time.Minute
	r := pipeRig(t, Config{})
	r.p.Resume() // without a stall: nothing happens, and the next stall is not cut short by it
	r.send(t, stallFrame(t, d, 7))
	r.expectAck(t, faultinject.CmdStall, d, 7)
	r.expectEvent(t, true, 7)
	if !r.p.Stalled() {
		t.Fatal("not stalled after the start event")
	}
	wait := concurrently(func() { r.p.Resume() })
	r.send(t, arpWho(t, DefaultIP)) // fails the test after deadline (10 s) if still stalled
	wait()
	end := r.expectEvent(t, false, 7)
	if end.For >= d {
		t.Errorf("stall lasted %v after Resume", end.For)
	}
	if r.p.Stalled() {
		t.Error("still stalled after Resume")
	}
	r.recv(t)
}

func TestContextEndsStall(t *testing.T) {
	p := newPartner(t, Config{})
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	cancel, wait := serveAsync(t, p, a)
	defer cancel()
	r := newRig(p, b)
	r.send(t, stallFrame(t, time.Minute, 9))
	r.expectAck(t, faultinject.CmdStall, time.Minute, 9)
	r.expectEvent(t, true, 9)
	cancel()
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("Serve = %v, want context.Canceled", err)
	}
	r.expectEvent(t, false, 9)
	if p.Stalled() {
		t.Error("Stalled after Serve returned")
	}
}

func TestServeReturns(t *testing.T) {
	p := newPartner(t, Config{})

	// A clean end of stream returns nil; a second Serve meanwhile is busy.
	a, b := net.Pipe()
	_, wait := serveAsync(t, p, a)
	WriteFrame(b, arpWho(t, net.IPv4(198, 18, 0, 9)))
	if err := p.Serve(context.Background(), a); !errors.Is(err, ErrBusy) {
		t.Errorf("second Serve = %v, want ErrBusy", err)
	}
	b.Close()
	if err := wait(); err != nil {
		t.Errorf("Serve after EOF = %v, want nil", err)
	}

	// A length the stream cannot carry is an error naming it.
	a, b = net.Pipe()
	_, wait = serveAsync(t, p, a)
	b.Write([]byte{0, 0, 0, 0})
	if err := wait(); !errors.Is(err, ErrFrameLength) {
		t.Errorf("Serve after a zero length = %v, want ErrFrameLength", err)
	}
	b.Close()

	// A stream cut inside a frame is an unexpected EOF.
	a, b = net.Pipe()
	_, wait = serveAsync(t, p, a)
	b.Write([]byte{0, 0, 0, 60, 1, 2, 3})
	b.Close()
	if err := wait(); err == nil || errors.Is(err, ErrFrameLength) {
		t.Errorf("Serve after a truncated frame = %v, want an unexpected EOF", err)
	}
}

func TestDecodeFrameKinds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		kind  Kind
	}{
		{"arp", arpWho(t, DefaultIP), KindARP},
		{"echo", echoRequest(t, DefaultIP, 56, 1500, 1, 1)[0], KindEchoRequest},
		{"fragment", echoRequest(t, DefaultIP, 2048, 1500, 1, 1)[1], KindFragment},
		{"ctrl", stallFrame(t, time.Second, 1), KindCtrl},
		{"ipv6", serialize(t, &layers.Ethernet{SrcMAC: dutMAC, DstMAC: DefaultMAC, EthernetType: layers.EthernetTypeIPv6}, gopacket.Payload(make([]byte, 40))), KindOther},
		{"experimental, not ours", append(stallFrame(t, time.Second, 1)[:14], make([]byte, 46)...), KindOther},
	} {
		f, err := DecodeFrame(tc.frame)
		if err != nil || f.Kind != tc.kind {
			t.Errorf("%s: DecodeFrame = %v, %v; want %v", tc.name, f.Kind, err, tc.kind)
		}
	}
	bad := stallFrame(t, time.Second, 1)
	bad[14+4] = 99 // version
	if _, err := DecodeFrame(bad); !errors.Is(err, ErrMalformed) || !errors.Is(err, faultinject.ErrCtrlVersion) {
		t.Errorf("control frame of version 99: %v, want ErrMalformed and ErrCtrlVersion", err)
	}
	if _, err := DecodeFrame(make([]byte, 13)); !errors.Is(err, ErrMalformed) {
		t.Errorf("13-byte frame: %v, want ErrMalformed", err)
	}
}

// TestRepeatedStallRequest: a repeat of the request already obeyed (same
// nonce, queued behind it while the sender waited for the ack) is
// acknowledged but does not stall again; a new nonce does.
func TestRepeatedStallRequest(t *testing.T) {
	const d = 200 * time.Millisecond
	r := pipeRig(t, Config{})
	r.send(t, stallFrame(t, d, 5))
	r.expectAck(t, faultinject.CmdStall, d, 5)
	r.expectEvent(t, true, 5)
	r.send(t, stallFrame(t, d, 5)) // blocks until the stall ends
	r.expectEvent(t, false, 5)
	r.expectAck(t, faultinject.CmdStall, d, 5)
	r.send(t, arpWho(t, DefaultIP))
	r.recv(t)
	if s := r.p.Stats(); s.Stalls != 1 || s.Ctrl != 2 {
		t.Errorf("stats %+v, want 1 stall from 2 control frames", s)
	}
	r.send(t, stallFrame(t, d, 6))
	r.expectAck(t, faultinject.CmdStall, d, 6)
	r.expectEvent(t, true, 6)
	r.expectEvent(t, false, 6)
	if s := r.p.Stats(); s.Stalls != 2 {
		t.Errorf("stats %+v, want a second stall for a new nonce", s)
	}
}

// TestSlowPeerDoesNotStopReading: when QEMU's side does not read the
// partner's replies, replies are dropped once the queue is full, but the
// partner keeps reading: only a stall request may stop it.
func TestSlowPeerDoesNotStopReading(t *testing.T) {
	r := pipeRig(t, Config{}) // nobody reads r.qemu: every reply stays queued
	const n = txQueueLen + 100
	req := arpWho(t, DefaultIP)
	for range n {
		r.send(t, req) // fails after deadline if the partner stopped reading
	}
	s := r.waitStats(t, "every request read", func(s Stats) bool { return s.ARP == n })
	// The writer holds one reply in a blocked Write, the queue the rest.
	if s.TxDropped < n-txQueueLen-1 || s.TxDropped > n-txQueueLen {
		t.Errorf("TxDropped %d, want %d or %d", s.TxDropped, n-txQueueLen-1, n-txQueueLen)
	}
}

// plainConn hides net.Conn's deadlines: Serve must still return when its
// context ends, even though it cannot unblock the pending Read.
type plainConn struct{ c net.Conn }

func (p plainConn) Read(b []byte) (int, error)  { return p.c.Read(b) }
func (p plainConn) Write(b []byte) (int, error) { return p.c.Write(b) }

func TestServeWithoutDeadlines(t *testing.T) {
	p := newPartner(t, Config{})
	a, b := net.Pipe()
	defer b.Close()
	cancel, wait := serveAsync(t, p, plainConn{a})
	WriteFrame(b, arpWho(t, DefaultIP))
	cancel()
	wait()    // fails the test if Serve on a conn without deadlines ignores its context
	a.Close() // ends the abandoned Read
}

// TestFragmentsExpire: fragments of a datagram whose rest never came are
// forgotten after fragTimeout, like the kernel's ipfrag_time, so a lost
// fragment cannot pair with a late one nor hold memory for ever.
func TestFragmentsExpire(t *testing.T) {
	p := newPartner(t, Config{})
	s := p.newSession(stopReading{})
	now := time.Now()
	s.now = func() time.Time { return now }
	handle := func(b []byte) {
		t.Helper()
		if err := s.handle(context.Background(), b, nil); err != nil {
			t.Fatal(err)
		}
	}
	old := echoRequest(t, DefaultIP, 2048, 1500, 1, 1)
	handle(old[0])
	now = now.Add(fragTimeout + 2*time.Second)
	handle(old[1]) // the first half is gone: nothing completes
	if len(s.out) != 0 || p.Stats().EchoRequests != 0 {
		t.Fatalf("a datagram was completed from a fragment %v old", fragTimeout+2*time.Second)
	}
	fresh := echoRequest(t, DefaultIP, 2048, 1500, 2, 2)
	handle(fresh[0])
	now = now.Add(fragTimeout / 2)
	handle(fresh[1])
	if len(s.out) != 2 || p.Stats().EchoReplies != 1 {
		t.Fatalf("%d frames queued, %d replies; want the 2-fragment reply to a datagram completed within %v", len(s.out), p.Stats().EchoReplies, fragTimeout)
	}
}

// TestControlFramesOtherThanStall: a resume with no stall is acknowledged
// and changes nothing; acknowledgements (someone else's) and unknown
// commands are counted and neither answered nor obeyed.
func TestControlFramesOtherThanStall(t *testing.T) {
	r := pipeRig(t, Config{})
	ctrl := func(cmd faultinject.CtrlCommand, nonce uint32) []byte {
		b, err := faultinject.CtrlFrame{Command: cmd, Duration: time.Minute, Nonce: nonce}.MarshalEthernet(layers.EthernetBroadcast, dutMAC)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	r.send(t, ctrl(faultinject.CmdStall|faultinject.AckBit, 1))
	r.send(t, ctrl(0x33, 2))
	r.send(t, ctrl(faultinject.CmdResume, 3))
	r.expectAck(t, faultinject.CmdResume, time.Minute, 3)
	r.send(t, arpWho(t, DefaultIP)) // read at once: not stalled
	r.recv(t)
	s := r.p.Stats()
	if s.Ctrl != 3 || s.Stalls != 0 || s.Stalled {
		t.Errorf("stats %+v, want 3 control frames and no stall", s)
	}
	select {
	case e := <-r.p.StallEvents():
		t.Errorf("stall event %+v without a stall", e)
	default:
	}
}
