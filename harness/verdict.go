package harness

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"txtimeout/kmsg"
)

// VerdictOptions tunes how a verdict is derived.
type VerdictOptions struct {
	// Iface, when set, ignores kernel events that name another interface
	// (a second NIC timing out on the same machine is not this DUT).
	Iface string
	// StallMin is how long tx_packets must stay still, while traffic is
	// offered, to count as stalled. Default 1s.
	StallMin time.Duration
	// RecoverWithin is the recovery deadline after MarkFaultRemoved.
	// Default 15s.
	RecoverWithin time.Duration
	// NoEcho waives the echo reply for recovery, for scenarios that send
	// no echo requests after the release; tx_packets must still move.
	NoEcho bool
}

func (o VerdictOptions) withDefaults() VerdictOptions {
	if o.StallMin <= 0 {
		o.StallMin = time.Second
	}
	if o.RecoverWithin <= 0 {
		o.RecoverWithin = 15 * time.Second
	}
	return o
}

// Verdict is what a scenario's timeline shows. Every field is derived from
// the timeline alone (Snapshot.Verdict documents how), so the same
// timeline read back from report.json gives the same verdict.
type Verdict struct {
	Stalled        bool  `json:"stalled"`
	TimeoutFired   bool  `json:"timeout_fired"`
	HandlerLogged  bool  `json:"handler_logged"`
	Recovered      bool  `json:"recovered"`
	Splat          bool  `json:"splat"`
	CleanupOK      bool  `json:"cleanup_ok"`
	FirstTimeoutMS int64 `json:"first_timeout_ms"` // -1: no timeout signal
	ResetSeen      bool  `json:"reset_seen"`
	LinkFlap       bool  `json:"link_flap"`

	// The numbers behind the fields.
	TxTimeoutCount        uint64 `json:"tx_timeout_count"`        // increase of the sysfs tx_timeout sum during the fault
	WatchdogLines         int    `json:"watchdog_lines"`          // NETDEV WATCHDOG lines in the kernel log
	TracepointHits        int    `json:"tracepoint_hits"`         // net:net_dev_xmit_timeout hits
	DriverLines           int    `json:"driver_lines"`            // the driver's own tx-timeout lines
	SplatCount            int    `json:"splat_count"`             // oops, BUG, WARNING, ... lines
	StallMS               int64  `json:"stall_ms"`                // longest time tx_packets stood still while traffic was offered
	TxPacketsDuringFault  uint64 `json:"tx_packets_during_fault"` // tx_packets increase between the fault marks
	OfferedDuringFault    uint64 `json:"offered_during_fault"`    // packets the generators offered between the fault marks
	QdiscBacklogMax       uint32 `json:"qdisc_backlog_max"`       // packets held by the root qdisc, at most
	QdiscBacklogBytesMax  uint32 `json:"qdisc_backlog_bytes_max"` // bytes held by the root qdisc, at most
	QdiscDropsDuringFault uint32 `json:"qdisc_drops_during_fault"`
	BQLInflightMax        uint64 `json:"bql_inflight_max_bytes"` // bytes in the driver's rings not completed, at most (BQL drivers)
	RecoverMS             int64  `json:"recover_ms"`             // from fault_removed to recovery; -1: not recovered
	// TxTimeoutByQueue is each TX queue's tx_timeout increase during the
	// fault (index = queue; empty when none moved), and WatchdogQueues the
	// queues that watchdog lines and tracepoint hits named: a stall of one
	// queue of a multi-queue device must show that queue alone.
	TxTimeoutByQueue []uint64 `json:"tx_timeout_by_queue,omitempty"`
	WatchdogQueues   []int    `json:"watchdog_queues,omitempty"`
	Samples          int      `json:"samples"`
	ResetLines       int      `json:"reset_lines"`  // the driver's lines saying it resets the device
	LinkDownMS       int64    `json:"link_down_ms"` // longest time the link was seen down in a flap; 0: none, or shorter than a sample
}

// Unmeasured is a Verdict of a scenario that measured nothing: no
// timeout (FirstTimeoutMS -1), no recovery (RecoverMS -1).
func Unmeasured() Verdict { return Verdict{FirstTimeoutMS: -1, RecoverMS: -1} }

