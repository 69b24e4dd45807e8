package faultinject

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/packet"
)

// Stall asks the link partner (the project's partner program) to stop
// reading from the DUT link for a bounded time.
type Stall struct {
	iface string
	cfg   StallConfig
	opt   Options

	mu       sync.Mutex
	st       *state
	acked    time.Time
	until    time.Time
	restored string
}

var _ Injector = (*Stall)(nil)

// ctrlResend is how often an unacknowledged control frame is sent again.
// A partner stops reading once it has acknowledged, so repeats after the
// acknowledgement never reach it.
const ctrlResend = 500 * time.Millisecond

// maxAckTimeout bounds StallConfig.AckTimeout.
const maxAckTimeout = time.Minute

// NewStall validates its input and changes nothing.
func NewStall(iface string, c StallConfig, o Options) (*Stall, error) {
	if err := validIfaceName(iface); err != nil {
		return nil, err
	}
	if c.For < time.Millisecond || c.For > MaxStall {
		return nil, fmt.Errorf("%w: stall duration %v out of range [1ms..%v]", ErrBadConfig, c.For, MaxStall)
	}
	if c.PeerMAC != nil && len(c.PeerMAC) != 6 {
		return nil, fmt.Errorf("%w: partner MAC %q is not a 6-byte Ethernet address", ErrBadConfig, c.PeerMAC)
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.AckTimeout < 0 || c.AckTimeout > maxAckTimeout {
		return nil, fmt.Errorf("%w: ack timeout %v out of range (0..%v]", ErrBadConfig, c.AckTimeout, maxAckTimeout)
	}
	return &Stall{iface: iface, cfg: c, opt: o}, nil
}

// Name implements Injector.
func (s *Stall) Name() string { return "stall" }

func (s *Stall) peer() net.HardwareAddr {
	if s.cfg.PeerMAC == nil {
		return net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	}
	return s.cfg.PeerMAC
}

// Describe implements Injector.
func (s *Stall) Describe() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := fmt.Sprintf("link-partner stall on %s for %v (control frame to %s)", s.iface, s.cfg.For, s.peer())
	if !s.acked.IsZero() {
		d += fmt.Sprintf("; acknowledged at %s, ends at %s", s.acked.Format("15:04:05.000"), s.until.Format("15:04:05.000"))
	}
	if s.restored != "" {
		d += "; " + s.restored
	}
	return d
}

// Until is when the partner resumes by itself (zero before an
// acknowledged Inject).
func (s *Stall) Until() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.until
}

// Inject implements Injector: it sends the control frame and waits for
// the partner's acknowledgement (ErrNoAck when none comes).
func (s *Stall) Inject(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st != nil {
		return fmt.Errorf("stall on %s already injected", s.iface)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	info, err := checkIface(s.opt, s.iface)
	if err != nil {
		return err
	}
	if len(info.MAC) != 6 {
		return fmt.Errorf("%w %s: it has no Ethernet address", ErrUnsafeInterface, s.iface)
	}
	if err := checkNoStale(s.opt, s.iface); err != nil {
		return err
	}
	var nb [4]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return err
	}
	req := CtrlFrame{Command: CmdStall, Duration: s.cfg.For, Nonce: binary.BigEndian.Uint32(nb[:])}
	frame, err := req.MarshalEthernet(s.peer(), info.MAC)
	if err != nil {
		return err
	}
	var conn *packet.Conn
	if err := inNetNS(s.opt, func() error {
		var err error
		conn, err = packet.Listen(info.netInterface(), packet.Raw, EtherTypeCtrl, nil)
		return err
	}); err != nil {
		return fmt.Errorf("AF_PACKET socket on %s: %w", s.iface, err)
	}
	defer conn.Close()

	start := time.Now()
	st := &state{
		Injector: "stall", Iface: s.iface, Ifindex: info.Index, NetNS: s.opt.NetNS,
		PID: os.Getpid(), Created: start.UTC(),
		// Until the acknowledgement is in, the latest the partner can
		// resume is the last possible send plus the duration.
		StallUntil: start.Add(s.cfg.AckTimeout + s.cfg.For).UTC(),
	}
	if err := writeState(s.opt, st); err != nil {
		return err
	}
	s.st = st
	s.restored = ""
	ackAt, err := s.exchange(ctx, conn, frame, req, start.Add(s.cfg.AckTimeout))
	if err != nil {
		s.st = nil
		if rerr := removeState(s.opt, s.iface); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	s.acked = ackAt
	s.until = ackAt.Add(s.cfg.For)
	st.StallUntil = s.until.UTC()
	if err := writeState(s.opt, st); err != nil {
		return err
	}
	return nil
}

// exchange sends frame until the partner acknowledges req or deadline.
func (s *Stall) exchange(ctx context.Context, conn *packet.Conn, frame []byte, req CtrlFrame, deadline time.Time) (time.Time, error) {
	dst := &packet.Addr{HardwareAddr: s.peer()}
	// Close unblocks the read when ctx ends.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 2048)
	for next := time.Now(); ; {
		if now := time.Now(); !now.Before(next) {
			if _, err := conn.WriteTo(frame, dst); err != nil {
				return time.Time{}, fmt.Errorf("sending control frame on %s: %w", s.iface, err)
			}
			next = now.Add(ctrlResend)
		}
		rd := next
		if deadline.Before(rd) {
			rd = deadline
		}
		if err := conn.SetReadDeadline(rd); err != nil {
			return time.Time{}, err
		}
		n, _, err := conn.ReadFrom(buf)
		if err := ctx.Err(); err != nil {
			return time.Time{}, err
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !time.Now().Before(deadline) {
					return time.Time{}, fmt.Errorf("%w the stall on %s within %v (is the partner program running on the other end?)",
						ErrNoAck, s.iface, s.cfg.AckTimeout)
				}
				continue
			}
			return time.Time{}, fmt.Errorf("reading on %s: %w", s.iface, err)
		}
		f, _, err := ParseCtrlEthernet(buf[:n])
		if err != nil || f.Command != req.Command|AckBit || f.Nonce != req.Nonce {
			continue // our own frame going out, or someone else's
		}
		return time.Now(), nil
	}
}

// Restore implements Injector. A stalled partner cannot be reached over
// the link it has stopped reading, so Restore waits until the stall ends
// by itself (or ctx ends, which it reports).
func (s *Stall) Restore(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st == nil {
		return nil
	}
	if err := waitUntil(ctx, s.st.StallUntil); err != nil {
		return fmt.Errorf("partner stall on %s cannot be ended from this side and lasts until %s: %w",
			s.iface, s.st.StallUntil.Local().Format("15:04:05.000"), err)
	}
	if err := removeState(s.opt, s.iface); err != nil {
		return err
	}
	s.restored = fmt.Sprintf("stall ended at %s", s.st.StallUntil.Local().Format("15:04:05.000"))
	s.st = nil
	return nil
}

func waitUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
