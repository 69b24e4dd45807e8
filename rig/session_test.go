package rig

import (
	"os"
	"strings"
	"sync"
	"testing"
)

// cannedSession is a guest run of three top-level tests: two that host
// tests mirror (TestSessionA, TestSessionB) and one that none does.
var cannedSession = strings.Join([]string{
	"rig banner outside every test",
	"\x16=== RUN   TestSessionA",
	"    a_test.go:1: from A",
	"\x16--- PASS: TestSessionA (0.01s)",
	"\x16=== RUN   TestSessionC",
	"    c_test.go:3: C broke",
	"\x16--- FAIL: TestSessionC (0.00s)",
	"\x16=== RUN   TestSessionB",
	"\x16=== RUN   TestSessionB/Sub",
	"    b_test.go:2: inconclusive: no stall",
	"\x16--- SKIP: TestSessionB/Sub (0.00s)",
	"\x16--- PASS: TestSessionB (0.02s)",
	"\x16FAIL",
	"",
}, "\n")

// cannedSessionOf is a Session over cannedSession, its run over.
var cannedSessionOf = sync.OnceValue(func() *Session {
	s := &Session{done: make(chan struct{}), streams: map[string]*stream{}, r: &Result{ExitCode: 1}}
	s.wake = sync.NewCond(&s.mu)
	close(s.done)
	go s.demux(parseGuestOutput(strings.NewReader(cannedSession)), Config{Progress: os.Stderr})
	return s
})

func sessionHelper(t *testing.T) *Session {
	if os.Getenv("TXTIMEOUT_SESSION_HELPER") != "1" {
		t.Skip("helper of TestSession")
	}
	return cannedSessionOf()
}

// TestSessionB runs first in the helper although the guest ran it last:
// a host test waits for its own guest test, whatever ran before.
func TestSessionB(t *testing.T) { sessionHelper(t).Mirror(t) }
func TestSessionA(t *testing.T) { sessionHelper(t).Mirror(t) }
func TestSessionD(t *testing.T) { sessionHelper(t).Mirror(t) }

func TestSessionLost(t *testing.T) {
	s := sessionHelper(t)
	_, lost, _ := s.Wait()
	if len(lost) != 1 || !strings.HasPrefix(lost[0], "TestSessionC failed in the guest") || !strings.Contains(lost[0], "c_test.go:3: C broke") {
		t.Errorf("lost failures %q, want TestSessionC's with its output", lost)
	}
}

func TestSession(t *testing.T) {
	// TestSessionD fails: the guest never ran it.
	out, failed := checkChild(t, "^TestSession(B|A|D|Lost)$", "TXTIMEOUT_SESSION_HELPER=1", []string{
		"--- PASS: TestSessionB",
		"--- SKIP: TestSessionB/Sub",
		"inconclusive: no stall",
		"--- PASS: TestSessionA",
		"a_test.go:1: from A",
		"--- FAIL: TestSessionD",
		"the guest did not run TestSessionD",
		"--- PASS: TestSessionLost",
		"guest: rig banner outside every test",
	})
	if !failed {
		t.Error("the helper passed although the guest never ran TestSessionD")
	}
	if strings.Contains(out, "C broke") {
		t.Errorf("TestSessionC's output reached a host test:\n%s", out)
	}
}
