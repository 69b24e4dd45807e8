package traffic

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"txtimeout/internal/nsexec"
)

// Back-off bounds after a transient send error (ENOBUFS and the like): long
// enough not to spin on a stalled queue, short enough to refill a ring that
// starts draining again.
const (
	minBackoff = 100 * time.Microsecond
	maxBackoff = 10 * time.Millisecond
)

// rcvBuf is the receive buffer asked for each socket, so that replies to a
// full-rate flood are not lost in the socket before the reader runs.
const rcvBuf = 4 << 20

// icmpSocket is an ICMP socket with the runtime's network poller, as
// Reachable uses it.
type icmpSocket struct {
	conn net.PacketConn
	raw  bool
	id   uint16 // echo identifier; the kernel picks it for datagram sockets
	dst  net.Addr
}

// openICMP opens a non-blocking ICMP socket in the calling thread's network
// namespace (see icmpFd) and hands it to the network poller.
func openICMP(raw, recvOnly bool, iface string, dst net.IP, id uint16) (*icmpSocket, error) {
	fd, err := icmpFd(raw, recvOnly, iface, unix.SOCK_NONBLOCK)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "icmp")
	conn, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("wrap ICMP socket: %w", err)
	}
	s := &icmpSocket{conn: conn, raw: raw, id: id}
	if raw {
		s.dst = &net.IPAddr{IP: dst}
	} else {
		s.dst = &net.UDPAddr{IP: dst}
	}
	return s, nil
}

// floodSocket is one of a flood's sockets: a blocking socket that the
// runtime's network poller does not know. A socket in the poller's epoll
// set has a waiter on its wait queues, so every reply queued and every
// sent request freed wakes an idle thread in epoll_wait (measured: 0.37
// voluntary context switches per request with one sender); a blocking
// socket that nobody sleeps on wakes nobody. Its blocking calls time out
// after sockPoll, so that the end of the flood is seen.
type floodSocket struct {
	fd  int
	raw bool
	id  uint16 // echo identifier; the kernel picks it for datagram sockets
}

// sockPoll bounds how long a flood's send waits for room in a full socket
// buffer, and a read for a reply, before they look at the flood's state
// again.
const sockPoll = 10 * time.Millisecond

func openFloodSocket(raw, recvOnly bool, iface string, id uint16) (*floodSocket, error) {
	fd, err := icmpFd(raw, recvOnly, iface, 0)
	if err != nil {
		return nil, err
	}
	tv := unix.NsecToTimeval(sockPoll.Nanoseconds())
	for _, opt := range []int{unix.SO_SNDTIMEO, unix.SO_RCVTIMEO} {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("set socket timeout: %w", err)
		}
	}
	return &floodSocket{fd: fd, raw: raw, id: id}, nil
}

// icmpFd opens an ICMP socket (flags: SOCK_NONBLOCK or 0) in the calling
// thread's network namespace. A raw socket receives a copy of every echo
// reply in its namespace, so raw senders block all ICMP input (recvOnly
// false) and one extra raw socket (recvOnly true) reads the replies for
// all of them; a datagram socket gets only the replies to its own
// identifier and reads them itself.
func icmpFd(raw, recvOnly bool, iface string, flags int) (int, error) {
	typ := unix.SOCK_DGRAM
	if raw {
		typ = unix.SOCK_RAW
	}
	fd, err := unix.Socket(unix.AF_INET, typ|flags|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if err != nil {
		switch {
		case raw && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)):
			return -1, fmt.Errorf("open raw ICMP socket: %w (needs CAP_NET_RAW; run as root or use unprivileged sockets)", err)
		case !raw && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)):
			return -1, fmt.Errorf("open ICMP datagram socket: %w (add the group to net.ipv4.ping_group_range in this namespace)", err)
		}
		return -1, fmt.Errorf("open ICMP socket: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if raw {
		// ICMP_FILTER blocks the types whose bits are set: the reader
		// keeps only echo replies, so it does not wake for every other
		// ICMP message in the namespace.
		block := ^0 // senders: nothing
		if recvOnly {
			block = ^(1 << ipv4.ICMPTypeEchoReply)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_RAW, unix.ICMP_FILTER, block); err != nil {
			return -1, fmt.Errorf("set ICMP_FILTER: %w", err)
		}
	}
	if iface != "" {
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, iface); err != nil {
			if errors.Is(err, unix.ENODEV) {
				return -1, fmt.Errorf("bind to device %q: no such interface in this network namespace: %w", iface, os.ErrNotExist)
			}
			return -1, fmt.Errorf("bind to device %q: %w", iface, err)
		}
	}
	if raw && !recvOnly {
		// Nothing to receive.
	} else if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf); err != nil {
		// Without CAP_NET_ADMIN the ordinary option, capped by rmem_max,
		// is the best there is.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	ok = true
	return fd, nil
}

