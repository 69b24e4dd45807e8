package harness

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"txtimeout/kmsg"
)

// statNames are the /sys/class/net/IFACE/statistics files a Sample holds.
var statNames = []string{"tx_packets", "tx_bytes", "tx_dropped", "tx_errors", "rx_packets", "rx_bytes", "rx_dropped"}

// Observers watch one interface during a scenario and put what they see on
// a timeline: counters every SampleInterval, kernel-log events and
// tracepoint hits as they happen.
type Observers struct {
	tl    *Timeline
	iface string

	stats    []*os.File // in statNames order
	queues   []*os.File // tx-N/tx_timeout, by N
	inflight []*os.File // tx-N/byte_queue_limits/inflight, where present
	nl       *netlink.Handle
	link     netlink.Link
	kr       *kmsg.Reader

	carrier        *os.File // carrier, nil where it could not be opened
	carrierChanges *os.File // carrier_changes (3.15+), nil where absent

	// sysDir is /sys/class/net/IFACE, reached through netDir. When the
	// device is re-created (a rebind, a module reload), the counters are
	// reopened there and offset by the old device's last values
	// (reincarnate).
	// The root qdisc's statistics, read by their own goroutine
	// (readQdisc); link is the netlink link they are read for.
	qdiscMu  sync.Mutex
	qdisc    Sample
	qdiscErr error
	relink   bool // the device was re-created: look its link up again

	netDir         *os.File // class/net of the sysfs the observers started in
	sysDir         string
	last           Sample // the last raw sample of the current device
	offset         Sample // counters of the device's earlier incarnations
	reincarnations int

	// The tracefs instance is removed through open descriptors, so that
	// Stop works from any thread, whatever mount namespace it is in.
	tpDir    *os.File // tracefs "instances" directory
	tpName   string   // our instance in it, removed on Stop
	tpEnable *os.File // the instance's net_dev_xmit_timeout/enable
	tpPipe   *os.File // the instance's trace_pipe
	tpReason string   // why the tracepoint is not observed, when it is not

	cancel context.CancelFunc
	// running holds one channel per observer goroutine, closed when it
	// ends, so that Stop can name one that does not.
	running map[string]chan struct{}

	// sampleMu makes one sample at a time (the sampler's, SampleNow's,
	// Stop's), so that samples reach the timeline in time order; closed
	// is set once Stop has released the files.
	sampleMu sync.Mutex
	closed   atomic.Bool

	mu       sync.Mutex
	errs     []error
	sampErrs int
	stopped  bool
	stopErr  error
}

// StartObservers starts watching c.Iface. It opens every file and socket
// now, in the calling thread's namespaces (see the package doc), takes a
// first sample as the baseline, and keeps sampling until Stop or until
// ctx ends. The tracepoint is optional: when it cannot be traced, the
// timeline gets an observer_error mark saying why, and the rest runs.
func StartObservers(ctx context.Context, c Config, tl *Timeline) (*Observers, error) {
	return startObservers(ctx, c, tl, "/sys", kmsg.Options{})
}

