package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"txtimeout/harness"
	"txtimeout/rig"
)

// stepFlood runs BenchmarkFlood (./traffic): Flood against iputils
// `ping -f` on the same veth pair between two namespaces the benchmark
// creates, 1400 and 2048 bytes, 1 and N senders.
func (b *bench) stepFlood(ctx context.Context) error {
	const limit = "ping -f, same veth, same run"
	run := b.goTest(ctx, nil, func(l string) bool { return strings.Contains(l, "ns/op") || strings.HasPrefix(l, "--- FAIL") },
		fmt.Sprintf("-count=%d", b.o.floodRuns), "-run", "^$", "-bench", "^BenchmarkFlood$", "-benchtime", fmt.Sprintf("%dx", b.o.floodCount), "-timeout", "20m", "-json", "./traffic")
	res, failed, perr := parseBenchOutput(strings.NewReader(run.Output))
	res = medians(res)
	if run.Err != nil || perr != nil || len(failed) > 0 {
		why := fmt.Sprintf("go test -bench BenchmarkFlood ./traffic: %v %v failed %v: %s", run.Err, perr, failed, lastLines(textOf(run.Output), 3))
		b.res.missing("flood_pps_ratio_vs_ping_f", "ratio", ">= 1: Flood at least as fast as ping -f", why)
		return errors.New(why)
	}
	type cell struct{ flood, ping, ratio, replied, cpu, pingCPU float64 }
	cells := map[string]cell{}
	senders := map[int]bool{}
	re := regexp.MustCompile(`^Flood/size=(\d+)/senders=(\d+)$`)
	for _, r := range res {
		m := re.FindStringSubmatch(r.Name)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		senders[n] = true
		c := cell{flood: r.Metrics["pps"], replied: r.Metrics["replied/sent"], cpu: r.Metrics["cpu-ns/op"], pingCPU: r.Metrics["ping-f-cpu-ns/op"]}
		if p, ok := r.Metrics["ping-f-pps"]; ok {
			c.ping, c.ratio = p, r.Metrics["ratio-vs-ping-f"]
		}
		cells[m[1]+"/"+m[2]] = c
	}
	if len(cells) == 0 {
		why := "BenchmarkFlood printed no size=/senders= result: " + lastLines(textOf(run.Output), 3)
		b.res.missing("flood_pps_ratio_vs_ping_f", "ratio", ">= 1", why)
		return errors.New(why)
	}
	// The headline: 1400 bytes, N senders (four) against as many ping -f.
	bestN := bestOther(senders)
	best := cells["1400/"+strconv.Itoa(bestN)]
	if best.ping > 0 {
		b.res.add("flood_pps_ratio_vs_ping_f", best.ratio, "ratio", ">= 1.5: Flood with N senders against as many ping -f",
			fmt.Sprintf("1400-byte payload, %d senders vs as many ping -f processes; %d requests per side; the median of %d paired per-run ratios (each figure below is the median of its own runs)", bestN, b.o.floodCount, b.o.floodRuns))
	} else {
		b.res.missing("flood_pps_ratio_vs_ping_f", "ratio", ">= 1", "no ping -f figure: iputils ping is not installed (apt-get install iputils-ping)")
	}
	for _, size := range []string{"1400", "2048"} {
		for _, n := range []int{1, bestOther(senders)} {
			c, ok := cells[size+"/"+strconv.Itoa(n)]
			if !ok {
				continue
			}
			k := fmt.Sprintf("%s_%d", size, n)
			b.res.add("flood_pps_"+k, c.flood, "pps", limit, fmt.Sprintf("Flood, %s-byte payload, %d sender(s); replied/sent %.3f", size, n, c.replied))
			if c.ping > 0 {
				b.res.add("ping_f_pps_"+k, c.ping, "pps", "-", fmt.Sprintf("iputils ping -f, %d process(es)", n))
				lim := ">= 1"
				if n > 1 {
					lim = ">= 1.5"
				}
				b.res.add("flood_ratio_vs_ping_f_"+k, c.ratio, "ratio", lim, "")
			}
			if c.cpu > 0 && c.pingCPU > 0 {
				// Less load-sensitive than pps on a shared machine: CPU
				// time per request, the network stack's work in the
				// system calls included, on both sides.
				b.res.add("flood_cpu_us_per_req_"+k, c.cpu/1000, "µs", "-", "Flood's process CPU time per request")
				b.res.add("ping_f_cpu_us_per_req_"+k, c.pingCPU/1000, "µs", "-", "ping -f processes' CPU time per request")
			}
		}
	}
	return nil
}

