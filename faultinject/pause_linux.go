package faultinject

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// PauseFlood sends 802.3x PAUSE frames from the partner port.
type PauseFlood struct {
	partner string
	cfg     PauseConfig
	opt     Options

	mu       sync.Mutex
	locks    heldLocks // the interfaces' locks, from Inject until nothing is left
	st       *state
	fcSet    bool        // the DUT's flow control was changed
	found    *savedPause // the DUT's flow control as Inject found it, kept for Describe
	cancel   context.CancelFunc
	done     chan struct{}
	floodErr error
	interval time.Duration
	speed    int
	restored string

	sent atomic.Uint64
	// maxGap is the longest time between two frames; late counts the
	// gaps longer than one pause, during which the link could resume.
	maxGap atomic.Int64
	late   atomic.Uint64
}

var _ Injector = (*PauseFlood)(nil)

// NewPauseFlood validates its input and changes nothing.
func NewPauseFlood(partnerIface string, c PauseConfig, o Options) (*PauseFlood, error) {
	if err := validIfaceName(partnerIface); err != nil {
		return nil, err
	}
	if c.For <= 0 || c.For > MaxPause {
		return nil, fmt.Errorf("%w: pause duration %v out of range (0..%v]", ErrBadConfig, c.For, MaxPause)
	}
	if c.Quanta == 0 {
		c.Quanta = DefaultQuanta
	}
	if c.DUTIface != "" {
		if err := validIfaceName(c.DUTIface); err != nil {
			return nil, err
		}
		if c.DUTIface == partnerIface {
			return nil, fmt.Errorf("%w: the DUT interface and the partner interface are both %s (locks and state files go by name, whatever the namespace)", ErrBadConfig, partnerIface)
		}
	} else if c.DUTNetNS != "" {
		return nil, fmt.Errorf("%w: a DUT namespace (%s) without a DUT interface", ErrBadConfig, c.DUTNetNS)
	}
	return &PauseFlood{partner: partnerIface, cfg: c, opt: o}, nil
}

// Name implements Injector.
func (p *PauseFlood) Name() string { return "pause" }

// dutOptions are the options for the DUT's interface: p's, in the DUT's
// namespace.
func (p *PauseFlood) dutOptions() Options {
	o := p.opt
	o.NetNS = p.cfg.DUTNetNS
	return o
}

// inNS names a namespace for Describe: nothing for the caller's.
func inNS(path string) string {
	if path == "" {
		return ""
	}
	return " (netns " + path + ")"
}

// Describe implements Injector.
func (p *PauseFlood) Describe() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := fmt.Sprintf("802.3x PAUSE flood from %s%s for %v, quanta %#x", p.partner, inNS(p.opt.NetNS), p.cfg.For, p.cfg.Quanta)
	if p.interval > 0 {
		sp := "unknown speed, assumed 400 Gb/s"
		if p.speed > 0 {
			sp = fmt.Sprintf("%d Mb/s", p.speed)
		}
		s += fmt.Sprintf(", re-sent every %v (%s)", p.interval, sp)
	}
	if p.cfg.DUTIface != "" {
		s += fmt.Sprintf("; RX flow control on %s%s", p.cfg.DUTIface, inNS(p.cfg.DUTNetNS))
		if p.found != nil {
			s += fmt.Sprintf(" (was %s)", p.found)
		}
	}
	if n := p.sent.Load(); n > 0 {
		s += fmt.Sprintf("; %d frames sent, longest gap %v", n, time.Duration(p.maxGap.Load()).Round(time.Microsecond))
		if l := p.late.Load(); l > 0 {
			s += fmt.Sprintf(" (%d gaps longer than one pause of %v)", l, pauseDuration(p.cfg.Quanta, p.speed))
		}
	}
	if p.restored != "" {
		s += "; " + p.restored
	}
	return s
}

// Sent is the number of PAUSE frames sent so far.
func (p *PauseFlood) Sent() uint64 { return p.sent.Load() }

