package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"txtimeout/faultinject"
	"txtimeout/traffic"
)

func init() {
	register(command{
		name:    "pktgen",
		summary: "run the kernel's pktgen with the seed's per-CPU configuration, bounded by count and time",
		run:     runPktgen,
	})
}

// pktgenFlagList collects repeated -flag values.
type pktgenFlagList []string

func (l *pktgenFlagList) String() string { return strings.Join(*l, ",") }
func (l *pktgenFlagList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

type pktgenThreadJSON struct {
	Thread int     `json:"thread"`
	Iface  string  `json:"iface"`
	Sent   uint64  `json:"sent"`
	Errors uint64  `json:"errors"`
	PPS    float64 `json:"pps"`
	Mbps   float64 `json:"mbps"`
}

type pktgenJSON struct {
	Threads []pktgenThreadJSON `json:"threads"`
	Sent    uint64             `json:"sent"`
	Errors  uint64             `json:"errors"`
	PPS     float64            `json:"pps"`
	Mbps    float64            `json:"mbps"`
	Seconds float64            `json:"seconds"`
}

// maxPktgenSize bounds -size: pktgen builds one IPv4/UDP packet per frame
// (net/core/pktgen.c fill_packet_ipv4), whose IPv4 total length is 16 bits.
const maxPktgenSize = 65535

func runPktgen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pktgen", stderr)
	iface := fs.String("iface", "", "network `device` to send on (required)")
	threads := fs.Int("threads", 1, "pktgen threads (one per CPU, kpktgend_0..N-1), each with its own IFACE@N entry")
	count := fs.Uint64("count", 0, "packets over all threads; 0 = until -for ends (the seed's count 0)")
	dur := fs.Duration("for", 10*time.Second, "time bound: stop after this long (required, > 0)")
	size := fs.Int("size", 9014, "pkt_size: frame bytes")
	clone := fs.Int("clone", 10, "clone_skb: copies of one skb; 0 = a new skb each time (needed on devices without skb sharing)")
	frags := fs.Int("frags", 10, "frags: page fragments per packet")
	burst := fs.Int("burst", 2, "burst: packets per xmit_more batch")
	ratep := fs.Uint64("ratep", 1000000, "packets/s over all threads; 0 = no rate limit")
	delay := fs.Duration("delay", 0, "delay between packets (overridden by -ratep)")
	dstMin := fs.String("dst-min", "198.18.0.1", "lowest destination `IP` (IPDST_RND picks in the range)")
	dstMax := fs.String("dst-max", "198.18.0.254", "highest destination `IP`")
	dstMAC := fs.String("dst-mac", "", "destination `MAC` (default zero)")
	flows := fs.Int("flows", 1024, "concurrent flows")
	flowlen := fs.Int("flowlen", 8, "packets per flow")
	xmit := fs.String("xmit-mode", "", "start_xmit (kernel default), netif_receive or queue_xmit")
	allowDefault := fs.Bool("allow-default-route", false, "allow an interface that carries the default route (normally the management link)")
	var extra pktgenFlagList
	fs.Var(&extra, "flag", "extra pktgen `FLAG` (repeatable), e.g. NO_TIMESTAMP or !IPDST_RND")
	jsonOut := fs.Bool("json", false, "print the summary as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q", fs.Arg(0))
	case *iface == "":
		return usagef("-iface is required")
	case *size <= 0:
		return usagef("-size must be positive (the kernel raises it to 42 at least)")
	case *size > maxPktgenSize:
		return usagef("-size %d is larger than %d, the largest frame pktgen is given here", *size, maxPktgenSize)
	case *threads < 1:
		return usagef("-threads must be at least 1")
	case *dur <= 0:
		return usagef("-for must be positive: pktgen runs are always time-bounded")
	case *dur > traffic.MaxUnboundedTime:
		return usagef("-for %v is longer than %v", *dur, traffic.MaxUnboundedTime)
	}
	ip := func(name, s string) (net.IP, error) {
		v := net.ParseIP(s)
		if v == nil || v.To4() == nil {
			return nil, usagef("-%s %q is not an IPv4 address", name, s)
		}
		return v, nil
	}
	lo, err := ip("dst-min", *dstMin)
	if err != nil {
		return err
	}
	hi, err := ip("dst-max", *dstMax)
	if err != nil {
		return err
	}
	var mac net.HardwareAddr
	if *dstMAC != "" {
		if mac, err = net.ParseMAC(*dstMAC); err != nil || len(mac) != 6 {
			return usagef("-dst-mac %q is not an Ethernet address", *dstMAC)
		}
	}
	c := traffic.SeedConfig(*iface, *threads, traffic.SeedOptions{
		Packets: *count, PktSize: *size, DstMin: lo, DstMax: hi, DstMAC: mac, Frags: *frags, Clone: *clone,
	})
	for i := range c.Devices {
		d := &c.Devices[i]
		d.CloneSKB, d.Frags, d.Burst, d.Flows, d.FlowLen = *clone, *frags, *burst, *flows, *flowlen
		d.RateP = 0
		if *ratep > 0 {
			d.RateP = max(*ratep/uint64(*threads), 1)
		}
		d.Delay, d.XmitMode = *delay, *xmit
		d.Flags = append(d.Flags, extra...)
	}
	if *size < 0 || *clone < 0 || *frags < 0 || *burst < 0 || *flows < 0 || *flowlen < 0 {
		return usagef("-size, -clone, -frags, -burst, -flows and -flowlen must not be negative")
	}
	if err := c.Validate(); err != nil {
		return usagef("%s", strings.TrimPrefix(err.Error(), "pktgen: "))
	}
	// pktgen floods the device: never the management link by accident.
	// (A device that does not exist is left to pktgen's own error.)
	if !*allowDefault {
		if def, err := faultinject.CarriesDefaultRoute(*iface, faultinject.Options{}); err == nil && def {
			return fmt.Errorf("refusing interface %s: it carries a default route, probably the management link (-allow-default-route if it is the DUT link)", *iface)
		}
	}
	// One owner per interface: not while an injection or another flood
	// holds it.
	release, err := lockIface(*iface, faultinject.Options{}, stderr)
	if err != nil {
		return err
	}
	defer release()

	runCtx, cancel := context.WithTimeout(ctx, *dur)
	defer cancel()
	start := time.Now()
	done := make(chan struct{})
	defer close(done)
	go pktgenProgress(done, stderr, start, c)
	res, err := traffic.RunPktgen(runCtx, c)
	if err != nil {
		return prefixTrimmed{err, "pktgen: "}
	}
	out := pktgenJSON{Sent: res.Sent, Errors: res.Errors, PPS: res.PPS, Mbps: res.Mbps, Seconds: time.Since(start).Seconds()}
	for _, t := range res.Threads {
		out.Threads = append(out.Threads, pktgenThreadJSON{Thread: t.Thread, Iface: t.Iface, Sent: t.Sent, Errors: t.Errors, PPS: t.PPS, Mbps: t.Mbps})
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	for _, t := range out.Threads {
		fmt.Fprintf(stdout, "pktgen %s@%d: sent %d errors %d, %.0f pps, %.1f Mb/s\n", t.Iface, t.Thread, t.Sent, t.Errors, t.PPS, t.Mbps)
	}
	fmt.Fprintf(stdout, "pktgen total: sent %d errors %d, %.0f pps, %.1f Mb/s in %.1fs\n", out.Sent, out.Errors, out.PPS, out.Mbps, out.Seconds)
	return nil
}

var pktgenSofarRe = regexp.MustCompile(`pkts-sofar: (\d+)`)

// pktgenProgress prints a line a second, from the third second on, with
// the packets sent so far (Current: pkts-sofar in each device file).
func pktgenProgress(done <-chan struct{}, stderr io.Writer, start time.Time, c traffic.PktgenConfig) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		el := time.Since(start)
		if el < 2*time.Second {
			continue
		}
		var sofar uint64
		for _, d := range c.Devices {
			b, err := os.ReadFile(fmt.Sprintf("/proc/net/pktgen/%s@%d", d.Iface, d.Thread))
			if err != nil {
				continue
			}
			if m := pktgenSofarRe.FindSubmatch(b); m != nil {
				n, _ := strconv.ParseUint(string(m[1]), 10, 64)
				sofar += n
			}
		}
		fmt.Fprintf(stderr, "pktgen: %4.0fs sent %d\n", el.Seconds(), sofar)
	}
}
