package scenarios

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"txtimeout/harness"
	"txtimeout/internal/pktgenproc"
	"txtimeout/scenario"
	"txtimeout/traffic"
)

// pktgenPackets is the Throughput scenario's total packet count, spread
// over the threads: the seed sends 1,000,000; this is scaled down so the
// run stays short on an emulated CPU.
const pktgenPackets = 200_000

// TestPktgen runs the pktgen scenarios.
func TestPktgen(t *testing.T) {
	cfg, direct := scenario.Setup(t)
	if !direct {
		return
	}
	t.Run("Throughput", func(t *testing.T) { pktgenThroughput(t, cfg) })
}

// pktgenThroughput runs the seed's per-CPU pktgen configuration, bounded
// by count, and reports packets/s and Mb/s per thread and in total.
func pktgenThroughput(t *testing.T, cfg harness.Config) {
	scenario.Need(t, cfg, harness.CheckRoot, harness.CheckIface, harness.CheckPktgen)
	dst, mac := scenario.Peer(cfg)
	if dst == nil || mac == nil {
		scenario.Skip(t, "skipping: Pktgen/Throughput needs the partner's IP and MAC (-peer-ip, -peer-mac) so that its packets are addressed to it")
	}
	threads := runtime.NumCPU()
	pc := traffic.SeedConfig(cfg.Iface, threads, traffic.SeedOptions{
		Packets: pktgenPackets, DstMin: dst, DstMax: dst, DstMAC: mac,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Logf("pktgen: the seed's configuration on %d thread(s), %d packets in all", threads, pktgenPackets)
	start := time.Now()
	res, err := traffic.RunPktgen(ctx, pc)
	elapsed := time.Since(start)

	left, _ := pktgenproc.Devices(pktgenproc.Dir)
	s := harness.ScenarioReport{Result: harness.Pass, Verdict: func() harness.Verdict { v := harness.Unmeasured(); v.CleanupOK = len(left) == 0; return v }()}
	for _, th := range res.Threads {
		t.Logf("thread %d (%s): %d packets, %.0f pps, %.1f Mb/s, %d errors", th.Thread, th.Iface, th.Sent, th.PPS, th.Mbps, th.Errors)
		s.Measurements = append(s.Measurements,
			harness.Measurement{Name: fmt.Sprintf("thread%d_pps", th.Thread), Value: round(th.PPS), Units: "pps"},
			harness.Measurement{Name: fmt.Sprintf("thread%d_mbps", th.Thread), Value: round(th.Mbps), Units: "Mb/s"})
	}
	s.Measurements = append([]harness.Measurement{
		{Name: "pps", Value: round(res.PPS), Units: "pps"},
		{Name: "mbps", Value: round(res.Mbps), Units: "Mb/s"},
		{Name: "sent", Value: float64(res.Sent), Units: "packets"},
		{Name: "errors", Value: float64(res.Errors), Units: "packets"},
	}, s.Measurements...)
	switch {
	case err != nil:
		s.Result, s.Reason = harness.Fail, fmt.Sprintf("pktgen failed: %v", err)
	case len(left) > 0:
		s.Result, s.Reason = harness.Fail, fmt.Sprintf("pktgen devices left behind: %v", left)
	case res.Errors > 0:
		s.Result, s.Reason = harness.Fail, fmt.Sprintf("pktgen counted %d transmit errors", res.Errors)
	case res.Sent == 0 || res.PPS <= 0:
		s.Result, s.Reason = harness.Fail, "pktgen sent nothing"
	case ctx.Err() != nil:
		s.Result, s.Reason = harness.Fail, fmt.Sprintf("pktgen did not finish its %d packets within %v", pktgenPackets, elapsed.Round(time.Second))
	default:
		s.Reason = fmt.Sprintf("%d packets in %v: %.0f pps, %.1f Mb/s in total over %d thread(s)", res.Sent, elapsed.Round(time.Millisecond), res.PPS, res.Mbps, threads)
	}
	harness.Finish(t, scenario.RunReport(), s)
}

// round keeps one decimal of a measurement.
func round(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
