package partner

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Addresses of the DUT as the tests play it.
var (
	dutMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	dutIP  = net.IPv4(198, 18, 0, 2).To4()
)

// deadline is how long a test waits for something that should happen at
// once; it is generous because other engineers load the machine too.
const deadline = 10 * time.Second

// rig is a Partner serving one end of a link whose other end the test
// plays as the DUT: QEMU's end of the stream (qemu), or an AF_PACKET socket
// on the DUT's veth.
type rig struct {
	p    *Partner
	qemu net.Conn // the stream rigs' DUT end; nil on a packet rig
	dut  dutEnd
	done chan error
}

// dutEnd is the DUT's end of the link: it sends and receives whole
// Ethernet frames, failing after deadline.
type dutEnd interface {
	sendFrame(frame []byte) error
	recvFrame() ([]byte, error)
}

// streamEnd is QEMU's end of the stream.
type streamEnd struct{ c net.Conn }

func (e streamEnd) sendFrame(frame []byte) error {
	e.c.SetWriteDeadline(time.Now().Add(deadline))
	return WriteFrame(e.c, frame)
}

func (e streamEnd) recvFrame() ([]byte, error) {
	e.c.SetReadDeadline(time.Now().Add(deadline))
	b, err := ReadFrame(e.c, nil)
	return append([]byte(nil), b...), err
}

// newRig is a rig for p whose DUT end is QEMU's end of a stream.
func newRig(p *Partner, qemuEnd net.Conn) *rig {
	return &rig{p: p, qemu: qemuEnd, dut: streamEnd{qemuEnd}, done: make(chan error, 1)}
}

// serveInBackground runs serve until tb's cleanup, which ends its context
// and fails the test if serve returned anything but the context's end, a
// clean EOF or nil, or did not return; then it closes closers.
func (r *rig) serveInBackground(tb testing.TB, serve func(ctx context.Context) error, closers ...io.Closer) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { r.done <- serve(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil && !errors.Is(err, context.Canceled) {
				tb.Errorf("Serve: %v", err)
			}
		case <-time.After(deadline):
			tb.Errorf("Serve did not return %v after its context ended", deadline)
		}
		for _, c := range closers {
			c.Close()
		}
	})
}

// newPartner is New(c), failing the test on an error.
func newPartner(tb testing.TB, c Config) *Partner {
	tb.Helper()
	p, err := New(c)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return p
}

// startPartner serves c on the partner end of conn pair (partnerEnd,
// qemuEnd) until tb's cleanup.
func startPartner(tb testing.TB, c Config, partnerEnd, qemuEnd net.Conn) *rig {
	tb.Helper()
	r := newRig(newPartner(tb, c), qemuEnd)
	r.serveInBackground(tb, func(ctx context.Context) error { return r.p.Serve(ctx, partnerEnd) }, partnerEnd, qemuEnd)
	return r
}

// pipeRig is a partner on a net.Pipe, whose writes block until the other
// end reads: the sharpest proof that a stalled partner reads nothing.
func pipeRig(tb testing.TB, c Config) *rig {
	tb.Helper()
	a, b := net.Pipe()
	return startPartner(tb, c, a, b)
}

// linkRig makes a rig on one kind of link.
type linkRig struct {
	name string
	new  func(tb testing.TB, c Config) *rig
}

// linkRigs are the links a responder test runs over: QEMU's stream, and on
// Linux AF_PACKET on a veth (as root).
var linkRigs = []linkRig{{"stream", pipeRig}}

// send writes frame as the DUT would, failing the test after deadline.
func (r *rig) send(tb testing.TB, frame []byte) {
	tb.Helper()
	if err := r.dut.sendFrame(frame); err != nil {
		tb.Fatalf("writing a frame to the partner: %v", err)
	}
}

// recv reads one frame the partner sent, failing the test after deadline.
func (r *rig) recv(tb testing.TB) []byte {
	tb.Helper()
	b, err := r.dut.recvFrame()
	if err != nil {
		tb.Fatalf("reading a frame from the partner: %v", err)
	}
	return b
}

// waitStats polls the partner's counters until cond holds or deadline
// passes.
func (r *rig) waitStats(tb testing.TB, what string, cond func(Stats) bool) Stats {
	tb.Helper()
	end := time.Now().Add(deadline)
	for {
		s := r.p.Stats()
		if cond(s) {
			return s
		}
		if time.Now().After(end) {
			tb.Fatalf("after %v, still waiting for %s; stats %+v", deadline, what, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func serialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		tb.Fatalf("serializing: %v", err)
	}
	return buf.Bytes()
}

func arpWho(tb testing.TB, target net.IP) []byte {
	return serialize(tb,
		&layers.Ethernet{SrcMAC: dutMAC, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
			SourceHwAddress: dutMAC, SourceProtAddress: dutIP,
			DstHwAddress: make([]byte, 6), DstProtAddress: target.To4(),
		},
	)
}

// echoRequest returns the frames of an echo request carrying size bytes of
// data (ping -s size), fragmented to mtu the way the DUT's kernel sends it.
func echoRequest(tb testing.TB, dst net.IP, size, mtu int, id uint16, seq uint16) [][]byte {
	tb.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + 3)
	}
	msg := serialize(tb, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 0x4242, Seq: seq}, gopacket.Payload(data))
	eth := &layers.Ethernet{SrcMAC: dutMAC, DstMAC: DefaultMAC, EthernetType: layers.EthernetTypeIPv4}
	per := (mtu - 20) &^ 7
	if 20+len(msg) <= mtu {
		per = len(msg)
	}
	var frames [][]byte
	for off := 0; off < len(msg); off += per {
		n := min(per, len(msg)-off)
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: id, Protocol: layers.IPProtocolICMPv4,
			SrcIP: dutIP, DstIP: dst.To4(), FragOffset: uint16(off / 8)}
		if off+n < len(msg) {
			ip.Flags = layers.IPv4MoreFragments
		}
		frames = append(frames, serialize(tb, eth, ip, gopacket.Payload(msg[off:off+n])))
	}
	return frames
}

