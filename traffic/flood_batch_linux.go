package traffic

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchLen is how many echo requests one sendmmsg(2) carries, and how many
// replies one recvmmsg(2) takes. Measured on a veth pair (see
// BenchmarkFlood): a syscall per packet was most of a sender's cost outside
// the network stack itself; 64 makes it negligible, and a batch of 1400-byte
// requests still takes well under a millisecond, so the For bound and the
// end of the context are still seen promptly.
const batchLen = 64

// replyPeek is how much of each reply the reader copies out of the kernel:
// an IPv4 header with options (60 bytes) and the ICMP header (8 bytes) are
// all replyID needs. The rest of the datagram is discarded (MSG_TRUNC),
// which spares copying kilobytes per reply that nobody reads.
const replyPeek = 68

// echoBatch holds up to batchLen echo requests of one sender that differ
// only in their sequence numbers (and so their checksums): each message is
// its own 8-byte ICMP header plus the one payload that all share, sent with
// sendmmsg(2). Its slices are allocated once, on the heap, so that the
// kernel may be handed pointers into them.
type echoBatch struct {
	tmpl    [8]byte // the ICMP header for sequence number 0, checksum included
	payload []byte
	hdrs    [][8]byte
	iovs    [][2]unix.Iovec
	msgs    []unix.Mmsghdr
	sa      *unix.RawSockaddrInet4
	seq     uint16 // the next request's sequence number
}

// newEchoBatch prepares a batch of echo requests with identifier id and a
// payload of size bytes to dst.
func newEchoBatch(id uint16, size int, dst [4]byte) (*echoBatch, error) {
	pkt, err := echoTemplate(id, size)
	if err != nil {
		return nil, fmt.Errorf("marshal echo request: %w", err)
	}
	b := &echoBatch{
		payload: pkt[8:],
		hdrs:    make([][8]byte, batchLen),
		iovs:    make([][2]unix.Iovec, batchLen),
		msgs:    make([]unix.Mmsghdr, batchLen),
		sa:      &unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: dst},
	}
	copy(b.tmpl[:], pkt[:8])
	for i := range b.msgs {
		b.iovs[i][0].Base = &b.hdrs[i][0]
		b.iovs[i][0].SetLen(8)
		if len(b.payload) > 0 {
			b.iovs[i][1].Base = &b.payload[0]
			b.iovs[i][1].SetLen(len(b.payload))
		}
		h := &b.msgs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(b.sa))
		h.Namelen = unix.SizeofSockaddrInet4
		h.Iov = &b.iovs[i][0]
		h.SetIovlen(2)
	}
	return b, nil
}

// next fills the first n messages with the next n sequence numbers and
// returns them.
func (b *echoBatch) next(n int) []unix.Mmsghdr {
	for i := range n {
		b.hdrs[i] = b.tmpl
		setSeq(b.hdrs[i][:], b.seq)
		b.seq++
	}
	return b.msgs[:n]
}

// mmsg makes one sendmmsg or recvmmsg call (trap) on fd for msgs, and
// returns how many messages went or came. Like sendmmsg(2) it stops at the
// first message that fails: the error is returned only when that is the
// first, otherwise the next call meets it. A call interrupted by a signal
// (the runtime's preemption: with a socket timeout set, SA_RESTART does
// not apply) is made again.
func mmsg(trap uintptr, fd int, msgs []unix.Mmsghdr, flags int) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	for {
		n, _, e := unix.Syscall6(trap, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), uintptr(flags), 0, 0)
		switch e {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// replyBatch is the reader's batch of receive buffers, replyPeek bytes
// each.
type replyBatch struct {
	bufs [][replyPeek]byte
	iovs []unix.Iovec
	msgs []unix.Mmsghdr
}

func newReplyBatch() *replyBatch {
	b := &replyBatch{
		bufs: make([][replyPeek]byte, batchLen),
		iovs: make([]unix.Iovec, batchLen),
		msgs: make([]unix.Mmsghdr, batchLen),
	}
	for i := range b.msgs {
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(replyPeek)
		b.msgs[i].Hdr.Iov = &b.iovs[i]
		b.msgs[i].Hdr.SetIovlen(1)
	}
	return b
}

// datagram returns the part of the i-th received datagram that was copied
// out.
func (b *replyBatch) datagram(i int) []byte {
	return b.bufs[i][:min(int(b.msgs[i].Len), replyPeek)]
}