// Verdict derives the verdict from the snapshot:
//
//   - The fault window runs from the first MarkFaultInjected (or the
//     timeline start) to the first MarkFaultRemoved after it (or the end).
//     The baseline is the last sample at or before the window's start (or
//     the first sample).
//   - Stalled: some run of consecutive samples inside the window has the
//     same tx_packets and lasts at least StallMin, while traffic was
//     offered during that run: the Offered count grew, or the root qdisc
//     held packets at the run's end, or the qdisc dropped packets, or (only
//     when no generator counts its sends, so Offered never moved) a
//     MarkFloodStart precedes the run with no MarkFloodStop before its end.
//     StallMS is the longest such run.
//   - TimeoutFired: at least one timeout signal at or after the window's
//     start: a watchdog event from the kernel log, a tracepoint hit, or a
//     tx_timeout sum above the baseline. Any one counts, because kernels
//     before 6.8 print the watchdog line once per boot.
//   - FirstTimeoutMS: from the window's start to the earliest signal; for
//     the counter, the first sample that shows the increase. -1 if none.
//   - HandlerLogged: a driver event at or after the window's start.
//   - ResetSeen: a driver event marked as a reset (kmsg.Event.Reset) at or
//     after the window's start, up to the end of the timeline: drivers
//     reset after the release too. ResetLines counts them (they are
//     among DriverLines as well).
//   - LinkFlap: from the window's start to the end of the timeline the
//     link went down and came back up, by any one of: carrier_changes
//     rose by 2 or more above the baseline in a sample that does not
//     read carrier 0; a carrier 0 sample followed by a carrier 1 sample;
//     a link-down event followed by a link-up event. LinkDownMS is the
//     longest such down time, from the samples or from the events (each
//     source on its own: a sample and a kernel log line race each other),
//     0 when only the counter saw the flap.
//   - Splat: any splat event on the whole timeline.
//   - Recovered: a MarkFaultRemoved exists and, within RecoverWithin after
//     it, a sample shows tx_packets above its value at the removal (the
//     last sample at or before it) and, unless NoEcho, a MarkEchoReply
//     follows the removal. RecoverMS is the later of the two.
//   - CleanupOK: a MarkCleanupOK exists and no MarkCleanupFailed.
//
// Events naming an interface other than o.Iface are ignored when o.Iface
// is set; events that name no interface count.
func (s Snapshot) Verdict(o VerdictOptions) Verdict {
	o = o.withDefaults()
	v := Unmeasured()
	v.Samples = len(s.Samples)

	start := s.Start
	if m, ok := s.FindMark(MarkFaultInjected); ok {
		start = m.Time
	}
	var end time.Time // zero: open
	for _, m := range s.Marks {
		if m.Name == MarkFaultRemoved && !m.Time.Before(start) {
			end = m.Time
			break
		}
	}
	inWindow := func(t time.Time) bool {
		return !t.Before(start) && (end.IsZero() || !t.After(end))
	}

	// Baseline and window samples.
	var base *Sample
	var window []Sample
	for i := range s.Samples {
		smp := s.Samples[i]
		if !smp.Time.After(start) {
			base = &s.Samples[i]
		}
		if inWindow(smp.Time) {
			window = append(window, smp)
		}
	}
	if base == nil && len(s.Samples) > 0 {
		base = &s.Samples[0]
	}

	first := time.Time{}
	signal := func(t time.Time) {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}

	// Counters inside the window.
	if base != nil {
		for _, smp := range window {
			if smp.TxTimeout > base.TxTimeout {
				if d := smp.TxTimeout - base.TxTimeout; d > v.TxTimeoutCount {
					v.TxTimeoutCount = d
				}
				signal(smp.Time)
			}
			if smp.TxPackets >= base.TxPackets {
				v.TxPacketsDuringFault = smp.TxPackets - base.TxPackets
			}
			if smp.Offered >= base.Offered {
				v.OfferedDuringFault = smp.Offered - base.Offered
			}
			if smp.QdiscDrops >= base.QdiscDrops {
				v.QdiscDropsDuringFault = smp.QdiscDrops - base.QdiscDrops
			}
			for q, n := range smp.TxTimeoutQueues {
				was := uint64(0)
				if q < len(base.TxTimeoutQueues) {
					was = base.TxTimeoutQueues[q]
				}
				if n > was {
					for len(v.TxTimeoutByQueue) <= q {
						v.TxTimeoutByQueue = append(v.TxTimeoutByQueue, 0)
					}
					v.TxTimeoutByQueue[q] = max(v.TxTimeoutByQueue[q], n-was)
				}
			}
		}
	}
	for _, smp := range window {
		v.QdiscBacklogMax = max(v.QdiscBacklogMax, smp.QdiscBacklog)
		v.QdiscBacklogBytesMax = max(v.QdiscBacklogBytesMax, smp.QdiscBacklogBytes)
		v.BQLInflightMax = max(v.BQLInflightMax, smp.BQLInflight)
	}

	// Stall: runs of equal tx_packets with traffic offered.
	generatorsCount := false
	for _, smp := range s.Samples {
		if smp.Offered > 0 {
			generatorsCount = true
			break
		}
	}
	floodActive := func(from, to time.Time) bool {
		on := false
		for _, m := range s.Marks {
			switch {
			case m.Name == MarkFloodStart && !m.Time.After(from):
				on = true
			case m.Name == MarkFloodStop && !m.Time.After(to):
				on = false
			}
		}
		return on
	}
	for i := 0; i < len(window); {
		j := i
		for j+1 < len(window) && window[j+1].TxPackets == window[i].TxPackets {
			j++
		}
		a, b := window[i], window[j]
		d := b.Time.Sub(a.Time)
		offered := b.Offered > a.Offered ||
			(b.HaveQdisc && b.QdiscBacklog > 0) ||
			b.QdiscDrops > a.QdiscDrops ||
			(!generatorsCount && floodActive(a.Time, b.Time))
		if j > i && d >= o.StallMin && offered {
			v.Stalled = true
			v.StallMS = max(v.StallMS, d.Milliseconds())
		}
		i = j + 1
	}

	// Kernel events.
	ours := func(e Event) bool { return o.Iface == "" || e.Iface == "" || e.Iface == o.Iface }
	for _, e := range s.Events {
		if e.Kind == kmsg.KindSplat {
			v.SplatCount++
			continue
		}
		if !ours(e) || e.Time.Before(start) {
			continue
		}
		switch {
		case e.Kind == kmsg.KindWatchdog && e.Source == SourceTracepoint:
			v.TracepointHits++
			signal(e.Time)
			v.addWatchdogQueue(e.Queue)
		case e.Kind == kmsg.KindWatchdog:
			v.WatchdogLines++
			signal(e.Time)
			v.addWatchdogQueue(e.Queue)
		case e.Kind == kmsg.KindDriver:
			v.DriverLines++
			if e.Reset {
				v.ResetLines++
			}
		}
	}
	v.ResetSeen = v.ResetLines > 0
	v.LinkFlap, v.LinkDownMS = s.linkFlap(start, base, ours)
	v.Splat = v.SplatCount > 0
	v.HandlerLogged = v.DriverLines > 0
	v.TimeoutFired = !first.IsZero()
	if v.TimeoutFired {
		v.FirstTimeoutMS = first.Sub(start).Milliseconds()
	}

	// Recovery.
	if !end.IsZero() {
		deadline := end.Add(o.RecoverWithin)
		var atRemoval *Sample
		for i := range s.Samples {
			if !s.Samples[i].Time.After(end) {
				atRemoval = &s.Samples[i]
			}
		}
		var txAt, echoAt time.Time
		if atRemoval != nil {
			for _, smp := range s.Samples {
				if smp.Time.After(end) && !smp.Time.After(deadline) && smp.TxPackets > atRemoval.TxPackets {
					txAt = smp.Time
					break
				}
			}
		}
		echoAt = end
		if !o.NoEcho {
			echoAt = time.Time{}
			for _, m := range s.Marks {
				if m.Name == MarkEchoReply && !m.Time.Before(end) && !m.Time.After(deadline) {
					echoAt = m.Time
					break
				}
			}
		}
		if !txAt.IsZero() && !echoAt.IsZero() {
			v.Recovered = true
			last := txAt
			if echoAt.After(last) {
				last = echoAt
			}
			v.RecoverMS = last.Sub(end).Milliseconds()
		}
	}

	_, ok := s.FindMark(MarkCleanupOK)
	_, failed := s.FindMark(MarkCleanupFailed)
	v.CleanupOK = ok && !failed
	return v
}