func startObservers(ctx context.Context, c Config, tl *Timeline, sysRoot string, ko kmsg.Options) (_ *Observers, err error) {
	if c.Iface == "" {
		return nil, errors.New("harness: observers: no interface configured")
	}
	if tl == nil {
		return nil, errors.New("harness: observers: nil timeline")
	}
	o := &Observers{tl: tl, iface: c.Iface}
	defer func() {
		if err != nil {
			o.closeAll(true)
		}
	}()
	// The counters may have to be opened again later, from another
	// thread (a re-created device), whose mount namespace may show
	// another sysfs: they are reached through a descriptor of this
	// thread's class/net directory.
	if o.netDir, err = os.Open(filepath.Join(sysRoot, "class/net")); err != nil {
		return nil, fmt.Errorf("harness: observers: %w", err)
	}
	o.sysDir = fmt.Sprintf("/proc/self/fd/%d/%s", o.netDir.Fd(), c.Iface)
	if err := o.openSysfs(o.sysDir); err != nil {
		return nil, err
	}
	if o.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
		return nil, fmt.Errorf("harness: observers: netlink: %w", err)
	}
	if o.link, err = o.nl.LinkByName(c.Iface); err != nil {
		return nil, fmt.Errorf("harness: observers: interface %s: %w", c.Iface, err)
	}
	if o.kr, err = kmsg.Open(ko); err != nil {
		return nil, fmt.Errorf("harness: observers: kernel log: %w", err)
	}
	if err := o.openTracepoint(c.Rig); err != nil {
		o.tpReason = err.Error()
		tl.MarkNote(MarkObserverError, "tracepoint not observed: "+err.Error())
	}

	// A netlink request never blocks a sample (or Stop) for long.
	if err := o.nl.SetSocketTimeout(2 * time.Second); err != nil {
		return nil, fmt.Errorf("harness: observers: netlink: %w", err)
	}
	ctx, o.cancel = context.WithCancel(ctx)
	o.readQdisc()
	tl.AddSample(o.sample())
	o.running = map[string]chan struct{}{}
	o.spawn("sampler", func() { everySample(ctx, func() { o.sampleOnce() }) })
	o.spawn("qdisc sampler", func() { everySample(ctx, o.readQdisc) })
	o.spawn("kernel log follower", func() { o.kmsgLoop(ctx) })
	if o.tpPipe != nil {
		o.spawn("trace_pipe reader", o.traceLoop)
	}
	return o, nil
}

// openSysfs opens the interface's counter files in dir
// (/sys/class/net/IFACE): the statistics are required, the rest optional.
func (o *Observers) openSysfs(dir string) error {
	for _, n := range statNames {
		f, err := os.Open(filepath.Join(dir, "statistics", n))
		if err != nil {
			return fmt.Errorf("harness: observers: interface %s: %w", o.iface, err)
		}
		o.stats = append(o.stats, f)
	}
	qs, _ := filepath.Glob(filepath.Join(dir, "queues", "tx-*", "tx_timeout"))
	sort.Slice(qs, func(i, j int) bool { return queueIndex(qs[i]) < queueIndex(qs[j]) })
	for _, q := range qs {
		f, err := os.Open(q)
		if err != nil {
			return fmt.Errorf("harness: observers: %w", err)
		}
		o.queues = append(o.queues, f)
	}
	bql, _ := filepath.Glob(filepath.Join(dir, "queues", "tx-*", "byte_queue_limits", "inflight"))
	for _, q := range bql {
		if f, err := os.Open(q); err == nil { // optional: kernels without CONFIG_BQL have none
			o.inflight = append(o.inflight, f)
		}
	}
	// Opening carrier works whatever the interface's state; reading it
	// is what fails while the interface is down.
	if f, err := os.Open(filepath.Join(dir, "carrier")); err == nil {
		o.carrier = f
	}
	if f, err := os.Open(filepath.Join(dir, "carrier_changes")); err == nil { // 3.15+
		o.carrierChanges = f
	}
	return nil
}

// TracepointReason says why the tracepoint is not observed ("" when it is).
func (o *Observers) TracepointReason() string { return o.tpReason }

func queueIndex(path string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(filepath.Dir(path)), "tx-"))
	if err != nil {
		return 1 << 30
	}
	return n
}

func (o *Observers) fail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.errs = append(o.errs, err)
}

// readUint reads a sysfs counter again from the start of its open file.
func readUint(f *os.File) (uint64, error) {
	var buf [32]byte
	n, err := f.ReadAt(buf[:], 0)
	if n == 0 && err != nil {
		return 0, fmt.Errorf("%s: %w", f.Name(), err)
	}
	v, perr := strconv.ParseUint(strings.TrimSpace(string(buf[:n])), 10, 64)
	if perr != nil {
		return 0, fmt.Errorf("%s: %w", f.Name(), perr)
	}
	return v, nil
}

