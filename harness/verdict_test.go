package harness

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"txtimeout/kmsg"
)

var t0 = time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)

func at(ms int64) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// synth builds synthetic timelines: a sample every 100 ms from 0 to 10 s.
type synth struct {
	s Snapshot
}

func (b *synth) mark(ms int64, name string) *synth {
	b.s.Marks = append(b.s.Marks, TimelineMark{Name: name, Time: at(ms), SinceMS: ms})
	return b
}

func (b *synth) event(ms int64, src string, kind kmsg.Kind, iface string) *synth {
	b.s.Events = append(b.s.Events, Event{Time: at(ms), SinceMS: ms, Source: src,
		Event: kmsg.Event{Kind: kind, Iface: iface, Queue: 0, Text: string(kind) + " line"}})
	return b
}

// kevent adds a kernel-log event.
func (b *synth) kevent(ms int64, ev kmsg.Event) *synth {
	b.s.Events = append(b.s.Events, Event{Time: at(ms), SinceMS: ms, Source: SourceKmsg, Event: ev})
	return b
}

// reset adds a driver reset line; link a link-state line.
func (b *synth) reset(ms int64, iface string) *synth {
	return b.kevent(ms, kmsg.Event{Kind: kmsg.KindDriver, Iface: iface, Driver: "e1000", Queue: -1, Reset: true,
		Text: "e1000 0000:00:02.0 " + iface + ": Reset adapter"})
}

func (b *synth) link(ms int64, iface string, up bool) *synth {
	text := "e1000: " + iface + " NIC Link is Down"
	if up {
		text = "e1000: " + iface + " NIC Link is Up 1000 Mbps Full Duplex, Flow Control: RX"
	}
	return b.kevent(ms, kmsg.Event{Kind: kmsg.KindLink, Iface: iface, Driver: "e1000", Queue: -1, LinkUp: up, Text: text})
}

// carrier sets the carrier in every sample: off from downMS to before
// upMS, carrier_changes counting the two changes.
func carrier(downMS, upMS int64) func(int64, *Sample) {
	return func(ms int64, s *Sample) {
		s.HaveCarrier, s.Carrier, s.CarrierChanges = true, true, 1
		switch {
		case ms >= upMS:
			s.CarrierChanges = 3
		case ms >= downMS:
			s.Carrier, s.CarrierChanges = false, 2
		}
	}
}

// samples fills samples from 0 to 10 s; f sets each one from its time.
func (b *synth) samples(f func(ms int64, s *Sample)) *synth {
	for ms := int64(0); ms <= 10000; ms += 100 {
		s := Sample{Time: at(ms), SinceMS: ms, HaveQdisc: true}
		f(ms, &s)
		b.s.Samples = append(b.s.Samples, s)
	}
	return b
}

// stallTimeline is a PartnerStall run: the fault from 1 s to 7 s, traffic
// offered all along, tx_packets frozen during the fault, echo reply at
// 7.3 s, cleanup at 9 s.
func stallTimeline() *synth {
	b := &synth{s: Snapshot{Start: t0}}
	b.mark(500, MarkFloodStart).mark(1000, MarkFaultInjected).mark(7000, MarkFaultRemoved).
		mark(7300, MarkEchoReply).mark(9000, MarkCleanupOK)
	return b.samples(func(ms int64, s *Sample) {
		s.Offered = uint64(ms / 10)
		switch {
		case ms <= 1000:
			s.TxPackets = uint64(ms / 10)
		case ms <= 7100:
			s.TxPackets = 100
			s.QdiscBacklog = uint32(ms-1000) / 10
			s.QdiscBacklogBytes = s.QdiscBacklog * 2090
		default:
			s.TxPackets = 100 + uint64(ms-7100)/10
		}
	})
}

// netemTimeline is the seed's method: netem holds packets in the qdisc but
// the driver keeps transmitting.
func netemTimeline() *synth {
	b := &synth{s: Snapshot{Start: t0}}
	b.mark(1000, MarkFaultInjected).mark(7000, MarkFaultRemoved).mark(7100, MarkEchoReply).mark(9000, MarkCleanupOK)
	return b.samples(func(ms int64, s *Sample) {
		s.Offered = uint64(ms / 100)
		s.TxPackets = uint64(ms / 100)
		if ms > 1000 && ms < 7000 {
			s.TxPackets = 10 + uint64(ms-1000)/1000 // netem releases after its delay
			if ms >= 1000+900 {
				s.TxPackets = 10 + uint64(ms-1900)/100
			}
			s.QdiscBacklog = 90
		}
	})
}