// Late is the number of gaps between frames longer than one pause (the
// link could have resumed in each; a loaded machine or a very short pause
// causes them), and MaxGap the longest gap.
func (p *PauseFlood) Late() (n uint64, maxGap time.Duration) {
	return p.late.Load(), time.Duration(p.maxGap.Load())
}

// RestoreBound implements Injector: stopping the flood and setting flow
// control back are Restore's own steps.
func (p *PauseFlood) RestoreBound() time.Duration { return RestoreSteps }

// Status implements Injector: the frames sent so far, and the DUT's RX
// flow control while the flood holds it on.
func (p *PauseFlood) Status(context.Context) string {
	s := fmt.Sprintf("%d PAUSE frames sent", p.Sent())
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st != nil && p.st.FlowControl != nil {
		how := "already on"
		if p.fcSet {
			how = "switched on"
		}
		s += fmt.Sprintf("; RX flow control of %s %s", p.st.FlowControl.Iface, how)
	}
	return s
}

// Done implements Injector: it is closed when the flood has stopped
// (deadline, context or Restore); nil before Inject.
func (p *PauseFlood) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Inject implements Injector. The flood runs in the background until
// For has passed, ctx ends or Restore is called.
func (p *PauseFlood) Inject(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := startInject(ctx, p.st, "pause flood on "+p.partner); err != nil {
		return err
	}
	// The partner port only sends PAUSE frames: it needs no tx-timeout
	// handler of its own (a veth may stand in for it), unlike the DUT.
	popt := p.opt
	popt.AllowNoTxTimeout = true
	info, err := checkIface(popt, p.partner)
	if err != nil {
		return err
	}
	if len(info.MAC) != 6 {
		return fmt.Errorf("%w %s: it has no Ethernet address", ErrUnsafeInterface, p.partner)
	}
	// The partner port is the flood's, and the DUT's flow control too.
	if err := p.locks.take(p.opt, p.partner); err != nil {
		return err
	}
	defer func() { p.locks.releaseIf(p.st == nil) }()
	if err := checkNoStale(p.opt, p.partner); err != nil {
		return err
	}
	var saved *savedPause
	if p.cfg.DUTIface != "" {
		sp, err := p.dutPause()
		if err != nil {
			return err
		}
		saved = &sp
	}
	frame, err := MarshalPause(info.MAC, p.cfg.Quanta)
	if err != nil {
		return err
	}
	var conn *packet.Conn
	if err := inNetNS(p.opt, func() error {
		var err error
		conn, err = packet.Listen(info.netInterface(), packet.Raw, EtherTypeMACControl, nil)
		return err
	}); err != nil {
		return fmt.Errorf("AF_PACKET socket on %s: %w", p.partner, err)
	}
	p.speed = linkSpeedMbps(p.opt, info.Index)
	p.interval = resendInterval(p.cfg.Quanta, p.speed)

	start := time.Now()
	st := &state{
		Injector: "pause", Iface: p.partner, Ifindex: info.Index, NetNS: p.opt.NetNS,
		PID: os.Getpid(), Created: start.UTC(), FlowControl: saved, PauseUntil: start.Add(p.cfg.For).UTC(),
	}
	if err := writeState(p.opt, st); err != nil {
		conn.Close()
		return err
	}
	p.st = st
	p.found = saved
	p.restored = ""
	if saved != nil && !saved.RX {
		on := *saved
		on.RX = true
		if err := setPause(on.options(p.opt), on); err != nil {
			conn.Close()
			p.st = nil
			if rerr := removeState(p.opt, p.partner); rerr != nil {
				return errors.Join(err, rerr)
			}
			return err
		}
		p.fcSet = true
	}
	// The first frame goes out before Inject returns, so a caller that
	// starts traffic next finds the link already paused.
	if _, err := conn.WriteTo(frame, &packet.Addr{HardwareAddr: PauseDst}); err != nil {
		conn.Close()
		if rerr := p.restoreLocked(context.Background()); rerr != nil {
			return fmt.Errorf("sending PAUSE frame on %s: %w; restoring: %v", p.partner, err, rerr)
		}
		return fmt.Errorf("sending PAUSE frame on %s: %w", p.partner, err)
	}
	p.sent.Add(1)
	fctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), start.Add(p.cfg.For))
	stopOnParent := context.AfterFunc(ctx, cancel)
	p.cancel = func() { stopOnParent(); cancel() }
	p.done = make(chan struct{})
	go p.flood(fctx, conn, frame, p.done)
	return nil
}

