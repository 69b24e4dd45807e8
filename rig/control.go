package rig

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"txtimeout/rig/internal/guestproto"
)

// ResumeRequest is a guest.ResumePartner request the host received.
type ResumeRequest struct {
	Nonce string
	// Iface is the guest interface whose partner was meant (eth0 when
	// the request named none).
	Iface string
	At    time.Time
	// Stalled reports whether the partner was stalled when the request
	// came, that is, whether the request ended a stall.
	Stalled bool
}

// control reads the guest init's control lines.
type control struct {
	reportDir   string
	hello, exit chan struct{}
	// watch, if set, hears every line and the heartbeats.
	watch *hangWatch
	// resume ends the stall of iface's partner ("" is eth0's) and
	// reports whether there was one; nil ignores RESUME lines.
	resume func(nonce, iface string) bool

	mu      sync.Mutex
	code    int
	gotExit bool
	errs    []string
	files   []string
	fileErr error
	resumes []ResumeRequest
}

func newControl(reportDir string) *control {
	return &control{reportDir: reportDir, hello: make(chan struct{}), exit: make(chan struct{})}
}

func (c *control) read(r io.Reader) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	var (
		name    string
		b64     strings.Builder
		inFile  bool
		helloed bool
	)
	for s.Scan() {
		line := strings.TrimRight(s.Text(), "\r")
		c.watch.line()
		if inFile && !strings.HasPrefix(line, guestproto.Prefix) {
			b64.WriteString(strings.TrimSpace(line))
			continue
		}
		rest, ok := strings.CutPrefix(line, guestproto.Prefix)
		if !ok {
			continue
		}
		verb, arg, _ := strings.Cut(rest, " ")
		switch verb {
		case guestproto.Hello:
			if !helloed {
				helloed = true
				close(c.hello)
			}
		case guestproto.Ready:
			c.watch.arm()
		case guestproto.Alive:
			// A malformed heartbeat is still a sign of life (the line).
			if hb, err := guestproto.ParseHeartbeat(arg); err == nil {
				c.watch.beat(hb)
			}
		case guestproto.Resume:
			nonce, iface, _ := strings.Cut(strings.TrimSpace(arg), " ")
			iface = strings.TrimSpace(iface)
			stalled := false
			if c.resume != nil {
				stalled = c.resume(nonce, iface)
			}
			if iface == "" {
				iface = guestproto.FirstIface
			}
			c.mu.Lock()
			c.resumes = append(c.resumes, ResumeRequest{Nonce: nonce, Iface: iface, At: time.Now(), Stalled: stalled})
			c.mu.Unlock()
		case guestproto.File:
			_, n, _ := strings.Cut(arg, " ")
			name, inFile = n, true
			b64.Reset()
		case guestproto.EndFile:
			inFile = false
			c.saveFile(name, b64.String())
		case guestproto.Error:
			c.mu.Lock()
			c.errs = append(c.errs, arg)
			c.mu.Unlock()
		case guestproto.Exit:
			n, err := strconv.Atoi(strings.TrimSpace(arg))
			if err != nil {
				n = guestproto.ExitInitFailed
			}
			c.mu.Lock()
			if !c.gotExit {
				c.code, c.gotExit = n, true
				close(c.exit)
			}
			c.watch.disarm()
			c.mu.Unlock()
		}
	}
}

func (c *control) saveFile(name, b64 string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		c.fileErr = errors.Join(c.fileErr, fmt.Errorf("%s: %w", name, err))
		return
	}
	clean := filepath.Clean("/" + name)[1:]
	if clean == "" || clean == "console.log" {
		c.fileErr = errors.Join(c.fileErr, fmt.Errorf("report file name %q refused", name))
		return
	}
	c.files = append(c.files, clean)
	if c.reportDir == "" {
		return
	}
	dst := filepath.Join(c.reportDir, clean)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		c.fileErr = errors.Join(c.fileErr, err)
		return
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		c.fileErr = errors.Join(c.fileErr, err)
	}
}

func (c *control) exitCode() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code, c.gotExit
}

func (c *control) errorText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.errs, "; ")
}
