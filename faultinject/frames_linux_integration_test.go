//go:build linux

package faultinject

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/mdlayher/packet"
)

// listen opens an AF_PACKET socket for ethertype proto on iface inside
// the pair's namespace.
func (v *vethPair) listen(tb testing.TB, iface string, proto int) *packet.Conn {
	tb.Helper()
	idx, mac := v.AIdx, v.AMAC
	if iface == v.B {
		idx, mac = v.BIdx, v.BMAC
	}
	return listenIn(tb, v.NS, &net.Interface{Index: idx, Name: iface, HardwareAddr: mac}, proto)
}

// listenIn opens an AF_PACKET socket for ethertype proto on ifi inside
// the namespace netns, closed at cleanup.
func listenIn(tb testing.TB, netns string, ifi *net.Interface, proto int) *packet.Conn {
	tb.Helper()
	var c *packet.Conn
	err := inNetNS(Options{NetNS: netns}, func() error {
		var err error
		c, err = packet.Listen(ifi, packet.Raw, proto, nil)
		return err
	})
	if err != nil {
		tb.Fatalf("AF_PACKET on %s: %v", ifi.Name, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// readFrame returns the next frame that arrived (not one sent) on c, or
// nil at the deadline.
func readFrame(tb testing.TB, c *packet.Conn, deadline time.Time) []byte {
	tb.Helper()
	f, err := readFrameErr(c, deadline)
	if err != nil {
		tb.Fatalf("reading: %v", err)
	}
	return f
}

// readFrameErr is readFrame for goroutines other than the test's.
func readFrameErr(c *packet.Conn, deadline time.Time) ([]byte, error) {
	buf := make([]byte, 2048)
	c.SetReadDeadline(deadline)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, nil
		}
		return nil, err
	}
	return append([]byte(nil), buf[:n]...), nil
}

func TestIntegrationPauseFlood(t *testing.T) {
	v := testVeth(t)
	o := v.opts(t)
	capt := v.listen(t, v.A, EtherTypeMACControl)
	// Read while the flood runs, so that the socket buffer never
	// overflows and every frame sent is seen.
	type result struct {
		frames [][]byte
		err    error
	}
	resc := make(chan result, 1)
	go func() {
		var r result
		for {
			f, err := readFrameErr(capt, time.Now().Add(700*time.Millisecond))
			if f == nil || err != nil {
				r.err = err
				resc <- r
				return
			}
			r.frames = append(r.frames, f)
		}
	}()
	const quanta = 0xFFFF
	want, err := MarshalPause(v.BMAC, quanta)
	if err != nil {
		t.Fatal(err)
	}
	const dur = 300 * time.Millisecond
	p, err := NewPauseFlood(v.B, PauseConfig{For: dur, Quanta: quanta}, o)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Inject(context.Background()); err != nil {
		t.Fatalf("Inject: %v", err)
	}
	t.Cleanup(func() { p.Restore(context.Background()) })
	if _, err := os.Stat(statePath(o, v.B)); err != nil {
		t.Errorf("no state file during the flood: %v", err)
	}
	select {
	case <-p.Done():
	case <-time.After(dur + 10*time.Second):
		t.Fatal("flood did not stop at its deadline")
	}
	if el := time.Since(start); el < dur {
		t.Errorf("flood stopped after %v, before its %v deadline", el, dur)
	}
	r := <-resc
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := len(r.frames)
	for _, f := range r.frames {
		if !bytes.Equal(f, want) {
			t.Fatalf("captured frame\n%x\nwant\n%x", f, want)
		}
	}
	t.Logf("%s; captured %d", p.Describe(), got)
	if got < 2 || uint64(got) != p.Sent() {
		t.Errorf("captured %d frames, sent %d; want the same, at least 2 (re-sent before expiry)", got, p.Sent())
	}
	if err := p.Restore(context.Background()); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if stale, _ := StaleState(o); len(stale) != 0 {
		t.Errorf("state left after Restore: %v", stale)
	}
}

func TestIntegrationPauseFloodStopsOnContext(t *testing.T) {
	v := testVeth(t)
	o := v.opts(t)
	p, _ := NewPauseFlood(v.B, PauseConfig{For: time.Minute}, o)
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.Inject(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Restore(context.Background()) })
	cancel()
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("flood did not stop when its context ended")
	}
	if err := p.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// veth has no pause parameters: asking for the DUT's flow control must
