package rig

import (
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
)

// A Session is one guest run shared by several host tests: the guest runs
// every top-level test its -test.run pattern selects, in one boot, and each
// host test mirrors the guest test of its own name (Mirror) as it arrives.
// A package of scenarios boots once per NIC model this way, not once per
// test.
type Session struct {
	done chan struct{} // closed when the run is over: r and err are set
	r    *Result
	err  error

	mu      sync.Mutex
	wake    *sync.Cond
	streams map[string]*stream // by top-level test name
	ran     []string           // top-level tests in the order they started
	failed  []string           // top-level tests that failed in the guest
	eof     bool               // the guest's output ended
}

// stream is the guest output of one top-level test.
type stream struct {
	events []guestEvent
	closed bool // its result came, or the output ended
	taken  bool // a host test mirrors it
}

// StartSession builds pkg and runs it in the guest in the background, as
// RunPackage does with args, until every test ran or the rig's deadline
// passed.
func StartSession(pkg string, args []string, c Config) (*Session, error) {
	if c.Progress == nil {
		c.Progress = os.Stderr
	}
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Session{done: make(chan struct{}), streams: map[string]*stream{}}
	s.wake = sync.NewCond(&s.mu)
	pr, pw := io.Pipe()
	go func() {
		defer close(s.done)
		s.r, s.err = RunPackage(context.Background(), c, pkg, args, pw)
		if s.r == nil {
			s.r = &Result{}
		}
		pw.Close()
	}()
	go s.demux(parseGuestOutput(pr), c)
	return s, nil
}

// demux sorts the guest's events by top-level test. Output outside every
// test goes to the progress stream.
func (s *Session) demux(events chan guestEvent, c Config) {
	cur := ""
	for ev := range events {
		s.mu.Lock()
		top, _, _ := strings.Cut(ev.Name, "/")
		if ev.Kind == "run" && top == ev.Name && s.streams[top] == nil {
			s.streams[top] = &stream{}
			s.ran = append(s.ran, top)
			cur = top
		}
		if st := s.streams[cur]; cur != "" && !st.closed {
			st.events = append(st.events, ev)
			if (ev.Kind == "pass" || ev.Kind == "fail" || ev.Kind == "skip") && ev.Name == cur {
				st.closed = true
				if ev.Kind == "fail" {
					s.failed = append(s.failed, cur)
				}
				cur = ""
			}
		} else if ev.Kind == "output" && strings.TrimSpace(ev.Line) != "" {
			c.progressf("guest: %s", ev.Line)
		}
		s.wake.Broadcast()
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.eof = true
	for _, st := range s.streams {
		st.closed = true
	}
	s.wake.Broadcast()
	s.mu.Unlock()
}

// events feeds the stream of the top-level test name into a channel, as
// its events arrive, and closes it at the test's end (or the output's).
func (s *Session) events(name string) chan guestEvent {
	ch := make(chan guestEvent, 64)
	go func() {
		defer close(ch)
		next := 0
		for {
			s.mu.Lock()
			for {
				st := s.streams[name]
				if (st == nil && s.eof) || (st != nil && (next < len(st.events) || st.closed)) {
					break
				}
				s.wake.Wait()
			}
			st := s.streams[name]
			if st == nil {
				s.mu.Unlock()
				return
			}
			st.taken = true
			evs := st.events[next:]
			next = len(st.events)
			closed := st.closed // no event follows a closed stream's last
			s.mu.Unlock()
			for _, ev := range evs {
				ch <- ev
			}
			if closed {
				return
			}
		}
	}()
	return ch
}

// Mirror mirrors the guest test named like t into t, as RunTest does, as
// its events arrive. A test that the guest never ran fails t once the run
// is over; a rig failure (no boot, a hang) fails every test it cut short,
// with where the evidence is kept.
func (s *Session) Mirror(t *testing.T) {
	t.Helper()
	if skip := s.MirrorInto(t); skip != "" {
		t.Skip(skip)
	}
}

// MirrorInto is Mirror, returning the guest's skip message of the test
// (if it was skipped) instead of skipping t: a test mirrored from several
// sessions skips at the end.
func (s *Session) MirrorInto(t *testing.T) (skip string) {
	t.Helper()
	m := &mirror{events: s.events(t.Name())}
	skip = m.root(t)
	s.mu.Lock()
	st := s.streams[t.Name()]
	complete := st != nil && len(st.events) > 0 && isResult(st.events[len(st.events)-1], t.Name())
	s.mu.Unlock()
	if !complete {
		// The run ended before this test's result: say how it went.
		<-s.done
		if st == nil && s.err == nil {
			t.Errorf("rig: the guest did not run %s (its -test.run did not select it?)", t.Name())
		}
		reportRun(t, s.r, s.err)
	}
	return skip
}

// Done is closed when the session's run is over.
func (s *Session) Done() <-chan struct{} { return s.done }

// isResult reports whether ev is the result line of the test name.
func isResult(ev guestEvent, name string) bool {
	return (ev.Kind == "pass" || ev.Kind == "fail" || ev.Kind == "skip") && ev.Name == name
}

// Wait waits for the run's end and returns its result, the guest's
// failures that no host test mirrored (each a line naming the test, then
// its output), which would otherwise be lost, and the run's error.
func (s *Session) Wait() (*Result, []string, error) {
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.eof {
		s.wake.Wait()
	}
	var lost []string
	for _, name := range s.failed {
		st := s.streams[name]
		if st.taken {
			continue
		}
		out := []string{name + " failed in the guest, and no host test mirrored it:"}
		for _, ev := range st.events {
			if ev.Kind == "output" && strings.TrimSpace(ev.Line) != "" {
				out = append(out, "    "+strings.TrimSpace(ev.Line))
			}
		}
		lost = append(lost, strings.Join(out, "\n"))
	}
	return s.r, lost, s.err
}
