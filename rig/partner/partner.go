// Package partner is the virtual rig's link partner: the far end of the DUT's virtio-net link.
//
// QEMU's stream (or socket) netdev hands every Ethernet frame the guest
// transmits to a host socket, prefixed with its 4-byte big-endian length,
// and reads frames for the guest the same way. Partner serves such a
// connection: it owns a MAC and an IPv4 address, answers ARP and ICMP echo
// (reassembling fragmented requests and fragmenting large replies to the
// DUT's MTU), counts what it receives and sends, and obeys the in-band stall
// frame of package faultinject by not reading the connection for the time
// asked. Not reading is the whole point: QEMU then stops draining the guest's
// virtio TX ring, the driver stops its queue, and the kernel's TX watchdog
// fires (measured on Debian's 6.1 and 6.12 kernels under TCG: about 5.6 s
// after the partner stops reading while a flood keeps the ring full).
//
// # Stalls
//
// On a CmdStall frame the partner queues the acknowledgement (the same
// frame with AckBit set and the same nonce, sent back to the sender's MAC)
// and then reads nothing until the duration has passed, Resume is called,
// or the context given to Serve ends. Frames already queued for sending are
// still written during a stall. Stall requests cannot nest: nothing is read
// while stalled.
//
// Control frames are obeyed whatever their destination MAC, since a sender
// that does not know the partner's address broadcasts them. Senders repeat
// a request until it is acknowledged, so a repeat may be queued behind the
// request obeyed and be read when its stall ends: a request whose nonce
// matches a stall that ended less than 5 s before is acknowledged again but
// not obeyed. A CmdResume frame (which a stalled partner cannot read) is
// acknowledged and otherwise ignored; Resume is the host side's way to end
// a stall early.
//
// # Queues
//
// Replies go through a queue of 1024 frames to a single writer, so writes
// are serialized and a peer that is slow to read them never stops the
// partner from reading: when the queue is full, replies are dropped and
// counted in Stats.TxDropped. Only a stall stops reading.
package partner

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/ip4defrag"
	"github.com/google/gopacket/layers"

	"txtimeout/faultinject"
)

// Defaults for Config.
var (
	DefaultMAC = net.HardwareAddr{0x02, 0x74, 0x78, 0x00, 0x00, 0x01}
	DefaultIP  = net.IPv4(198, 18, 0, 1).To4()
)

// DefaultMTU is the DUT's MTU, to which replies are fragmented.
const DefaultMTU = 1500

// txQueueLen bounds the frames waiting for the writer. A reply that finds
// the queue full is dropped (and counted), the way a NIC drops on a full
// ring, so that a slow reader on QEMU's side never stops the partner from
// reading: only a stall may do that.
const txQueueLen = 1024

// fragTimeout is how long an incomplete fragmented datagram is kept, like
// the kernel's ipfrag_time.
const fragTimeout = 30 * time.Second

// ErrBusy is returned by Serve when another Serve of the same Partner is
// running: stall state and counters belong to one link.
var ErrBusy = errors.New("partner already serving a connection")

// Config configures a Partner.
type Config struct {
	MAC net.HardwareAddr // default 02:74:78:00:00:01 (DefaultMAC)
	IP  net.IP           // default 198.18.0.1 (DefaultIP)
	// MTU is the DUT's MTU: echo replies longer than that are fragmented.
	// Default 1500; 68 to 65535.
	MTU  int
	Logf func(format string, args ...any) // optional
}

// Stats are the partner's counters. Rx counts every frame read, Tx every
// frame written; the kinds count received frames.
type Stats struct {
	RxFrames, RxBytes, TxFrames, TxBytes uint64
	// ARP counts ARP packets received; EchoRequests counts echo requests
	// received whole or reassembled (to any address); EchoReplies counts
	// echo replies sent (datagrams, not fragments); Fragments counts IPv4
	// fragments received; UDP counts UDP datagrams (pktgen's); Ctrl counts
	// control frames; Other counts everything else.
	ARP, EchoRequests, EchoReplies, Fragments, UDP, Ctrl, Other uint64
	// Malformed counts frames DecodeFrame rejected and fragments that
	// could not be reassembled; TxDropped counts frames dropped because
	// the send queue was full.
	Malformed, TxDropped uint64

	Stalls    uint64    // stalls started
	Stalled   bool      // a stall is in progress
	StallEnds time.Time // when the current stall ends; zero when not stalled
}

// StallEvent reports the start (Start true) or end of a stall.
type StallEvent struct {
	Start bool
	At    time.Time
	// For is the duration asked for (on start) or the time actually
	// stalled (on end).
	For   time.Duration
	Nonce uint32
}

