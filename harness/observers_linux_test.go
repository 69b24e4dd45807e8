package harness

import (
	"strings"
	"testing"
	"time"
)

// A stuck observer makes Stop return an error naming it, within stopWait,
// instead of hanging the scenario.
func TestStopNamesAStuckObserver(t *testing.T) {
	old := stopWait
	stopWait = 50 * time.Millisecond
	t.Cleanup(func() { stopWait = old })

	tl := NewTimeline()
	o := &Observers{tl: tl, cancel: func() {}, running: map[string]chan struct{}{}}
	never := make(chan struct{})
	defer close(never)
	o.spawn("sampler", func() { <-never })
	o.spawn("kernel log follower", func() {})

	done := make(chan error, 1)
	go func() { done <- o.Stop() }()
	select {
	case err := <-done:
		wantErrContains(t, err, "sampler did not stop within 50ms")
		if strings.Contains(err.Error(), "kernel log follower") {
			t.Errorf("an observer that ended is named as stuck: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Stop hung on a stuck observer")
	}
	if !tl.HasMark(MarkObserverError) {
		t.Error("no observer_error mark on the timeline")
	}
	// Stop again returns the same error at once.
	wantErrContains(t, o.Stop(), "sampler did not stop")
}
