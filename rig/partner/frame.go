package partner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	"txtimeout/faultinject"
)

// MaxFrameLen is the longest Ethernet frame the stream framing accepts: the
// largest IPv4 datagram plus an Ethernet header. QEMU's own limit is about
// the same, so a longer length prefix means the stream is out of step.
const MaxFrameLen = 65535 + 14

// Errors returned by the framing and decoding functions.
var (
	// ErrFrameLength reports a length prefix of 0 or above MaxFrameLen.
	ErrFrameLength = errors.New("frame length out of range")
	// ErrMalformed reports a frame whose headers contradict themselves
	// (truncated headers, lengths that overrun the frame, bad checksums).
	ErrMalformed = errors.New("malformed frame")
)

// Kind is the class of an Ethernet frame, as the partner counts it.
type Kind uint8

const (
	// KindOther is anything below: IPv6, TCP, VLAN-tagged frames, ICMP
	// other than echo requests, unknown ethertypes.
	KindOther Kind = iota
	// KindARP is an Ethernet/IPv4 ARP packet (request or reply).
	KindARP
	// KindEchoRequest is an unfragmented ICMP echo request with valid
	// checksums.
	KindEchoRequest
	// KindFragment is any IPv4 fragment (MF set or a non-zero offset).
	KindFragment
	// KindUDP is an unfragmented UDP datagram, pktgen's traffic.
	KindUDP
	// KindCtrl is a txtimeout in-band control frame
	// (faultinject.EtherTypeCtrl with the right magic).
	KindCtrl
)