// medians folds repeated results of one benchmark (go test -count=N)
// into one: N is the first run's, each metric the median of the runs
// that report it (the upper median for an even count).
func medians(res []benchResult) []benchResult {
	var order []string
	byName := map[string][]benchResult{}
	for _, r := range res {
		if _, ok := byName[r.Name]; !ok {
			order = append(order, r.Name)
		}
		byName[r.Name] = append(byName[r.Name], r)
	}
	out := make([]benchResult, 0, len(order))
	for _, name := range order {
		rs := byName[name]
		m := benchResult{Name: name, N: rs[0].N, Metrics: map[string]float64{}}
		vals := map[string][]float64{}
		for _, r := range rs {
			for k, v := range r.Metrics {
				vals[k] = append(vals[k], v)
			}
		}
		for k, vs := range vals {
			slices.Sort(vs)
			m.Metrics[k] = vs[len(vs)/2]
		}
		out = append(out, m)
	}
	return out
}

// bestOther is the largest sender count other than 1 (BenchmarkFlood's N).
func bestOther(s map[int]bool) int {
	n := 1
	for k := range s {
		n = max(n, k)
	}
	return n
}

// textOf returns the output text of test2json events (or s itself).
func textOf(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if t := eventText(l); t != "" {
			b.WriteString(t + "\n")
		}
	}
	return b.String()
}

