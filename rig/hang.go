package rig

import (
	"fmt"
	"sync"
	"time"

	"txtimeout/rig/internal/guestproto"
)

// hangWatch tells a hung guest from a slow one. From READY to EXIT the
// guest init sends a heartbeat every guestproto.HeartbeatInterval, so any
// line on the control port is progress; none for window means the guest's
// kernel no longer schedules or QEMU stalled. Its clock is a seam.
type hangWatch struct {
	window time.Duration
	now    func() time.Time

	mu         sync.Mutex
	armed      bool
	armedAt    time.Time
	last       time.Time // the last control line since arming
	maxGap     time.Duration
	beats      int
	lastBeat   guestproto.Heartbeat
	lastBeatAt time.Time
}

func newHangWatch(window time.Duration, now func() time.Time) *hangWatch {
	return &hangWatch{window: window, now: now}
}

// arm starts the watch (READY: the boot has its own deadline).
func (h *hangWatch) arm() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.armed && h.armedAt.IsZero() {
		h.armed = true
		h.armedAt = h.now()
		h.last = h.armedAt
	}
}

// disarm ends the watch (EXIT: the power-off has its own deadline).
func (h *hangWatch) disarm() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed = false
}

// line notes a control line.
func (h *hangWatch) line() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.armed {
		return
	}
	now := h.now()
	h.maxGap = max(h.maxGap, now.Sub(h.last))
	h.last = now
}

// beat notes a heartbeat (after its line).
func (h *hangWatch) beat(b guestproto.Heartbeat) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.beats++
	h.lastBeat, h.lastBeatAt = b, h.now()
}

// check reports how long the guest has been silent and whether that is
// the whole window.
func (h *hangWatch) check() (silent time.Duration, hung bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.armed {
		return 0, false
	}
	silent = h.now().Sub(h.last)
	return silent, silent >= h.window
}

// stats returns the heartbeats received and the longest silence while
// armed, the current one included.
func (h *hangWatch) stats() (beats int, maxGap time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	maxGap = h.maxGap
	if h.armed {
		maxGap = max(maxGap, h.now().Sub(h.last))
	}
	return h.beats, maxGap
}

// describe says where the guest stood at its last sign of life.
func (h *hangWatch) describe() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if h.beats == 0 {
		if h.armedAt.IsZero() {
			return "the guest never reported READY"
		}
		return fmt.Sprintf("no heartbeat since READY at %s (%v ago)", h.armedAt.Format("15:04:05.000"), now.Sub(h.armedAt).Round(100*time.Millisecond))
	}
	b := h.lastBeat
	s := fmt.Sprintf("last heartbeat (#%d) at %s, %v ago: guest uptime %v", b.Seq, h.lastBeatAt.Format("15:04:05.000"),
		now.Sub(h.lastBeatAt).Round(100*time.Millisecond), b.Uptime.Round(10*time.Millisecond))
	if b.Load1 >= 0 {
		s += fmt.Sprintf(", load %.2f", b.Load1)
	}
	if b.TestCPU >= 0 {
		s += fmt.Sprintf(", test binary CPU time %v", b.TestCPU.Round(10*time.Millisecond))
	}
	if h.last.After(h.lastBeatAt) {
		s += fmt.Sprintf("; last control line at %s", h.last.Format("15:04:05.000"))
	}
	return s
}