// Partner is a link partner. Its methods are safe for concurrent use.
type Partner struct {
	mac  net.HardwareAddr
	ip   net.IP
	mtu  int
	logf func(format string, args ...any)

	serving atomic.Bool
	events  chan StallEvent
	ipID    atomic.Uint32
	bufs    sync.Pool

	rxFrames, rxBytes, txFrames, txBytes           atomic.Uint64
	arp, echoReq, echoRep, frags, udp, ctrl, other atomic.Uint64
	malformed, txDropped, stalls                   atomic.Uint64

	mu        sync.Mutex
	stallEnds time.Time     // zero when not stalled
	resume    chan struct{} // closed by Resume; nil when not stalled
}

// New returns a Partner for c, with defaults filled in.
func New(c Config) (*Partner, error) {
	p := &Partner{
		mac:    DefaultMAC,
		ip:     DefaultIP,
		mtu:    DefaultMTU,
		logf:   func(string, ...any) {},
		events: make(chan StallEvent, 64),
	}
	if c.MAC != nil {
		if len(c.MAC) != 6 {
			return nil, fmt.Errorf("partner: MAC %q is not a 6-byte Ethernet address", c.MAC)
		}
		if c.MAC[0]&1 != 0 {
			return nil, fmt.Errorf("partner: MAC %s is a multicast address", c.MAC)
		}
		p.mac = append(net.HardwareAddr(nil), c.MAC...)
	}
	if c.IP != nil {
		ip4 := c.IP.To4()
		if ip4 == nil || ip4.IsUnspecified() || ip4.IsMulticast() || ip4.Equal(net.IPv4bcast) {
			return nil, fmt.Errorf("partner: IP %s is not a unicast IPv4 address", c.IP)
		}
		p.ip = append(net.IP(nil), ip4...)
	}
	if c.MTU != 0 {
		if c.MTU < 68 || c.MTU > 65535 {
			return nil, fmt.Errorf("partner: MTU %d out of range (68 to 65535)", c.MTU)
		}
		p.mtu = c.MTU
	}
	if c.Logf != nil {
		p.logf = c.Logf
	}
	size := prefixLen + 14 + max(p.mtu, minFrameLen)
	p.bufs.New = func() any { b := make([]byte, size); return &b }
	return p, nil
}

// MAC returns the partner's MAC address.
func (p *Partner) MAC() net.HardwareAddr { return append(net.HardwareAddr(nil), p.mac...) }

// IP returns the partner's IPv4 address.
func (p *Partner) IP() net.IP { return append(net.IP(nil), p.ip...) }

// Stats returns a snapshot of the counters.
func (p *Partner) Stats() Stats {
	s := Stats{
		RxFrames:     p.rxFrames.Load(),
		RxBytes:      p.rxBytes.Load(),
		TxFrames:     p.txFrames.Load(),
		TxBytes:      p.txBytes.Load(),
		ARP:          p.arp.Load(),
		EchoRequests: p.echoReq.Load(),
		EchoReplies:  p.echoRep.Load(),
		Fragments:    p.frags.Load(),
		UDP:          p.udp.Load(),
		Ctrl:         p.ctrl.Load(),
		Other:        p.other.Load(),
		Malformed:    p.malformed.Load(),
		TxDropped:    p.txDropped.Load(),
		Stalls:       p.stalls.Load(),
	}
	p.mu.Lock()
	s.StallEnds = p.stallEnds
	s.Stalled = !p.stallEnds.IsZero()
	p.mu.Unlock()
	return s
}

// Stalled reports whether a stall is in progress.
func (p *Partner) Stalled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.stallEnds.IsZero()
}

// StallEvents returns the channel on which stall starts and ends are
// reported. It is buffered; when nobody drains it, events are dropped
// rather than delaying Serve (Stats stays exact).
func (p *Partner) StallEvents() <-chan StallEvent { return p.events }

// Resume ends the current stall early. Without a stall it does nothing.
func (p *Partner) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resume != nil {
		close(p.resume)
		p.resume = nil
	}
}

func (p *Partner) event(e StallEvent) {
	select {
	case p.events <- e:
	default:
	}
}

// deadliner is what net.Conn offers to unblock a pending Read or Write.
type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

type readResult struct {
	frame []byte
	err   error
}

