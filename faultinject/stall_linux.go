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
	"golang.org/x/sys/unix"
)

// Stall asks the link partner (the project's partner program) to stop
// reading from the DUT link for a bounded time.
type Stall struct {
	iface string
	cfg   StallConfig
	opt   Options

	mu       sync.Mutex
	locks    heldLocks // the interfaces' locks, from Inject until nothing is left
	st       *state
	info     ifaceInfo // the interface Inject acted on
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

// RestoreBound implements Injector: Restore may have to wait for the
// stall to run out, the acknowledgement time plus its length at most.
func (s *Stall) RestoreBound() time.Duration { return s.cfg.AckTimeout + s.cfg.For + RestoreSteps }

// Status implements Injector: when the partner resumes by itself.
func (s *Stall) Status(context.Context) string {
	if u := s.Until(); !u.IsZero() {
		return fmt.Sprintf("the partner resumes by itself at %s", u.Local().Format("15:04:05.000"))
	}
	return ""
}

// Done implements Injector: nil, the stall lasts until Restore or its end.
func (s *Stall) Done() <-chan struct{} { return nil }

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
	if err := startInject(ctx, s.st, "stall on "+s.iface); err != nil {
		return err
	}
	info, err := checkIface(s.opt, s.iface)
	if err != nil {
		return err
	}
	if len(info.MAC) != 6 {
		return fmt.Errorf("%w %s: it has no Ethernet address", ErrUnsafeInterface, s.iface)
	}
	if err := s.locks.take(s.opt, s.iface); err != nil {
		return err
	}
	defer func() { s.locks.releaseIf(s.st == nil) }()
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
	s.info = info
	s.restored = ""
	ackAt, err := s.exchange(ctx, conn, frame, req, start.Add(s.cfg.AckTimeout),
		"the stall on "+s.iface+" within "+s.cfg.AckTimeout.String()+" (is the partner program running on the other end?)")
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

// exchange sends frame until the partner acknowledges req or deadline;
// noAck completes the ErrNoAck message ("link partner did not acknowledge
// ..."). A send that fails for lack of buffer space (a full qdisc in front
// of a stalled device) is tried again at the next resend.
func (s *Stall) exchange(ctx context.Context, conn *packet.Conn, frame []byte, req CtrlFrame, deadline time.Time, noAck string) (time.Time, error) {
	dst := &packet.Addr{HardwareAddr: s.peer()}
	// Close unblocks the read when ctx ends.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 2048)
	var sendErr error
	for next := time.Now(); ; {
		if now := time.Now(); !now.Before(next) {
			if _, err := conn.WriteTo(frame, dst); err != nil {
				if !errors.Is(err, unix.ENOBUFS) {
					return time.Time{}, fmt.Errorf("sending control frame on %s: %w", s.iface, err)
				}
				sendErr = err
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
					if sendErr != nil {
						return time.Time{}, fmt.Errorf("%w %s; last send error: %w", ErrNoAck, noAck, sendErr)
					}
					return time.Time{}, fmt.Errorf("%w %s", ErrNoAck, noAck)
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
// the link it has stopped reading. Without StallConfig.Resume, Restore
// waits until the stall ends by itself (or ctx ends, which it reports).
// With it, Restore calls it and then sends a CmdResume control frame until
// the partner acknowledges it: the acknowledgement proves that the partner
// reads again and the stall is over. When the hook fails or no
// acknowledgement comes before the stall would end by itself, Restore falls
// back to waiting for that end. Describe says which way the stall ended.
// The state file is removed only once the stall is over.
func (s *Stall) Restore(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() { s.locks.releaseIf(s.st == nil) }()
	if s.st == nil {
		return nil
	}
	until := s.st.StallUntil
	var early error
	if s.cfg.Resume != nil && time.Now().Before(until) {
		at, err := s.resumeEarly(ctx, until)
		if err == nil {
			if err := removeState(s.opt, s.iface); err != nil {
				return err
			}
			s.restored = fmt.Sprintf("stall ended early by the resume hook at %s, %v before its own end at %s (the partner acknowledged a resume frame)",
				at.Local().Format("15:04:05.000"), until.Sub(at).Round(time.Millisecond), until.Local().Format("15:04:05.000"))
			s.st = nil
			return nil
		}
		early = err
	}
	if err := waitUntil(ctx, until); err != nil {
		if early != nil && !errors.Is(early, err) {
			err = fmt.Errorf("%w (ending it early failed: %w)", err, early)
		}
		return fmt.Errorf("partner stall on %s cannot be ended from this side and lasts until %s: %w",
			s.iface, until.Local().Format("15:04:05.000"), err)
	}
	if err := removeState(s.opt, s.iface); err != nil {
		return err
	}
	s.restored = fmt.Sprintf("stall ran out at %s", until.Local().Format("15:04:05.000"))
	if early != nil {
		s.restored += fmt.Sprintf(" (ending it early failed: %v)", early)
	}
	s.st = nil
	return nil
}

// resumeEarly calls the Resume hook and waits, until the stall's own end
// at the latest, for the partner to acknowledge a CmdResume frame. It
// returns when the acknowledgement arrived.
func (s *Stall) resumeEarly(parent context.Context, until time.Time) (time.Time, error) {
	ctx, cancel := context.WithDeadline(parent, until)
	defer cancel()
	if err := s.cfg.Resume(ctx); err != nil {
		return time.Time{}, fmt.Errorf("resume hook: %w", err)
	}
	var nb [4]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return time.Time{}, err
	}
	req := CtrlFrame{Command: CmdResume, Nonce: binary.BigEndian.Uint32(nb[:])}
	frame, err := req.MarshalEthernet(s.peer(), s.info.MAC)
	if err != nil {
		return time.Time{}, err
	}
	var conn *packet.Conn
	if err := inNetNS(s.opt, func() error {
		var err error
		conn, err = packet.Listen(s.info.netInterface(), packet.Raw, EtherTypeCtrl, nil)
		return err
	}); err != nil {
		return time.Time{}, fmt.Errorf("AF_PACKET socket on %s: %w", s.iface, err)
	}
	defer conn.Close()
	noAck := "a resume frame on " + s.iface + " before the stall's own end"
	at, err := s.exchange(ctx, conn, frame, req, until, noAck)
	if err != nil && parent.Err() == nil && ctx.Err() != nil {
		// The stall's end came first and ended the exchange through
		// the context rather than its own deadline: same meaning.
		return time.Time{}, fmt.Errorf("%w %s", ErrNoAck, noAck)
	}
	return at, err
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
