package harness_test

import (
	"context"
	"fmt"
	"time"

	"txtimeout/harness"
	"txtimeout/kmsg"
)

// A scenario marks what it does, waits on the timeline for evidence (never
// a fixed sleep) and derives its verdict from the timeline alone. Here the
// observers are stood in for by hand-made samples and a watchdog event.
func ExampleTimeline_WaitFor() {
	tl := harness.NewTimeline()
	tl.AddSample(harness.Sample{TxPackets: 100, TxTimeout: 0})
	tl.Mark(harness.MarkFaultInjected)

	go func() { // what the observers would report while the device is stalled
		tl.AddSample(harness.Sample{TxPackets: 100, TxTimeout: 1})
		tl.AddEvent(harness.SourceKmsg, kmsg.Event{Kind: kmsg.KindWatchdog, Iface: "eth0", Queue: 0})
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := tl.WaitFor(ctx, func(tl *harness.Timeline) bool {
		v := tl.Verdict(harness.VerdictOptions{Iface: "eth0"})
		return v.TimeoutFired && v.WatchdogLines > 0
	})
	v := tl.Verdict(harness.VerdictOptions{Iface: "eth0"})
	fmt.Println(err, v.TimeoutFired, v.TxTimeoutCount, v.WatchdogLines)
	// Output: <nil> true 1 1
}