func TestVerdictTable(t *testing.T) {
	full := func() Verdict {
		return Verdict{Stalled: true, TimeoutFired: true, HandlerLogged: true, Recovered: true, Splat: false, CleanupOK: true,
			FirstTimeoutMS: 5200, TxTimeoutCount: 1, WatchdogLines: 1, TracepointHits: 1, DriverLines: 1, StallMS: 6000,
			TxPacketsDuringFault: 0, OfferedDuringFault: 600, QdiscBacklogMax: 600, QdiscBacklogBytesMax: 600 * 2090,
			RecoverMS: 300, Samples: 101}
	}
	// noSignal is full without any timeout signal or driver line.
	noSignal := func() Verdict {
		v := full()
		v.TimeoutFired, v.FirstTimeoutMS = false, -1
		v.WatchdogLines, v.TracepointHits, v.DriverLines, v.HandlerLogged, v.TxTimeoutCount = 0, 0, 0, false, 0
		return v
	}
	withCounter := func(fromMS int64) func(int64, *Sample) {
		return func(ms int64, s *Sample) {
			if ms >= fromMS {
				s.TxTimeout = 1
			}
		}
	}
	for _, tc := range []struct {
		name  string
		build func() *synth
		opts  VerdictOptions
		want  func() Verdict
	}{
		{
			name: "stall with every signal",
			build: func() *synth {
				b := stallTimeline()
				b.event(6200, SourceKmsg, kmsg.KindWatchdog, "eth0").event(6200, SourceKmsg, kmsg.KindDriver, "eth0").
					event(6200, SourceTracepoint, kmsg.KindWatchdog, "eth0")
				return b.mutate(withCounter(6300))
			},
			want: func() Verdict { v := full(); v.FirstTimeoutMS = 5200; return v },
		},
		{
			name:  "counter increase only",
			build: func() *synth { return stallTimeline().mutate(withCounter(6600)) },
			want: func() Verdict {
				v := full()
				v.WatchdogLines, v.TracepointHits, v.DriverLines, v.HandlerLogged = 0, 0, 0, false
				v.FirstTimeoutMS = 5600
				return v
			},
		},
		{
			name:  "tracepoint only",
			build: func() *synth { return stallTimeline().event(6550, SourceTracepoint, kmsg.KindWatchdog, "eth0") },
			want: func() Verdict {
				v := full()
				v.WatchdogLines, v.DriverLines, v.HandlerLogged, v.TxTimeoutCount = 0, 0, false, 0
				v.FirstTimeoutMS = 5550
				return v
			},
		},
		{
			name:  "watchdog line only",
			build: func() *synth { return stallTimeline().event(6560, SourceKmsg, kmsg.KindWatchdog, "") },
			want: func() Verdict {
				v := full()
				v.TracepointHits, v.DriverLines, v.HandlerLogged, v.TxTimeoutCount = 0, 0, false, 0
				v.FirstTimeoutMS = 5560
				return v
			},
		},
		{
			name:  "another interface's watchdog does not count",
			build: func() *synth { return stallTimeline().event(6560, SourceKmsg, kmsg.KindWatchdog, "eth1") },
			opts:  VerdictOptions{Iface: "eth0"},
			want:  noSignal,
		},
		{
			name:  "a watchdog before the fault does not count",
			build: func() *synth { return stallTimeline().event(900, SourceKmsg, kmsg.KindWatchdog, "eth0") },
			want:  noSignal,
		},
		{
			name: "not recovered: tx_packets never moves again",
			build: func() *synth {
				return stallTimeline().mutate(func(ms int64, s *Sample) {
					if ms > 7000 {
						s.TxPackets = 100
					}
				})
			},
			want: func() Verdict {
				v := noSignal()
				v.Recovered, v.RecoverMS = false, -1
				return v
			},
		},
		{
			name:  "not recovered: no echo reply",
			build: func() *synth { return stallTimeline().dropMark(MarkEchoReply) },
			want: func() Verdict {
				v := noSignal()
				v.Recovered, v.RecoverMS = false, -1
				return v
			},
		},
		{
			name:  "recovered without echo when the scenario sends none",
			build: func() *synth { return stallTimeline().dropMark(MarkEchoReply) },
			opts:  VerdictOptions{NoEcho: true},
			want: func() Verdict {
				v := noSignal()
				v.RecoverMS = 200 // the first sample with more tx_packets, at 7.2 s
				return v
			},
		},
		{
			name:  "not recovered: echo after the deadline",
			build: func() *synth { return stallTimeline().dropMark(MarkEchoReply).mark(9500, MarkEchoReply) },
			opts:  VerdictOptions{RecoverWithin: 2 * time.Second},
			want: func() Verdict {
				v := noSignal()
				v.Recovered, v.RecoverMS = false, -1
				return v
			},
		},
		{
			name: "not stalled: nothing was offered",
			build: func() *synth {
				return stallTimeline().mutate(func(ms int64, s *Sample) {
					s.Offered = 10
					s.QdiscBacklog, s.QdiscBacklogBytes = 0, 0
				})
			},
			want: func() Verdict {
				v := noSignal()
				v.Stalled, v.StallMS, v.OfferedDuringFault, v.QdiscBacklogMax, v.QdiscBacklogBytesMax = false, 0, 0, 0, 0
				return v
			},
		},
		{
			name: "stalled: a flood that does not count its sends, by its marks",
			build: func() *synth {
				return stallTimeline().mutate(func(ms int64, s *Sample) {
					s.Offered = 0
					s.QdiscBacklog, s.QdiscBacklogBytes = 0, 0
				})
			},
			want: func() Verdict {
				v := noSignal()
				v.OfferedDuringFault, v.QdiscBacklogMax, v.QdiscBacklogBytesMax = 0, 0, 0
				return v
			},
		},
		{
			name:  "not stalled: the still run is shorter than StallMin",
			build: stallTimeline,
			opts:  VerdictOptions{StallMin: 7 * time.Second},
			want: func() Verdict {
				v := noSignal()
				v.Stalled, v.StallMS = false, 0
				return v
			},
		},
		{
			name:  "splat anywhere",
			build: func() *synth { return stallTimeline().event(200, SourceKmsg, kmsg.KindSplat, "") },
			want: func() Verdict {
				v := noSignal()
				v.Splat, v.SplatCount = true, 1
				return v
			},
		},
		{
			name:  "cleanup failed",
			build: func() *synth { return stallTimeline().mark(9100, MarkCleanupFailed) },
			want: func() Verdict {
				v := noSignal()
				v.CleanupOK = false
				return v
			},
		},
		{
			name:  "cleanup not confirmed",
			build: func() *synth { return stallTimeline().dropMark(MarkCleanupOK) },
			want: func() Verdict {
				v := noSignal()
				v.CleanupOK = false
				return v
			},
		},
		{
			// A NAPI-starve run on e1000: the watchdog, the reset at once,
			// the link bouncing after the release.
			name: "reset and link flap in the kernel log",
			build: func() *synth {
				return stallTimeline().event(6200, SourceKmsg, kmsg.KindWatchdog, "eth0").reset(6210, "eth0").
					link(7150, "eth0", false).link(9150, "eth0", true)
			},
			want: func() Verdict {
				v := full()
				v.TracepointHits, v.TxTimeoutCount = 0, 0
				v.ResetSeen, v.ResetLines, v.LinkFlap, v.LinkDownMS = true, 1, true, 2000
				return v
			},
		},
		{
			name:  "link flap in the carrier samples",
			build: func() *synth { return stallTimeline().mutate(carrier(7200, 8100)) },
			want: func() Verdict {
				v := noSignal()
				v.LinkFlap, v.LinkDownMS = true, 900
				return v
			},
		},
		{
			name: "link flap between two samples: carrier_changes only",
			build: func() *synth {
				return stallTimeline().mutate(func(ms int64, s *Sample) {
					s.HaveCarrier, s.Carrier, s.CarrierChanges = true, true, 5
					if ms >= 7200 {
						s.CarrierChanges = 7
					}
				})
			},
			want: func() Verdict { v := noSignal(); v.LinkFlap = true; return v },
		},
		{
			name: "carrier_changes without carrier (an old kernel's sysfs read partly)",
			build: func() *synth {
				return stallTimeline().mutate(func(ms int64, s *Sample) {
					s.CarrierChanges = 5
					if ms >= 7200 {
						s.CarrierChanges = 7
					}
				})
			},
			want: func() Verdict { v := noSignal(); v.LinkFlap = true; return v },
		},
		{
			name:  "link down and not up again: no flap",
			build: func() *synth { return stallTimeline().mutate(carrier(7200, 99999)).link(7150, "eth0", false) },
			want:  noSignal,
		},
		{
			name:  "link up, then down in the log: no flap",
			build: func() *synth { return stallTimeline().link(7150, "eth0", true).link(8000, "eth0", false) },
			want:  noSignal,
		},
		{
			// A sample and a log line race: the log's down and the
			// samples' up do not make a flap together.
			name: "each source on its own",
			build: func() *synth {
				return stallTimeline().link(7150, "eth0", false).mutate(func(ms int64, s *Sample) {
					s.HaveCarrier, s.Carrier = true, true
				})
			},
			want: noSignal,
		},
		{
			name: "another interface's reset and link flap do not count",
			build: func() *synth {
				return stallTimeline().reset(6210, "eth1").link(7150, "eth1", false).link(9150, "eth1", true)
			},
			opts: VerdictOptions{Iface: "eth0"},
			want: noSignal,
		},
		{
			name: "a reset and a flap before the fault do not count",
			build: func() *synth {
				return stallTimeline().reset(300, "eth0").link(400, "eth0", false).link(600, "eth0", true).
					mutate(carrier(400, 600))
			},
			want: noSignal,
		},
		{
			name:  "netem: the queue never stops",
			build: netemTimeline,
			want: func() Verdict {
				return Verdict{Recovered: true, CleanupOK: true, FirstTimeoutMS: -1, TxPacketsDuringFault: 60,
					OfferedDuringFault: 60, QdiscBacklogMax: 90, RecoverMS: 100, Samples: 101}
			},
		},
		{
			name:  "empty timeline",
			build: func() *synth { return &synth{s: Snapshot{Start: t0}} },
			want:  func() Verdict { return Verdict{FirstTimeoutMS: -1, RecoverMS: -1} },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.build().s.Verdict(tc.opts)
			// The per-queue fields have a test of their own.
			perQueue := cmpopts.IgnoreFields(Verdict{}, "WatchdogQueues", "TxTimeoutByQueue")
			if d := cmp.Diff(tc.want(), got, perQueue); d != "" {
				t.Errorf("verdict (-want +got):\n%s", d)
			}
		})
	}
}