// checkIPv4Checksum recomputes ip's header checksum with gopacket.
func checkIPv4Checksum(tb testing.TB, ip *layers.IPv4) {
	tb.Helper()
	cp := *ip
	buf := gopacket.NewSerializeBuffer()
	if err := cp.SerializeTo(buf, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
		tb.Fatalf("reserializing IPv4 header: %v", err)
	}
	if cp.Checksum != ip.Checksum {
		tb.Errorf("IPv4 header checksum %#04x, want %#04x", ip.Checksum, cp.Checksum)
	}
}

// reply is an echo reply as the DUT's kernel would reassemble it.
type reply struct {
	frames []*layers.IPv4
	icmp   *layers.ICMPv4
	data   []byte
}

// recvEchoReply reads frames until one whole echo reply has arrived,
// checking each fragment as the DUT's IP stack would: addressed to the DUT,
// header checksum right, fragment sizes fitting the MTU, contiguous
// offsets; then the ICMP checksum over the reassembled message.
func (r *rig) recvEchoReply(tb testing.TB, mtu int) reply {
	tb.Helper()
	var rep reply
	var msg []byte
	for {
		b := r.recv(tb)
		if len(b) > 14+mtu {
			tb.Fatalf("reply frame of %d bytes exceeds MTU %d", len(b), mtu)
		}
		pkt := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
		eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if eth == nil || ip == nil {
			tb.Fatalf("partner sent a frame that is not IPv4: %v", pkt)
		}
		if eth.DstMAC.String() != dutMAC.String() || eth.SrcMAC.String() != DefaultMAC.String() {
			tb.Errorf("reply Ethernet %s -> %s, want %s -> %s", eth.SrcMAC, eth.DstMAC, DefaultMAC, dutMAC)
		}
		if !ip.SrcIP.Equal(DefaultIP) || !ip.DstIP.Equal(dutIP) || ip.Protocol != layers.IPProtocolICMPv4 {
			tb.Errorf("reply IPv4 %s -> %s proto %v, want %s -> %s ICMP", ip.SrcIP, ip.DstIP, ip.Protocol, DefaultIP, dutIP)
		}
		checkIPv4Checksum(tb, ip)
		if len(rep.frames) > 0 && ip.Id != rep.frames[0].Id {
			tb.Errorf("fragment IP ID %d, first fragment had %d", ip.Id, rep.frames[0].Id)
		}
		if int(ip.FragOffset)*8 != len(msg) {
			tb.Fatalf("fragment at offset %d, want %d", int(ip.FragOffset)*8, len(msg))
		}
		if ip.Flags&layers.IPv4MoreFragments != 0 && len(ip.Payload)%8 != 0 {
			tb.Errorf("non-last fragment carries %d bytes, not a multiple of 8", len(ip.Payload))
		}
		rep.frames = append(rep.frames, ip)
		msg = append(msg, ip.Payload...)
		if ip.Flags&layers.IPv4MoreFragments == 0 {
			break
		}
	}
	icmp := &layers.ICMPv4{}
	if err := icmp.DecodeFromBytes(msg, gopacket.NilDecodeFeedback); err != nil {
		tb.Fatalf("decoding reassembled ICMP: %v", err)
	}
	want := serialize(tb, &layers.ICMPv4{TypeCode: icmp.TypeCode, Id: icmp.Id, Seq: icmp.Seq}, gopacket.Payload(icmp.Payload))
	if got := msg[2:4]; string(got) != string(want[2:4]) {
		tb.Errorf("ICMP checksum %x, want %x", got, want[2:4])
	}
	rep.icmp = icmp
	rep.data = icmp.Payload
	return rep
}

// serveAsync runs p.Serve on conn in the background; wait returns its
// error, failing the test when it does not come within deadline.
func serveAsync(tb testing.TB, p *Partner, conn io.ReadWriter) (cancel context.CancelFunc, wait func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, conn) }()
	return cancel, func() error {
		tb.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(deadline):
			tb.Fatalf("Serve did not return within %v", deadline)
		}
		return nil
	}
}

// concurrently runs f in a goroutine and returns a wait function.
func concurrently(f func()) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f() }()
	return wg.Wait
}
