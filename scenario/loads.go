package scenario

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"txtimeout/harness"
	"txtimeout/traffic"
)

// ICMP floods c.Dst with echo requests as c says (traffic.Flood), counting
// every attempt (failed sends included) as offered.
func ICMP(c traffic.FloodConfig) Load {
	return func(ctx context.Context, tl *harness.Timeline) (LoadReport, error) {
		var mu sync.Mutex
		var counted int64
		offer := func(st traffic.FloodStats) {
			total := st.Sent
			for _, n := range st.Errors {
				total += n
			}
			mu.Lock()
			defer mu.Unlock()
			if total > counted {
				tl.AddOffered(uint64(total - counted))
				counted = total
			}
		}
		c.Progress = offer
		c.Linger = -1
		st, err := traffic.Flood(ctx, c)
		offer(st)
		errs := make([]string, 0, len(st.Errors))
		for name, n := range st.Errors {
			errs = append(errs, fmt.Sprintf("%s=%d", name, n))
		}
		sort.Strings(errs)
		return LoadReport{
			Summary: fmt.Sprintf("%d echo requests of %d bytes from %d sender(s) in %v (%.0f/s), %d replies, send errors: %s",
				st.Sent, c.Size, c.Senders, st.Elapsed.Round(time.Millisecond), st.PPS, st.Received, orNone(errs)),
			Measurements: []harness.Measurement{
				{Name: "flood_pps", Value: round(st.PPS), Units: "pps"},
				{Name: "flood_sent", Value: float64(st.Sent), Units: "packets"},
			},
		}, err
	}
}

// Pktgen runs pktgen on one thread from iface (TX queue queue, or the
// kernel's choice when queue is negative) towards dst/dstMAC until ctx
// ends. pktgen calls the driver directly, bypassing the qdisc, so what it
// offers is not counted; the verdict relies on the flood marks instead.
func Pktgen(iface string, dst net.IP, dstMAC net.HardwareAddr, queue int) Load {
	return func(ctx context.Context, tl *harness.Timeline) (LoadReport, error) {
		d := traffic.PktgenDevice{
			Thread:  0,
			Iface:   iface,
			Count:   50_000_000, // a count bound as well as ctx's deadline
			PktSize: 1400,
			Dst:     dst,
			DstMAC:  dstMAC,
		}
		on := ""
		if queue >= 0 {
			d.QueueMapMin, d.QueueMapMax = queue, queue
			on = fmt.Sprintf(" on TX queue %d", queue)
		}
		res, err := traffic.RunPktgen(ctx, traffic.PktgenConfig{Devices: []traffic.PktgenDevice{d}})
		return LoadReport{
			Summary: fmt.Sprintf("pktgen%s sent %d packets (%.0f pps, %.1f Mb/s), %d errors", on, res.Sent, res.PPS, res.Mbps, res.Errors),
			Measurements: []harness.Measurement{
				{Name: "pktgen_pps", Value: round(res.PPS), Units: "pps"},
				{Name: "pktgen_sent", Value: float64(res.Sent), Units: "packets"},
			},
		}, err
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}

func round(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
