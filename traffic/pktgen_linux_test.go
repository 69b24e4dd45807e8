package traffic

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"txtimeout/internal/leakcheck"
)

// fakePktgen imitates /proc/net/pktgen closely enough to drive
// pktgenDriver: Result lines as net/core/pktgen.c writes them, EINVAL for
// an unknown parameter, a *successful* write for an unknown flag, ENOTSUPP
// for clone_skb on a device that cannot share skbs (here "lo"), and a
// "start" that blocks until every device reaches its count or "stop".
type fakePktgen struct {
	threads int
	ifaces  []string

	mu       sync.Mutex
	devs     map[string]*fakeDev // by "IFACE@N"
	thResult map[string]string   // by thread file
	writes   []string            // "file: cmd"
	stop     chan struct{}
	starting chan struct{} // closed when "start" begins to block
}

type fakeDev struct {
	thread int
	count  uint64
	size   int
	result string
}

func newFakePktgen(threads int, ifaces ...string) *fakePktgen {
	return &fakePktgen{threads: threads, ifaces: ifaces, devs: map[string]*fakeDev{},
		thResult: map[string]string{}, starting: make(chan struct{})}
}

var fakeFlags = []string{"IPSRC_RND", "IPDST_RND", "UDPSRC_RND", "UDPDST_RND", "QUEUE_MAP_CPU", "QUEUE_MAP_RND", "NO_TIMESTAMP", "FLOW_SEQ", "UDPCSUM", "TXSIZE_RND"}
var fakeParams = []string{"count", "clone_skb", "frags", "pkt_size", "delay", "ratep", "rate", "burst", "dst", "dst_mac",
	"dst_min", "dst_max", "src_min", "src_max", "udp_src_min", "udp_src_max", "udp_dst_min", "udp_dst_max",
	"queue_map_min", "queue_map_max", "flows", "flowlen"}

func (f *fakePktgen) exists(name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name == "pgctrl" {
		return true, nil
	}
	var n int
	if _, err := fmt.Sscanf(name, "kpktgend_%d", &n); err == nil {
		return n < f.threads, nil
	}
	_, ok := f.devs[name]
	return ok, nil
}

func (f *fakePktgen) read(name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.thResult[name]; ok {
		return "Running: \nStopped: \nResult: " + r + "\n", nil
	}
	d, ok := f.devs[name]
	if !ok {
		return "", os.ErrNotExist
	}
	r := d.result
	if r == "" {
		r = "Idle"
	}
	return fmt.Sprintf("Params: count %d  min_pkt_size: %d  max_pkt_size: %d\n     frags: 0  delay: 0  clone_skb: 0  ifname: %s\nResult: %s\n", d.count, d.size, d.size, name, r), nil
}

func (f *fakePktgen) write(name, cmd string) error {
	f.mu.Lock()
	f.writes = append(f.writes, name+": "+cmd)
	key, val, _ := strings.Cut(cmd, " ")
	switch {
	case name == "pgctrl":
		switch cmd {
		case "reset":
			clear(f.devs)
		case "stop":
			if f.stop != nil {
				close(f.stop)
				f.stop = nil
			}
		case "start":
			forever := false
			for _, d := range f.devs {
				forever = forever || d.count == 0
			}
			var stop chan struct{}
			if forever {
				stop = make(chan struct{})
				f.stop = stop
			}
			f.mu.Unlock()
			close(f.starting)
			if stop != nil {
				<-stop
			}
			f.mu.Lock()
			for _, d := range f.devs {
				n := d.count
				if n == 0 {
					n = 12345
				}
				d.result = fmt.Sprintf("OK: 1000000(c990000+d10000) usec, %d (%dbyte,0frags)\n  %dpps %dMb/sec (%dbps) errors: 3", n, d.size, n, n*uint64(d.size)*8/1e6, n*uint64(d.size)*8)
			}
		}
	case strings.HasPrefix(name, "kpktgend_"):
		var t int
		fmt.Sscanf(name, "kpktgend_%d", &t)
		switch key {
		case "add_device":
			iface, _, _ := strings.Cut(val, "@")
			if !slices.Contains(f.ifaces, iface) {
				f.thResult[name] = "ERROR: can not add device " + val
				f.mu.Unlock()
				return unix.ENODEV
			}
			f.devs[val] = &fakeDev{thread: t, count: 1000, size: 60}
			f.thResult[name] = "OK: add_device=" + val
		case "rem_device_all":
			for k, d := range f.devs {
				if d.thread == t {
					delete(f.devs, k)
				}
			}
			f.thResult[name] = "OK: rem_device_all"
		default:
			f.mu.Unlock()
			return unix.EINVAL
		}
	default:
		d, ok := f.devs[name]
		if !ok {
			f.mu.Unlock()
			return os.ErrNotExist
		}
		switch {
		case key == "flag":
			if !slices.Contains(fakeFlags, strings.TrimPrefix(val, "!")) {
				d.result = "Flag -:" + val + ":- unknown\nAvailable flags, (prepend ! to un-set flag):\nIPSRC_RND, IPDST_RND"
			} else {
				d.result = "OK: flags=0x1"
			}
		case key == "xmit_mode":
			if !slices.Contains([]string{"start_xmit", "netif_receive", "queue_xmit"}, val) {
				d.result = "xmit_mode -:" + val + ":- unknown\nAvailable modes: start_xmit, netif_receive"
			} else {
				d.result = "OK: xmit_mode=" + val
			}
		case key == "clone_skb" && val != "0" && strings.HasPrefix(name, "lo@"):
			f.mu.Unlock()
			return enotsupp // result left as it was
		case slices.Contains(fakeParams, key):
			switch key {
			case "count":
				fmt.Sscan(val, &d.count)
			case "pkt_size":
				fmt.Sscan(val, &d.size)
			}
			d.result = "OK: " + key + "=" + val
		default:
			d.result = fmt.Sprintf("No such parameter \"%s\"", key)
			f.mu.Unlock()
			return unix.EINVAL
		}
	}
	f.mu.Unlock()
	return nil
}

