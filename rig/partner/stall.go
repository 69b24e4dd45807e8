package partner

import (
	"context"
	"fmt"
	"net"
	"time"

	"txtimeout/faultinject"
)

// stallAction is what a stall does to the DUT, besides the bookkeeping
// every stall shares.
type stallAction interface {
	// holdsReading reports whether the partner reads nothing while
	// stalled (so a resume frame cannot reach it).
	holdsReading() bool
	// start begins the action against the DUT at dut for d at most. The
	// action may end by itself: then running.stopped is closed.
	start(ctx context.Context, dut net.HardwareAddr, d time.Duration) (running, error)
}

// running is a started stall action.
type running struct {
	stopped <-chan struct{} // closed if the action ended by itself; nil if it cannot
	stop    func()          // ends the action and waits for its end
}

// stopReading is the stream link's stall: not reading is the whole action.
type stopReading struct{}

func (stopReading) holdsReading() bool { return true }

func (stopReading) start(context.Context, net.HardwareAddr, time.Duration) (running, error) {
	return running{stop: func() {}}, nil
}

// stall is a stall in progress.
type stall struct {
	nonce  uint32
	start  time.Time
	timer  *time.Timer
	resume chan struct{} // closed by Resume
	run    running
}

// holding reports whether the partner must not read now.
func (s *session) holding() bool { return s.cur != nil && s.action.holdsReading() }

// stallChans are the channels on which the current stall can end; all nil
// when there is none.
func (s *session) stallChans() (end <-chan time.Time, resume, stopped <-chan struct{}) {
	if s.cur == nil {
		return nil, nil, nil
	}
	return s.cur.timer.C, s.cur.resume, s.cur.run.stopped
}

// finish ends the current stall, if any, because Serve returns err.
func (s *session) finish(err error, why string) error {
	if s.cur != nil {
		s.endStall(why)
	}
	return err
}

// beginStall starts the action and records the stall.
func (s *session) beginStall(ctx context.Context, src net.HardwareAddr, c faultinject.CtrlFrame) error {
	p := s.p
	// Taken first, so that an action bounded by the same duration (the
	// PAUSE flood's own deadline) ends no earlier than the stall.
	start := time.Now()
	run, err := s.action.start(ctx, src, c.Duration)
	if err != nil {
		return err
	}
	resume := make(chan struct{})
	s.cur = &stall{nonce: c.Nonce, start: start, timer: time.NewTimer(c.Duration), resume: resume, run: run}
	p.mu.Lock()
	p.stallEnds = start.Add(c.Duration)
	p.resume = resume
	p.mu.Unlock()
	p.stalls.Add(1)
	p.event(StallEvent{Start: true, At: start, For: c.Duration, Nonce: c.Nonce})
	p.logf("partner: stall %v (nonce %#x) from %s", c.Duration, c.Nonce, src)
	return nil
}

// endStall stops the action and records the end of the current stall.
func (s *session) endStall(why string) {
	p, st := s.p, s.cur
	st.timer.Stop()
	st.run.stop()
	end := time.Now()
	s.cur = nil
	p.mu.Lock()
	p.stallEnds = time.Time{}
	p.resume = nil
	p.mu.Unlock()
	s.remember(st.nonce, end)
	p.event(StallEvent{Start: false, At: end, For: end.Sub(st.start), Nonce: st.nonce})
	p.logf("partner: stall (nonce %#x) %s after %v", st.nonce, why, end.Sub(st.start).Round(time.Millisecond))
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

// repeated reports whether a stall with this nonce is in progress or ended
// within repeatWindow.
func (s *session) repeated(nonce uint32, now time.Time) bool {
	if s.cur != nil && s.cur.nonce == nonce {
		return true
	}
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

// control obeys a control frame: it starts or ends a stall and
// acknowledges. Serve's loop waits for the stall's end.
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
	if c.Command == faultinject.CmdResume {
		// Ended before the acknowledgement, which proves it is over.
		if s.cur != nil {
			s.endStall("ended early by a resume frame")
		}
		return s.ack(ctx, f, c, werr)
	}
	if c.Duration > p.maxStall {
		p.logf("partner: stall of %v (nonce %#x) asked, above the maximum: obeyed for %v", c.Duration, c.Nonce, p.maxStall)
		c.Duration = p.maxStall
	}
	// The sender repeats its request until the acknowledgement arrives
	// (faultinject resends every 500 ms), and a slow guest may have queued
	// a repeat behind the request this partner already obeyed. Obeying it
	// again would double the stall: acknowledge it, do not stall.
	if s.repeated(c.Nonce, time.Now()) {
		p.logf("partner: stall request (nonce %#x) repeated; acknowledged, not stalling again", c.Nonce)
		return s.ack(ctx, f, c, werr)
	}
	if s.cur != nil {
		s.endStall("replaced by a new request")
	}
	if err := s.beginStall(ctx, f.Src, c); err != nil {
		// Not acknowledged: the sender reports that no partner obeyed.
		p.logf("partner: cannot stall %v (nonce %#x), not acknowledged: %v", c.Duration, c.Nonce, err)
		return nil
	}
	return s.ack(ctx, f, c, werr)
}

// ack queues the acknowledgement of c (with the duration granted) to the
// sender of f. It must not be lost to a full queue: it waits for room.
// Nothing is read meanwhile, which a stall's sender asked for anyway.
func (s *session) ack(ctx context.Context, f *Frame, c faultinject.CtrlFrame, werr chan error) error {
	ack := faultinject.CtrlFrame{Command: c.Command | faultinject.AckBit, Duration: c.Duration, Nonce: c.Nonce}
	frame, err := ack.MarshalEthernet(f.Src, s.p.mac)
	if err != nil {
		s.p.logf("partner: cannot acknowledge %v: %v", c.Command, err)
		return nil
	}
	buf := s.alloc()
	n := copy(buf[prefixLen:], frame)
	buf = buf[:prefixLen+n]
	select {
	case s.out <- &buf:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case err := <-werr:
		return fmt.Errorf("partner: writing to the link: %w", err)
	}
}
