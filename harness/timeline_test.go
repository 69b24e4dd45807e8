package harness

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"txtimeout/kmsg"
)

func TestWaitForReturnsAtTheEvent(t *testing.T) {
	tl := NewTimeline()
	// A generous deadline: the wait must end at the event, long before.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	release := make(chan struct{})
	go func() {
		<-release
		tl.AddSample(Sample{TxPackets: 1})
		tl.AddEvent(SourceKmsg, kmsg.Event{Kind: kmsg.KindWatchdog, Iface: "eth0"})
	}()
	var calls int
	err := tl.WaitFor(ctx, func(tl *Timeline) bool {
		calls++
		if calls == 1 {
			close(release) // the event comes only after the first look
		}
		for _, e := range tl.Events() {
			if e.Kind == kmsg.KindWatchdog {
				return true
			}
		}
		return false
	})
	mustNoErr(t, err)
	if ctx.Err() != nil {
		t.Fatal("WaitFor returned at the deadline, not at the event")
	}
	if calls < 2 {
		t.Errorf("predicate ran %d times, want it re-run after the change", calls)
	}
}

func TestWaitForReturnsAtTheDeadline(t *testing.T) {
	tl := NewTimeline()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := tl.WaitFor(ctx, func(tl *Timeline) bool { return tl.HasMark(MarkFaultRemoved) })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor = %v, want the deadline", err)
	}
}

func TestWaitForTrueAtOnce(t *testing.T) {
	tl := NewTimeline()
	tl.Mark(MarkFaultInjected)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // even a dead context: a true predicate wins
	mustNoErr(t, tl.WaitFor(ctx, func(tl *Timeline) bool { return tl.HasMark(MarkFaultInjected) }))
}

func TestTimelineConcurrentUse(t *testing.T) {
	tl := NewTimeline()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				tl.AddOffered(1)
				tl.AddSample(Sample{})
				tl.Mark("m")
				tl.AddEvent(SourceTracepoint, kmsg.Event{Kind: kmsg.KindWatchdog})
				_ = tl.Snapshot()
			}
		}()
	}
	wg.Wait()
	s := tl.Snapshot()
	wantEq(t, len(s.Samples), 800, "samples")
	wantEq(t, len(s.Marks), 800, "marks")
	wantEq(t, len(s.Events), 800, "events")
	last, _ := tl.LastSample()
	wantEq(t, last.Offered, uint64(800), "offered total in the last sample")
	for i := 1; i < len(s.Samples); i++ {
		if s.Samples[i].Offered < s.Samples[i-1].Offered {
			t.Fatalf("offered went backwards at sample %d", i)
		}
	}
}

func TestTimelineTimes(t *testing.T) {
	now := t0
	tl := newTimeline(func() time.Time { return now })
	now = at(1500)
	tl.Mark(MarkFaultInjected)
	now = at(2000)
	tl.AddSample(Sample{TxPackets: 3})
	tl.AddEvent(SourceKmsg, kmsg.Event{Kind: kmsg.KindDriver})
	tl.MarkNote(MarkCleanupFailed, "qdisc still there")
	want := Snapshot{
		Start:   t0,
		Marks:   []TimelineMark{{Name: MarkFaultInjected, Time: at(1500), SinceMS: 1500}, {Name: MarkCleanupFailed, Time: at(2000), SinceMS: 2000, Note: "qdisc still there"}},
		Samples: []Sample{{Time: at(2000), SinceMS: 2000, TxPackets: 3}},
		Events:  []Event{{Time: at(2000), SinceMS: 2000, Source: SourceKmsg, Event: kmsg.Event{Kind: kmsg.KindDriver}}},
	}
	if d := cmp.Diff(want, tl.Snapshot()); d != "" {
		t.Errorf("snapshot (-want +got):\n%s", d)
	}
	wantEq(t, len(tl.KmsgEvents()), 1, "kmsg events")
}

func TestParseXmitTimeout(t *testing.T) {
	for _, tc := range []struct {
		line string
		want kmsg.Event
		err  string
	}{
		{
			line: "          <idle>-0       [000] ..s1.   123.456789: net_dev_xmit_timeout: dev=eth0 driver=virtio_net queue=0\n",
			want: kmsg.Event{Kind: kmsg.KindWatchdog, Iface: "eth0", Driver: "virtio_net", Queue: 0, TSUsec: 123456789,
				Text: "<idle>-0       [000] ..s1.   123.456789: net_dev_xmit_timeout: dev=eth0 driver=virtio_net queue=0"},
		},
		{
			// Older kernels print four flag characters and no CPU padding.
			line: " ksoftirqd/1-18 [001] d.s. 5.000001: net_dev_xmit_timeout: dev=enp3s0 driver=e1000e queue=3",
			want: kmsg.Event{Kind: kmsg.KindWatchdog, Iface: "enp3s0", Driver: "e1000e", Queue: 3, TSUsec: 5000001,
				Text: "ksoftirqd/1-18 [001] d.s. 5.000001: net_dev_xmit_timeout: dev=enp3s0 driver=e1000e queue=3"},
		},
		{line: "  <idle>-0 [000] ..s1. 1.000000: net_dev_xmit: dev=eth0 skbaddr=0 len=60 rc=0", err: "not a net_dev_xmit_timeout line"},
		{line: "  <idle>-0 [000] ..s1. 1.000000: net_dev_xmit_timeout: driver=x queue=0", err: "missing"},
		{line: "  <idle>-0 [000] ..s1. 1.000000: net_dev_xmit_timeout: dev=eth0 driver=x queue=-4", err: "bad queue"},
		{line: "", err: "not a net_dev_xmit_timeout line"},
	} {
		got, err := parseXmitTimeout(tc.line)
		if tc.err != "" {
			wantErrContains(t, err, tc.err)
			continue
		}
		mustNoErr(t, err)
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("parse %q (-want +got):\n%s", tc.line, d)
		}
	}
}

// FuzzParseXmitTimeout checks that no trace line makes the parser panic and
// that an accepted line always names an interface.
func FuzzParseXmitTimeout(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "trace_pipe.txt"))
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line string) {
		ev, err := parseXmitTimeout(line)
		if err != nil {
			return
		}
		if ev.Iface == "" || ev.Kind != kmsg.KindWatchdog || ev.Queue < 0 {
			t.Fatalf("accepted %q as %+v", line, ev)
		}
	})
}
