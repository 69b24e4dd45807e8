package rig

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"time"
)

// runWatcher passes the guest's test output through and notes the tests
// that start ("=== RUN", with or without test2json's ^V framing).
type runWatcher struct {
	w         io.Writer
	start     time.Time
	progressf func(string, ...any)

	mu    sync.Mutex
	line  []byte
	first time.Time
	n     int
}

func (rw *runWatcher) Write(p []byte) (int, error) {
	rw.mu.Lock()
	for _, c := range p {
		if c == '\n' {
			rw.sawLine(rw.line)
			rw.line = rw.line[:0]
			continue
		}
		if len(rw.line) < 4096 {
			rw.line = append(rw.line, c)
		}
	}
	rw.mu.Unlock()
	if rw.w != nil {
		if _, err := rw.w.Write(p); err != nil {
			// A reader that stops must not stall the guest.
			rw.w = nil
		}
	}
	return len(p), nil
}

func (rw *runWatcher) sawLine(l []byte) {
	l = bytes.TrimPrefix(l, []byte{0x16})
	name, ok := bytes.CutPrefix(l, []byte("=== RUN"))
	if !ok {
		return
	}
	rw.n++
	if rw.first.IsZero() {
		rw.first = time.Now()
		rw.progressf(progressFirstTest, rw.first.Sub(rw.start).Seconds())
	}
	rw.progressf("running test %d: %s", rw.n, strings.TrimSpace(string(name)))
}

func (rw *runWatcher) flush() {
	if w, ok := rw.w.(interface{ Flush() error }); ok {
		w.Flush()
	}
}

func (rw *runWatcher) bootTime() time.Duration {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.first.IsZero() {
		return 0
	}
	return rw.first.Sub(rw.start)
}
