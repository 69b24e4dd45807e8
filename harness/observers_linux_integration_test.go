//go:build linux

package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"txtimeout/internal/testnet"
	"txtimeout/kmsg"
)

func needRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("skipping: needs root for network namespaces, veth and /dev/kmsg (run as root)")
	}
}

// sendUDP sends n datagrams from A to B's address; each one leaves
// through the DUT end. The names of the pair are unique, because the
// kernel log that tests write to is shared by every namespace and every
// test running on the machine.
func sendUDP(tb testing.TB, p *testnet.Pair, n int) {
	tb.Helper()
	err := p.A.NS.Do(func() error {
		// Unconnected, so that B's port-unreachable replies do not turn
		// later sends into ECONNREFUSED errors that send nothing.
		c, err := net.ListenPacket("udp4", net.JoinHostPort(p.A.Addr.String(), "0"))
		if err != nil {
			return err
		}
		defer c.Close()
		dst := &net.UDPAddr{IP: p.B.Addr, Port: 9}
		for i := 0; i < n; i++ {
			if _, err := c.WriteTo([]byte("txtimeout observer test"), dst); err != nil {
				return err
			}
		}
		return nil
	})
	mustNoErr(tb, err)
}

func TestIntegrationObservers(t *testing.T) {
	needRoot(t)
	p := testnet.NewLinked(t)
	tl := NewTimeline()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The kernel log comes from a named pipe standing in for /dev/kmsg:
	// an event-shaped NETDEV WATCHDOG line at KERN_CRIT written into this
	// machine's real log would alarm whatever else watches it (KernelCI's
	// dmesg check fails any such line). kmsg's own tests cover the real
	// device.
	fifo := filepath.Join(t.TempDir(), "kmsg")
	mustNoErr(t, unix.Mkfifo(fifo, 0o600))
	// Opened read-write before the follower starts, so it never sees a
	// pipe without writers (which reads as end of file).
	kw, err := os.OpenFile(fifo, os.O_RDWR, 0)
	mustNoErr(t, err)
	t.Cleanup(func() { kw.Close() })
	var o *Observers
	mustNoErr(t, p.A.NS.DoWithSys(func() (err error) {
		o, err = startObservers(ctx, Config{Iface: p.A.Name}, tl, "/sys", kmsg.Options{Path: fifo})
		return err
	}))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			o.Stop()
		}
	})
	if r := o.TracepointReason(); r != "" {
		t.Errorf("tracepoint not observed on a kernel that has it: %s", r)
	}
	first, ok := tl.LastSample()
	if !ok {
		t.Fatal("no baseline sample")
	}
	if len(first.TxTimeoutQueues) == 0 {
		t.Error("no tx-N/tx_timeout counters read")
	}
	if !first.HaveQdisc {
		t.Error("no root qdisc statistics read")
	}

	// tx_packets moves on the timeline while we send.
	sendUDP(t, p, 20)
	err = tl.WaitFor(ctx, func(tl *Timeline) bool {
		s, _ := tl.LastSample()
		return s.TxPackets >= first.TxPackets+20
	})
	if err != nil {
		last, _ := tl.LastSample()
		t.Fatalf("tx_packets did not move by 20 (from %d to %d): %v", first.TxPackets, last.TxPackets, err)
	}

	// A watchdog record, in the form /dev/kmsg delivers it (captured on
	// the virtual rig, 6.1.192), arrives as an event.
	line := fmt.Sprintf("2,9001,5760000,-;virtio_net virtio0 %s: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms\n", p.A.Name)
	_, err = kw.Write([]byte(line))
	mustNoErr(t, err)
	err = tl.WaitFor(ctx, func(tl *Timeline) bool {
		for _, e := range tl.Events() {
			if e.Source == SourceKmsg && e.Kind == kmsg.KindWatchdog && e.Iface == p.A.Name {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("the watchdog line did not arrive as an event: %v (events %+v)", err, tl.Events())
	}

	stopped = true
	inst := o.tpName
	mustNoErr(t, o.Stop())
	mustNoErr(t, o.Stop()) // idempotent
	// The tracefs instance is gone (tracefs is one for the whole kernel;
	// it is mounted here only in the test thread's mount namespace).
	mustNoErr(t, p.A.NS.DoWithSys(func() error {
		if _, err := os.Stat("/sys/kernel/tracing/instances/" + inst); !os.IsNotExist(err) {
			return fmt.Errorf("tracefs instance %s still there after Stop (stat: %v)", inst, err)
		}
		return nil
	}))
	v := tl.Verdict(VerdictOptions{Iface: p.A.Name})
	if !v.TimeoutFired || v.WatchdogLines != 1 {
		t.Errorf("verdict from the injected line: %+v", v)
	}
	if v.Stalled {
		t.Error("a moving tx_packets must not read as stalled")
	}
}

func TestIntegrationObserversNoInterface(t *testing.T) {
	needRoot(t)
	_, err := StartObservers(context.Background(), Config{Iface: "txto-nonexist"}, NewTimeline())
	wantIs(t, err, os.ErrNotExist)
	_, err = StartObservers(context.Background(), Config{}, NewTimeline())
	wantErrContains(t, err, "no interface configured")
}

func TestIntegrationPreflight(t *testing.T) {
	needRoot(t)
	p := testnet.NewLinked(t)
	var checks []Check
	mustNoErr(t, p.A.NS.DoWithSys(func() error {
		checks = Preflight(Config{Iface: p.A.Name})
		return nil
	}))
	byName := map[string]Check{}
	for _, c := range checks {
		byName[c.Name] = c
		t.Logf("%s", c)
	}
	for _, n := range []string{CheckRoot, CheckKmsg, CheckIface, CheckTracepoint} {
		if !byName[n].OK {
			t.Errorf("check %s failed on this machine: %s", n, byName[n])
		}
	}
	d := byName[CheckDriver]
	if d.OK || !strings.Contains(d.Reason, "driver veth has no tx-timeout handler") || d.Fix == "" {
		t.Errorf("driver check for veth: %s", d)
	}
	// This machine's kernel has neither netem nor pktgen: the probes must
	// say so (not "cannot tell"), with a fix.
	if _, err := os.Stat("/proc/net/pktgen"); os.IsNotExist(err) && kernelConfig("CONFIG_NET_SCH_NETEM") == "n" {
		for _, n := range []string{CheckNetem, CheckPktgen} {
			c := byName[n]
			if c.OK || strings.HasPrefix(c.Reason, "cannot tell") || c.Fix == "" || c.Required {
				t.Errorf("check %s: %s", n, c)
			}
		}
		wantIs(t, ProbeNetem(), ErrNotSupported)
		wantIs(t, ProbePktgen(), ErrNotSupported)
	}

	// Need skips with the reason and fix, or fails in the rig.
	ft := &fakeNeedTB{}
	Need(ft, checks, CheckDriver)
	wantContains(t, ft.skip, "skipping: driver: FAILED: "+p.A.Name+": driver veth has no tx-timeout handler")
	wantContains(t, ft.skip, "(fix: ")
	ft = &fakeNeedTB{}
	Need(ft, []Check{{Name: CheckNetem, Reason: "no netem", Fix: "modprobe", Required: true}}, CheckNetem)
	wantContains(t, ft.fatal, "preflight netem: FAILED: no netem (fix: modprobe)")
	ft = &fakeNeedTB{}
	Need(ft, checks, "no-such-check")
	wantContains(t, ft.fatal, "did not run this check")
	ft = &fakeNeedTB{}
	Need(ft, checks, CheckRoot, CheckKmsg)
	if ft.fatal != "" || ft.skip != "" {
		t.Errorf("Need on passing checks: %+v", ft)
	}
	if c, bad := FirstFailed(checks, CheckRoot, CheckDriver); !bad || c.Name != CheckDriver {
		t.Errorf("FirstFailed = %v, %v", c, bad)
	}
}

type fakeNeedTB struct {
	testing.TB
	skip, fatal string
}

func (f *fakeNeedTB) Helper() {}
func (f *fakeNeedTB) Skipf(format string, a ...any) {
	if f.skip == "" && f.fatal == "" {
		f.skip = fmt.Sprintf(format, a...)
	}
}
func (f *fakeNeedTB) Fatalf(format string, a ...any) {
	if f.skip == "" && f.fatal == "" {
		f.fatal = fmt.Sprintf(format, a...)
	}
}