func (f *fakePktgen) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.writes)
}

// checkCleanedUp fails tb unless the run ended with rem_device_all on each
// thread it used and a reset, leaving no devices.
func (f *fakePktgen) checkCleanedUp(tb testing.TB, threads ...int) {
	tb.Helper()
	w := f.log()
	if len(w) == 0 || w[len(w)-1] != "pgctrl: reset" {
		tb.Fatalf("last write is not a reset: %q", w)
	}
	for _, t := range threads {
		if !slices.Contains(w, fmt.Sprintf("kpktgend_%d: rem_device_all", t)) {
			tb.Fatalf("no rem_device_all on thread %d: %q", t, w)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.devs) != 0 {
		tb.Fatalf("devices left: %v", f.devs)
	}
}

func testDriver(f *fakePktgen) pktgenDriver { return pktgenDriver{fs: f, stopWait: 10 * time.Second} }

func TestPktgenRunSeedScaledDown(t *testing.T) {
	leakcheck.Check(t)
	f := newFakePktgen(2, "eth0")
	c := SeedConfig("eth0", 2, SeedOptions{Packets: 1000, PktSize: 1400})
	res, err := testDriver(f).run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Threads) != 2 || res.Sent != 1000 || res.Errors != 6 {
		t.Fatalf("result %+v", res)
	}
	for i, th := range res.Threads {
		if th.Thread != i || th.Iface != "eth0" || th.Sent != 500 || th.PPS != 500 {
			t.Fatalf("thread %d: %+v", i, th)
		}
	}
	if res.PPS != 1000 || res.Mbps != 2*500*1400*8/1e6 {
		t.Fatalf("totals pps %v mbps %v", res.PPS, res.Mbps)
	}
	w := f.log()
	for _, want := range []string{"pgctrl: reset", "kpktgend_0: add_device eth0@0", "kpktgend_1: add_device eth0@1",
		"eth0@1: flag QUEUE_MAP_CPU", "eth0@1: flag IPDST_RND", "eth0@0: count 500", "eth0@0: pkt_size 1400", "pgctrl: start"} {
		if !slices.Contains(w, want) {
			t.Errorf("no write %q in %q", want, w)
		}
	}
	f.checkCleanedUp(t, 0, 1)
}