func (k Kind) String() string {
	switch k {
	case KindOther:
		return "other"
	case KindARP:
		return "arp"
	case KindEchoRequest:
		return "echo-request"
	case KindFragment:
		return "fragment"
	case KindUDP:
		return "udp"
	case KindCtrl:
		return "ctrl"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806

	protoICMP = 1
	protoUDP  = 17

	icmpEchoReply   = 0
	icmpEchoRequest = 8

	arpRequest = 1
	arpReply   = 2
)

// Frame is a classified Ethernet frame. Its slices alias the bytes given to
// DecodeFrame.
type Frame struct {
	Kind      Kind
	Dst, Src  net.HardwareAddr
	EtherType uint16

	// ARP fields, set for KindARP.
	ARPOp     uint16
	SenderMAC net.HardwareAddr
	SenderIP  net.IP
	TargetIP  net.IP

	// IPv4 fields, set for every IPv4 frame (whatever its Kind).
	SrcIP, DstIP net.IP
	Protocol     uint8
	IPID         uint16
	// Network is the IPv4 datagram, trimmed to its total length (Ethernet
	// padding removed); Transport is its payload after the IPv4 header.
	Network   []byte
	Transport []byte

	// Echo fields, set for KindEchoRequest.
	EchoID, EchoSeq uint16

	// Ctrl is the control payload, set for KindCtrl.
	Ctrl faultinject.CtrlFrame
}

// DecodeFrame classifies one Ethernet frame. It returns an error wrapping
// ErrMalformed for frames that are too short for their own headers, IPv4
// headers whose checksum or lengths are wrong, echo requests with a bad ICMP
// checksum, and control frames of a wrong version or duration. A frame it
// does not understand is not an error: it is KindOther.
func DecodeFrame(b []byte) (Frame, error) {
	if len(b) < 14 {
		return Frame{}, fmt.Errorf("%w: %d bytes, shorter than an Ethernet header", ErrMalformed, len(b))
	}
	f := Frame{
		Dst:       net.HardwareAddr(b[0:6]),
		Src:       net.HardwareAddr(b[6:12]),
		EtherType: binary.BigEndian.Uint16(b[12:14]),
	}
	p := b[14:]
	switch f.EtherType {
	case etherTypeARP:
		return f, decodeARP(&f, p)
	case etherTypeIPv4:
		return f, decodeIPv4(&f, p)
	case faultinject.EtherTypeCtrl:
		c, _, err := faultinject.ParseCtrlEthernet(b)
		switch {
		case errors.Is(err, faultinject.ErrNotCtrl):
			// Someone else's experimental ethertype.
			return f, nil
		case err != nil:
			return f, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		f.Kind = KindCtrl
		f.Ctrl = c
	}
	return f, nil
}

func decodeARP(f *Frame, p []byte) error {
	if len(p) < 28 {
		return fmt.Errorf("%w: ARP packet of %d bytes, want 28", ErrMalformed, len(p))
	}
	htype := binary.BigEndian.Uint16(p[0:2])
	ptype := binary.BigEndian.Uint16(p[2:4])
	if htype != 1 || ptype != etherTypeIPv4 || p[4] != 6 || p[5] != 4 {
		// ARP for something other than Ethernet/IPv4.
		return nil
	}
	f.Kind = KindARP
	f.ARPOp = binary.BigEndian.Uint16(p[6:8])
	f.SenderMAC = net.HardwareAddr(p[8:14])
	f.SenderIP = net.IP(p[14:18])
	f.TargetIP = net.IP(p[24:28])
	return nil
}

func decodeIPv4(f *Frame, p []byte) error {
	if len(p) < 20 {
		return fmt.Errorf("%w: IPv4 header of %d bytes", ErrMalformed, len(p))
	}
	if v := p[0] >> 4; v != 4 {
		return fmt.Errorf("%w: IP version %d in an IPv4 ethertype", ErrMalformed, v)
	}
	ihl := int(p[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(p[2:4]))
	switch {
	case ihl < 20:
		return fmt.Errorf("%w: IPv4 header length %d", ErrMalformed, ihl)
	case total < ihl:
		return fmt.Errorf("%w: IPv4 total length %d below header length %d", ErrMalformed, total, ihl)
	case total > len(p):
		return fmt.Errorf("%w: IPv4 total length %d overruns the %d bytes received", ErrMalformed, total, len(p))
	}
	if checksum(p[:ihl]) != 0 {
		return fmt.Errorf("%w: bad IPv4 header checksum", ErrMalformed)
	}
	p = p[:total]
	f.Network = p
	f.Transport = p[ihl:]
	f.SrcIP = net.IP(p[12:16])
	f.DstIP = net.IP(p[16:20])
	f.Protocol = p[9]
	f.IPID = binary.BigEndian.Uint16(p[4:6])
	flagsFrag := binary.BigEndian.Uint16(p[6:8])
	if flagsFrag&0x2000 != 0 || flagsFrag&0x1fff != 0 {
		f.Kind = KindFragment
		return nil
	}
	switch f.Protocol {
	case protoUDP:
		f.Kind = KindUDP
	case protoICMP:
		return decodeICMP(f, f.Transport)
	}
	return nil
}

// decodeICMP classifies a whole (unfragmented or reassembled) ICMP message.
func decodeICMP(f *Frame, m []byte) error {
	if len(m) < 8 {
		return fmt.Errorf("%w: ICMP message of %d bytes", ErrMalformed, len(m))
	}
	if m[0] != icmpEchoRequest || m[1] != 0 {
		return nil
	}
	if checksum(m) != 0 {
		return fmt.Errorf("%w: bad ICMP checksum", ErrMalformed)
	}
	f.Kind = KindEchoRequest
	f.EchoID = binary.BigEndian.Uint16(m[4:6])
	f.EchoSeq = binary.BigEndian.Uint16(m[6:8])
	return nil
}

// ReadFrame reads one length-prefixed frame (a 4-byte big-endian length,
// then that many bytes) as QEMU's stream and socket netdevs write them. It
// reads into buf when buf has the capacity and allocates otherwise. It
// returns io.EOF only when the stream ends cleanly between frames; a stream
// that ends inside a frame gives io.ErrUnexpectedEOF, and a length of 0 or
// above MaxFrameLen gives ErrFrameLength (the stream cannot be trusted
// after that).
func ReadFrame(r io.Reader, buf []byte) ([]byte, error) {
	if cap(buf) < 4 {
		buf = make([]byte, 4, 2048)
	}
	hdr := buf[:4]
	if _, err := io.ReadFull(r, hdr); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("stream ended inside a length prefix: %w", err)
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr)
	if n == 0 || n > MaxFrameLen {
		return nil, fmt.Errorf("%w: %d (want 1 to %d)", ErrFrameLength, n, MaxFrameLen)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("stream ended inside a %d-byte frame: %w", n, err)
	}
	return buf, nil
}

// WriteFrame writes frame with its 4-byte big-endian length prefix in a
// single Write. It refuses empty frames and frames above MaxFrameLen, which
// the other end could not read back.
func WriteFrame(w io.Writer, frame []byte) error {
	if len(frame) == 0 || len(frame) > MaxFrameLen {
		return fmt.Errorf("%w: %d (want 1 to %d)", ErrFrameLength, len(frame), MaxFrameLen)
	}
	b := make([]byte, 4+len(frame))
	binary.BigEndian.PutUint32(b, uint32(len(frame)))
	copy(b[4:], frame)
	_, err := w.Write(b)
	return err
}

// checksum returns the Internet checksum (RFC 1071) of b. Over a header or
// message that carries its own checksum, a valid one gives 0.
func checksum(b []byte) uint16 { return ^fold(onesSum(b)) }
