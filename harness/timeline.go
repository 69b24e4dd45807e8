package harness

import (
	"context"
	"sync"
	"time"

	"txtimeout/kmsg"
)

// SampleInterval is how often the observers read the counters.
const SampleInterval = 150 * time.Millisecond

// Mark names a scenario step on the timeline. The verdict reads these names.
const (
	MarkFaultInjected = "fault_injected" // the stall, netem qdisc or PAUSE flood is in place
	MarkFaultRemoved  = "fault_removed"  // the fault was released
	MarkFloodStart    = "flood_start"    // the traffic generator started offering packets
	MarkFloodStop     = "flood_stop"     // the traffic generator stopped
	MarkEchoReply     = "echo_reply"     // an echo reply came back (scenarios mark at least the first after fault_removed)
	MarkCleanupOK     = "cleanup_ok"     // the scenario checked that the state it changed was restored
	MarkCleanupFailed = "cleanup_failed" // restoring the state failed (Note says what)
	MarkKmsgGap       = "kmsg_gap"       // kernel log records were lost (Note says how many)
	MarkObserverError = "observer_error" // an observer stopped (Note says why)
	// MarkDeviceRecreated: the DUT's netdev was removed and created again
	// (a driver rebind, a module reload); the counters continue across it.
	MarkDeviceRecreated = "device_recreated"
)

// Event sources.
const (
	SourceKmsg       = "kmsg"       // a kmsg.Matcher event from /dev/kmsg
	SourceTracepoint = "tracepoint" // a net:net_dev_xmit_timeout hit (Kind is watchdog)
)

// TimelineMark is a named moment of a scenario.
type TimelineMark struct {
	Name    string    `json:"name"`
	Time    time.Time `json:"time"`
	SinceMS int64     `json:"since_ms"`
	Note    string    `json:"note,omitempty"`
}

// Event is a kernel event on the timeline: a kmsg event, or a tracepoint
// hit recorded as a watchdog event with Source "tracepoint". Time is when
// the observer saw it.
type Event struct {
	Time    time.Time `json:"time"`
	SinceMS int64     `json:"since_ms"`
	Source  string    `json:"source"`
	kmsg.Event
}

// Sample is one reading of the DUT's counters. Counters are cumulative as
// read from the kernel; the verdict works on their differences.
type Sample struct {
	Time    time.Time `json:"time"`
	SinceMS int64     `json:"since_ms"`

	// /sys/class/net/IFACE/statistics.
	TxPackets uint64 `json:"tx_packets"`
	TxBytes   uint64 `json:"tx_bytes"`
	TxDropped uint64 `json:"tx_dropped"`
	TxErrors  uint64 `json:"tx_errors"`
	RxPackets uint64 `json:"rx_packets"`
	RxBytes   uint64 `json:"rx_bytes"`
	RxDropped uint64 `json:"rx_dropped"`

	// TxTimeout is the sum of /sys/class/net/IFACE/queues/tx-N/tx_timeout;
	// TxTimeoutQueues holds them per queue.
	TxTimeout       uint64   `json:"tx_timeout"`
	TxTimeoutQueues []uint64 `json:"tx_timeout_queues,omitempty"`
	// BQLInflight is the sum of queues/tx-N/byte_queue_limits/inflight:
	// bytes handed to the device and not completed yet. It stays 0 for
	// drivers without byte queue limits.
	BQLInflight uint64 `json:"bql_inflight_bytes"`

	// Carrier is /sys/class/net/IFACE/carrier, true for carrier on; an
	// interface that is down reads as no carrier. HaveCarrier says it was
	// read (timelines from before these fields have neither).
	// CarrierChanges is carrier_changes (3.15+; 0 where absent), which
	// the kernel counts on every change, so it shows a flap that came and
	// went between two samples.
	HaveCarrier    bool   `json:"have_carrier,omitempty"`
	Carrier        bool   `json:"carrier,omitempty"`
	CarrierChanges uint64 `json:"carrier_changes,omitempty"`

	// Root qdisc statistics (netlink); HaveQdisc is false when they could
	// not be read.
	HaveQdisc         bool   `json:"have_qdisc"`
	QdiscKind         string `json:"qdisc_kind,omitempty"`
	QdiscBacklog      uint32 `json:"qdisc_backlog"`       // packets
	QdiscBacklogBytes uint32 `json:"qdisc_backlog_bytes"` // bytes
	QdiscDrops        uint32 `json:"qdisc_drops"`
	QdiscRequeues     uint32 `json:"qdisc_requeues"`

	// Offered is the total number of packets the scenario's traffic
	// generators tried to send so far (Timeline.AddOffered), send errors
	// included.
	Offered uint64 `json:"offered"`
}

// Snapshot is a copy of a timeline: what report.json stores and what the
// verdict is derived from.
type Snapshot struct {
	Start   time.Time      `json:"start"`
	Marks   []TimelineMark `json:"marks"`
	Samples []Sample       `json:"samples"`
	Events  []Event        `json:"events"`
}