func TestPktgenRunUnknownFlag(t *testing.T) {
	f := newFakePktgen(1, "eth0")
	c := PktgenConfig{Devices: []PktgenDevice{{Iface: "eth0", Count: 10, Flags: []string{"QUEUE_MAP_CPU", "BOGUS"}}}}
	_, err := testDriver(f).run(context.Background(), c)
	var pe *PktgenError
	if !errors.As(err, &pe) || pe.Command != "flag BOGUS" || !strings.Contains(pe.Result, "Flag -:BOGUS:- unknown") || pe.Err != nil {
		t.Fatalf("err = %#v", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("multi-line error %q", err)
	}
	if slices.Contains(f.log(), "pgctrl: start") {
		t.Fatal("started after a failed write")
	}
	f.checkCleanedUp(t, 0)
}

func TestPktgenRunUnknownXmitMode(t *testing.T) {
	f := newFakePktgen(1, "eth0")
	c := PktgenConfig{Devices: []PktgenDevice{{Iface: "eth0", Count: 10, XmitMode: "warp"}}}
	_, err := testDriver(f).run(context.Background(), c)
	errContains(t, err, "xmit_mode -:warp:- unknown")
	f.checkCleanedUp(t, 0)
}

func TestPktgenRunNoSuchParameter(t *testing.T) {
	f := newFakePktgen(1, "eth0")
	c := PktgenConfig{Devices: []PktgenDevice{{Iface: "eth0", Count: 10, Config: true}}}
	_, err := testDriver(f).run(context.Background(), c)
	if !errors.Is(err, unix.EINVAL) {
		t.Fatalf("err = %v, want EINVAL", err)
	}
	errContains(t, err, `No such parameter "config"`)
	f.checkCleanedUp(t, 0)
}

func TestPktgenRunCloneOnLoopback(t *testing.T) {
	f := newFakePktgen(1, "lo")
	c := PktgenConfig{Devices: []PktgenDevice{{Iface: "lo", Count: 10, CloneSKB: 5}}}
	_, err := testDriver(f).run(context.Background(), c)
	if !errors.Is(err, ErrNotSupported) || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("err = %v, want ErrNotSupported, which is errors.ErrUnsupported", err)
	}
	errContains(t, err, `"clone_skb 5"`)
	f.checkCleanedUp(t, 0)
}

func TestPktgenRunNoSuchDevice(t *testing.T) {
	f := newFakePktgen(1, "eth0")
	c := PktgenConfig{Devices: []PktgenDevice{{Iface: "eth9", Count: 10}}}
	_, err := testDriver(f).run(context.Background(), c)
	if !errors.Is(err, unix.ENODEV) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ENODEV and os.ErrNotExist", err)
	}
	errContains(t, err, "can not add device eth9@0")
	f.checkCleanedUp(t, 0)
}

func TestPktgenRunNoSuchThread(t *testing.T) {
	f := newFakePktgen(2, "eth0")
	c := PktgenConfig{Devices: []PktgenDevice{{Thread: 2, Iface: "eth0", Count: 10}}}
	_, err := testDriver(f).run(context.Background(), c)
	errContains(t, err, "no thread 2")
	if len(f.log()) != 0 {
		t.Fatalf("wrote %q", f.log())
	}
}

func TestPktgenRunUnbounded(t *testing.T) {
	f := newFakePktgen(1, "eth0")
	c := PktgenConfig{Devices: []PktgenDevice{{Iface: "eth0"}}}
	_, err := testDriver(f).run(context.Background(), c)
	errContains(t, err, "unbounded")
	if len(f.log()) != 0 {
		t.Fatalf("wrote %q", f.log())
	}
}

// endAtStart returns a context with a far deadline, so that a run of
// count 0 is bounded, which ends as soon as "start" has begun: the run's
// deadline passing while pktgen sends.
func (f *fakePktgen) endAtStart(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	tb.Cleanup(cancel)
	go func() {
		<-f.starting
		cancel()
	}()
	return ctx
}

// TestPktgenRunStopsAtDeadline: count 0 runs until the context ends, then
// "stop" makes "start" return and the results are read.
func TestPktgenRunStopsAtDeadline(t *testing.T) {
	leakcheck.Check(t)
	f := newFakePktgen(1, "eth0")
	ctx := f.endAtStart(t)
	c := PktgenConfig{Devices: []PktgenDevice{{Iface: "eth0", PktSize: 1400}}}
	res, err := testDriver(f).run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 12345 {
		t.Fatalf("result %+v", res)
	}
	w := f.log()
	if i, j := slices.Index(w, "pgctrl: start"), slices.Index(w, "pgctrl: stop"); i < 0 || j < 0 {
		t.Fatalf("writes %q", w)
	}
	f.checkCleanedUp(t, 0)
}

// frozenFS reads a device file that still says "Starting" once "start"
// has begun, as pktgen leaves it when the device's queue is frozen.
type frozenFS struct {
	*fakePktgen
	content string
}

func (s frozenFS) read(name string) (string, error) {
	select {
	case <-s.starting:
		if name == "eth0@0" {
			return s.content, nil
		}
	default:
	}
	return s.fakePktgen.read(name)
}