// dutPause checks and locks the DUT's interface, in its namespace, and
// reads its flow control. The lock is released with the partner port's.
func (p *PauseFlood) dutPause() (savedPause, error) {
	o := p.dutOptions()
	dut, err := checkIface(o, p.cfg.DUTIface)
	if err != nil {
		return savedPause{}, err
	}
	if err := p.locks.take(o, p.cfg.DUTIface); err != nil {
		return savedPause{}, err
	}
	if err := checkNoStale(o, p.cfg.DUTIface); err != nil {
		return savedPause{}, err
	}
	sp, err := getPause(o, p.cfg.DUTIface, dut.Index)
	if err != nil {
		return savedPause{}, err
	}
	sp.NetNS = p.cfg.DUTNetNS
	return sp, nil
}

// fineSleep is the interval below which the flood sleeps with
// nanosleep(2) on its own OS thread: the runtime's timers wake about a
// millisecond late on a loaded machine, longer than a pause lasts on a
// fast link (measured by BenchmarkIntegrationPauseResend).
const fineSleep = time.Millisecond

func (p *PauseFlood) flood(ctx context.Context, conn *packet.Conn, frame []byte, done chan struct{}) {
	defer close(done)
	defer conn.Close()
	if p.interval < fineSleep {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	var timer *time.Timer
	addr := &packet.Addr{HardwareAddr: PauseDst}
	pause := pauseDuration(p.cfg.Quanta, p.speed)
	last := time.Now()
	next := last
	for {
		next = next.Add(p.interval)
		if d := time.Until(next); d > 0 {
			if p.interval < fineSleep {
				ts := unix.NsecToTimespec(d.Nanoseconds())
				unix.Nanosleep(&ts, nil)
				if ctx.Err() != nil {
					return
				}
			} else {
				if timer == nil {
					timer = time.NewTimer(d)
					defer timer.Stop()
				} else {
					timer.Reset(d)
				}
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			}
		} else if ctx.Err() != nil {
			return
		}
		if -time.Until(next) > p.interval {
			next = time.Now() // fell behind: do not send a burst to catch up
		}
		if _, err := conn.WriteTo(frame, addr); err != nil {
			p.mu.Lock()
			p.floodErr = fmt.Errorf("sending PAUSE frame on %s: %w", p.partner, err)
			p.mu.Unlock()
			return
		}
		now := time.Now()
		gap := now.Sub(last)
		last = now
		if int64(gap) > p.maxGap.Load() {
			p.maxGap.Store(int64(gap))
		}
		if gap > pause {
			p.late.Add(1)
		}
		p.sent.Add(1)
	}
}

// Restore implements Injector: it stops the flood and puts the DUT's flow
// control back.
func (p *PauseFlood) Restore(ctx context.Context) error {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if cancel != nil {
		cancel()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the PAUSE flood on %s to stop: %w", p.partner, ctx.Err())
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	defer func() { p.locks.releaseIf(p.st == nil) }()
	if err := p.restoreLocked(ctx); err != nil {
		return err
	}
	return p.floodErr
}

func (p *PauseFlood) restoreLocked(ctx context.Context) error {
	if p.st == nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	did := fmt.Sprintf("flood stopped after %d frames", p.sent.Load())
	if p.fcSet {
		if err := setPause(p.st.FlowControl.options(p.opt), *p.st.FlowControl); err != nil {
			return err
		}
		p.fcSet = false
		did += fmt.Sprintf("; flow control of %s back to %s", p.st.FlowControl.Iface, p.st.FlowControl)
	} else if fc := p.st.FlowControl; fc != nil {
		did += fmt.Sprintf("; flow control of %s left as found (RX was on)", fc.Iface)
	}
	if err := removeState(p.opt, p.partner); err != nil {
		return err
	}
	p.st = nil
	p.cancel = nil
	p.restored = did
	return nil
}