// linkFlap says whether the link went down and came back up at or after
// start, and the longest time it was seen down (Snapshot.Verdict).
func (s Snapshot) linkFlap(start time.Time, base *Sample, ours func(Event) bool) (bool, int64) {
	flap := false
	var longest time.Duration
	// downUp walks one source's signals in time order.
	var downAt time.Time
	downUp := func(t time.Time, up bool) {
		switch {
		case !up && downAt.IsZero():
			downAt = t
		case up && !downAt.IsZero():
			flap = true
			longest = max(longest, t.Sub(downAt))
			downAt = time.Time{}
		}
	}
	for _, smp := range s.Samples {
		if smp.Time.Before(start) {
			continue
		}
		if base != nil && smp.CarrierChanges >= base.CarrierChanges+2 && (!smp.HaveCarrier || smp.Carrier) {
			flap = true
		}
		if smp.HaveCarrier {
			downUp(smp.Time, smp.Carrier)
		}
	}
	downAt = time.Time{}
	for _, e := range s.Events {
		if e.Kind == kmsg.KindLink && ours(e) && !e.Time.Before(start) {
			downUp(e.Time, e.LinkUp)
		}
	}
	return flap, longest.Milliseconds()
}

// addWatchdogQueue records a queue that a watchdog line or tracepoint hit
// named (q < 0: it named none).
func (v *Verdict) addWatchdogQueue(q int) {
	if q < 0 || slices.Contains(v.WatchdogQueues, q) {
		return
	}
	v.WatchdogQueues = append(v.WatchdogQueues, q)
	slices.Sort(v.WatchdogQueues)
}

