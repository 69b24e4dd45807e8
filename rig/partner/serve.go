package partner

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/ip4defrag"
	"github.com/google/gopacket/layers"
)

// link carries Ethernet frames between the partner and the DUT: QEMU's
// stream socket (streamLink) or an AF_PACKET socket (packetLink).
type link interface {
	// read returns the next frame from the DUT, in buf when it fits. A
	// clean end of the link is io.EOF.
	read(buf []byte) ([]byte, error)
	// write sends the frame in b[prefixLen:]; b[:prefixLen] is the link's
	// to use (the stream's length prefix).
	write(b []byte) error
	// unblock makes a pending read or write return and reports whether it
	// could: when it cannot, the caller ends them by closing the link.
	unblock() bool
}

// deadliner is what net.Conn offers to unblock a pending Read or Write.
type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// streamLink is QEMU's stream framing over a connection: a 4-byte
// big-endian length, then the frame.
type streamLink struct{ rw io.ReadWriter }

func (l streamLink) read(buf []byte) ([]byte, error) { return ReadFrame(l.rw, buf) }

func (l streamLink) write(b []byte) error {
	binary.BigEndian.PutUint32(b, uint32(len(b)-prefixLen))
	_, err := l.rw.Write(b)
	return err
}

func (l streamLink) unblock() bool {
	d, ok := l.rw.(deadliner)
	if ok {
		now := time.Now()
		d.SetReadDeadline(now)
		d.SetWriteDeadline(now)
	}
	return ok
}

// Serve serves one QEMU connection until the stream ends (it returns nil),
// the context ends (it returns ctx.Err()) or reading or writing fails. A
// stall stops reading conn. When conn has read and write deadlines (a
// net.Conn has), Serve sets them to the past on return so that its
// goroutines end with it; otherwise a Read or Write it left blocked ends
// when the caller closes conn.
func (p *Partner) Serve(ctx context.Context, conn io.ReadWriter) error {
	return p.serve(ctx, streamLink{conn}, stopReading{})
}

type readResult struct {
	frame []byte
	err   error
}

// serve runs the partner on l until l ends, ctx ends or l fails; stalls do
// what a says.
func (p *Partner) serve(ctx context.Context, l link, a stallAction) error {
	if !p.serving.CompareAndSwap(false, true) {
		return ErrBusy
	}
	defer p.serving.Store(false)

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		if l.unblock() {
			wg.Wait()
		}
	}()

	s := p.newSession(a)

	// The writer owns the link's write side: every frame goes through
	// s.out, so writes are serialized and a slow peer never blocks the
	// reader.
	werr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Only a real failure is reported: the loop's return at the
		// context's end must not pass for a write error.
		if err := s.writeLoop(ctx, l); err != nil {
			werr <- err
		}
	}()

	// The reader reads one frame, hands it over and waits for the go-ahead
	// before reading the next: the main loop withholds it during a stall
	// that stops reading, so nothing at all is read from the link then.
	frames := make(chan readResult)
	next := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, MaxFrameLen)
		for {
			b, err := l.read(buf)
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
	owed := false // the reader waits for its go-ahead
	for {
		if owed && !s.holding() {
			select {
			case next <- struct{}{}:
				owed = false
			case <-ctx.Done():
				return s.finish(ctx.Err(), "cut short by shutdown")
			}
		}
		end, resume, stopped := s.stallChans()
		select {
		case <-ctx.Done():
			return s.finish(ctx.Err(), "cut short by shutdown")
		case err := <-werr:
			return s.finish(fmt.Errorf("partner: writing to the link: %w", err), "cut short by a write error")
		case <-end:
			s.endStall("ended")
		case <-resume:
			s.endStall("resumed early")
		case <-stopped:
			s.endStall("ended: its action stopped")
		case r := <-frames:
			owed = true
			if r.err != nil {
				if errors.Is(r.err, io.EOF) && !errors.Is(r.err, io.ErrUnexpectedEOF) {
					p.logf("partner: link closed")
					return s.finish(nil, "cut short: the link closed")
				}
				if ctx.Err() != nil {
					return s.finish(ctx.Err(), "cut short by shutdown")
				}
				return s.finish(fmt.Errorf("partner: reading from the link: %w", r.err), "cut short by a read error")
			}
			if err := s.handle(ctx, r.frame, werr); err != nil {
				return s.finish(err, "cut short by an error")
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
	action    stallAction
	cur       *stall // the stall in progress; nil when none
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

func (p *Partner) newSession(a stallAction) *session {
	return &session{
		p:      p,
		action: a,
		defrag: ip4defrag.NewIPv4Defragmenter(),
		tails:  make(map[fragKey]fragTail),
		out:    make(chan *[]byte, txQueueLen),
		echo:   echoReply{mac: p.mac, ip: p.ip, mtu: p.mtu},
		now:    time.Now,
	}
}

// errTxDropped is a link's way to say that it dropped a frame it could
// not send now (a full device queue) and can go on.
var errTxDropped = errors.New("frame dropped by the link")

func (s *session) writeLoop(ctx context.Context, l link) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case bp := <-s.out:
			b := *bp
			n := len(b) - prefixLen
			err := l.write(b)
			*bp = b[:cap(b)]
			s.p.bufs.Put(bp)
			if errors.Is(err, errTxDropped) {
				s.p.txDropped.Add(1)
				continue
			}
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
