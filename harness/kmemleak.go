package harness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"txtimeout/kmsg"
)

// DefaultKmemleak is kmemleak's control file (CONFIG_DEBUG_KMEMLEAK,
// debugfs mounted on /sys/kernel/debug).
const DefaultKmemleak = "/sys/kernel/debug/kmemleak"

// Kmemleak drives the kernel's memory leak detector around a scenario:
// Clear before it, Scan after it. Objects only count as leaked once they
// are old enough (kmemleak's min age, 5 s) and unreferenced at a scan, so a
// leak at a scenario's very end may be reported by the next scenario's
// scan.
type Kmemleak struct{ path string }

// ErrKmemleakOff: the kernel has kmemleak but it is off (booted with
// kmemleak=off, or it turned itself off after an error): it refuses
// scans even to root.
var ErrKmemleakOff = errors.New("harness: kmemleak is off in this kernel (kmemleak=off, or it disabled itself); leaks are not checked")

// OpenKmemleak returns the detector at path (DefaultKmemleak when
// empty), or nil when this kernel has none (no file). A detector that is
// off is found out by Clear and Scan (ErrKmemleakOff).
func OpenKmemleak(path string) *Kmemleak {
	if path == "" {
		path = DefaultKmemleak
	}
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	return &Kmemleak{path: path}
}

// Clear forgets the leaks reported so far, so that the next Scan reports
// only new ones.
func (k *Kmemleak) Clear() error {
	if err := os.WriteFile(k.path, []byte("clear"), 0); err != nil {
		return kmemleakErr("clear", err)
	}
	return nil
}

// kmemleakErr maps a refused write: as root, EPERM means kmemleak is off.
func kmemleakErr(verb string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		if os.Geteuid() == 0 {
			return ErrKmemleakOff
		}
		return fmt.Errorf("harness: kmemleak %s: %w (run as root)", verb, err)
	}
	return fmt.Errorf("harness: kmemleak %s: %w", verb, err)
}

// Scan runs a scan now (it takes as long as the kernel needs to walk its
// memory), reads the objects it reports as unreferenced and clears them.
// Each "unreferenced object" block is one splat event, its text the
// block's first line and its backtrace's first frames.
func (k *Kmemleak) Scan() ([]kmsg.Event, error) {
	if err := os.WriteFile(k.path, []byte("scan"), 0); err != nil {
		return nil, kmemleakErr("scan", err)
	}
	b, err := os.ReadFile(k.path)
	if err != nil {
		return nil, fmt.Errorf("harness: kmemleak: %w", err)
	}
	evs := kmemleakEvents(string(b))
	if len(evs) > 0 {
		if err := k.Clear(); err != nil {
			return evs, err
		}
	}
	return evs, nil
}

// kmemleakEvents matches the text of the kmemleak file: one splat event
// per unreferenced object, with the block's frames appended to its text
// (up to a few), so that the report says what leaked.
func kmemleakEvents(text string) []kmsg.Event {
	m := kmsg.NewMatcher()
	var evs []kmsg.Event
	frames := -1 // frames of the current object's backtrace taken; -1 before its "backtrace" line
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if t == "" {
			continue
		}
		got := m.Match(kmsg.Record{Level: 3, Message: t})
		for _, e := range got {
			if e.Kind == kmsg.KindSplat {
				e.Text = "kmemleak: " + strings.TrimPrefix(e.Text, "kmemleak: ")
				evs = append(evs, e)
				frames = -1
			}
		}
		switch {
		case len(got) > 0 || len(evs) == 0:
		case strings.HasPrefix(t, "backtrace"):
			frames = 0
		case frames >= 0 && frames < 4:
			// "func+0x1/0x2 [mod]" (6.x) or "[<ffffffff...>] func" (older).
			evs[len(evs)-1].Text += " | " + t
			frames++
		}
	}
	return evs
}