// Timeline collects marks, samples and events with timestamps. It is safe
// for concurrent use; every addition wakes the waiters of WaitFor.
type Timeline struct {
	now func() time.Time // test seam

	mu      sync.Mutex
	start   time.Time
	marks   []TimelineMark
	samples []Sample
	events  []Event
	offered uint64
	changed chan struct{} // closed and replaced on every change
}

// NewTimeline returns an empty timeline that starts now.
func NewTimeline() *Timeline { return newTimeline(time.Now) }

func newTimeline(now func() time.Time) *Timeline {
	return &Timeline{now: now, start: now(), changed: make(chan struct{})}
}

// Start is the moment the timeline began.
func (tl *Timeline) Start() time.Time {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.start
}

// notifyLocked wakes every WaitFor. tl.mu must be held.
func (tl *Timeline) notifyLocked() {
	close(tl.changed)
	tl.changed = make(chan struct{})
}

func (tl *Timeline) since(t time.Time) int64 { return t.Sub(tl.start).Milliseconds() }

// Mark records a named moment, such as MarkFaultInjected.
func (tl *Timeline) Mark(name string) { tl.MarkNote(name, "") }

// MarkNote records a named moment with a note (why a cleanup failed, how
// many records a gap lost, ...).
func (tl *Timeline) MarkNote(name, note string) {
	now := tl.now()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.marks = append(tl.marks, TimelineMark{Name: name, Time: now, SinceMS: tl.since(now), Note: note})
	tl.notifyLocked()
}

// AddOffered adds n packets to the count the traffic generators offered
// (attempted sends, failed ones included). The next sample records the
// total; the verdict's stalled field needs the flood to keep offering.
func (tl *Timeline) AddOffered(n uint64) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.offered += n
}

// AddSample records a sample; its Time is set now when zero, and Offered
// is filled in from AddOffered.
func (tl *Timeline) AddSample(s Sample) {
	if s.Time.IsZero() {
		s.Time = tl.now()
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	s.SinceMS = tl.since(s.Time)
	s.Offered = tl.offered
	tl.samples = append(tl.samples, s)
	tl.notifyLocked()
}

// AddEvent records a kernel event seen now from source (SourceKmsg or
// SourceTracepoint).
func (tl *Timeline) AddEvent(source string, ev kmsg.Event) {
	now := tl.now()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.events = append(tl.events, Event{Time: now, SinceMS: tl.since(now), Source: source, Event: ev})
	tl.notifyLocked()
}

// Marks returns a copy of the marks in order.
func (tl *Timeline) Marks() []TimelineMark {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]TimelineMark(nil), tl.marks...)
}

// Samples returns a copy of the samples in order.
func (tl *Timeline) Samples() []Sample {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]Sample(nil), tl.samples...)
}

// Events returns a copy of the events in order.
func (tl *Timeline) Events() []Event {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]Event(nil), tl.events...)
}

// KmsgEvents returns the kernel-log events (not the tracepoint hits), as
// a ScenarioReport's Events field wants them.
func (tl *Timeline) KmsgEvents() []kmsg.Event {
	return tl.Snapshot().KmsgEvents()
}

// HasMark reports whether a mark with this name exists.
func (tl *Timeline) HasMark(name string) bool {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, m := range tl.marks {
		if m.Name == name {
			return true
		}
	}
	return false
}

// LastSample returns the newest sample.
func (tl *Timeline) LastSample() (Sample, bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if len(tl.samples) == 0 {
		return Sample{}, false
	}
	return tl.samples[len(tl.samples)-1], true
}

// Snapshot returns a deep enough copy of the timeline to be read while the
// observers keep adding to it.
func (tl *Timeline) Snapshot() Snapshot {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return Snapshot{
		Start:   tl.start,
		Marks:   append([]TimelineMark{}, tl.marks...),
		Samples: append([]Sample{}, tl.samples...),
		Events:  append([]Event{}, tl.events...),
	}
}

// Verdict derives the verdict from the timeline as it is now.
func (tl *Timeline) Verdict(o VerdictOptions) Verdict { return tl.Snapshot().Verdict(o) }

// WaitFor blocks until pred returns true or ctx ends, and then returns nil
// or ctx's error. pred runs at once and again after every new mark, sample
// or event; it must not block. There is no polling interval: a wait lasts
// exactly until the evidence arrives or the deadline passes.
func (tl *Timeline) WaitFor(ctx context.Context, pred func(*Timeline) bool) error {
	for {
		tl.mu.Lock()
		ch := tl.changed
		tl.mu.Unlock()
		// ch is taken before pred runs, so a change made while pred runs
		// is never missed.
		if pred(tl) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if pred(tl) {
				return nil
			}
			return ctx.Err()
		}
	}
}

// KmsgEvents returns the kernel-log events of the snapshot.
func (s Snapshot) KmsgEvents() []kmsg.Event {
	out := []kmsg.Event{}
	for _, e := range s.Events {
		if e.Source == SourceKmsg {
			out = append(out, e.Event)
		}
	}
	return out
}

// FindMark returns the first mark with this name.
func (s Snapshot) FindMark(name string) (TimelineMark, bool) {
	for _, m := range s.Marks {
		if m.Name == name {
			return m, true
		}
	}
	return TimelineMark{}, false
}