// Serve serves one QEMU connection until the stream ends (it returns nil),
// the context ends (it returns ctx.Err()) or reading or writing fails.
// When conn has read and write deadlines (a net.Conn has), Serve sets them
// to the past on return so that its goroutines end with it; otherwise a
// Read or Write it left blocked ends when the caller closes conn.
func (p *Partner) Serve(ctx context.Context, conn io.ReadWriter) error {
	if !p.serving.CompareAndSwap(false, true) {
		return ErrBusy
	}
	defer p.serving.Store(false)

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		if d, ok := conn.(deadliner); ok {
			now := time.Now()
			d.SetReadDeadline(now)
			d.SetWriteDeadline(now)
			wg.Wait()
		}
	}()

	s := p.newSession()

	// The writer owns conn's write side: every frame goes through s.out,
	// so writes are serialized and a slow peer never blocks the reader.
	werr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Only a real failure is reported: the loop's return at the
		// context's end must not pass for a write error.
		if err := s.writeLoop(ctx, conn); err != nil {
			werr <- err
		}
	}()

	// The reader reads one frame, hands it over and waits for the go-ahead
	// before reading the next: the main loop withholds it during a stall,
	// so nothing at all is read from conn then.
	frames := make(chan readResult)
	next := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, MaxFrameLen)
		for {
			b, err := ReadFrame(conn, buf)
			select {
			case frames <- readResult{b, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
			select {
			case <-next:
			case <-ctx.Done():
				return
			}
		}
	}()

	p.logf("partner %s %s: serving", p.mac, p.ip)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-werr:
			return fmt.Errorf("partner: writing to the link: %w", err)
		case r := <-frames:
			if r.err != nil {
				if errors.Is(r.err, io.EOF) && !errors.Is(r.err, io.ErrUnexpectedEOF) {
					p.logf("partner: link closed")
					return nil
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("partner: reading from the link: %w", r.err)
			}
			if err := s.handle(ctx, r.frame, werr); err != nil {
				return err
			}
			select {
			case next <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// maxLogged bounds the malformed frames logged per connection, so that a
// flood of them cannot flood the log.
const maxLogged = 10

// session is the state of one Serve call.
type session struct {
	p         *Partner
	defrag    *ip4defrag.IPv4Defragmenter
	lastPurge time.Time
	out       chan *[]byte
	echo      echoReply
	logged    int // malformed frames logged, to keep a flood out of the log
	tails     map[fragKey]fragTail
	recent    []recentStall
	now       func() time.Time // the reassembly clock; a test seam
}

// fragKey names a datagram being reassembled, as ip4defrag does.
type fragKey struct {
	src, dst [4]byte
	id       uint16
}

// fragTail remembers where a padded short last fragment really ended.
type fragTail struct {
	end  int
	seen time.Time
}

func (p *Partner) newSession() *session {
	return &session{
		p:      p,
		defrag: ip4defrag.NewIPv4Defragmenter(),
		tails:  make(map[fragKey]fragTail),
		out:    make(chan *[]byte, txQueueLen),
		echo:   echoReply{mac: p.mac, ip: p.ip, mtu: p.mtu},
		now:    time.Now,
	}
}

func (s *session) writeLoop(ctx context.Context, w io.Writer) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case bp := <-s.out:
			b := *bp
			n := len(b) - prefixLen
			_, err := w.Write(b)
			*bp = b[:cap(b)]
			s.p.bufs.Put(bp)
			if err != nil {
				return err
			}
			s.p.txFrames.Add(1)
			s.p.txBytes.Add(uint64(n))
		}
	}
}

// alloc returns a send buffer of the full size.
func (s *session) alloc() []byte {
	bp := s.p.bufs.Get().(*[]byte)
	return (*bp)[:cap(*bp)]
}

// send queues the frame in buf[prefixLen:prefixLen+n] without blocking; it
// reports whether the frame was queued.
func (s *session) send(buf []byte, n int) bool {
	buf = buf[:prefixLen+n]
	binary.BigEndian.PutUint32(buf, uint32(n))
	select {
	case s.out <- &buf:
		return true
	default:
		s.p.txDropped.Add(1)
		return false
	}
}

func (s *session) malformed(format string, args ...any) {
	s.p.malformed.Add(1)
	s.logged++
	switch {
	case s.logged <= maxLogged:
		s.p.logf("partner: dropping malformed frame: "+format, args...)
	case s.logged == maxLogged+1:
		s.p.logf("partner: more malformed frames; no longer logged, counted in Stats.Malformed")
	}
}

