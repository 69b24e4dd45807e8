package traffic

import (
	"encoding/binary"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// echoTemplate marshals an echo request with the given payload size.
func echoTemplate(id uint16, size int) ([]byte, error) {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	m := icmp.Message{
		Type: ipv4.ICMPTypeEcho,
		Body: &icmp.Echo{ID: int(id), Seq: 0, Data: data},
	}
	return m.Marshal(nil)
}

// setSeq writes seq into the echo request b and updates its checksum
// incrementally (RFC 1624, eqn. 3), so a 64 KB request costs no more to
// send than a small one.
func setSeq(b []byte, seq uint16) {
	old := binary.BigEndian.Uint16(b[6:8])
	if old == seq {
		return
	}
	sum := uint32(^binary.BigEndian.Uint16(b[2:4])) + uint32(^old) + uint32(seq)
	sum = (sum & 0xffff) + (sum >> 16)
	sum = (sum & 0xffff) + (sum >> 16)
	binary.BigEndian.PutUint16(b[2:4], ^uint16(sum))
	binary.BigEndian.PutUint16(b[6:8], seq)
}

// replyID returns the identifier of the echo reply b, which may start with
// its IPv4 header (raw sockets, unless the runtime stripped it), and
// whether b is an echo reply at all.
func replyID(b []byte) (uint16, bool) {
	if len(b) > 0 && b[0]>>4 == 4 {
		hl := int(b[0]&0x0f) * 4
		if hl < 20 || len(b) < hl {
			return 0, false
		}
		b = b[hl:]
	}
	if len(b) < 8 || b[0] != byte(ipv4.ICMPTypeEchoReply) || b[1] != 0 {
		return 0, false
	}
	return binary.BigEndian.Uint16(b[4:6]), true
}
