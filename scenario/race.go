package scenario

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"txtimeout/harness"
)

// Race scenarios fire the watchdog and then race the driver's recovery
// with what the bugs of real tx-timeout handlers raced (kernel-facts.md
// section 10). Once the first timeout signal is in, an injector that can
// end its fault at once (releaser: NapiStarve kills its hog) does so, so
// that the reset work the driver's tx-timeout handler queued runs, and
// Spec.Race then races that pending recovery; the rest of the fault's
// restore follows.

// releaser is an injector that can end its fault at once, ahead of the
// rest of its Restore (faultinject.NapiStarve).
type releaser interface {
	Release(ctx context.Context) error
}

// Marks of a race on the timeline.
const (
	MarkFaultReleased = "fault_released" // Release ended the fault; Restore follows the race
	MarkRaceStart     = "race_start"     // the race action began
	MarkRaceDone      = "race_done"      // the race action returned (Note says how)
)

// RaceUnsupported prefixes Outcome.RaceErr when the DUT cannot do what the
// race needs (the driver has no ring parameters, ...).
const RaceUnsupported = "unsupported: "

// Bounds of a race action: the rest of the fault's restore waits until
// the action has reached the kernel and returned, or raceHeadStart has
// passed since it started (it is then blocked in the kernel, racing the
// driver's recovery), and the scenario gives up on an action still
// blocked raceWithin after the restore: a kernel that never returns from
// ifdown is the deadlock this catches.
const (
	raceHeadStart = time.Second
	raceWithin    = 60 * time.Second
)

// raceOutcome is what a race action returned.
type raceOutcome struct {
	done string
	err  error
	took time.Duration
}

// startRace runs race in its own goroutine and returns once it is in
// flight: it returned, or raceHeadStart passed since it started (one
// timer for both waits).
func startRace(ctx context.Context, t *testing.T, tl *harness.Timeline, race RaceAction) <-chan raceOutcome {
	t.Helper()
	out := make(chan raceOutcome, 1)
	started := make(chan struct{})
	var once bool
	tl.Mark(MarkRaceStart)
	begin := time.Now()
	go func() {
		done, err := race(ctx, func() {
			if !once {
				once = true
				close(started)
			}
		})
		out <- raceOutcome{done: done, err: err, took: time.Since(begin)}
	}()
	head := time.NewTimer(raceHeadStart)
	defer head.Stop()
	select {
	case <-started:
	case <-head.C:
		t.Logf("race: the action did not reach the kernel within %v", raceHeadStart)
		return out
	}
	// The action is in the kernel: let it block there (or return) before
	// the fault is released, so that the release races it.
	select {
	case o := <-out:
		out <- o
	case <-head.C:
	}
	return out
}

// joinRace waits for the race action (raceWithin at most) and marks how it
// ended.
func joinRace(t *testing.T, tl *harness.Timeline, ch <-chan raceOutcome) (done, errText string) {
	t.Helper()
	timer := time.NewTimer(raceWithin)
	defer timer.Stop()
	select {
	case o := <-ch:
		if o.err != nil {
			tl.MarkNote(MarkRaceDone, "failed after "+o.took.Round(time.Millisecond).String()+": "+o.err.Error())
			t.Logf("race: failed after %v: %v", o.took.Round(time.Millisecond), o.err)
			if errors.Is(o.err, errors.ErrUnsupported) {
				return "", RaceUnsupported + o.err.Error()
			}
			return "", o.err.Error()
		}
		tl.MarkNote(MarkRaceDone, o.done)
		t.Logf("race: %s (%v)", o.done, o.took.Round(time.Millisecond))
		return o.done, ""
	case <-timer.C:
		tl.MarkNote(MarkRaceDone, "still blocked")
		return "", fmt.Sprintf("the race action was still blocked in the kernel %v after the fault's release (a deadlock between it and the driver's recovery?)", raceWithin)
	}
}