// handle counts and answers one received frame. It returns only errors that
// end Serve.
func (s *session) handle(ctx context.Context, b []byte, werr chan error) error {
	p := s.p
	p.rxFrames.Add(1)
	p.rxBytes.Add(uint64(len(b)))
	f, err := DecodeFrame(b)
	if err != nil {
		s.malformed("%v", err)
		return nil
	}
	switch f.Kind {
	case KindARP:
		p.arp.Add(1)
		if f.ARPOp == arpRequest && f.TargetIP.Equal(p.ip) && !f.SenderIP.IsUnspecified() {
			buf := s.alloc()
			putARPReply(buf[prefixLen:], &f, p.mac, p.ip)
			s.send(buf, arpReplyLen)
		}
	case KindEchoRequest:
		p.echoReq.Add(1)
		s.answerEcho(&f, f.Transport)
	case KindFragment:
		p.frags.Add(1)
		s.reassemble(&f)
	case KindUDP:
		p.udp.Add(1)
	case KindCtrl:
		p.ctrl.Add(1)
		return s.control(ctx, &f, werr)
	default:
		p.other.Add(1)
	}
	return nil
}

// answerEcho replies to the echo request msg carried by f (whose IPv4
// fields name the sender) when it is addressed to the partner.
func (s *session) answerEcho(f *Frame, msg []byte) {
	if !f.DstIP.Equal(s.p.ip) || f.SrcIP.IsUnspecified() || f.Src[0]&1 != 0 {
		return
	}
	frames := echoReplyFrames(len(msg), s.p.mtu)
	if len(s.out)+frames > cap(s.out) {
		// Half a datagram is worth nothing to the DUT: drop it whole.
		s.p.txDropped.Add(uint64(frames))
		return
	}
	// Counted before the frames are queued, so that a reader who has the
	// reply in hand always sees it counted.
	s.p.echoRep.Add(1)
	id := uint16(s.p.ipID.Add(1))
	s.echo.build(msg, f.Src, f.SrcIP, f.Network[1], id, s.alloc, func(buf []byte, n int) { s.send(buf, n) })
}

// reassemble feeds a fragment to the defragmenter and answers the datagram
// it completes.
func (s *session) reassemble(f *Frame) {
	now := s.now()
	if now.Sub(s.lastPurge) > time.Second {
		s.defrag.DiscardOlderThan(now.Add(-fragTimeout))
		for k, t := range s.tails {
			if now.Sub(t.seen) > fragTimeout {
				delete(s.tails, k)
			}
		}
		s.lastPurge = now
	}
	// ip4defrag assumes a 20-byte header (it computes payload lengths as
	// Length-20) and keeps the layers it is given, so feed it only plain
	// headers, copied out of the read buffer that the next frame reuses.
	if f.Network[0]&0x0f != 5 {
		s.malformed("fragment with IPv4 options")
		return
	}
	var ip layers.IPv4
	if err := ip.DecodeFromBytes(append([]byte(nil), f.Network...), gopacket.NilDecodeFeedback); err != nil {
		s.malformed("fragment: %v", err)
		return
	}
	key := fragKey{[4]byte(f.SrcIP), [4]byte(f.DstIP), ip.Id}
	if ip.Flags&layers.IPv4MoreFragments == 0 && len(ip.Payload) < ip4defrag.IPv4MinimumFragmentSize {
		// ip4defrag refuses any fragment under 8 bytes, but a last
		// fragment may legally be that short (ping -s 1473 on a
		// 1500-byte MTU ends with a 1-byte fragment). Pad it for the
		// defragmenter and cut the padding off the result.
		s.tails[key] = fragTail{end: int(ip.FragOffset)*8 + len(ip.Payload), seen: now}
		ip.Payload = append(ip.Payload, make([]byte, ip4defrag.IPv4MinimumFragmentSize-len(ip.Payload))...)
		ip.Length = uint16(20 + len(ip.Payload))
	}
	whole, err := s.defrag.DefragIPv4WithTimestamp(&ip, now)
	if err != nil {
		delete(s.tails, key)
		s.malformed("%v", err)
		return
	}
	if whole == nil {
		return // more fragments to come
	}
	if int(whole.Length) != len(whole.Payload) {
		delete(s.tails, key)
		s.malformed("reassembled %d bytes of a %d-byte datagram", len(whole.Payload), whole.Length)
		return
	}
	if tail, ok := s.tails[key]; ok {
		delete(s.tails, key)
		if tail.end > len(whole.Payload) {
			s.malformed("reassembled %d bytes, short of the last fragment's end %d", len(whole.Payload), tail.end)
			return
		}
		whole.Payload = whole.Payload[:tail.end]
	}
	switch whole.Protocol {
	case layers.IPProtocolUDP:
		s.p.udp.Add(1)
	case layers.IPProtocolICMPv4:
		var d Frame
		if err := decodeICMP(&d, whole.Payload); err != nil {
			s.malformed("reassembled datagram: %v", err)
			return
		}
		if d.Kind == KindEchoRequest {
			s.p.echoReq.Add(1)
			s.answerEcho(f, whole.Payload)
		}
	}
}

