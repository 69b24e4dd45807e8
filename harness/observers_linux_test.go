package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"txtimeout/kmsg"
)

// A stuck observer makes Stop return an error naming it, within stopWait,
// instead of hanging the scenario.
func TestStopNamesAStuckObserver(t *testing.T) {
	old := stopWait
	stopWait = 50 * time.Millisecond
	t.Cleanup(func() { stopWait = old })

	tl := NewTimeline()
	o := &Observers{tl: tl, cancel: func() {}, running: map[string]chan struct{}{}}
	never := make(chan struct{})
	defer close(never)
	o.spawn("sampler", func() { <-never })
	o.spawn("kernel log follower", func() {})

	done := make(chan error, 1)
	go func() { done <- o.Stop() }()
	select {
	case err := <-done:
		wantErrContains(t, err, "sampler did not stop within 50ms")
		if strings.Contains(err.Error(), "kernel log follower") {
			t.Errorf("an observer that ended is named as stuck: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Stop hung on a stuck observer")
	}
	if !tl.HasMark(MarkObserverError) {
		t.Error("no observer_error mark on the timeline")
	}
	// Stop again returns the same error at once.
	wantErrContains(t, o.Stop(), "sampler did not stop")
}

// fakeSysfs writes a /sys/class/net/IFACE directory with the files the
// observers read; files maps a path inside it to its content, "" leaves
// a default file out.
func fakeSysfs(tb testing.TB, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	all := map[string]string{"queues/tx-0/tx_timeout": "0\n", "carrier": "1\n", "carrier_changes": "2\n"}
	for _, n := range statNames {
		all["statistics/"+n] = "0\n"
	}
	for k, v := range files {
		all[k] = v
	}
	for k, v := range all {
		if v == "" {
			continue
		}
		p := filepath.Join(dir, k)
		mustNoErr(tb, os.MkdirAll(filepath.Dir(p), 0o755))
		mustNoErr(tb, os.WriteFile(p, []byte(v), 0o644))
	}
	return dir
}

// sysfsObservers opens dir as the observers would, without netlink, the
// kernel log or the tracepoint.
func sysfsObservers(tb testing.TB, dir string) (*Observers, *Timeline) {
	tb.Helper()
	tl := NewTimeline()
	o := &Observers{tl: tl, iface: "eth0", cancel: func() {}, running: map[string]chan struct{}{}}
	mustNoErr(tb, o.openSysfs(dir))
	tb.Cleanup(func() { o.Stop() })
	return o, tl
}

func TestSampleCarrier(t *testing.T) {
	for _, tt := range []struct {
		name          string
		files         map[string]string
		have, carrier bool
		changes       uint64
	}{
		{"up", nil, true, true, 2},
		{"no carrier", map[string]string{"carrier": "0\n", "carrier_changes": "3\n"}, true, false, 3},
		{"before 3.15: no carrier_changes", map[string]string{"carrier_changes": ""}, true, true, 0},
		{"no carrier file", map[string]string{"carrier": ""}, false, false, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, tl := sysfsObservers(t, fakeSysfs(t, tt.files))
			mustNoErr(t, o.SampleNow())
			s, ok := tl.LastSample()
			wantEq(t, ok, true, "a sample on the timeline")
			wantEq(t, s.HaveCarrier, tt.have, "HaveCarrier")
			wantEq(t, s.Carrier, tt.carrier, "Carrier")
			wantEq(t, s.CarrierChanges, tt.changes, "CarrierChanges")
			mustNoErr(t, o.Stop())
		})
	}
}

// While the interface is down the kernel fails the read of carrier with
// EINVAL: that is carrier 0, and no sampling error.
func TestCarrierStateDown(t *testing.T) {
	einval := fmt.Errorf("/sys/class/net/eth0/carrier: %w", &os.PathError{Op: "read", Path: "carrier", Err: unix.EINVAL})
	on, err := carrierState(0, einval)
	mustNoErr(t, err)
	wantEq(t, on, false, "carrier while down")
	on, err = carrierState(1, nil)
	mustNoErr(t, err)
	wantEq(t, on, true, "carrier 1")
	_, err = carrierState(0, os.ErrClosed)
	wantIs(t, err, os.ErrClosed)
}

