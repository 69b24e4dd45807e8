package rig

import (
	"strings"
	"testing"
	"time"

	"txtimeout/rig/internal/guestproto"
)

// fakeClock is the hang watch's clock in tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestHangWatch(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	h := newHangWatch(10*time.Second, clk.now)

	// Before READY the boot deadline rules: no silence counts.
	clk.advance(time.Hour)
	_, hung := h.check()
	assert.False(t, hung, "hung before READY")
	assert.Equal(t, "the guest never reported READY", h.describe())

	h.line()
	h.arm()
	clk.advance(9 * time.Second)
	silent, hung := h.check()
	assert.Equal(t, 9*time.Second, silent)
	assert.False(t, hung, "hung one second before the window ends")
	assert.Contains(t, h.describe(), "no heartbeat since READY at 04:04:05.000 (9s ago)")

	// Heartbeats every 2 s keep it alive however long the run.
	for i := 1; i <= 100; i++ {
		h.line()
		h.beat(guestproto.Heartbeat{Seq: i, Uptime: time.Duration(i) * 2 * time.Second, Load1: 1.5, TestCPU: time.Duration(i) * time.Second})
		clk.advance(2 * time.Second)
		if _, hung := h.check(); hung {
			t.Fatalf("hung after heartbeat %d", i)
		}
	}
	beats, gap := h.stats()
	assert.Equal(t, 100, beats)
	assert.Equal(t, 9*time.Second, gap, "the longest silence was before the first heartbeat")

	// Then silence: hung exactly at the window, and the report says
	// where the guest stood.
	clk.advance(7*time.Second + 999*time.Millisecond)
	_, hung = h.check()
	assert.False(t, hung)
	clk.advance(time.Millisecond)
	silent, hung = h.check()
	assert.True(t, hung)
	assert.Equal(t, 10*time.Second, silent)
	d := h.describe()
	for _, want := range []string{"last heartbeat (#100)", "10s ago", "guest uptime 3m20s", "load 1.50", "test binary CPU time 1m40s"} {
		assert.Contains(t, d, want)
	}
	assert.NotContains(t, d, "last control line", "the last line was the heartbeat")
	beats, gap = h.stats()
	assert.Equal(t, 100, beats)
	assert.Equal(t, 10*time.Second, gap, "the current silence counts")

	// A line that is no heartbeat (a report file) is progress too, and
	// the report names it.
	h.line()
	_, hung = h.check()
	assert.False(t, hung)
	assert.Contains(t, h.describe(), "last control line at 04:07:42.000")

	// After EXIT the power-off deadline rules.
	h.disarm()
	clk.advance(time.Hour)
	_, hung = h.check()
	assert.False(t, hung, "hung after EXIT")
	// READY again (a confused guest) does not re-arm it.
	h.arm()
	_, hung = h.check()
	assert.False(t, hung)
}

// The control reader feeds the watch: READY arms it, every line is
// progress, ALIVE lines are heartbeats (a malformed one only progress),
// EXIT disarms it.
func TestControlReadHeartbeats(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	c := newControl("")
	c.watch = newHangWatch(10*time.Second, clk.now)
	in := strings.Join([]string{
		guestproto.Prefix + "HELLO",
		guestproto.Prefix + "READY eth0",
		guestproto.Prefix + "ALIVE seq=1 uptime_ms=3000 load1=0.10 test_cpu_ms=20",
		guestproto.Prefix + "RESUME 0a1b2c3d",
		guestproto.Prefix + "ALIVE seq=2 uptime_ms=5000 load1=0.30 test_cpu_ms=410",
		guestproto.Prefix + "ALIVE garbage",
		guestproto.Prefix + "EXIT 0",
		"",
	}, "\n")
	c.read(strings.NewReader(in))
	beats, _ := c.watch.stats()
	assert.Equal(t, 2, beats)
	assert.Contains(t, c.watch.describe(), "last heartbeat (#2)")
	assert.Contains(t, c.watch.describe(), "test binary CPU time 410ms")
	clk.advance(time.Hour)
	_, hung := c.watch.check()
	assert.False(t, hung, "hung after EXIT")
	code, ok := c.exitCode()
	require.True(t, ok)
	assert.Zero(t, code)

	// Without a watch (the other tests' controls) heartbeats are harmless.
	c = newControl("")
	c.read(strings.NewReader(in))
	_, ok = c.exitCode()
	assert.True(t, ok)
}

// hmpCapture is what QEMU 7.2's human monitor sent on a unix socket for
// "info status" and "info registers -a" (2 vCPUs, no guest), captured with
// qemu-system-x86_64 -nodefaults -display none -smp 2 -m 64
// -monitor unix:/tmp/m.sock,server=on,wait=off and a client typing the
// commands (abridged: the echo's escapes repeat per typed character).
const (
	hmpStatus = "i\x1b[K\x1b[Din\x1b[K\x1b[D\x1b[Dinfo statu\x1b[K\x1b[D\x1b[Dinfo status\x1b[K\r\nVM status: running\r\n(qemu) "
	hmpRegs   = "i\x1b[K\x1b[Dinfo registers -a\x1b[K\r\n\r\nCPU#0\r\n" +
		"EAX=00000000 EBX=00000000 ECX=0000b79d EDX=00000000\r\n" +
		"ESI=0000b79d EDI=00000000 EBP=0000b79d ESP=00006f94\r\n" +
		"EIP=0000b7b9 EFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n" +
		"CS =f000 000f0000 0000ffff 00009b00\r\n\r\nCPU#1\r\n" +
		"RAX=0000000000000000 RBX=ffff888003a4c000 RCX=0000000000000001 RDX=0000000000000000\r\n" +
		"RIP=ffffffff81a1e3bb RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=0\r\n(qemu) "
)

func TestSummarizeHMP(t *testing.T) {
	assert.Equal(t, []string{"VM status: running"}, summarizeHMP([]byte(hmpStatus)))
	assert.Equal(t, []string{
		"CPU#0 EIP=0000b7b9 EFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1",
		"CPU#1 RIP=ffffffff81a1e3bb RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=0",
	}, summarizeHMP([]byte(hmpRegs)))
	assert.Equal(t, 0, len(summarizeHMP([]byte("garbage without a prompt"))))
}

func TestQueryMonitorUnreachable(t *testing.T) {
	s := queryMonitor(t.TempDir()+"/none.sock", time.Second)
	assert.True(t, strings.HasPrefix(s, "QEMU monitor unreachable:"), s)
}
