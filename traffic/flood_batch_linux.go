package traffic

import (
	"fmt"
	"syscall"
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

// batchConn sends and receives batches on one socket through the runtime's
// network poller: a full send buffer (EAGAIN) or an empty receive queue
// parks the goroutine instead of spinning, and the connection's deadlines
// and Close unblock it. A datagram socket is read and written by two
// goroutines at once, so each direction has its own call state; its
// callback is made once, so that a batch costs no allocation.
type batchConn struct {
	send, recv mmsgCall
}

// mmsgCall is one direction's sendmmsg or recvmmsg call in flight.
type mmsgCall struct {
	trap  uintptr
	msgs  []unix.Mmsghdr
	n     int
	errno error
	f     func(fd uintptr) bool               // c.do
	io    func(f func(fd uintptr) bool) error // the RawConn's Read or Write
}

func newBatchConn(c syscall.Conn) (*batchConn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	bc := &batchConn{send: mmsgCall{trap: unix.SYS_SENDMMSG, io: rc.Write}, recv: mmsgCall{trap: unix.SYS_RECVMMSG, io: rc.Read}}
	bc.send.f = bc.send.do
	bc.recv.f = bc.recv.do
	return bc, nil
}

// do makes one call on fd for c.msgs, and reports false (wait for the
// poller) on EAGAIN.
func (c *mmsgCall) do(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(c.trap, fd, uintptr(unsafe.Pointer(&c.msgs[0])), uintptr(len(c.msgs)), 0, 0, 0)
		switch e {
		case 0:
			c.n, c.errno = int(n), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		c.n, c.errno = 0, e
		return true
	}
}

// run makes the call for msgs, through the poller.
func (c *mmsgCall) run(msgs []unix.Mmsghdr) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	c.msgs = msgs
	err := c.io(c.f)
	c.msgs = nil
	if err != nil {
		return 0, err // a deadline or a closed socket
	}
	if c.errno != nil {
		return 0, c.errno
	}
	return c.n, nil
}

// sendmmsg sends msgs and returns how many the kernel took. Like
// sendmmsg(2) it stops at the first message that fails: the error is
// returned only when that is the first, otherwise the next call meets it.
func (bc *batchConn) sendmmsg(msgs []unix.Mmsghdr) (int, error) {
	return bc.send.run(msgs)
}

// recvmmsg receives up to len(msgs) datagrams, waiting for the first.
func (bc *batchConn) recvmmsg(msgs []unix.Mmsghdr) (int, error) {
	return bc.recv.run(msgs)
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