// sample reads every counter once. A counter that cannot be read keeps
// its zero value; the failure is counted, and the first reported by Stop.
func (o *Observers) sample() Sample {
	if o.gone() && !o.reincarnate() {
		// The device is away (a driver unbind or module reload); its
		// counters come back with it. The sample keeps the last values.
		s := o.last
		s.Time = o.tl.now()
		s.HaveCarrier, s.Carrier = true, false
		o.applyOffset(&s)
		return s
	}
	s := o.sampleRaw()
	o.last = s
	o.applyOffset(&s)
	return s
}

// gone reports whether the interface's open statistics files belong to a
// device that no longer exists: the path is gone, or names another file
// (a new device of the same name).
func (o *Observers) gone() bool {
	if o.sysDir == "" {
		return false
	}
	if len(o.stats) == 0 {
		return true // a reincarnation that failed half-way
	}
	open, err := o.stats[0].Stat()
	if err != nil {
		return true
	}
	now, err := os.Stat(filepath.Join(o.sysDir, "statistics", statNames[0]))
	return err != nil || !os.SameFile(open, now)
}

// reincarnate opens the counters of a new device of the same name (after
// a rebind or a module reload) and carries the old device's counters over
// as an offset, so that the timeline's counters stay cumulative: a new
// netdev starts from 0. It reports whether the device is back.
func (o *Observers) reincarnate() bool {
	if _, err := os.Stat(filepath.Join(o.sysDir, "statistics")); err != nil {
		return false
	}
	o.closeSysfs()
	if err := o.openSysfs(o.sysDir); err != nil {
		o.fail(fmt.Errorf("harness: observers: reopening %s after it was re-created: %w", o.iface, err))
		return false
	}
	// The qdisc goroutine looks the new link up itself: a netlink request
	// here would share the handle's socket lock with a tc dump that may
	// be waiting for rtnl, and block the counters.
	o.qdiscMu.Lock()
	o.relink = true
	o.qdiscMu.Unlock()
	old := o.last
	o.offset.TxPackets += old.TxPackets
	o.offset.TxBytes += old.TxBytes
	o.offset.TxDropped += old.TxDropped
	o.offset.TxErrors += old.TxErrors
	o.offset.RxPackets += old.RxPackets
	o.offset.RxBytes += old.RxBytes
	o.offset.RxDropped += old.RxDropped
	o.offset.TxTimeout += old.TxTimeout
	// The device went down and came up again: two carrier changes at
	// least, whatever the new device's counter says.
	o.offset.CarrierChanges += old.CarrierChanges + 2
	for i, v := range old.TxTimeoutQueues {
		if i >= len(o.offset.TxTimeoutQueues) {
			o.offset.TxTimeoutQueues = append(o.offset.TxTimeoutQueues, 0)
		}
		o.offset.TxTimeoutQueues[i] += v
	}
	o.reincarnations++
	o.tl.MarkNote(MarkDeviceRecreated, fmt.Sprintf("%s was re-created (%d); its counters continue from the old device's", o.iface, o.reincarnations))
	return true
}

// applyOffset adds the counters of the device's earlier incarnations.
func (o *Observers) applyOffset(s *Sample) {
	if o.reincarnations == 0 {
		return
	}
	s.TxPackets += o.offset.TxPackets
	s.TxBytes += o.offset.TxBytes
	s.TxDropped += o.offset.TxDropped
	s.TxErrors += o.offset.TxErrors
	s.RxPackets += o.offset.RxPackets
	s.RxBytes += o.offset.RxBytes
	s.RxDropped += o.offset.RxDropped
	s.TxTimeout += o.offset.TxTimeout
	s.CarrierChanges += o.offset.CarrierChanges
	q := append([]uint64(nil), s.TxTimeoutQueues...)
	for i, v := range o.offset.TxTimeoutQueues {
		if i < len(q) {
			q[i] += v
		}
	}
	s.TxTimeoutQueues = q
}

