package rig

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
)

// panicLines returns the kernel panic in a console log, with the lines
// before it (the oops and its trace usually precede "Kernel panic"), or "".
func panicLines(console string) string {
	i := strings.Index(console, "Kernel panic - not syncing")
	if i < 0 {
		return ""
	}
	lines := strings.Split(console[:i], "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	rest := console[i:]
	if j := strings.Index(rest, "---[ end Kernel panic"); j >= 0 {
		if k := strings.IndexByte(rest[j:], '\n'); k >= 0 {
			rest = rest[:j+k]
		}
	} else if len(rest) > 4096 {
		rest = rest[:4096]
	}
	return strings.Join(lines, "\n") + rest
}

// console keeps the kernel console: all of it in a file, the last
// consoleMax bytes in memory.
type console struct {
	mu   sync.Mutex
	f    *os.File
	buf  []byte
	done bool
}

const consoleMax = 4 << 20

func newConsole(path string) (*console, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("rig: console log: %w", err)
	}
	return &console{f: f}, nil
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	p = bytes.ReplaceAll(p, []byte("\r"), nil)
	if !c.done {
		c.f.Write(p)
	}
	c.buf = append(c.buf, p...)
	if len(c.buf) > consoleMax {
		c.buf = append([]byte(nil), c.buf[len(c.buf)-consoleMax:]...)
	}
	// All of p was consumed, carriage returns included: io.Copy stops
	// at a short count.
	return n, nil
}

func (c *console) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done {
		c.f.Close()
		c.done = true
	}
}

func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}

func (c *console) tail(n int) string {
	lines := strings.Split(strings.TrimRight(c.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// tailBuffer keeps the last 8 KiB written to it (QEMU's own messages).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 8192 {
		t.buf = t.buf[len(t.buf)-8192:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