// fail with ErrUnsupported before anything is sent or recorded.
func TestIntegrationPauseFlowControlUnsupported(t *testing.T) {
	v := testVeth(t)
	o := v.opts(t)
	capt := v.listen(t, v.A, EtherTypeMACControl)
	p, _ := NewPauseFlood(v.B, PauseConfig{For: time.Second, DUTIface: v.A, DUTNetNS: v.NS}, o)
	err := p.Inject(context.Background())
	t.Logf("Inject: %v", err)
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Inject = %v, want ErrUnsupported", err)
	}
	if stale, _ := StaleState(o); len(stale) != 0 {
		t.Errorf("state written: %v", stale)
	}
	if f := readFrame(t, capt, time.Now().Add(200*time.Millisecond)); f != nil {
		t.Errorf("a frame was sent: %x", f)
	}
}

// fakePartner answers the first stall request on c with an ack carrying
// nonce+nonceDelta, and hands the request to the test.
func fakePartner(t *testing.T, v *vethPair, c *packet.Conn, nonceDelta uint32, reqs chan<- []byte) {
	go func() {
		defer close(reqs)
		for {
			f, err := readFrameErr(c, time.Now().Add(5*time.Second))
			if f == nil || err != nil {
				return
			}
			req, src, err := ParseCtrlEthernet(f)
			if err != nil || req.Command != CmdStall {
				continue
			}
			reqs <- f
			ack := CtrlFrame{Command: CmdStall | AckBit, Duration: req.Duration, Nonce: req.Nonce + nonceDelta}
			b, _ := ack.MarshalEthernet(src, v.BMAC)
			c.WriteTo(b, &packet.Addr{HardwareAddr: src})
			if nonceDelta == 0 {
				return // a real partner stops reading now
			}
		}
	}()
}

func TestIntegrationStallAck(t *testing.T) {
	v := testVeth(t)
	o := v.opts(t)
	partner := v.listen(t, v.B, EtherTypeCtrl)
	reqs := make(chan []byte, 10)
	fakePartner(t, v, partner, 0, reqs)
	const dur = 400 * time.Millisecond
	s, err := NewStall(v.A, StallConfig{For: dur, PeerMAC: v.BMAC}, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Inject(context.Background()); err != nil {
		t.Fatalf("Inject: %v", err)
	}
	req := <-reqs
	f, _, err := ParseCtrlEthernet(req)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := CtrlFrame{Command: CmdStall, Duration: dur, Nonce: f.Nonce}.MarshalEthernet(v.BMAC, v.AMAC)
	if !bytes.Equal(req, want) {
		t.Fatalf("control frame on the wire\n%x\nwant\n%x", req, want)
	}
	if _, err := os.Stat(statePath(o, v.A)); err != nil {
		t.Errorf("no state file during the stall: %v", err)
	}
	t.Log(s.Describe())
	until := s.Until()
	if err := s.Restore(context.Background()); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if time.Now().Before(until) {
		t.Errorf("Restore returned before the stall ended at %v", until)
	}
	if stale, _ := StaleState(o); len(stale) != 0 {
		t.Errorf("state left after Restore: %v", stale)
	}
}

func TestIntegrationStallNoAck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delta uint32 // 0: no partner at all
	}{{"silent", 0}, {"wrong-nonce", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			v := testVeth(t)
			o := v.opts(t)
			partner := v.listen(t, v.B, EtherTypeCtrl)
			reqs := make(chan []byte, 10)
			if tc.delta != 0 {
				fakePartner(t, v, partner, tc.delta, reqs)
			}
			s, _ := NewStall(v.A, StallConfig{For: time.Second, AckTimeout: 1200 * time.Millisecond}, o)
			start := time.Now()
			err := s.Inject(context.Background())
			if !errors.Is(err, ErrNoAck) {
				t.Fatalf("Inject = %v, want ErrNoAck", err)
			}
			t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
			if stale, _ := StaleState(o); len(stale) != 0 {
				t.Errorf("state left after a failed stall: %v", stale)
			}
			if tc.delta == 0 {
				// Broadcast, re-sent every 500 ms with one nonce.
				var nonces []uint32
				for f := readFrame(t, partner, time.Now().Add(200*time.Millisecond)); f != nil; f = readFrame(t, partner, time.Now().Add(200*time.Millisecond)) {
					cf, _, err := ParseCtrlEthernet(f)
					if err != nil || !bytes.Equal(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
						t.Fatalf("unexpected frame %x (%v)", f, err)
					}
					nonces = append(nonces, cf.Nonce)
				}
				if len(nonces) < 2 || nonces[0] != nonces[len(nonces)-1] {
					t.Errorf("requests seen %v; want at least 2 with one nonce", nonces)
				}
			}
			if err := s.Restore(context.Background()); err != nil {
				t.Errorf("Restore after failed Inject: %v", err)
			}
		})
	}
}
