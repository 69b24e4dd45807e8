package partner

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"txtimeout/faultinject"
)

// socketPair returns the two ends of an AF_UNIX stream socket pair, the
// kind of socket QEMU's stream netdev uses, with the smallest send buffers
// the kernel allows so that a few frames fill them.
func socketPair(tb testing.TB) (partnerEnd, qemuEnd net.Conn) {
	tb.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatalf("socketpair: %v", err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
			tb.Fatalf("SO_SNDBUF: %v", err)
		}
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			tb.Fatalf("FileConn: %v", err)
		}
		conns[i] = c
	}
	return conns[0], conns[1]
}

// TestStallOnSocket plays QEMU on a real socket: a flood written during a
// stall fills the socket's buffers and blocks, the partner's receive
// counter does not move while it is stalled, and the flood drains by itself
// when the stall ends.
func TestStallOnSocket(t *testing.T) {
	const d = time.Second
	a, b := socketPair(t)
	r := startPartner(t, Config{}, a, b)

	// Replies are read and thrown away, as QEMU would hand them to the guest.
	go func() {
		buf := make([]byte, MaxFrameLen)
		for {
			if _, err := ReadFrame(b, buf); err != nil {
				return
			}
		}
	}()

	r.send(t, stallFrame(t, d, 42))
	start := r.expectEvent(t, true, 42)
	rx0 := r.p.Stats().RxFrames
	if rx0 != 1 {
		t.Fatalf("RxFrames %d at the stall's start, want 1", rx0)
	}

	// Far more than the socket buffers hold: the writer must block until
	// the partner reads again.
	const flood = 200
	frame := make([]byte, 1400)
	copy(frame, echoRequest(t, net.IPv4(198, 18, 0, 99), 1400-42, 1500, 1, 1)[0])
	var written atomic.Int64
	wrote := make(chan time.Time, 1)
	go func() {
		b.SetWriteDeadline(time.Now().Add(deadline))
		for range flood {
			if err := WriteFrame(b, frame); err != nil {
				t.Errorf("flood write %d: %v", written.Load(), err)
				break
			}
			written.Add(1)
		}
		wrote <- time.Now()
	}()

	// While stalled, nothing may be read: sample until the stall ends.
	for r.p.Stalled() {
		rx := r.p.Stats().RxFrames
		if r.p.Stalled() && rx != rx0 {
			t.Fatalf("partner read %d frames during the stall", rx-rx0)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var done time.Time
	select {
	case done = <-wrote:
	case <-time.After(deadline):
		t.Fatalf("flood still blocked %v after the stall; %d of %d frames written", deadline, written.Load(), flood)
	}
	if done.Before(start.At.Add(d)) {
		t.Errorf("all %d frames were taken %v before the stall's end", flood, start.At.Add(d).Sub(done))
	}
	r.waitStats(t, "the whole flood read", func(s Stats) bool { return s.RxFrames == rx0+flood && s.EchoRequests == flood })
}

// TestUnixSocketLikeQEMU serves the way the rig does: the partner listens
// on a unix socket and QEMU (here a Go client) connects to it
// (-netdev stream,server=off,addr.type=unix). The client pings across it,
// stalls the partner and closes; Serve then returns nil.
func TestUnixSocketLikeQEMU(t *testing.T) {
	path := filepath.Join(t.TempDir(), "net.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := newPartner(t, Config{})
	served := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		served <- p.Serve(context.Background(), c)
	}()
	q, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(p, q)
	for _, f := range echoRequest(t, DefaultIP, 2048, 1500, 7, 1) {
		r.send(t, f)
	}
	if rep := r.recvEchoReply(t, 1500); len(rep.data) != 2048 || len(rep.frames) != 2 {
		t.Errorf("reply of %d bytes in %d frames, want 2048 in 2", len(rep.data), len(rep.frames))
	}
	r.send(t, stallFrame(t, 100*time.Millisecond, 3))
	r.expectAck(t, faultinject.CmdStall, 100*time.Millisecond, 3)
	r.expectEvent(t, true, 3)
	r.expectEvent(t, false, 3)
	q.Close()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve after QEMU closed its end = %v, want nil", err)
		}
	case <-time.After(deadline):
		t.Fatal("Serve did not return after QEMU closed its end")
	}
}
