package traffic

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	probing "github.com/prometheus-community/pro-bing"
	"golang.org/x/sys/unix"

	"txtimeout/internal/nsexec"
	"txtimeout/internal/testnet"
)

// benchSenders is "N" in the 1-and-N-senders benchmarks: the kernel-facts
// measurement filled a virtio ring with six parallel pings; four sockets
// are enough on a 2-core machine.
const benchSenders = 4

// BenchmarkFlood measures Flood's packets/s across a veth pair between two
// namespaces, with 1400- and 2048-byte payloads and 1 and N senders, and
// iputils "ping -f" (one process per sender, same size, same veth, same
// run) for comparison. One op is one echo request; the metrics are pps
// for each and their ratio.
//
//	go test -run '^$' -bench BenchmarkFlood ./traffic
func BenchmarkFlood(b *testing.B) {
	v := testnet.NewLinked(b)
	ping := pingPath()
	for _, size := range []int{1400, 2048} {
		for _, senders := range []int{1, benchSenders} {
			b.Run(fmt.Sprintf("size=%d/senders=%d", size, senders), func(b *testing.B) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				b.ResetTimer()
				cpu0 := cpuTime()
				st, err := Flood(ctx, FloodConfig{Dst: v.B.Addr, NetNS: v.A.NS.Path, Size: size, Count: b.N, Senders: senders, Linger: -1})
				cpu := cpuTime() - cpu0
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				if st.Sent != int64(b.N) {
					b.Fatalf("sent %d of %d", st.Sent, b.N)
				}
				b.ReportMetric(st.PPS, "pps")
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
				b.ReportMetric(float64(st.Received)/float64(st.Sent), "replied/sent")
				if ping == "" {
					b.Log("no ping -f comparison: iputils ping is not installed (apt-get install iputils-ping)")
					return
				}
				pps, pingCPU, err := pingFlood(b, v, ping, size, senders, b.N)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(pps, "ping-f-pps")
				b.ReportMetric(float64(pingCPU.Nanoseconds())/float64(b.N), "ping-f-cpu-ns/op")
				b.ReportMetric(st.PPS/pps, "ratio-vs-ping-f")
			})
		}
	}
}

// BenchmarkProBing measures pro-bing v0.9.1 as a flood source on the same
// veth: one Pinger per sender at its smallest usable Interval (1µs; 0
// panics in its ticker). It is the measurement behind Flood's own sender.
func BenchmarkProBing(b *testing.B) {
	v := testnet.NewLinked(b)
	for _, senders := range []int{1, benchSenders} {
		b.Run(fmt.Sprintf("size=2048/senders=%d", senders), func(b *testing.B) {
			per := (b.N + senders - 1) / senders
			var sent int64
			var last time.Time // of the last send: pro-bing then waits for replies up to Timeout
			var mu sync.Mutex
			var wg sync.WaitGroup
			errs := make(chan error, senders)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < senders; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var p *probing.Pinger
					err := v.A.NS.Do(func() error {
						p = probing.New(v.B.Addr.String())
						p.SetPrivileged(true)
						p.SetLogger(probing.NoopLogger{})
						p.Size, p.Count, p.Interval, p.Timeout = 2048, per, time.Microsecond, time.Minute
						p.OnSend = func(*probing.Packet) {
							mu.Lock()
							sent++
							last = time.Now()
							mu.Unlock()
						}
						// Do not wait for every reply once all are sent.
						p.OnRecv = func(*probing.Packet) {
							if p.PacketsSent >= per {
								p.Stop()
							}
						}
						return p.Resolve()
					})
					if err != nil {
						errs <- err
						return
					}
					if err := runProBingIn(v.A.NS.Path, p); err != nil {
						errs <- err
						return
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			el := last.Sub(start)
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(sent)/el.Seconds(), "pps")
		})
	}
}

// pingPath returns iputils ping's path, or "" if it is not installed.
func pingPath() string {
	p, err := exec.LookPath("ping")
	if err != nil {
		return ""
	}
	out, _ := exec.Command(p, "-V").CombinedOutput()
	if !strings.Contains(string(out), "iputils") {
		return ""
	}
	return p
}

var pingTransmittedRe = regexp.MustCompile(`(\d+) packets transmitted`)