// Summary says in plain words what the verdict shows, with the numbers.
func (v Verdict) Summary() string {
	var b strings.Builder
	switch {
	case v.Stalled:
		fmt.Fprintf(&b, "the device stalled: tx_packets stood still for %d ms while traffic was offered", v.StallMS)
	case v.TimeoutFired:
		// A load that counts nothing it offers (pktgen) cannot show a
		// standstill "while traffic was offered"; the timeout says the
		// queue stopped.
		fmt.Fprintf(&b, "no standstill of tx_packets was measured against counted traffic (it moved by %d during the fault)", v.TxPacketsDuringFault)
	default:
		fmt.Fprintf(&b, "the driver queue never stopped: tx_packets moved by %d during the fault", v.TxPacketsDuringFault)
	}
	if v.BQLInflightMax > 0 {
		fmt.Fprintf(&b, "; up to %d bytes were in flight in the driver", v.BQLInflightMax)
	}
	if v.QdiscBacklogMax > 0 {
		fmt.Fprintf(&b, "; the qdisc held up to %d packets (%d bytes)", v.QdiscBacklogMax, v.QdiscBacklogBytesMax)
	}
	if v.TimeoutFired {
		fmt.Fprintf(&b, "; the tx watchdog fired %d ms after the fault (tx_timeout +%d, %d watchdog lines, %d tracepoint hits)",
			v.FirstTimeoutMS, v.TxTimeoutCount, v.WatchdogLines, v.TracepointHits)
	} else {
		b.WriteString("; the tx watchdog did not fire")
	}
	if v.HandlerLogged {
		fmt.Fprintf(&b, "; the driver logged %d tx-timeout lines", v.DriverLines)
	}
	if v.ResetSeen {
		fmt.Fprintf(&b, "; the driver reset the device (%d reset %s)", v.ResetLines, plural(v.ResetLines, "line", "lines"))
	}
	if v.LinkFlap {
		if v.LinkDownMS > 0 {
			fmt.Fprintf(&b, "; the link went down for %d ms and came back up", v.LinkDownMS)
		} else {
			b.WriteString("; the link went down and came back up (between two samples)")
		}
	}
	if v.Recovered {
		fmt.Fprintf(&b, "; recovered %d ms after the fault was removed", v.RecoverMS)
	} else {
		b.WriteString("; no recovery seen")
	}
	if v.Splat {
		fmt.Fprintf(&b, "; %d kernel splats", v.SplatCount)
	}
	if v.CleanupOK {
		b.WriteString("; cleanup ok")
	} else {
		b.WriteString("; cleanup not confirmed")
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