// errnoName names the errno inside err, or returns "" if there is none.
func errnoName(err error) string {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return ""
	}
	if n := unix.ErrnoName(errno); n != "" {
		return n
	}
	return fmt.Sprintf("errno %d", int(errno))
}

// transient reports whether a send error is one a stalled, full or
// resetting device causes, so that the flood should keep going.
func transient(err error) bool {
	for _, e := range []unix.Errno{unix.ENOBUFS, unix.EAGAIN, unix.ENOMEM,
		unix.EHOSTUNREACH, unix.ENETUNREACH, unix.ENETDOWN, unix.EHOSTDOWN,
		unix.ECONNREFUSED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// floodRun is the shared state of one flood.
type floodRun struct {
	c        FloodConfig
	base     uint16       // the first sender's echo identifier
	reserved atomic.Int64 // requests claimed by senders, for Count
	sent     atomic.Int64
	received atomic.Int64
	got      chan struct{} // a reply arrived (capacity 1, never blocks)

	mu     sync.Mutex
	errors map[string]int64
	fatal  error
}

func (r *floodRun) countError(err error) {
	name := errnoName(err)
	if name == "" {
		name = "other"
	}
	r.mu.Lock()
	r.errors[name]++
	r.mu.Unlock()
}

func (r *floodRun) stats(elapsed time.Duration) FloodStats {
	r.mu.Lock()
	errs := make(map[string]int64, len(r.errors))
	for k, v := range r.errors {
		errs[k] = v
	}
	r.mu.Unlock()
	s := FloodStats{Sent: r.sent.Load(), Received: r.received.Load(), Errors: errs, Elapsed: elapsed}
	if sec := elapsed.Seconds(); sec > 0 {
		s.PPS = float64(s.Sent) / sec
	}
	return s
}

func flood(ctx context.Context, c FloodConfig) (FloodStats, error) {
	raw := c.Privileged || (os.Geteuid() == 0 && !c.Unprivileged)
	base := uint16(rand.N(1 << 16))
	socks := make([]*floodSocket, 0, c.Senders)
	var readSocks []*floodSocket // the sockets that receive replies
	closeAll := func() {
		for _, s := range socks {
			unix.Close(s.fd)
		}
		if raw {
			for _, s := range readSocks {
				unix.Close(s.fd)
			}
		}
	}
	err := nsexec.Do(c.NetNS, func() error {
		for i := 0; i < c.Senders; i++ {
			s, err := openFloodSocket(raw, false, c.Iface, base+uint16(i))
			if err != nil {
				return err
			}
			socks = append(socks, s)
		}
		if !raw {
			readSocks = socks
			return nil
		}
		r, err := openFloodSocket(true, true, c.Iface, base)
		if err != nil {
			return err
		}
		readSocks = []*floodSocket{r}
		return nil
	})
	if err != nil {
		closeAll()
		return FloodStats{}, fmt.Errorf("flood: %w", err)
	}
	defer closeAll()

	r := &floodRun{c: c, got: make(chan struct{}, 1), errors: map[string]int64{}, base: base}
	start := time.Now()
	// sendCtx ends the senders: at the bound, at the end of ctx, or at the
	// first fatal send error.
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	if c.For > 0 {
		var cancel context.CancelFunc
		sendCtx, cancel = context.WithDeadline(sendCtx, start.Add(c.For))
		defer cancel()
	}

	// At full rate each sender reads the replies queued so far after
	// each batch, without waiting, so that nobody sleeps on a socket; the
	// readers wait for replies only with an Interval, and after the last
	// send.
	readNow := make(chan struct{})
	if c.Interval > 0 {
		close(readNow)
	}
	var stopReading atomic.Bool
	var readers sync.WaitGroup
	for _, s := range readSocks {
		readers.Add(1)
		go func() {
			defer readers.Done()
			select {
			case <-readNow:
			case <-ctx.Done():
			}
			r.read(s, newReplyBatch(), &stopReading)
		}()
	}

	progressDone := make(chan struct{})
	var progress sync.WaitGroup
	if c.Progress != nil {
		progress.Add(1)
		go func() {
			defer progress.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-progressDone:
					return
				case <-t.C:
					c.Progress(r.stats(time.Since(start)))
				}
			}
		}()
	}

	var senders sync.WaitGroup
	for i, s := range socks {
		rs := readSocks[0]
		if !raw {
			rs = readSocks[i]
		}
		senders.Add(1)
		go func() {
			defer senders.Done()
			if err := r.send(sendCtx, s, rs); err != nil {
				r.mu.Lock()
				if r.fatal == nil {
					r.fatal = err
				}
				r.mu.Unlock()
				stopSending()
			}
		}()
	}
	senders.Wait()
	elapsed := time.Since(start)
	close(progressDone)
	progress.Wait()

	r.mu.Lock()
	fatal := r.fatal
	r.mu.Unlock()
	if c.Interval == 0 {
		close(readNow)
	}
	if fatal == nil && c.Linger > 0 && ctx.Err() == nil {
		r.linger(ctx, c.Linger)
	}
	// The readers take what is queued and end.
	stopReading.Store(true)
	readers.Wait()

	st := r.stats(elapsed)
	if fatal != nil {
		return st, fmt.Errorf("flood: %w", fatal)
	}
	return st, nil
}

