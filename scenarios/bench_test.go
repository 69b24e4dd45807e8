package scenarios

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"txtimeout/harness"
	"txtimeout/scenario"
	"txtimeout/traffic"
)

// benchPktgenPackets is one pktgen run's packet count over all threads:
// about 5 s at the ~20k pps that pktgen reaches under TCG.
const benchPktgenPackets = 100_000

// benchPktgenOrder is the order of BenchPktgen's runs: ABBA BAAB.
var benchPktgenOrder = []string{"go", "shell", "shell", "go", "shell", "go", "go", "shell"}

// TestBenchPktgen compares pktgen driven by the Go driver
// (traffic.RunPktgen, which reads every write's Result line back) with the
// seed's shell pattern (`echo CMD > /proc/net/pktgen/FILE`, one plain write
// per command, no check), with the same parameters in the same boot. It runs
// each four times in the order Go, shell, shell, Go, shell, Go, Go, shell,
// so that a drift of the emulated CPU's speed (the host is shared) weighs on
// both alike, and reports the mean packets/s that pktgen itself measured and
// the mean wall time of a run (configuration, run and cleanup) as
// measurements: pktgen_go_pps, pktgen_shell_pps, pktgen_ratio_vs_shell,
// pktgen_go_wall_ms, pktgen_shell_wall_ms.
//
// It is a benchmark, not a test: it is opt-in (TXTIMEOUT_BENCH=1, which
// `make bench` sets) and asserts no speed; it fails only when a run fails.
func TestBenchPktgen(t *testing.T) {
	if os.Getenv("TXTIMEOUT_BENCH") != "1" {
		t.Skip("skipping: a benchmark of pktgen against the seed's shell pattern; `make bench` runs it (or set TXTIMEOUT_BENCH=1)")
	}
	cfg, direct := scenario.Setup(t)
	if !direct {
		return
	}
	harness.Need(t, scenario.Preflight(cfg), harness.CheckRoot, harness.CheckIface, harness.CheckPktgen)
	dst, mac := scenario.Peer(cfg)
	if dst == nil || mac == nil {
		t.Skip("skipping: BenchPktgen needs the partner's IP and MAC (-peer-ip, -peer-mac) so that its packets are addressed to it")
	}
	threads := runtime.NumCPU()
	pc := traffic.SeedConfig(cfg.Iface, threads, traffic.SeedOptions{
		Packets: benchPktgenPackets, DstMin: dst, DstMax: dst, DstMAC: mac,
	})
	t.Logf("pktgen: the seed's configuration on %d thread(s), %d packets per run", threads, benchPktgenPackets)

	type run struct {
		pps  float64
		wall time.Duration
	}
	var goRuns, shellRuns []run
	s := harness.ScenarioReport{Result: harness.Pass, Verdict: func() harness.Verdict { v := harness.Unmeasured(); v.CleanupOK = true; return v }()}
	for i, driver := range benchPktgenOrder {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		start := time.Now()
		var res traffic.PktgenResult
		var err error
		if driver == "go" {
			res, err = traffic.RunPktgen(ctx, pc)
		} else {
			res, err = shellPktgen(pc)
		}
		wall := time.Since(start)
		cancel()
		if err == nil && (res.Sent == 0 || res.PPS <= 0) {
			err = errors.New("pktgen sent nothing")
		}
		if err != nil {
			s.Result, s.Reason = harness.Fail, fmt.Sprintf("run %d (%s): %v", i+1, driver, err)
			break
		}
		t.Logf("bench: run=%d driver=%s sent=%d pps=%.0f mbps=%.1f errors=%d wall_ms=%d", i+1, driver, res.Sent, res.PPS, res.Mbps, res.Errors, wall.Milliseconds())
		if driver == "go" {
			goRuns = append(goRuns, run{res.PPS, wall})
		} else {
			shellRuns = append(shellRuns, run{res.PPS, wall})
		}
	}
	mean := func(rs []run) (pps, wallMS float64) {
		for _, r := range rs {
			pps += r.pps / float64(len(rs))
			wallMS += float64(r.wall.Milliseconds()) / float64(len(rs))
		}
		return pps, wallMS
	}
	spread := func(rs []run) string {
		var ps []string
		for _, r := range rs {
			ps = append(ps, fmt.Sprintf("%.0f", r.pps))
		}
		return strings.Join(ps, "/")
	}
	if s.Result == harness.Pass {
		goPPS, goWall := mean(goRuns)
		shPPS, shWall := mean(shellRuns)
		s.Measurements = []harness.Measurement{
			{Name: "pktgen_go_pps", Value: round(goPPS), Units: "pps"},
			{Name: "pktgen_shell_pps", Value: round(shPPS), Units: "pps"},
			{Name: "pktgen_ratio_vs_shell", Value: float64(int64(goPPS/shPPS*1000+0.5)) / 1000, Units: "ratio"},
			{Name: "pktgen_go_wall_ms", Value: round(goWall), Units: "ms"},
			{Name: "pktgen_shell_wall_ms", Value: round(shWall), Units: "ms"},
		}
		s.Reason = fmt.Sprintf("%d packets per run on %d thread(s): Go driver %.0f pps (runs: %s), shell pattern %.0f pps (runs: %s)",
			benchPktgenPackets, threads, goPPS, spread(goRuns), shPPS, spread(shellRuns))
	}
	harness.Finish(t, scenario.RunReport(), s)
}