// A run stopped at its deadline while the device still reads "Starting"
// gives the counters so far; a run that ended on its own does not.
func TestPktgenRunStoppedWhileStarting(t *testing.T) {
	leakcheck.Check(t)
	content, _ := readFixture(t, "testdata/pktgen/stopped-starting.txt")
	f := newFakePktgen(1, "eth0")
	ctx := f.endAtStart(t)
	res, err := testDriver(f).withFS(frozenFS{f, content}).run(ctx, PktgenConfig{Devices: []PktgenDevice{{Iface: "eth0", PktSize: 1400}}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Partial || res.Sent != 4127 || res.Errors != 2 || len(res.Threads) != 1 || !res.Threads[0].Partial {
		t.Fatalf("result %+v", res)
	}
	f.checkCleanedUp(t, 0)

	f = newFakePktgen(1, "eth0")
	_, err = testDriver(f).withFS(frozenFS{f, content}).run(context.Background(), PktgenConfig{Devices: []PktgenDevice{{Iface: "eth0", Count: 5}}})
	errContains(t, err, `not a run result: "Starting"`)
	f.checkCleanedUp(t, 0)
}

// withFS is p reading and writing through fs.
func (p pktgenDriver) withFS(fs pktgenFS) pktgenDriver { p.fs = fs; return p }

// stuckFS does not return from "start", even after "stop", until release
// is closed.
type stuckFS struct {
	*fakePktgen
	release chan struct{}
}

func (s stuckFS) write(name, cmd string) error {
	if name == "pgctrl" && cmd == "start" {
		close(s.starting)
		<-s.release
		return nil
	}
	return s.fakePktgen.write(name, cmd)
}

func TestPktgenRunStartStuck(t *testing.T) {
	leakcheck.Check(t)
	f := newFakePktgen(1, "eth0")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-f.starting
		cancel()
	}()
	release := make(chan struct{})
	defer close(release)
	_, err := pktgenDriver{fs: stuckFS{f, release}, stopWait: 100 * time.Millisecond}.run(ctx, PktgenConfig{Devices: []PktgenDevice{{Iface: "eth0", Count: 5}}})
	errContains(t, err, "after stop")
	f.checkCleanedUp(t, 0)
}

func TestProbePktgen(t *testing.T) {
	present := newFakePktgen(1)
	loads := 0
	load := func() error { loads++; return nil }
	if err := probePktgen(present, load); err != nil || loads != 0 {
		t.Fatalf("present: %v, %d loads", err, loads)
	}
	absent := procFS{t.TempDir()}
	if err := probePktgen(absent, load); !errors.Is(err, ErrNotSupported) || loads != 1 {
		t.Fatalf("loaded but still absent: %v, %d loads", err, loads)
	}
	missing := fmt.Errorf("no module: %w", ErrNotSupported)
	if err := probePktgen(absent, func() error { return missing }); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("no module: %v", err)
	}
}

// TestPktgenAvailableHost: the probe is consistent with the host's /proc.
// This host's kernel has no pktgen; the virtual rig's has, and the
// scenarios run it there.
func TestPktgenAvailableHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: loading pktgen needs root (run as root)")
	}
	err := PktgenAvailable()
	_, statErr := os.Stat(pktgenRoot + "/pgctrl")
	switch {
	case err == nil && statErr != nil:
		t.Fatalf("PktgenAvailable() = nil but %v", statErr)
	case err != nil && statErr == nil:
		t.Fatalf("PktgenAvailable() = %v but pgctrl exists", err)
	case err != nil && !errors.Is(err, ErrNotSupported):
		t.Fatalf("inconclusive probe: %v", err)
	}
	t.Logf("PktgenAvailable() = %v", err)
	if err != nil {
		// The CLI and RunPktgen report the same clear error.
		_, rerr := RunPktgen(context.Background(), PktgenConfig{Devices: []PktgenDevice{{Iface: "lo", Count: 1}}})
		if !errors.Is(rerr, ErrNotSupported) {
			t.Fatalf("RunPktgen without pktgen = %v", rerr)
		}
	}
}

// TestProcFSWrite: one write(2) per command, newline-terminated.
func TestProcFSWrite(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/pgctrl", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := procFS{dir}
	if err := p.write("pgctrl", "reset"); err != nil {
		t.Fatal(err)
	}
	got, err := p.read("pgctrl")
	if err != nil || got != "reset\n" {
		t.Fatalf("read %q, %v", got, err)
	}
	if err := p.write("nope", "x"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("write to missing file: %v", err)
	}
}
