package traffic

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// aLongTimeAgo is a deadline in the past: it wakes a blocked read or write.
var aLongTimeAgo = time.Unix(1, 0)

// reachSndBuf, when positive, is the send buffer (SO_SNDBUF) of
// Reachable's socket: a test seam. A request larger than twice the buffer
// then fails with ENOBUFS at every send (__ip_append_data cannot charge
// its later fragments to the socket), as requests do behind a stalled
// queue that holds the socket's earlier packets.
var reachSndBuf int

// reachRaw tells whether Reachable uses a raw socket: as root. A test seam,
// so that the datagram path runs under root too.
var reachRaw = func() bool { return os.Geteuid() == 0 }

// setSockopt sets an integer socket option on c's socket.
func setSockopt(c net.PacketConn, name string, level, opt, v int) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return fmt.Errorf("set %s: not a socket", name)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, v) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("set %s: %w", name, serr)
	}
	return nil
}

// reach is Reachable after its checks: one request on its own socket,
// every step under one deadline.
func reach(ctx context.Context, dst net.IP, size int, timeout time.Duration) (time.Duration, error) {
	raw := reachRaw()
	id := uint16(rand.Uint32())
	// recvOnly: a raw socket then lets echo replies through its ICMP
	// filter; it sends as well.
	s, err := openICMP(raw, true, "", dst, id)
	if err != nil {
		return 0, fmt.Errorf("reachable: ping %s: %w", dst, err)
	}
	defer s.conn.Close()
	// As Go's net package does for every datagram and raw socket (and so
	// pro-bing did): a request to a broadcast address is sent, not
	// refused with EACCES.
	if err := setSockopt(s.conn, "SO_BROADCAST", unix.SOL_SOCKET, unix.SO_BROADCAST, 1); err != nil {
		return 0, fmt.Errorf("reachable: ping %s: %w", dst, err)
	}
	if reachSndBuf > 0 {
		if err := setSockopt(s.conn, "SO_SNDBUF", unix.SOL_SOCKET, unix.SO_SNDBUF, reachSndBuf); err != nil {
			return 0, fmt.Errorf("reachable: ping %s: %w", dst, err)
		}
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := s.conn.SetDeadline(deadline); err != nil {
		return 0, fmt.Errorf("reachable: ping %s: %w", dst, err)
	}
	// The end of ctx wakes whatever the socket is blocked in.
	stop := context.AfterFunc(ctx, func() { s.conn.SetDeadline(aLongTimeAgo) })
	defer stop()

	seq := uint16(rand.Uint32())
	pkt, err := echoTemplate(id, size)
	if err != nil {
		return 0, fmt.Errorf("reachable: marshal echo request: %w", err)
	}
	setSeq(pkt, seq)
	ctxDeadline, hasCtxDeadline := ctx.Deadline()
	fail := func(err error) (time.Duration, error) {
		cerr := ctx.Err()
		if cerr == nil && hasCtxDeadline && !time.Now().Before(ctxDeadline) {
			// The socket's deadline is ctx's, and it can fire a moment
			// before ctx's own timer: the cause is still ctx's deadline.
			cerr = context.DeadlineExceeded
		}
		if cerr != nil {
			return 0, fmt.Errorf("reachable: ping %s: %w", dst, cerr)
		}
		return 0, fmt.Errorf("reachable: ping %s: %w", dst, err)
	}

	// Send, retrying while the transmit queue is full, until the deadline.
	var start time.Time
	backoff := minBackoff
	var sendErr error
	for {
		start = time.Now()
		_, err := s.conn.WriteTo(pkt, s.dst)
		if err == nil {
			break
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if sendErr != nil {
				return fail(fmt.Errorf("%w within %v: the request was never sent: %w", ErrNoReply, timeout, sendErr))
			}
			return fail(fmt.Errorf("%w within %v: the request was never sent", ErrNoReply, timeout))
		}
		if !queueFull(err) {
			return fail(fmt.Errorf("send: %w", err))
		}
		sendErr = err
		wait := min(backoff, time.Until(deadline))
		if wait <= 0 || !sleepCtx(ctx, wait) {
			if ctx.Err() != nil {
				return fail(ctx.Err())
			}
			return fail(fmt.Errorf("%w within %v: the request was never sent: %w", ErrNoReply, timeout, sendErr))
		}
		backoff = min(2*backoff, maxBackoff)
	}

	buf := make([]byte, 1<<16)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fail(fmt.Errorf("%w within %v", ErrNoReply, timeout))
			}
			if errors.Is(err, net.ErrClosed) {
				return fail(err)
			}
			// A datagram socket reports an ICMP error for the request
			// (host unreachable) on a read: keep waiting for a reply,
			// as ping does, until the deadline.
			continue
		}
		rid, rseq, ok := echoReply(buf[:n])
		if !ok || rseq != seq {
			continue
		}
		// A raw socket sees every echo reply in the namespace; the
		// kernel rewrites a datagram socket's identifier and delivers it
		// only its own replies.
		if raw && (rid != id || !fromIP(from).Equal(dst)) {
			continue
		}
		return time.Since(start), nil
	}
}

// queueFull reports whether a send failed only because the way out is
// full for now: a stalled device's queue (ENOBUFS), a full socket buffer.
func queueFull(err error) bool {
	return errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ENOMEM)
}

// echoReply returns the identifier and sequence number of the echo reply
// b, which may start with its IPv4 header (raw sockets), and whether b is
// an echo reply at all.
func echoReply(b []byte) (id, seq uint16, ok bool) {
	if len(b) > 0 && b[0]>>4 == 4 {
		hl := int(b[0]&0x0f) * 4
		if hl < 20 || len(b) < hl {
			return 0, 0, false
		}
		b = b[hl:]
	}
	if len(b) < 8 || b[0] != byte(ipv4.ICMPTypeEchoReply) || b[1] != 0 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(b[4:6]), binary.BigEndian.Uint16(b[6:8]), true
}

func fromIP(a net.Addr) net.IP {
	switch a := a.(type) {
	case *net.IPAddr:
		return a.IP
	case *net.UDPAddr:
		return a.IP
	}
	return nil
}
