// Package leakcheck finds goroutines and file descriptors that a test
// leaves behind.
//
// Check(tb) counts both at the start of a test and registers a cleanup that
// waits, polling until a deadline, for the counts to come back down: a
// goroutine that is still winding down when the test returns is not a leak,
// one that is still there after the settle time is. The leftovers are named
// (goroutine stacks that were not there before, descriptors with their
// targets) so that the failure says what leaked.
//
// # Tunables
//
// SettleTime (default 5s) bounds the wait; the environment variable
// TXTIMEOUT_LEAK_SETTLE (a Go duration) overrides it, for slow machines.
package leakcheck

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SettleTime is how long Check and Settle wait for the counts to come back
// down by default.
const SettleTime = 5 * time.Second

// pollEvery is how often Settle looks again.
const pollEvery = 20 * time.Millisecond

// ErrLeak marks a Settle that ran out of time with more goroutines or
// descriptors than before.
var ErrLeak = errors.New("leak")

// fdDir lists the calling process's descriptors; a seam for tests.
var fdDir = "/proc/self/fd"

// Snapshot is the goroutines and descriptors of the process at one moment.
type Snapshot struct {
	Goroutines int
	// FDs maps each open descriptor to its target (readlink of
	// /proc/self/fd/N), for example "socket:[1234]" or a path. It is nil
	// where /proc is not available, and then FD counts are not checked.
	FDs map[int]string
	// stacks are the goroutines' stacks, one per goroutine, without
	// their goroutine IDs and states.
	stacks []string
}

// Take records the process's goroutines and descriptors now.
func Take() Snapshot {
	s := Snapshot{stacks: stacks()}
	s.Goroutines = len(s.stacks)
	s.FDs = fds()
	return s
}

// String is the counts on one line.
func (s Snapshot) String() string {
	if s.FDs == nil {
		return fmt.Sprintf("%d goroutines", s.Goroutines)
	}
	return fmt.Sprintf("%d goroutines, %d fds", s.Goroutines, len(s.FDs))
}

// Settle polls until the process has no more goroutines and descriptors
// than before, or within has passed. It returns the last snapshot and, on
// time out, an error wrapping ErrLeak that names what is new.
func Settle(before Snapshot, within time.Duration) (Snapshot, error) {
	deadline := time.Now().Add(within)
	for {
		now := Take()
		if now.Goroutines <= before.Goroutines && (before.FDs == nil || now.FDs == nil || len(now.FDs) <= len(before.FDs)) {
			return now, nil
		}
		if !time.Now().Before(deadline) {
			return now, fmt.Errorf("%w after %v: %s before, %s now%s", ErrLeak, within, before, now, diff(before, now))
		}
		time.Sleep(pollEvery)
	}
}

// Check records the goroutines and descriptors now and registers a cleanup
// that fails tb if, SettleTime (or TXTIMEOUT_LEAK_SETTLE) after the test
// and its later cleanups are done, there are more of either. Call it first
// in a test, before anything that starts goroutines or opens files, so its
// cleanup runs last.
func Check(tb testing.TB) {
	tb.Helper()
	before := Take()
	within := settleTime()
	tb.Cleanup(func() {
		tb.Helper()
		if tb.Failed() {
			// A failed test often leaves its goroutines stuck; the
			// failure is the news, not the leak.
			return
		}
		if _, err := Settle(before, within); err != nil {
			tb.Errorf("leakcheck: %v", err)
		}
	})
}

func settleTime() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("TXTIMEOUT_LEAK_SETTLE")); err == nil && d > 0 {
		return d
	}
	return SettleTime
}

// stacks returns one entry per goroutine: its stack without the header
// line's goroutine ID and state, so that the same goroutine compares equal
// across snapshots.
func stacks() []string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		if len(buf) >= 64<<20 {
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(strings.TrimSpace(string(buf)), "\n\n") {
		if g == "" {
			continue
		}
		_, body, _ := strings.Cut(g, "\n")
		out = append(out, body)
	}
	return out
}

func fds() map[int]string {
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return nil
	}
	m := make(map[int]string, len(ents))
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil {
			// Closed between ReadDir and Readlink (the directory's own
			// descriptor is one of those).
			continue
		}
		m[n] = target
	}
	return m
}

// diff names the descriptors and goroutines in now that before did not
// have, at most a few of each.
func diff(before, now Snapshot) string {
	var b strings.Builder
	if before.FDs != nil && now.FDs != nil {
		var nums []int
		for n, target := range now.FDs {
			if old, ok := before.FDs[n]; !ok || old != target {
				nums = append(nums, n)
			}
		}
		sort.Ints(nums)
		for i, n := range nums {
			if i == 8 {
				fmt.Fprintf(&b, "\n  ... %d more new fds", len(nums)-i)
				break
			}
			fmt.Fprintf(&b, "\n  new fd %d -> %s", n, now.FDs[n])
		}
	}
	seen := map[string]int{}
	for _, s := range before.stacks {
		seen[s]++
	}
	shown := 0
	for _, s := range now.stacks {
		if seen[s] > 0 {
			seen[s]--
			continue
		}
		if shown == 4 {
			b.WriteString("\n  ... more new goroutines")
			break
		}
		shown++
		fmt.Fprintf(&b, "\n  new goroutine:\n    %s", strings.ReplaceAll(firstLines(s, 8), "\n", "\n    "))
	}
	return b.String()
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