// repeatWindow is how long after a stall a request with the same nonce is
// taken for a repeat of it. Repeats queue in the guest behind the request
// and are read as soon as the stall ends; a sender that reuses a nonce
// later still gets its stall.
const repeatWindow = 5 * time.Second

// recentStall is a stall obeyed lately.
type recentStall struct {
	nonce uint32
	end   time.Time
}

// repeated reports whether a stall with this nonce ended within
// repeatWindow.
func (s *session) repeated(nonce uint32, now time.Time) bool {
	for _, r := range s.recent {
		if r.nonce == nonce && now.Sub(r.end) < repeatWindow {
			return true
		}
	}
	return false
}

// remember records a stall that just ended.
func (s *session) remember(nonce uint32, end time.Time) {
	s.recent = append(s.recent, recentStall{nonce, end})
	if len(s.recent) > 16 {
		s.recent = s.recent[1:]
	}
}

// control obeys a control frame. A stall blocks here, so that Serve does
// not hand the reader its go-ahead until the stall is over.
func (s *session) control(ctx context.Context, f *Frame, werr chan error) error {
	p := s.p
	c := f.Ctrl
	if c.Command&faultinject.AckBit != 0 {
		return nil // someone else's acknowledgement
	}
	switch c.Command {
	case faultinject.CmdStall, faultinject.CmdResume:
	default:
		p.logf("partner: ignoring control frame with command %v", c.Command)
		return nil
	}
	ack := faultinject.CtrlFrame{Command: c.Command | faultinject.AckBit, Duration: c.Duration, Nonce: c.Nonce}
	frame, err := ack.MarshalEthernet(f.Src, p.mac)
	if err != nil {
		p.logf("partner: cannot acknowledge %v: %v", c.Command, err)
		return nil
	}
	buf := s.alloc()
	n := copy(buf[prefixLen:], frame)
	buf = buf[:prefixLen+n]
	binary.BigEndian.PutUint32(buf, uint32(n))
	// The acknowledgement must not be lost to a full queue: wait for room.
	// Nothing is read meanwhile, which is what the sender asked for anyway.
	select {
	case s.out <- &buf:
	case <-ctx.Done():
		return ctx.Err()
	case err := <-werr:
		return fmt.Errorf("partner: writing to the link: %w", err)
	}
	if c.Command != faultinject.CmdStall {
		return nil // a resume with no stall to end
	}
	// The sender repeats its request until the acknowledgement arrives
	// (faultinject resends every 500 ms), and a slow guest may have queued
	// a repeat behind the request this partner already obeyed. Obeying it
	// again would double the stall: acknowledge it, do not stall.
	if s.repeated(c.Nonce, time.Now()) {
		p.logf("partner: stall request (nonce %#x) repeated; acknowledged, not stalling again", c.Nonce)
		return nil
	}

	start := time.Now()
	resume := make(chan struct{})
	p.mu.Lock()
	p.stallEnds = start.Add(c.Duration)
	p.resume = resume
	p.mu.Unlock()
	p.stalls.Add(1)
	p.event(StallEvent{Start: true, At: start, For: c.Duration, Nonce: c.Nonce})
	p.logf("partner: stall %v (nonce %#x) from %s", c.Duration, c.Nonce, f.Src)

	t := time.NewTimer(c.Duration)
	var why string
	var ret error
	select {
	case <-t.C:
		why = "ended"
	case <-resume:
		why = "resumed early"
	case <-ctx.Done():
		why, ret = "cut short by shutdown", ctx.Err()
	case err := <-werr:
		why, ret = "cut short by a write error", fmt.Errorf("partner: writing to the link: %w", err)
	}
	t.Stop()
	end := time.Now()
	p.mu.Lock()
	p.stallEnds = time.Time{}
	p.resume = nil
	p.mu.Unlock()
	s.remember(c.Nonce, end)
	p.event(StallEvent{Start: false, At: end, For: end.Sub(start), Nonce: c.Nonce})
	p.logf("partner: stall (nonce %#x) %s after %v", c.Nonce, why, end.Sub(start).Round(time.Millisecond))
	return ret
}
