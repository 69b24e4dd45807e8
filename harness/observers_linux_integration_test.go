//go:build linux

package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"txtimeout/kmsg"
)

func needRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("skipping: needs root for network namespaces, veth and /dev/kmsg (run as root)")
	}
}

// vethPair is a veth pair between two throwaway network namespaces:
// dut (198.18.0.1/30) in A, peer (198.18.0.2/30) in B. The names are
// unique, because the kernel log that tests write to is shared by every
// namespace and every test running on the machine.
type vethPair struct {
	a, b      netns.NsHandle
	dut, peer string
}

// newVethPair makes the namespaces and the pair; tb.Cleanup deletes them,
// and the veth with them.
func newVethPair(tb testing.TB) *vethPair {
	tb.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	mustNoErr(tb, err)
	defer orig.Close()
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	base := "txto-" + hex.EncodeToString(rnd[:])
	mk := func(name string) netns.NsHandle {
		h, err := netns.NewNamed(name)
		if serr := netns.Set(orig); serr != nil {
			panic("cannot return to the original network namespace: " + serr.Error())
		}
		mustNoErr(tb, err)
		tb.Cleanup(func() {
			h.Close()
			if err := netns.DeleteNamed(name); err != nil {
				tb.Errorf("deleting network namespace %s: %v", name, err)
			}
		})
		return h
	}
	p := &vethPair{a: mk(base + "a"), b: mk(base + "b"), dut: base + "a", peer: base + "b"}
	ha, err := netlink.NewHandleAt(p.a)
	mustNoErr(tb, err)
	defer ha.Close()
	hb, err := netlink.NewHandleAt(p.b)
	mustNoErr(tb, err)
	defer hb.Close()
	mustNoErr(tb, ha.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: p.dut}, PeerName: p.peer, PeerNamespace: netlink.NsFd(p.b)}))
	for _, x := range []struct {
		h    *netlink.Handle
		name string
		addr string
	}{{ha, p.dut, "198.18.0.1/30"}, {hb, p.peer, "198.18.0.2/30"}} {
		l, err := x.h.LinkByName(x.name)
		mustNoErr(tb, err)
		a, err := netlink.ParseAddr(x.addr)
		mustNoErr(tb, err)
		mustNoErr(tb, x.h.AddrAdd(l, a))
		mustNoErr(tb, x.h.LinkSetUp(l))
	}
	return p
}

// inNetns runs f on an OS thread that has entered ns with a mount
// namespace of its own, in which a sysfs of ns is mounted on /sys and
// tracefs on /sys/kernel/tracing, so that StartObservers opens the
// namespace's view. Afterwards the thread goes back to the process's
// mount and network namespaces and stays locked, so that it ends with the
// goroutine: the mounts are private to it and vanish with it. (Should the
// goroutine run on the main thread, Go keeps that thread instead of ending
// it, and the main thread is what /proc/self and /proc/net follow: hence
// the way back.)
func inNetns(tb testing.TB, ns netns.NsHandle, f func() error) error {
	tb.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked
		origNet, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer origNet.Close()
		origMnt, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/mnt", unix.Gettid()))
		if err != nil {
			errc <- err
			return
		}
		defer origMnt.Close()
		defer func() {
			if err := unix.Setns(int(origMnt.Fd()), unix.CLONE_NEWNS); err != nil {
				panic("cannot return to the original mount namespace: " + err.Error())
			}
			if err := netns.Set(origNet); err != nil {
				panic("cannot return to the original network namespace: " + err.Error())
			}
		}()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			errc <- fmt.Errorf("making mounts private: %w", err)
			return
		}
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		if err := unix.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
			errc <- fmt.Errorf("mounting sysfs: %w", err)
			return
		}
		if err := unix.Mount("nodev", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
			errc <- fmt.Errorf("mounting tracefs: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// sendUDP sends n datagrams from namespace A to B's address; each one
// leaves through the DUT end.
func sendUDP(tb testing.TB, ns netns.NsHandle, n int) {
	tb.Helper()
	err := inNetnsPlain(ns, func() error {
		// Unconnected, so that B's port-unreachable replies do not turn
		// later sends into ECONNREFUSED errors that send nothing.
		c, err := net.ListenPacket("udp4", "198.18.0.1:0")
		if err != nil {
			return err
		}
		defer c.Close()
		dst := &net.UDPAddr{IP: net.IPv4(198, 18, 0, 2), Port: 9}
		for i := 0; i < n; i++ {
			if _, err := c.WriteTo([]byte("txtimeout observer test"), dst); err != nil {
				return err
			}
		}
		return nil
	})
	mustNoErr(tb, err)
}

// inNetnsPlain runs f on a thread in ns (no mount changes); the thread
// goes back to its namespace before it is unlocked.
func inNetnsPlain(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		defer func() {
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
		}()
		errc <- f()
	}()
	return <-errc
}

func TestIntegrationObservers(t *testing.T) {
	needRoot(t)
	p := newVethPair(t)
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
	mustNoErr(t, inNetns(t, p.a, func() (err error) {
		o, err = startObservers(ctx, Config{Iface: p.dut}, tl, "/sys", kmsg.Options{Path: fifo})
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
	sendUDP(t, p.a, 20)
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
	line := fmt.Sprintf("2,9001,5760000,-;virtio_net virtio0 %s: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms\n", p.dut)
	_, err = kw.Write([]byte(line))
	mustNoErr(t, err)
	err = tl.WaitFor(ctx, func(tl *Timeline) bool {
		for _, e := range tl.Events() {
			if e.Source == SourceKmsg && e.Kind == kmsg.KindWatchdog && e.Iface == p.dut {
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
	mustNoErr(t, inNetns(t, p.a, func() error {
		if _, err := os.Stat("/sys/kernel/tracing/instances/" + inst); !os.IsNotExist(err) {
			return fmt.Errorf("tracefs instance %s still there after Stop (stat: %v)", inst, err)
		}
		return nil
	}))
	v := tl.Verdict(VerdictOptions{Iface: p.dut})
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
	p := newVethPair(t)
	var checks []Check
	mustNoErr(t, inNetns(t, p.a, func() error {
		checks = Preflight(Config{Iface: p.dut})
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
	wantContains(t, ft.skip, "skipping: driver: FAILED: "+p.dut+": driver veth has no tx-timeout handler")
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