// sampleRaw reads the current device's counters.
func (o *Observers) sampleRaw() Sample {
	var s Sample
	dst := []*uint64{&s.TxPackets, &s.TxBytes, &s.TxDropped, &s.TxErrors, &s.RxPackets, &s.RxBytes, &s.RxDropped}
	var firstErr error
	for i, f := range o.stats {
		v, err := readUint(f)
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		*dst[i] = v
	}
	for _, f := range o.queues {
		v, err := readUint(f)
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		s.TxTimeout += v
		s.TxTimeoutQueues = append(s.TxTimeoutQueues, v)
	}
	for _, f := range o.inflight {
		if v, err := readUint(f); err == nil {
			s.BQLInflight += v
		}
	}
	if o.carrier != nil {
		on, err := carrierState(readUint(o.carrier))
		if err != nil {
			firstErr = cmpErr(firstErr, err)
		} else {
			s.HaveCarrier, s.Carrier = true, on
		}
	}
	if o.carrierChanges != nil {
		if v, err := readUint(o.carrierChanges); err == nil {
			s.CarrierChanges = v
		} else {
			firstErr = cmpErr(firstErr, err)
		}
	}
	if o.nl != nil { // nil only in the unit tests
		o.qdiscMu.Lock()
		q, qerr := o.qdisc, o.qdiscErr
		o.qdiscMu.Unlock()
		s.HaveQdisc, s.QdiscKind = q.HaveQdisc, q.QdiscKind
		s.QdiscBacklog, s.QdiscBacklogBytes = q.QdiscBacklog, q.QdiscBacklogBytes
		s.QdiscDrops, s.QdiscRequeues = q.QdiscDrops, q.QdiscRequeues
		if qerr != nil {
			firstErr = cmpErr(firstErr, qerr)
		}
	}
	s.Time = o.tl.now()
	if firstErr != nil {
		o.mu.Lock()
		o.sampErrs++
		if o.sampErrs == 1 {
			o.errs = append(o.errs, fmt.Errorf("harness: observers: sampling: %w", firstErr))
		}
		o.mu.Unlock()
	}
	return s
}

// readQdisc reads the root qdisc's statistics and keeps them for the
// samples. A tc dump takes rtnl, which a driver's reset can hold for
// seconds while it waits for a starved NAPI thread: it runs in its own
// goroutine, so that the counters' samples, and a scenario's
// last sample before the release, never wait for it.
func (o *Observers) readQdisc() {
	o.qdiscMu.Lock()
	link, relink := o.link, o.relink
	o.qdiscMu.Unlock()
	if relink {
		l, err := o.nl.LinkByName(o.iface)
		if err != nil {
			o.qdiscMu.Lock()
			o.qdiscErr = fmt.Errorf("qdisc statistics: the re-created %s: %w", o.iface, err)
			o.qdiscMu.Unlock()
			return
		}
		o.qdiscMu.Lock()
		o.link, o.relink, link = l, false, l
		o.qdiscMu.Unlock()
	}
	var s Sample
	err := o.sampleQdisc(link, &s)
	o.qdiscMu.Lock()
	o.qdisc, o.qdiscErr = s, err
	o.qdiscMu.Unlock()
}

// sampleQdisc reads the root qdisc's statistics into s.
func (o *Observers) sampleQdisc(link netlink.Link, s *Sample) error {
	qds, err := o.nl.QdiscList(link)
	if err != nil {
		return fmt.Errorf("qdisc statistics: %w", err)
	}
	for _, q := range qds {
		a := q.Attrs()
		if a.Parent != netlink.HANDLE_ROOT {
			continue
		}
		s.HaveQdisc = true
		s.QdiscKind = q.Type()
		if st := a.Statistics; st != nil && st.Queue != nil {
			s.QdiscBacklog = st.Queue.Qlen
			s.QdiscBacklogBytes = st.Queue.Backlog
			s.QdiscDrops = st.Queue.Drops
			s.QdiscRequeues = st.Queue.Requeues
		}
	}
	return nil
}

// carrierState reads a value of /sys/class/net/IFACE/carrier. The kernel
// fails the read with EINVAL while the interface is down (netif_running
// false): that is no carrier, not an error.
func carrierState(v uint64, err error) (bool, error) {
	if errors.Is(err, unix.EINVAL) {
		return false, nil
	}
	return v == 1, err
}

// errStopped is SampleNow's error after Stop.
var errStopped = errors.New("harness: observers: stopped")

