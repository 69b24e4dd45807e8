//go:build linux

package faultinject

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/packet"
)

// stallingPartner plays the partner program on c: it acknowledges the
// first stall request and then reads nothing (frames queue in its socket,
// as they queue in front of a stalled partner) until resumed is closed,
// the way the real partner ends a stall when the host calls its Resume.
// From then on it acknowledges resume frames when ackResume is set. It
// records when it started reading again and how many resume frames it
// acknowledged.
type stallingPartner struct {
	readingAgain atomic.Pointer[time.Time]
	resumeAcks   atomic.Int32
}

func startStallingPartner(t *testing.T, v *vethPair, c *packet.Conn, resumed <-chan struct{}, ackResume bool) *stallingPartner {
	t.Helper()
	p := &stallingPartner{}
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	// next returns the next frame, or nil once the test is over; short
	// reads keep the goroutine responsive to stop.
	next := func() []byte {
		for {
			select {
			case <-stop:
				return nil
			default:
			}
			f, err := readFrameErr(c, time.Now().Add(100*time.Millisecond))
			if err != nil {
				return nil
			}
			if f != nil {
				return f
			}
		}
	}
	ack := func(req CtrlFrame, src []byte) {
		a := CtrlFrame{Command: req.Command | AckBit, Duration: req.Duration, Nonce: req.Nonce}
		b, _ := a.MarshalEthernet(src, v.BMAC)
		c.WriteTo(b, &packet.Addr{HardwareAddr: src})
	}
	go func() {
		defer close(done)
		for {
			f := next()
			if f == nil {
				return
			}
			req, src, err := ParseCtrlEthernet(f)
			if err == nil && req.Command == CmdStall {
				ack(req, src)
				break
			}
		}
		select {
		case <-resumed:
		case <-stop:
			return
		}
		now := time.Now()
		p.readingAgain.Store(&now)
		for {
			f := next()
			if f == nil {
				return
			}
			req, src, err := ParseCtrlEthernet(f)
			if err == nil && req.Command == CmdResume && ackResume {
				ack(req, src)
				p.resumeAcks.Add(1)
			}
		}
	}()
	return p
}

// The hook ends the stall; Restore returns once the partner acknowledges a
// resume frame, long before the stall would have run out, and not before
// the partner reads again.
func TestIntegrationStallResumeHook(t *testing.T) {
	v := testVeth(t)
	o := v.opts(t)
	resumed := make(chan struct{})
	fp := startStallingPartner(t, v, v.listen(t, v.B, EtherTypeCtrl), resumed, true)
	var calls atomic.Int32
	var hookDeadline time.Time
	hook := func(ctx context.Context) error {
		calls.Add(1)
		hookDeadline, _ = ctx.Deadline()
		// The partner ends its stall a little after the hook returns,
		// as the rig's does (the host acts on a serial line): Restore
		// must wait for the proof, not trust the hook.
		go func() {
			time.Sleep(300 * time.Millisecond)
			close(resumed)
		}()
		return nil
	}
	const dur = 30 * time.Second
	s, err := NewStall(v.A, StallConfig{For: dur, PeerMAC: v.BMAC, Resume: hook}, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Inject(context.Background()); err != nil {
		t.Fatalf("Inject: %v", err)
	}
	t.Cleanup(func() { s.Restore(context.Background()) })
	if _, err := os.Stat(statePath(o, v.A)); err != nil {
		t.Errorf("no state file during the stall: %v", err)
	}
	until := s.Until()
	if err := s.Restore(context.Background()); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	returned := time.Now()
	t.Log(s.Describe())
	if calls.Load() != 1 {
		t.Errorf("resume hook called %d times, want 1", calls.Load())
	}
	if !hookDeadline.Equal(until) {
		t.Errorf("resume hook's context deadline %v, want the stall's end %v", hookDeadline, until)
	}
	if !returned.Before(until) {
		t.Errorf("Restore returned at %v, not before the stall's own end %v", returned, until)
	}
	ra := fp.readingAgain.Load()
	if ra == nil || returned.Before(*ra) {
		t.Errorf("Restore returned at %v, before the partner read again (%v)", returned, ra)
	}
	if fp.resumeAcks.Load() < 1 {
		t.Errorf("the partner acknowledged no resume frame")
	}
	if d := s.Describe(); !strings.Contains(d, "ended early") {
		t.Errorf("Describe = %q, want it to say the stall ended early", d)
	}
	if stale, _ := StaleState(o); len(stale) != 0 {
		t.Errorf("state left after Restore: %v", stale)
	}
	if err := s.Restore(context.Background()); err != nil {
		t.Errorf("second Restore: %v", err)
	}
}

// When the hook fails, or succeeds but the partner never acknowledges a
// resume frame, Restore waits for the stall to run out and says so; the
// state file stays until then.
func TestIntegrationStallResumeFallback(t *testing.T) {
	for _, tc := range []struct {
		name    string
		hookErr error
		want    string
	}{
		{"hook-fails", errors.New("no control channel"), "no control channel"},
		{"no-ack", nil, "did not acknowledge a resume frame"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := testVeth(t)
			o := v.opts(t)
			// The partner never reads again: resumed stays open.
			startStallingPartner(t, v, v.listen(t, v.B, EtherTypeCtrl), make(chan struct{}), false)
			var calls atomic.Int32
			var stateDuringHook error
			hook := func(context.Context) error {
				calls.Add(1)
				_, stateDuringHook = os.Stat(statePath(o, v.A))
				return tc.hookErr
			}
			const dur = 1500 * time.Millisecond
			s, _ := NewStall(v.A, StallConfig{For: dur, PeerMAC: v.BMAC, Resume: hook}, o)
			if err := s.Inject(context.Background()); err != nil {
				t.Fatalf("Inject: %v", err)
			}
			t.Cleanup(func() { s.Restore(context.Background()) })
			until := s.Until()
			if err := s.Restore(context.Background()); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			d := s.Describe()
			t.Log(d)
			if calls.Load() != 1 {
				t.Errorf("resume hook called %d times, want 1", calls.Load())
			}
			if stateDuringHook != nil {
				t.Errorf("state file gone while the stall lasted: %v", stateDuringHook)
			}
			if time.Now().Before(until) {
				t.Errorf("Restore returned before the stall ran out at %v", until)
			}
			if !strings.Contains(d, "ran out") || !strings.Contains(d, tc.want) {
				t.Errorf("Describe = %q, want it to say the stall ran out and %q", d, tc.want)
			}
			if stale, _ := StaleState(o); len(stale) != 0 {
				t.Errorf("state left after Restore: %v", stale)
			}
		})
	}
}

// A cancelled context ends Restore with the context's error, hook or not,
// and leaves the state file for Cleanup.
func TestIntegrationStallResumeCancelled(t *testing.T) {
	v := testVeth(t)
	o := v.opts(t)
	startStallingPartner(t, v, v.listen(t, v.B, EtherTypeCtrl), make(chan struct{}), false)
	ctx, cancel := context.WithCancel(context.Background())
	hook := func(context.Context) error { cancel(); return nil }
	s, _ := NewStall(v.A, StallConfig{For: 1500 * time.Millisecond, PeerMAC: v.BMAC, Resume: hook}, o)
	if err := s.Inject(context.Background()); err != nil {
		t.Fatalf("Inject: %v", err)
	}
	t.Cleanup(func() { s.Restore(context.Background()) })
	err := s.Restore(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Restore = %v, want context.Canceled", err)
	}
	t.Log(err)
	if _, err := os.Stat(statePath(o, v.A)); err != nil {
		t.Errorf("state file removed while the stall lasts: %v", err)
	}
}
