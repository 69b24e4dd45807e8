// Package partner is the DUT's link partner: the virtual rig's far end of
// its virtio-net link, or a partner machine's port on a hardware rig.
//
// A Partner owns a MAC and an IPv4 address, answers ARP and ICMP echo
// (reassembling fragmented requests and fragmenting large replies to the
// DUT's MTU), counts what it receives and sends, and obeys the in-band stall
// frame of package faultinject. The responder is the same on both links;
// what differs is how frames travel and what a stall does:
//
//   - Serve: QEMU's stream (or socket) netdev, which hands every frame the
//     guest transmits to a host socket prefixed with its 4-byte big-endian
//     length. A stall stops reading the connection for the time asked, so
//     QEMU stops draining the guest's virtio TX ring, the driver stops its
//     queue, and the kernel's TX watchdog fires (measured on Debian's 6.1
//     and 6.12 kernels under TCG: about 5.6 s after the partner stops
//     reading while a flood keeps the ring full).
//   - ServePacket: an AF_PACKET socket on a real port (Linux). A stall
//     floods 802.3x PAUSE frames at the DUT (faultinject.PauseFlood,
//     quanta 0xFFFF, renewed before each pause expires), so the DUT's MAC
//     stops transmitting, for the time asked; the partner keeps reading.
//
// # Stalls
//
// On a CmdStall frame the partner starts the stall and then queues the
// acknowledgement (the same frame with AckBit set and the same nonce, sent
// back to the sender's MAC); when the stall cannot start (the PAUSE flood
// is refused) it does not acknowledge, and the sender reports that. A
// request longer than Config.MaxStall is obeyed for MaxStall, and the
// acknowledgement carries the duration granted. The stall ends when its
// duration has passed, Resume is called, a CmdResume frame is read (only
// on a link the stall does not stop reading), or the context given to Serve
// ends. A resume frame is acknowledged after the stall has ended, so the
// acknowledgement proves that it is over. Frames already queued for sending
// are still written during a stall.
//
// Control frames are obeyed whatever their destination MAC, since a sender
// that does not know the partner's address broadcasts them. Senders repeat
// a request until it is acknowledged, so a repeat may arrive during the
// stall it asked for or be queued behind it: a request whose nonce matches
// the current stall, or one that ended less than 5 s before, is
// acknowledged again but not obeyed. A request with a new nonce during a
// stall replaces it.
//
// # Queues
//
// Replies go through a queue of 1024 frames to a single writer, so writes
// are serialized and a peer that is slow to read them never stops the
// partner from reading: when the queue is full, replies are dropped and
// counted in Stats.TxDropped. Only a stall on the stream link stops reading.
package partner

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

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

// ErrInterfaceGone is returned by ServePacket when its interface was
// deleted (or replaced by another of the same name).
var ErrInterfaceGone = errors.New("interface went away")

// Config configures a Partner.
type Config struct {
	MAC net.HardwareAddr // default 02:74:78:00:00:01 (DefaultMAC)
	IP  net.IP           // default 198.18.0.1 (DefaultIP)
	// MTU is the DUT's MTU: echo replies longer than that are fragmented.
	// Default 1500; 68 to 65535.
	MTU int
	// MaxStall caps the stalls obeyed: a longer request is obeyed for
	// MaxStall. Default and upper bound faultinject.MaxStall.
	MaxStall time.Duration
	Logf     func(format string, args ...any) // optional
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
	mac      net.HardwareAddr
	ip       net.IP
	mtu      int
	maxStall time.Duration
	logf     func(format string, args ...any)

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
		mac:      DefaultMAC,
		ip:       DefaultIP,
		mtu:      DefaultMTU,
		maxStall: faultinject.MaxStall,
		logf:     func(string, ...any) {},
		events:   make(chan StallEvent, 64),
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
	if c.MaxStall != 0 {
		if c.MaxStall < 0 || c.MaxStall > faultinject.MaxStall {
			return nil, fmt.Errorf("partner: MaxStall %v out of range (0 to %v)", c.MaxStall, faultinject.MaxStall)
		}
		p.maxStall = c.MaxStall
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
