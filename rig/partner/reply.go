package partner

import (
	"encoding/binary"
	"net"
)

// Frames the partner sends are built in place behind a 4-byte gap, so that
// the writer can fill in the stream's length prefix and send prefix and
// frame in one Write.
const prefixLen = 4

// minFrameLen is the Ethernet minimum without the FCS; shorter frames are
// padded with zeros, as a real NIC would.
const minFrameLen = 60

// putEthernet writes an Ethernet header at b[0:14].
func putEthernet(b []byte, dst, src net.HardwareAddr, etherType uint16) {
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], etherType)
}

// arpReplyLen is the length of an ARP reply frame with its padding.
const arpReplyLen = minFrameLen

// putARPReply writes, at b[0:arpReplyLen], the reply to the request in req:
// "ip is at mac", sent to the requester.
func putARPReply(b []byte, req *Frame, mac net.HardwareAddr, ip net.IP) {
	clear(b[:arpReplyLen])
	putEthernet(b, req.SenderMAC, mac, etherTypeARP)
	p := b[14:]
	binary.BigEndian.PutUint16(p[0:2], 1) // Ethernet
	binary.BigEndian.PutUint16(p[2:4], etherTypeIPv4)
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:8], arpReply)
	copy(p[8:14], mac)
	copy(p[14:18], ip.To4())
	copy(p[18:24], req.SenderMAC)
	copy(p[24:28], req.SenderIP)
}

// maxFragPayload is the most IP payload one fragment may carry on a link of
// the given MTU: what fits after a 20-byte header, rounded down to the
// 8-byte unit of the fragment offset.
func maxFragPayload(mtu int) int { return (mtu - 20) &^ 7 }

// echoReplyFrames returns how many frames the reply to an ICMP message of
// msgLen bytes takes on a link of the given MTU.
func echoReplyFrames(msgLen, mtu int) int {
	if 20+msgLen <= mtu {
		return 1
	}
	per := maxFragPayload(mtu)
	return (msgLen + per - 1) / per
}

// echoReply builds ICMP echo replies and hands each frame to emit. The
// reply copies the request's identifier, sequence and data, and is
// fragmented to the MTU when it does not fit in one frame, the way the
// kernel fragments its own datagrams: every fragment but the last carries a
// multiple of 8 bytes and More Fragments, all share one IP ID.
type echoReply struct {
	mac net.HardwareAddr
	ip  net.IP // 4-byte form
	mtu int
}

// build writes the reply to the echo request msg (the whole ICMP message,
// reassembled if it came in fragments), received from srcMAC/srcIP with the
// given TOS. alloc returns a buffer of at least prefixLen+14+mtu bytes; emit
// receives the buffer and the frame's length (without the prefix).
func (e *echoReply) build(msg []byte, dstMAC net.HardwareAddr, dstIP net.IP, tos uint8, id uint16, alloc func() []byte, emit func(buf []byte, n int)) {
	// The ICMP checksum covers the whole message, so it is computed once,
	// before the message is cut into fragments: only the type byte and the
	// checksum field change from the request.
	var hdr [4]byte
	hdr[0] = icmpEchoReply
	hdr[1] = msg[1]
	sum := onesSum(hdr[:]) + onesSum(msg[4:])
	csum := ^fold(sum)

	per := len(msg)
	if 20+len(msg) > e.mtu {
		per = maxFragPayload(e.mtu)
	}
	for off := 0; off < len(msg); off += per {
		n := min(per, len(msg)-off)
		more := off+n < len(msg)
		buf := alloc()
		fr := buf[prefixLen:]
		putEthernet(fr, dstMAC, e.mac, etherTypeIPv4)
		ip := fr[14:34]
		ip[0] = 0x45
		ip[1] = tos
		binary.BigEndian.PutUint16(ip[2:4], uint16(20+n))
		binary.BigEndian.PutUint16(ip[4:6], id)
		ff := uint16(off / 8)
		if more {
			ff |= 0x2000
		}
		binary.BigEndian.PutUint16(ip[6:8], ff)
		ip[8] = 64
		ip[9] = protoICMP
		ip[10], ip[11] = 0, 0
		copy(ip[12:16], e.ip)
		copy(ip[16:20], dstIP)
		binary.BigEndian.PutUint16(ip[10:12], checksum(ip))
		data := fr[34 : 34+n]
		copy(data, msg[off:off+n])
		if off == 0 {
			data[0] = icmpEchoReply
			binary.BigEndian.PutUint16(data[2:4], csum)
		}
		flen := 34 + n
		if flen < minFrameLen {
			clear(fr[flen:minFrameLen])
			flen = minFrameLen
		}
		emit(buf, flen)
	}
}

// onesSum is the unfolded one's complement sum of b as 16-bit big-endian
// words; b must have an even length or be the message's last piece.
func onesSum(b []byte) uint32 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}