// SampleNow takes a sample at once and adds it to the timeline. A scenario
// calls it right before it marks MarkFaultRemoved, so that the fault
// window ends with the counters as they are then: a timeout seen first in
// the kernel log or the tracepoint otherwise ends the window up to
// SampleInterval before any sample shows the tx_timeout counter's rise.
// Counters that cannot be read are reported by Stop, as for every sample;
// after Stop, SampleNow does nothing and returns an error.
func (o *Observers) SampleNow() error {
	if !o.sampleOnce() {
		return errStopped
	}
	return nil
}

// sampleOnce adds a sample to the timeline unless the files are closed.
func (o *Observers) sampleOnce() bool {
	o.sampleMu.Lock()
	defer o.sampleMu.Unlock()
	if o.closed.Load() {
		return false
	}
	o.tl.AddSample(o.sample())
	return true
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// spawn runs f in a goroutine that Stop waits for.
func (o *Observers) spawn(name string, f func()) {
	done := make(chan struct{})
	o.running[name] = done
	go func() {
		defer close(done)
		f()
	}()
}

// stopWait bounds how long Stop waits for an observer to end.
var stopWait = 10 * time.Second // a variable for tests

// everySample calls f every SampleInterval until ctx ends.
func everySample(ctx context.Context, f func()) {
	t := time.NewTicker(SampleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

func (o *Observers) kmsgLoop(ctx context.Context) {
	m := kmsg.NewMatcher()
	for {
		r, err := o.kr.Next(ctx)
		if err != nil {
			var gap *kmsg.GapError
			switch {
			case errors.As(err, &gap):
				o.tl.MarkNote(MarkKmsgGap, fmt.Sprintf("%d kernel log records lost", gap.Lost))
				continue
			case ctx.Err() != nil:
				return
			}
			o.tl.MarkNote(MarkObserverError, "kernel log: "+err.Error())
			o.fail(fmt.Errorf("harness: observers: kernel log: %w", err))
			return
		}
		for _, ev := range m.Match(r) {
			o.tl.AddEvent(SourceKmsg, ev)
		}
	}
}

// openTracepoint enables net:net_dev_xmit_timeout in a tracefs instance of
// our own, so that the global trace buffer and other tracers are left
// alone. Inside the rig it mounts tracefs when nobody has.
func (o *Observers) openTracepoint(rig bool) error {
	root := tracefsRoot()
	if root == "" && rig {
		if err := unix.Mount("nodev", "/sys/kernel/tracing", "tracefs", 0, ""); err == nil {
			root = "/sys/kernel/tracing"
		}
	}
	if root == "" {
		return errors.New("tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)")
	}
	dir, err := os.Open(filepath.Join(root, "instances"))
	if err != nil {
		return fmt.Errorf("tracefs instances: %w", err)
	}
	o.tpDir = dir
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "txtimeout-" + hex.EncodeToString(rnd[:])
	if err := unix.Mkdirat(int(dir.Fd()), name, 0o700); err != nil {
		return fmt.Errorf("tracefs instance: %w", os.NewSyscallError("mkdir", err))
	}
	o.tpName = name
	inst := filepath.Join(root, "instances", name)
	enable, err := os.OpenFile(filepath.Join(inst, "events/net/net_dev_xmit_timeout/enable"), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("net:net_dev_xmit_timeout: %w", err)
	}
	o.tpEnable = enable
	if _, err := enable.Write([]byte("1")); err != nil {
		return fmt.Errorf("enabling net:net_dev_xmit_timeout: %w", err)
	}
	// trace_pipe supports poll, so os.Open puts it in the runtime poller:
	// Close unblocks a pending Read.
	f, err := os.Open(filepath.Join(inst, "trace_pipe"))
	if err != nil {
		return fmt.Errorf("tracefs: %w", err)
	}
	o.tpPipe = f
	return nil
}

func (o *Observers) traceLoop() {
	br := bufio.NewReaderSize(o.tpPipe, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			if ev, perr := parseXmitTimeout(line); perr == nil {
				o.tl.AddEvent(SourceTracepoint, ev)
			}
		}
		if err != nil {
			if !errors.Is(err, os.ErrClosed) && !errors.Is(err, io.EOF) {
				o.fail(fmt.Errorf("harness: observers: trace_pipe: %w", err))
			}
			return
		}
	}
}

// Stop stops the observers, takes a last sample, disables the tracepoint
// and removes its tracefs instance. It returns the first error each
// observer met (errors.Join), and is safe to call more than once.
func (o *Observers) Stop() error {
	o.mu.Lock()
	if o.stopped {
		err := o.stopErr
		o.mu.Unlock()
		return err
	}
	o.stopped = true
	o.mu.Unlock()

	o.cancel()
	if o.tpPipe != nil {
		o.tpPipe.Close()
	}
	// Every observer ends when its context ends or its file closes; one
	// that does not is named in the error and left behind rather than
	// hanging the scenario.
	deadline := time.NewTimer(stopWait)
	defer deadline.Stop()
	expired := false
	var stuck []string
	for name, done := range o.running {
		if !expired {
			select {
			case <-done:
				continue
			case <-deadline.C:
				expired = true
			}
		}
		select {
		case <-done:
		default:
			stuck = append(stuck, name)
		}
	}
	samplerStuck, qdiscStuck := false, false
	for _, n := range stuck {
		samplerStuck = samplerStuck || n == "sampler"
		qdiscStuck = qdiscStuck || n == "qdisc sampler"
	}
	if len(stuck) > 0 {
		sort.Strings(stuck)
		o.fail(fmt.Errorf("harness: observers: %s did not stop within %v", strings.Join(stuck, ", "), stopWait))
		o.tl.MarkNote(MarkObserverError, "did not stop: "+strings.Join(stuck, ", "))
	}
	// Files and the tracefs instance are released even when an observer
	// is stuck (its reads then fail); the netlink handle is not, while
	// the sampler may still be using it. A stuck sampler may hold
	// sampleMu, so Stop takes it only when the sampler has ended.
	// A stuck qdisc sampler is inside a netlink request (a tc dump
	// waiting for rtnl): the handle stays open under it too.
	if samplerStuck {
		o.closed.Store(true)
		o.closeAll(false)
	} else {
		o.sampleMu.Lock()
		o.tl.AddSample(o.sample())
		o.closed.Store(true)
		o.closeAll(!qdiscStuck)
		o.sampleMu.Unlock()
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	o.stopErr = errors.Join(o.errs...)
	return o.stopErr
}

// closeSysfs closes the interface's counter files.
func (o *Observers) closeSysfs() {
	for _, files := range [][]*os.File{o.stats, o.queues, o.inflight} {
		for _, f := range files {
			f.Close()
		}
	}
	o.stats, o.queues, o.inflight = nil, nil, nil
	for _, f := range []**os.File{&o.carrier, &o.carrierChanges} {
		if *f != nil {
			(*f).Close()
			*f = nil
		}
	}
}

// closeAll releases everything StartObservers opened, the netlink handle
// only when closeNetlink is set.
func (o *Observers) closeAll(closeNetlink bool) {
	o.closeSysfs()
	if o.netDir != nil {
		o.netDir.Close()
		o.netDir = nil
	}
	if o.nl != nil && closeNetlink {
		o.nl.Close()
		o.nl = nil
	}
	if o.kr != nil {
		o.kr.Close()
		o.kr = nil
	}
	if o.tpPipe != nil {
		o.tpPipe.Close()
		o.tpPipe = nil
	}
	if o.tpEnable != nil {
		_, _ = o.tpEnable.WriteAt([]byte("0"), 0)
		o.tpEnable.Close()
		o.tpEnable = nil
	}
	if o.tpName != "" {
		if err := unix.Unlinkat(int(o.tpDir.Fd()), o.tpName, unix.AT_REMOVEDIR); err != nil {
			o.errs = append(o.errs, fmt.Errorf("harness: observers: removing tracefs instance %s: %w", o.tpName, err))
		}
		o.tpName = ""
	}
	if o.tpDir != nil {
		o.tpDir.Close()
		o.tpDir = nil
	}
}