// stepKmsg measures the detection latency through the harness (write a
// marked watchdog line to /dev/kmsg, wait for the harness's event on its
// timeline), and runs kmsg's benchmarks: BenchmarkMatch (records/s) and
// BenchmarkKmsgLatency (the reader alone, without matcher and timeline).
func (b *bench) stepKmsg(ctx context.Context) error {
	var errs []error
	b.progressf("writing %d marked records to /dev/kmsg, waiting for each as a harness event", b.o.kmsgRecords)
	lat, err := harnessKmsgLatency(ctx, b.o.kmsgRecords, func(i int) {
		if i%500 == 0 {
			b.progressf("  %d of %d records", i, b.o.kmsgRecords)
		}
	})
	if err != nil {
		b.res.missing("kmsg_latency_p50_ms", "ms", "-", err.Error())
		b.res.missing("kmsg_latency_p99_ms", "ms", "-", err.Error())
		errs = append(errs, err)
	} else {
		note := fmt.Sprintf("%d records: /dev/kmsg write to the harness's event on its timeline (kmsg reader, Matcher, Timeline.WaitFor); max %.2f ms",
			len(lat), ms(quantile(lat, 1)))
		b.res.add("kmsg_latency_p50_ms", ms(quantile(lat, 0.5)), "ms", "≪ 5000 ms watchdog period", note)
		b.res.add("kmsg_latency_p99_ms", ms(quantile(lat, 0.99)), "ms", "≪ 5000 ms watchdog period", "")
	}

	run := b.goTest(ctx, nil, nil, "-count=1", "-run", "^$", "-bench", "^(BenchmarkMatch|BenchmarkKmsgLatency)$", "-benchtime", "1000x", "-timeout", "10m", "-json", "./kmsg")
	res, failed, perr := parseBenchOutput(strings.NewReader(run.Output))
	byName := map[string]benchResult{}
	for _, r := range res {
		byName[r.Name] = r
	}
	if m, ok := byName["Match"]; ok && m.Metrics["records/s"] > 0 && !contains(failed, "BenchmarkMatch") {
		// 1000x is too few for a rate: run it on its own with the default benchtime.
		run2 := b.goTest(ctx, nil, nil, "-count=1", "-run", "^$", "-bench", "^BenchmarkMatch$", "-json", "./kmsg")
		if res2, _, err := parseBenchOutput(strings.NewReader(run2.Output)); err == nil && run2.Err == nil {
			for _, r := range res2 {
				if r.Name == "Match" {
					m = r
				}
			}
		}
		b.res.add("kmsg_records_per_s", m.Metrics["records/s"], "records/s", "a 10240-record burst in ≪ 1 s",
			fmt.Sprintf("kmsg BenchmarkMatch (Matcher.Match on a mix of ordinary and event lines, %d ns/op)", int64(m.Metrics["ns/op"])))
	} else {
		why := fmt.Sprintf("kmsg BenchmarkMatch: %v %v failed %v: %s", run.Err, perr, failed, lastLines(textOf(run.Output), 3))
		b.res.missing("kmsg_records_per_s", "records/s", "-", why)
		errs = append(errs, errors.New(why))
	}
	if l, ok := byName["KmsgLatency"]; ok && !contains(failed, "BenchmarkKmsgLatency") {
		b.res.add("kmsg_reader_latency_p50_ms", l.Metrics["p50_ms"], "ms", "-", fmt.Sprintf("kmsg BenchmarkKmsgLatency, %d records: the reader alone", l.N))
		b.res.add("kmsg_reader_latency_p99_ms", l.Metrics["p99_ms"], "ms", "-", "")
	}
	return errors.Join(errs...)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// rigForward picks the child's lines worth showing as progress during a
// rig run: the rig's own stages, and the results.
func rigForward(l string) bool {
	t := strings.TrimSpace(l)
	return strings.HasPrefix(t, "rig: ") || strings.HasPrefix(t, "--- ") || strings.HasPrefix(t, "ok ") || strings.HasPrefix(t, "FAIL")
}

// rigBoot returns the first run's "first test running in the guest X s
// after start" in a rig run's output, in seconds.
func rigBoot(out string) (float64, bool) {
	d := rig.ParseProgress(out).BootTime
	return d.Seconds(), d > 0
}

// guestInit returns the first run's "guest init up X s after QEMU
// started" in a rig run's output, in seconds: the kernel's boot under TCG,
// without the build.
func guestInit(out string) (float64, bool) {
	d := rig.ParseProgress(out).GuestBootTime
	return d.Seconds(), d > 0
}

// stepVerdict runs TxTimeout/PartnerStall/ICMP on the virtual rig with a
// report directory and reads its report.json.
func (b *bench) stepVerdict(ctx context.Context) error {
	run, err := b.runScenarios(ctx, "verdict", nil, rigForward, "TestTxTimeout/PartnerStall/ICMP")
	if err != nil {
		return err
	}
	if s, ok := rigBoot(run.Output); ok {
		b.boots = append(b.boots, fmt.Sprintf("%.1f s (PartnerStall/ICMP run)", s))
	}
	rep, rerr := run.Report, run.ReportErr
	if rerr != nil {
		why := fmt.Sprintf("no report.json from the rig (%v); go test: %v: %s%s", rerr, run.Err, lastLines(run.Output, 3), keptNote(run.Output))
		for _, k := range []string{"first_timeout_s", "verdict_overhead_s"} {
			b.res.missing(k, "s", "-", why)
		}
		return errors.New(why)
	}
	var sc *harness.ScenarioReport
	for i := range rep.Scenarios {
		if rep.Scenarios[i].Name == "TxTimeout/PartnerStall/ICMP" {
			sc = &rep.Scenarios[i]
		}
	}
	if sc == nil {
		why := "report.json has no TxTimeout/PartnerStall/ICMP scenario: " + lastLines(run.Output, 3)
		b.res.missing("first_timeout_s", "s", "-", why)
		return errors.New(why)
	}
	b.verdict = &verdictSource{sc: *sc, recoverWithin: rep.Config.RecoverWithin, run: "the PartnerStall/ICMP run"}
	return run.failure()
}

// verdictSource is a PartnerStall/ICMP scenario report and the run it
// came from.
type verdictSource struct {
	sc            harness.ScenarioReport
	recoverWithin time.Duration
	run           string
}

// addVerdictFigures adds the time-to-verdict figures once every step has
// run: from the dedicated PartnerStall/ICMP run when its timeout fired,
// else from the suite run's PartnerStall/ICMP when that one's did (the
// note says why), else from whichever there is.
func (b *bench) addVerdictFigures() {
	src := b.verdict
	switch {
	case src != nil && src.sc.FirstTimeoutMS >= 0:
	case b.suiteVerdict != nil && (src == nil || b.suiteVerdict.sc.FirstTimeoutMS >= 0):
		prev := src
		src = b.suiteVerdict
		if prev != nil {
			src.run = fmt.Sprintf("the suite run, because the PartnerStall/ICMP run alone was %s: %s", prev.sc.Result, prev.sc.Reason)
		}
	case src == nil:
		return
	}
	for _, f := range verdictFigures(src.sc, src.recoverWithin) {
		if f.Key == "first_timeout_s" || f.Key == "verdict_overhead_s" {
			f.Note += "; from " + src.run
		}
		b.res.Figures = append(b.res.Figures, f)
	}
}

// watchdogTimeo is virtio_net's dev->watchdog_timeo: the driver leaves it
// at 0 and the core sets 5*HZ when the device comes up
// (net/sched/sch_generic.c, netdev_watchdog_up: "if
// (dev->watchdog_timeo <= 0) dev->watchdog_timeo = 5*HZ"). sysfs does not
// show it, so it is a constant here, as in scenarios' watchdogTimeo.
const watchdogTimeo = 5 * time.Second

// verdictFigures derives the time-to-verdict figures of one scenario
// from its report.
//
// A stall scenario's verdict needs, in order: the first timeout signal
// (fault_injected + first_timeout_ms); then the fault's removal, the
// recovery after it (fault_removed + recover_ms) and the cleanup check
// (the cleanup_ok mark). The scenario's end is the latest timestamp on its
// timeline: the observers take a last sample when they stop, just before
// the report is written. verdict_overhead_s is the time spent after the
// last event the verdict needed at each point: from the first timeout to
// the fault's removal (the flood's stop and the release are all the
// verdict needs there), plus from the later of recovery and cleanup_ok
// to the end. Without a timeout it is only the second part.
func verdictFigures(sc harness.ScenarioReport, recoverWithin time.Duration) []figure {
	r := newResults(machine{})
	tl := sc.Timeline
	inject := int64(0)
	if m, ok := tl.FindMark(harness.MarkFaultInjected); ok {
		inject = m.SinceMS
	}
	end := int64(0)
	for _, m := range tl.Marks {
		end = max(end, m.SinceMS)
	}
	for _, s := range tl.Samples {
		end = max(end, s.SinceMS)
	}
	for _, e := range tl.Events {
		end = max(end, e.SinceMS)
	}
	outcome := fmt.Sprintf("scenario %s: %s", sc.Result, sc.Reason)
	r.add("watchdog_timeo_s", watchdogTimeo.Seconds(), "s", "the kernel's lower bound",
		"virtio_net leaves dev->watchdog_timeo at 0; netdev_watchdog_up (net/sched/sch_generic.c) sets 5*HZ; sysfs does not show it")
	fired := sc.FirstTimeoutMS >= 0
	if fired {
		r.add("first_timeout_s", float64(sc.FirstTimeoutMS)/1000, "s", fmt.Sprintf(">= %.0f s (watchdog_timeo) plus up to one watchdog tick", watchdogTimeo.Seconds()),
			fmt.Sprintf("fault_injected to the first timeout signal (%d tx timeouts, %d watchdog lines, %d tracepoint hits)", sc.TxTimeoutCount, sc.WatchdogLines, sc.TracepointHits))
		for _, e := range tl.Events {
			if e.Kind == "watchdog" && e.TimedOutMS > 0 {
				r.add("watchdog_line_timed_out_s", float64(e.TimedOutMS)/1000, "s", ">= watchdog_timeo_s", "the first NETDEV WATCHDOG line's own \"timed out N ms\" (since the queue's last transmit)")
				break
			}
		}
	} else {
		r.missing("first_timeout_s", "s", ">= 5 s", "no timeout signal: "+outcome)
	}
	var waitRelease int64 = -1
	rm, removed := tl.FindMark(harness.MarkFaultRemoved)
	if removed && fired {
		waitRelease = rm.SinceMS - inject - sc.FirstTimeoutMS
		note := "first timeout to fault_removed"
		if fs, ok := tl.FindMark(harness.MarkFloodStop); ok {
			note += fmt.Sprintf(" (the flood stopped %.3f s after the timeout; the rest is the release)", float64(fs.SinceMS-inject-sc.FirstTimeoutMS)/1000)
		}
		r.add("release_after_timeout_s", float64(waitRelease)/1000, "s", "≈ 0: the verdict has its timeout", note)
	}
	last, lastName := int64(-1), ""
	if removed && sc.RecoverMS >= 0 {
		last, lastName = rm.SinceMS+sc.RecoverMS, "recovery"
		r.add("recover_s", float64(sc.RecoverMS)/1000, "s", fmt.Sprintf("<= %v (recover_within)", recoverWithin), "fault_removed to recovery (echo reply and tx_packets moving)")
	}
	if m, ok := tl.FindMark(harness.MarkCleanupOK); ok && m.SinceMS >= last {
		last, lastName = m.SinceMS, "cleanup_ok"
	}
	if last < 0 {
		r.missing("verdict_overhead_s", "s", "-", "neither recovery nor cleanup_ok is on the timeline: "+outcome)
		return r.Figures
	}
	tail := end - last
	overhead := tail
	note := fmt.Sprintf("%.3f s after the last needed event (%s at %.3f s) to the timeline's end", float64(tail)/1000, lastName, float64(last)/1000)
	if waitRelease >= 0 {
		overhead += waitRelease
		note = fmt.Sprintf("%.3f s from the first timeout to fault_removed + ", float64(waitRelease)/1000) + note
	}
	if !fired {
		note += "; no timeout fired, so this is not a full verdict: " + outcome
	}
	r.add("verdict_overhead_s", float64(overhead)/1000, "s", "≈ 0: nothing left to wait for", note)
	r.add("scenario_s", float64(end)/1000, "s", "-", fmt.Sprintf("timeline start to end (%s)", sc.Result))
	return r.Figures
}

// stepSuite runs the whole TxTimeout suite on the rig: its wall time,
// the boot time and the process tree's peak memory.
func (b *bench) stepSuite(ctx context.Context) error {
	run, err := b.runScenarios(ctx, "suite", nil, rigForward, "TxTimeout|Pktgen")
	if err != nil {
		return err
	}
	results := "no report.json"
	if rep := run.Report; run.ReportErr == nil {
		var rs []string
		for _, s := range rep.Scenarios {
			rs = append(rs, s.Name+"="+string(s.Result))
			if s.Name == "TxTimeout/PartnerStall/ICMP" {
				b.suiteVerdict = &verdictSource{sc: s, recoverWithin: rep.Config.RecoverWithin, run: "the suite run"}
			}
			if s.Name == "TxTimeout/NapiStarve/ICMP" {
				b.res.Figures = append(b.res.Figures, napiFigures(s)...)
			}
		}
		results = strings.Join(rs, ", ")
	}
	status := "exit 0"
	if run.Err != nil {
		status = run.Err.Error()
	}
	b.res.add("suite_wall_s", run.Wall.Seconds(), "s", "-", fmt.Sprintf("go test -count=1 -v ./scenarios -run 'TxTimeout|Pktgen', build included (%s; %s)", status, results))
	b.res.add("rig_boots_txtimeout_pktgen", float64(strings.Count(run.Output, "rig: booting ")), "boots", "1: one boot per test package",
		"QEMU boots of that run (its \"rig: booting\" lines): the package's tests share a boot per NIC model of TestTxTimeout's plan")
	if s, ok := rigBoot(run.Output); ok {
		b.boots = append(b.boots, fmt.Sprintf("%.1f s (suite run)", s))
		b.res.add("rig_boot_s", s, "s", "≈ 2.5 s TCG kernel boot to userspace on an idle machine (kernel-facts §4)",
			"RunTest start (guest test build, initramfs, QEMU boot) to the first guest test; all rig runs: "+strings.Join(b.boots, ", "))
	} else {
		b.res.missing("rig_boot_s", "s", "-", "the rig printed no \"first test running in the guest\" line: "+lastLines(run.Output, 3))
	}
	if s, ok := guestInit(run.Output); ok {
		b.res.add("rig_guest_init_s", s, "s", "≈ 2.5 s on an idle machine (kernel-facts §4)", "QEMU start to the guest init's first word (suite run): the kernel's boot under TCG")
	}
	b.res.add("host_peak_rss_mb", float64(run.PeakTreeRSS)/(1<<20), "MB", "guest memory 1024 MiB + QEMU + the test binary",
		fmt.Sprintf("sum over the go test process tree, sampled every %v; QEMU alone %.0f MB; largest single process (wait4 ru_maxrss) %.0f MB",
			rssInterval, float64(run.PeakQEMURSS)/(1<<20), float64(run.MaxRSS)/(1<<20)))
	return run.failure()
}

// napiFigures are NapiStarve's two figures, from its scenario report in the
// suite run (on the rig's default plan, e1000): the hog's start (the
// fault_injected mark) to the first timeout signal, and the hog's release
// (fault_removed) to recovery (an echo reply and tx_packets moving).
func napiFigures(sc harness.ScenarioReport) []figure {
	r := newResults(machine{})
	outcome := fmt.Sprintf("NapiStarve/ICMP %s: %s", sc.Result, sc.Reason)
	if sc.FirstTimeoutMS >= 0 {
		r.add("napi_first_timeout_s", float64(sc.FirstTimeoutMS)/1000, "s", fmt.Sprintf("<= %.0f s (watchdog_timeo + 1 s)", watchdogTimeo.Seconds()+1),
			fmt.Sprintf("hog start to the first timeout signal (%d watchdog lines, %d tracepoint hits, tx_timeout +%d); %s", sc.WatchdogLines, sc.TracepointHits, sc.TxTimeoutCount, outcome))
	} else {
		r.missing("napi_first_timeout_s", "s", "<= 6 s", "no timeout signal: "+outcome)
	}
	if sc.RecoverMS >= 0 {
		r.add("napi_recover_s", float64(sc.RecoverMS)/1000, "s", "<= 4 s",
			fmt.Sprintf("hog released to an echo reply and tx_packets moving, through the driver's reset (reset lines %d, link flap %t)", sc.ResetLines, sc.LinkFlap))
	} else {
		r.missing("napi_recover_s", "s", "<= 4 s", "not recovered: "+outcome)
	}
	return r.Figures
}

// soakNIC is the rig NIC model of the soak step: virtio-net, whose partner
// stall ends at once (the resume through the rig's control port) and whose
// driver logs and goes on, so a cycle is the watchdog's period and the
// scenario's own steps. e1000's reset cannot loop faster than its link
// poll (2 s after every reset); the suite step's Repeat runs there.
const soakNIC = "virtio-net-pci"

// stepSoak runs TxTimeout/Repeat (N back-to-back stalls in one boot) on
// soakNIC: the rate of timeouts the loop sustains.
func (b *bench) stepSoak(ctx context.Context) error {
	run, err := b.runScenarios(ctx, "soak", []string{"TXTIMEOUT_NIC=" + soakNIC, "TXTIMEOUT_REPEAT=10"}, rigForward, "^TestTxTimeout$/^Repeat$")
	if err != nil {
		return err
	}
	limit := fmt.Sprintf(">= %.1f (75 %% of 60/watchdog_timeo)", 0.75*60/watchdogTimeo.Seconds())
	rep, err := run.Report, run.ReportErr
	if err != nil {
		b.res.missing("soak_timeouts_per_min", "1/min", limit, fmt.Sprintf("no report: %v; go test: %v: %s", err, run.Err, lastLines(run.Output, 3)))
		return fmt.Errorf("soak: no report: %w%s", err, keptNote(run.Output))
	}
	found := false
	for _, sc := range rep.Scenarios {
		for _, m := range sc.Measurements {
			if sc.Name == "TxTimeout/Repeat" && m.Name == "timeouts_per_min" {
				found = true
				b.res.add("soak_timeouts_per_min", m.Value, "1/min", limit,
					fmt.Sprintf("TxTimeout/Repeat, 10 PartnerStall cycles in one %s boot, first timeout to first timeout (%s: %s)", soakNIC, sc.Result, sc.Reason))
			}
		}
	}
	if !found {
		b.res.missing("soak_timeouts_per_min", "1/min", limit, "TxTimeout/Repeat reported no timeouts_per_min: "+lastLines(run.Output, 3))
	}
	return run.failure()
}

// stepPktgen runs TestBenchPktgen (scenarios/bench_test.go) on the rig: the
// Go driver against the seed's shell pattern in one guest boot.
func (b *bench) stepPktgen(ctx context.Context) error {
	run, err := b.runScenarios(ctx, "pktgen", []string{"TXTIMEOUT_BENCH=1"}, func(l string) bool {
		return rigForward(l) || strings.Contains(l, "bench: run=")
	}, "^TestBenchPktgen$")
	if err != nil {
		return err
	}
	if s, ok := rigBoot(run.Output); ok {
		b.boots = append(b.boots, fmt.Sprintf("%.1f s (pktgen run)", s))
	}
	m, err := pktgenMeasurements(run.Report, run.ReportErr)
	if err != nil {
		why := fmt.Sprintf("%v; go test: %v: %s", err, run.Err, lastLines(run.Output, 3))
		b.res.missing("pktgen_ratio_vs_shell", "ratio", "≈ 1", why)
		return errors.New(why)
	}
	b.res.add("pktgen_ratio_vs_shell", m["pktgen_ratio_vs_shell"], "ratio", "≈ 1: pktgen's own rate; the driver only configures it",
		"pps (pktgen's Result line) with traffic.RunPktgen / with plain echo-style writes; the seed's per-CPU configuration, 4 runs each (ABBA BAAB), in one guest boot")
	b.res.add("pktgen_go_pps", m["pktgen_go_pps"], "pps", "-", "traffic.RunPktgen (every write's Result line checked)")
	b.res.add("pktgen_shell_pps", m["pktgen_shell_pps"], "pps", "-", "the seed's `echo CMD > FILE` pattern, no checks")
	b.res.add("pktgen_go_wall_ms", m["pktgen_go_wall_ms"], "ms", "-", "configure, run, read results and clean up")
	b.res.add("pktgen_shell_wall_ms", m["pktgen_shell_wall_ms"], "ms", "-", "the same, shell pattern")
	return run.failure()
}

// pktgenMeasurements reads BenchPktgen's measurements from a report and
// the error of reading it (harness.ReadReport's results).
func pktgenMeasurements(rep *harness.Report, err error) (map[string]float64, error) {
	if err != nil {
		return nil, fmt.Errorf("no report from the rig: %w", err)
	}
	for _, s := range rep.Scenarios {
		if s.Name != "BenchPktgen" {
			continue
		}
		if s.Result != harness.Pass {
			return nil, fmt.Errorf("BenchPktgen: %s: %s", s.Result, s.Reason)
		}
		m := map[string]float64{}
		for _, x := range s.Measurements {
			m[x.Name] = x.Value
		}
		if _, ok := m["pktgen_ratio_vs_shell"]; !ok {
			return nil, errors.New("BenchPktgen reported no pktgen_ratio_vs_shell")
		}
		return m, nil
	}
	return nil, errors.New("report.json has no BenchPktgen scenario")
}

// quantile returns the q-quantile (0..1) of ds by the nearest-rank method
// on a sorted copy; 0 for an empty slice.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}