// SampleNow right before fault_removed puts a tx_timeout rise that no
// periodic sample has shown yet into the fault window.
func TestSampleNowBeforeRelease(t *testing.T) {
	dir := fakeSysfs(t, nil)
	o, tl := sysfsObservers(t, dir)
	mustNoErr(t, o.SampleNow()) // the baseline
	tl.Mark(MarkFaultInjected)
	tl.AddEvent(SourceTracepoint, kmsg.Event{Kind: kmsg.KindWatchdog, Iface: "eth0", Queue: 0})
	mustNoErr(t, os.WriteFile(filepath.Join(dir, "queues/tx-0/tx_timeout"), []byte("1\n"), 0o644))
	mustNoErr(t, o.SampleNow())
	tl.Mark(MarkFaultRemoved)
	v := tl.Verdict(VerdictOptions{})
	wantEq(t, v.TxTimeoutCount, uint64(1), "tx_timeout_count")

	mustNoErr(t, o.Stop())
	n := len(tl.Samples())
	if err := o.SampleNow(); err == nil {
		t.Error("SampleNow after Stop: no error")
	}
	wantEq(t, len(tl.Samples()), n, "samples after Stop")
}

// SampleNow while the sampler runs keeps the samples in time order.
func TestSampleNowWithSampler(t *testing.T) {
	o, tl := sysfsObservers(t, fakeSysfs(t, nil))
	ctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	o.spawn("sampler", func() { everySample(ctx, func() { o.sampleOnce() }) })
	deadline := time.Now().Add(3 * SampleInterval)
	for time.Now().Before(deadline) {
		mustNoErr(t, o.SampleNow())
		time.Sleep(time.Millisecond)
	}
	mustNoErr(t, o.Stop())
	smp := tl.Samples()
	for i := 1; i < len(smp); i++ {
		if smp[i].Time.Before(smp[i-1].Time) {
			t.Fatalf("sample %d at %v is before sample %d at %v", i, smp[i].Time, i-1, smp[i-1].Time)
		}
	}
}

// A device that is removed and created again under the same name (a
// driver rebind, a module reload) starts its counters from 0: the
// observers reopen its files and carry the old device's counters over, so
// that the timeline stays cumulative; while it is away, samples repeat the
// last values with no carrier.
func TestSampleDeviceRecreated(t *testing.T) {
	dir := fakeSysfs(t, map[string]string{"statistics/tx_packets": "100\n", "queues/tx-0/tx_timeout": "1\n", "carrier_changes": "2\n"})
	o, tl := sysfsObservers(t, dir)
	o.sysDir = dir
	mustNoErr(t, o.SampleNow())

	// Removed: the path is gone.
	mustNoErr(t, os.RemoveAll(dir))
	mustNoErr(t, o.SampleNow())
	s, _ := tl.LastSample()
	wantEq(t, s.TxPackets, uint64(100), "tx_packets while the device is away")
	wantEq(t, s.Carrier, false, "carrier while the device is away")

	// Created again with fresh counters.
	mustNoErr(t, os.MkdirAll(dir, 0o755))
	for k, v := range map[string]string{"statistics/tx_packets": "7\n", "queues/tx-0/tx_timeout": "0\n", "carrier": "1\n", "carrier_changes": "1\n"} {
		p := filepath.Join(dir, k)
		mustNoErr(t, os.MkdirAll(filepath.Dir(p), 0o755))
		mustNoErr(t, os.WriteFile(p, []byte(v), 0o644))
	}
	for _, n := range statNames[1:] {
		mustNoErr(t, os.WriteFile(filepath.Join(dir, "statistics", n), []byte("0\n"), 0o644))
	}
	mustNoErr(t, o.SampleNow())
	s, _ = tl.LastSample()
	wantEq(t, s.TxPackets, uint64(107), "tx_packets continue across the new device")
	wantEq(t, s.TxTimeout, uint64(1), "tx_timeout continues")
	wantEq(t, s.CarrierChanges, uint64(2+2+1), "carrier_changes: old, the flap, new")
	wantEq(t, s.Carrier, true, "carrier of the new device")
	wantEq(t, tl.HasMark(MarkDeviceRecreated), true, "device_recreated mark")

	// Nothing changes after that: no second offset.
	mustNoErr(t, o.SampleNow())
	s, _ = tl.LastSample()
	wantEq(t, s.TxPackets, uint64(107), "tx_packets on the next sample")
	mustNoErr(t, o.Stop())
}