// A stall of queue 1 of a two-queue device: queue 1's counter moves, and
// the watchdog line and the tracepoint hit name queue 1 alone; events of
// another interface and before the fault do not count.
func TestVerdictPerQueue(t *testing.T) {
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	ev := func(ms int, src, iface string, q int) Event {
		return Event{Time: at(ms), Source: src, Event: kmsg.Event{Kind: kmsg.KindWatchdog, Iface: iface, Queue: q}}
	}
	s := Snapshot{Start: start,
		Marks: []TimelineMark{{Name: MarkFaultInjected, Time: at(1000)}, {Name: MarkFaultRemoved, Time: at(8000)}},
		Samples: []Sample{
			{Time: at(500), TxTimeoutQueues: []uint64{3, 0}, TxTimeout: 3},
			{Time: at(6000), TxTimeoutQueues: []uint64{3, 1}, TxTimeout: 4},
			{Time: at(7000), TxTimeoutQueues: []uint64{3, 2}, TxTimeout: 5},
		},
		Events: []Event{
			ev(200, SourceKmsg, "eth0", 0), // before the fault
			ev(5900, SourceKmsg, "eth0", 1),
			ev(5901, SourceTracepoint, "eth0", 1),
			ev(5950, SourceKmsg, "eth9", 3), // another interface
		},
	}
	v := s.Verdict(VerdictOptions{Iface: "eth0"})
	if d := cmp.Diff([]uint64{0, 2}, v.TxTimeoutByQueue); d != "" {
		t.Errorf("TxTimeoutByQueue (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]int{1}, v.WatchdogQueues); d != "" {
		t.Errorf("WatchdogQueues (-want +got):\n%s", d)
	}
}

func (b *synth) mutate(f func(ms int64, s *Sample)) *synth {
	for i := range b.s.Samples {
		f(b.s.Samples[i].SinceMS, &b.s.Samples[i])
	}
	return b
}

func (b *synth) dropMark(name string) *synth {
	var out []TimelineMark
	for _, m := range b.s.Marks {
		if m.Name != name {
			out = append(out, m)
		}
	}
	b.s.Marks = out
	return b
}

func TestVerdictSummaryPlainWords(t *testing.T) {
	v := netemTimeline().s.Verdict(VerdictOptions{})
	s := v.Summary()
	for _, want := range []string{"the driver queue never stopped", "tx_packets moved by 60", "the qdisc held up to 90 packets", "the tx watchdog did not fire", "recovered 100 ms"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary %q lacks %q", s, want)
		}
	}
	b := stallTimeline()
	b.event(6200, SourceKmsg, kmsg.KindWatchdog, "eth0")
	s = b.s.Verdict(VerdictOptions{}).Summary()
	for _, want := range []string{"the device stalled: tx_packets stood still for 6000 ms", "the tx watchdog fired 5200 ms after the fault"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary %q lacks %q", s, want)
		}
	}
}

func TestVerdictSummaryResetAndFlap(t *testing.T) {
	b := stallTimeline().event(6200, SourceKmsg, kmsg.KindWatchdog, "eth0").reset(6210, "eth0").
		link(7150, "eth0", false).link(9150, "eth0", true)
	s := b.s.Verdict(VerdictOptions{}).Summary()
	for _, want := range []string{"the driver reset the device (1 reset line)", "the link went down for 2000 ms and came back up"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary %q lacks %q", s, want)
		}
	}
	s = Verdict{LinkFlap: true}.Summary()
	wantContains(t, s, "the link went down and came back up (between two samples)")
	s = stallTimeline().s.Verdict(VerdictOptions{}).Summary()
	for _, not := range []string{"reset", "link"} {
		if strings.Contains(s, not) {
			t.Errorf("summary %q mentions %q without one", s, not)
		}
	}
}