// pingFlood runs senders "ping -f -q" processes in namespace A, n requests
// in all, and returns their summed packets/s and CPU time (user and
// system, which includes the network stack's work done in their system
// calls, as Flood's CPU time does).
func pingFlood(tb testing.TB, v *testnet.Pair, ping string, size, senders, n int) (float64, time.Duration, error) {
	per := (n + senders - 1) / senders
	type res struct {
		sent int
		cpu  time.Duration
		err  error
	}
	out := make(chan res, senders)
	start := time.Now()
	err := v.A.NS.Do(func() error {
		// Processes started from this locked thread are born in A.
		for i := 0; i < senders; i++ {
			cmd := exec.Command(ping, "-f", "-q", "-n", "-c", strconv.Itoa(per), "-s", strconv.Itoa(size), "-w", "120", v.B.Addr.String())
			var buf strings.Builder
			cmd.Stdout, cmd.Stderr = &buf, &buf
			if err := cmd.Start(); err != nil {
				return err
			}
			go func() {
				err := cmd.Wait()
				m := pingTransmittedRe.FindStringSubmatch(buf.String())
				if m == nil {
					out <- res{err: fmt.Errorf("ping -f: %v: %q", err, buf.String())}
					return
				}
				k, _ := strconv.Atoi(m[1])
				out <- res{sent: k, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
			}()
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	total := 0
	var cpu time.Duration
	for i := 0; i < senders; i++ {
		r := <-out
		if r.err != nil {
			return 0, 0, r.err
		}
		total += r.sent
		cpu += r.cpu
	}
	return float64(total) / time.Since(start).Seconds(), cpu, nil
}

// runProBingIn runs p with its socket opened in the namespace at path:
// pro-bing opens it inside Run, so Run itself must be on a locked thread in
// that namespace.
func runProBingIn(path string, p *probing.Pinger) error {
	var runErr error
	err := nsexec.Do(path, func() error {
		runErr = p.Run()
		return nil
	})
	if err != nil {
		return err
	}
	return runErr
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStalled compares Flood with pro-bing behind a queue that holds
// packets (a 1 Mbit/s TBF with a 4 MB limit, as a stalled ring holds them),
// where sends fail with ENOBUFS: six senders, 2048-byte payloads, as in the
// kernel-facts run that fired the watchdog. One op is one second of flood.
// Metrics: send errors per second, and CPU seconds per wall second (a
// spinning sender burns a whole CPU).
//
//	go test -run '^$' -bench BenchmarkStalled ./traffic
func BenchmarkStalled(b *testing.B) {
	const senders = 6
	b.Run("flood/interval=0", func(b *testing.B) {
		v := testnet.NewLinked(b)
		throttleA(b, v)
		cpu0, start := cpuTime(), time.Now()
		var errs, sent int64
		for i := 0; i < b.N; i++ {
			st, err := Flood(context.Background(), FloodConfig{Dst: v.B.Addr, NetNS: v.A.NS.Path, For: time.Second, Senders: senders, Linger: -1})
			if err != nil {
				b.Fatal(err)
			}
			errs += st.Errors["ENOBUFS"]
			sent += st.Sent
		}
		wall := time.Since(start)
		b.ReportMetric(float64(errs)/wall.Seconds(), "ENOBUFS/s")
		b.ReportMetric(float64(sent)/wall.Seconds(), "sent/s")
		b.ReportMetric((cpuTime()-cpu0).Seconds()/wall.Seconds(), "cpu/wall")
	})
	for _, interval := range []time.Duration{10 * time.Millisecond, time.Microsecond} {
		b.Run("pro-bing/interval="+interval.String(), func(b *testing.B) { benchStalledProBing(b, senders, interval) })
	}
}

func benchStalledProBing(b *testing.B, senders int, interval time.Duration) {
	{
		v := testnet.NewLinked(b)
		throttleA(b, v)
		var mu sync.Mutex
		var errs, sent int64
		cpu0, start := cpuTime(), time.Now()
		for i := 0; i < b.N; i++ {
			var wg sync.WaitGroup
			for j := 0; j < senders; j++ {
				p := probing.New(v.B.Addr.String())
				p.SetPrivileged(true)
				p.SetLogger(probing.NoopLogger{})
				p.Size, p.Interval, p.Timeout = 2048, interval, time.Second
				p.OnSendError = func(_ *probing.Packet, err error) {
					mu.Lock()
					errs++
					mu.Unlock()
				}
				if err := p.Resolve(); err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := runProBingIn(v.A.NS.Path, p); err != nil {
						b.Error(err)
					}
					mu.Lock()
					sent += int64(p.Statistics().PacketsSent)
					mu.Unlock()
				}()
			}
			wg.Wait()
		}
		wall := time.Since(start)
		b.ReportMetric(float64(errs)/wall.Seconds(), "ENOBUFS/s")
		b.ReportMetric(float64(sent)/wall.Seconds(), "sent/s")
		b.ReportMetric((cpuTime()-cpu0).Seconds()/wall.Seconds(), "cpu/wall")
	}
}