// linger waits until every request has its reply, d has passed, or ctx
// ends.
func (r *floodRun) linger(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for r.received.Load() < r.sent.Load() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case <-r.got:
		}
	}
}

// send is one sender's loop on socket s, reading the replies on socket rs
// at full rate. It returns nil when the flood's bound is reached and an
// error for a send error that is not transient.
func (r *floodRun) send(ctx context.Context, s, rs *floodSocket) error {
	b, err := newEchoBatch(s.id, r.c.Size, [4]byte(r.c.Dst.To4()))
	if err != nil {
		return err
	}
	var drain func()
	if r.c.Interval == 0 {
		rb := newReplyBatch()
		drain = func() { r.drain(rs, rb) }
	}
	return r.sendLoop(ctx, b, func(msgs []unix.Mmsghdr) (int, error) {
		return mmsg(unix.SYS_SENDMMSG, s.fd, msgs, 0)
	}, drain)
}

// claim reserves up to n of the flood's requests for one sender and
// returns how many it got: n without a Count, fewer or none near it.
func (r *floodRun) claim(n int) int {
	if r.c.Count == 0 {
		return n
	}
	end := r.reserved.Add(int64(n))
	start := end - int64(n)
	if start >= int64(r.c.Count) {
		return 0
	}
	return int(min(end, int64(r.c.Count)) - start)
}

// sendLoop sends b's requests with sendmmsg until the flood's bound: a
// batch of batchLen at full rate, one per tick with an Interval; after
// each batch it calls drain, if not nil. Every request has its own
// sequence number. A batch the kernel takes only in part is resent from
// the first request it did not take, so each failed attempt is counted
// once in Errors and nothing is sent twice. EAGAIN (the socket buffer
// stayed full for sockPoll) is waited out and not counted.
func (r *floodRun) sendLoop(ctx context.Context, b *echoBatch, sendmmsg func([]unix.Mmsghdr) (int, error), drain func()) error {
	want := batchLen
	var ticker *time.Ticker
	if r.c.Interval > 0 {
		want = 1
		ticker = time.NewTicker(r.c.Interval)
		defer ticker.Stop()
	}
	backoff := minBackoff
	for {
		if ctx.Err() != nil {
			return nil
		}
		n := r.claim(want)
		if n == 0 {
			return nil
		}
		// Retry the rest of this batch until it is sent or the flood
		// ends.
		for msgs := b.next(n); len(msgs) > 0; {
			k, err := sendmmsg(msgs)
			if k > 0 {
				r.sent.Add(int64(k))
				msgs = msgs[k:]
				backoff = minBackoff
			}
			if err == nil {
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, unix.EAGAIN) {
				continue // a full socket buffer; the context decides
			}
			r.countError(err)
			if !transient(err) {
				return fmt.Errorf("send to %s: %w", r.c.Dst, err)
			}
			if !sleepCtx(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, maxBackoff)
		}
		if drain != nil {
			drain()
		}
		if ticker != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-ticker.C:
			}
		}
	}
}

// sleepCtx sleeps for d and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// drain counts the replies queued on socket s without waiting.
func (r *floodRun) drain(s *floodSocket, b *replyBatch) {
	for {
		k, err := mmsg(unix.SYS_RECVMMSG, s.fd, b.msgs, unix.MSG_DONTWAIT)
		if err != nil || k == 0 {
			// EAGAIN: nothing queued. Datagram sockets report ICMP
			// errors for earlier requests on a later read; they are
			// not replies.
			return
		}
		r.count(s, b, k)
		if k < len(b.msgs) {
			return
		}
	}
}

// read counts the replies on socket s, waiting for them, until stop is
// set; then it takes what is queued and returns.
func (r *floodRun) read(s *floodSocket, b *replyBatch, stop *atomic.Bool) {
	for !stop.Load() {
		k, err := mmsg(unix.SYS_RECVMMSG, s.fd, b.msgs, unix.MSG_WAITFORONE)
		if err == nil {
			r.count(s, b, k)
		}
		// EAGAIN: no reply within sockPoll; other errors: as in drain.
	}
	r.drain(s, b)
}

// count counts the echo replies among the first k datagrams in b that
// socket s received: for a raw socket those whose identifier is one of the
// flood's, for a datagram socket all (the kernel delivers only its own).
func (r *floodRun) count(s *floodSocket, b *replyBatch, k int) {
	got := 0
	for i := range k {
		id, ok := replyID(b.datagram(i))
		if ok && (!s.raw || id-r.base < uint16(r.c.Senders)) {
			got++
		}
	}
	if got > 0 {
		r.received.Add(int64(got))
		select {
		case r.got <- struct{}{}:
		default:
		}
	}
}