// shellPktgen runs c the way the seed's script does: `pgset "CMD"` is
// `echo CMD > $PGDEV`, which opens the file, writes the command and a
// newline, and closes it, and nobody reads the Result line back. A failed
// write is printed by the shell and ignored; so it is here. Like the
// script, it reads the device files after "start" returns, then removes the
// devices. The devices' counts bound the run ("start" blocks until they are
// reached), and a deadline of 2 minutes bounds it too.
func shellPktgen(c traffic.PktgenConfig) (traffic.PktgenResult, error) {
	const root = "/proc/net/pktgen"
	pgset := func(file, cmd string) {
		f, err := os.OpenFile(filepath.Join(root, file), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return
		}
		f.Write([]byte(cmd + "\n"))
		f.Close()
	}
	var res traffic.PktgenResult
	threads := map[int]bool{}
	defer func() {
		for t := range threads {
			pgset(fmt.Sprintf("kpktgend_%d", t), "rem_device_all")
		}
		pgset("pgctrl", "reset")
	}()
	for _, d := range c.Devices {
		th := fmt.Sprintf("kpktgend_%d", d.Thread)
		if !threads[d.Thread] {
			pgset(th, "rem_device_all")
			threads[d.Thread] = true
		}
		dev := fmt.Sprintf("%s@%d", d.Iface, d.Thread)
		pgset(th, "add_device "+dev)
		cmds, err := seedCommands(d)
		if err != nil {
			return res, err
		}
		for _, cmd := range cmds {
			pgset(dev, cmd)
		}
	}
	// The script's start has no bound but the counts; a stalled device
	// would block it for ever, so stop it after a generous deadline.
	started := make(chan struct{})
	go func() { pgset("pgctrl", "start"); close(started) }()
	select {
	case <-started:
	case <-time.After(2 * time.Minute):
		pgset("pgctrl", "stop")
		<-started
		return res, errors.New("shell pattern: start did not return within 2m (stopped)")
	}
	var errs []error
	for _, d := range c.Devices {
		dev := fmt.Sprintf("%s@%d", d.Iface, d.Thread)
		b, err := os.ReadFile(filepath.Join(root, dev))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tr, err := traffic.ParsePktgenResult(string(b))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", dev, err))
			continue
		}
		tr.Thread, tr.Iface = d.Thread, d.Iface
		res.Threads = append(res.Threads, tr)
		res.Sent += tr.Sent
		res.Errors += tr.Errors
		res.PPS += tr.PPS
		res.Mbps += tr.Mbps
	}
	return res, errors.Join(errs...)
}

// seedCommands lists a device's commands in the seed script's order (the
// order traffic.RunPktgen writes them in too): count, clone_skb, frags,
// pkt_size, ratep, burst, dst, dst_mac, the flags, dst_min, dst_max, flows,
// flowlen. It covers the fields traffic.SeedConfig sets and refuses any
// other, so that both drivers are given the same parameters.
func seedCommands(d traffic.PktgenDevice) ([]string, error) {
	if d.Delay != 0 || d.RateMbps != 0 || d.SrcMin != nil || d.SrcMax != nil || d.XmitMode != "" ||
		d.UDPSrcMin != 0 || d.UDPSrcMax != 0 || d.UDPDstMin != 0 || d.UDPDstMax != 0 ||
		d.QueueMapMin != 0 || d.QueueMapMax != 0 || d.Config {
		return nil, fmt.Errorf("shell pattern: %s@%d sets a parameter the seed's script does not", d.Iface, d.Thread)
	}
	cmds := []string{fmt.Sprintf("count %d", d.Count)}
	add := func(ok bool, format string, a ...any) {
		if ok {
			cmds = append(cmds, fmt.Sprintf(format, a...))
		}
	}
	add(d.CloneSKB > 0, "clone_skb %d", d.CloneSKB)
	add(d.Frags > 0, "frags %d", d.Frags)
	add(d.PktSize > 0, "pkt_size %d", d.PktSize)
	add(d.RateP > 0, "ratep %d", d.RateP)
	add(d.Burst > 0, "burst %d", d.Burst)
	add(d.Dst != nil, "dst %s", d.Dst.To4())
	add(d.DstMAC != nil, "dst_mac %s", d.DstMAC)
	for _, f := range d.Flags {
		add(true, "flag %s", f)
	}
	add(d.DstMin != nil, "dst_min %s", d.DstMin.To4())
	add(d.DstMax != nil, "dst_max %s", d.DstMax.To4())
	add(d.Flows > 0, "flows %d", d.Flows)
	add(d.FlowLen > 0, "flowlen %d", d.FlowLen)
	return cmds, nil
}

// TestSeedCommands checks the shell pattern's command list for the seed's
// configuration: the parameters traffic.RunPktgen is given, in the seed
// script's order.
func TestSeedCommands(t *testing.T) {
	dst, mac := scenario.Peer(harness.Config{PeerIP: "198.18.0.1", PeerMAC: "02:74:78:00:00:01"})
	pc := traffic.SeedConfig("eth0", 2, traffic.SeedOptions{Packets: 1000, DstMin: dst, DstMax: dst, DstMAC: mac})
	got, err := seedCommands(pc.Devices[1])
	if err != nil {
		t.Fatal(err)
	}
	want := "count 500|clone_skb 10|frags 10|pkt_size 9014|ratep 500000|burst 2|dst 198.18.0.1|dst_mac 02:74:78:00:00:01|" +
		"flag QUEUE_MAP_CPU|flag IPDST_RND|dst_min 198.18.0.1|dst_max 198.18.0.1|flows 1024|flowlen 8"
	if g := strings.Join(got, "|"); g != want {
		t.Errorf("seedCommands:\n got %s\nwant %s", g, want)
	}
	d := pc.Devices[0]
	d.XmitMode = "queue_xmit"
	if _, err := seedCommands(d); err == nil {
		t.Error("seedCommands accepted a parameter the seed's script does not set")
	}
}
