package traffic

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"txtimeout/internal/unsupported"
)

// ErrNotSupported means the kernel has no pktgen (CONFIG_NET_PKTGEN unset
// and no pktgen module to load), or the device cannot do what was asked.
// It is the project's one "not supported" error (also
// faultinject.ErrUnsupported and harness.ErrNotSupported), and it matches
// errors.ErrUnsupported: test with errors.Is(err, errors.ErrUnsupported).
var ErrNotSupported = unsupported.Err

// PktgenDevice is one pktgen device entry, bound to one kernel thread
// (kpktgend_Thread) as "add_device Iface@Thread". Zero fields are left at
// the kernel's defaults, except Count, which is always written: 0 means
// "until stopped" (the kernel's own default is 1000).
type PktgenDevice struct {
	Thread int    // CPU thread number: /proc/net/pktgen/kpktgend_N
	Iface  string // network device

	Count    uint64        // packets for this device; 0 = until the run is stopped
	CloneSKB int           // clone_skb: copies of one skb before a new one
	Frags    int           // frags: page fragments per packet
	PktSize  int           // pkt_size: frame size in bytes without the FCS
	Burst    int           // burst: packets per xmit_more batch
	Delay    time.Duration // delay: gap between packets (ns resolution)
	RateP    uint64        // ratep: packets/s (sets delay)
	RateMbps uint64        // rate: Mb/s (sets delay)

	Dst, DstMin, DstMax, SrcMin, SrcMax net.IP
	DstMAC                              net.HardwareAddr

	UDPSrcMin, UDPSrcMax, UDPDstMin, UDPDstMax uint16

	// Flags are written one "flag X" each, e.g. QUEUE_MAP_CPU, IPDST_RND,
	// UDPSRC_RND, NO_TIMESTAMP; "!X" clears one. An unknown flag is
	// reported by the kernel only in the Result line, which RunPktgen
	// checks.
	Flags []string
	// XmitMode is start_xmit (the kernel default), netif_receive or
	// queue_xmit.
	XmitMode string

	QueueMapMin, QueueMapMax int // written when either is non-zero
	Flows, FlowLen           int

	// Config writes "config 1", a parameter the seed's script sets. It is
	// not in mainline pktgen: Debian's 6.1 answers EINVAL and `No such
	// parameter "config"` (TestGuestTraffic/SeedConfigParameter), so it is
	// off in SeedConfig and only worth setting on a kernel that carries the
	// out-of-tree patch.
	Config bool
}

// name is the device's file name under /proc/net/pktgen.
func (d PktgenDevice) name() string { return fmt.Sprintf("%s@%d", d.Iface, d.Thread) }

// PktgenConfig is one pktgen run: every device starts together.
type PktgenConfig struct{ Devices []PktgenDevice }

// PktgenThreadResult is one device's result after a run.
type PktgenThreadResult struct {
	Thread int
	Iface  string
	Sent   uint64  // packets sent
	Errors uint64  // transmit errors the kernel counted
	PPS    float64 // packets/s
	Mbps   float64 // megabits/s (10^6), from the kernel's bps figure
	Raw    string  // the device file as read
	// Partial is set when the run was stopped while the device's Result
	// still read "Starting" (its queue frozen, say): Sent and Errors are
	// then the Current section's pkts-sofar and errors, and the rates 0.
	Partial bool
}

// PktgenResult sums a run over its devices.
type PktgenResult struct {
	Threads      []PktgenThreadResult
	Sent, Errors uint64
	PPS, Mbps    float64
	Partial      bool // some thread's result is Partial
}

// SeedOptions scales SeedConfig.
type SeedOptions struct {
	Packets uint64 // total packets over all threads; 0 = until stopped (the seed's "count 0")
	PktSize int    // default 9014, as in the seed
	Rate    uint64 // total packets/s over all threads; default 1000000, as in the seed
	DstMin  net.IP // destination range; default 198.18.0.1..198.18.0.254
	DstMax  net.IP
	DstMAC  net.HardwareAddr // default: none (zero MAC)
	Frags   int              // default 10, as in the seed
	Clone   int              // default 10, as in the seed
}

// SeedConfig reproduces the seed article's per-CPU script on iface with
// threads threads: per thread count (packets/threads), flag QUEUE_MAP_CPU,
// clone_skb 10, frags 10, pkt_size 9014, delay 0, ratep 1000000/threads,
// burst 2, dst, dst_mac, flag IPDST_RND, dst_min, dst_max, flows 1024,
// flowlen 8. The seed's "config 1" is left out: mainline pktgen has no such
// parameter (see PktgenDevice.Config).
func SeedConfig(iface string, threads int, o SeedOptions) PktgenConfig {
	if threads < 1 {
		threads = 1
	}
	if o.PktSize == 0 {
		o.PktSize = 9014
	}
	if o.Rate == 0 {
		o.Rate = 1000000
	}
	if o.DstMin == nil {
		o.DstMin = net.IPv4(198, 18, 0, 1)
	}
	if o.DstMax == nil {
		o.DstMax = net.IPv4(198, 18, 0, 254)
	}
	if o.Frags == 0 {
		o.Frags = 10
	}
	if o.Clone == 0 {
		o.Clone = 10
	}
	var c PktgenConfig
	for t := 0; t < threads; t++ {
		d := PktgenDevice{
			Thread:   t,
			Iface:    iface,
			Count:    o.Packets / uint64(threads),
			CloneSKB: o.Clone,
			Frags:    o.Frags,
			PktSize:  o.PktSize,
			RateP:    max(o.Rate/uint64(threads), 1),
			Burst:    2,
			Dst:      o.DstMin,
			DstMAC:   o.DstMAC,
			Flags:    []string{"QUEUE_MAP_CPU", "IPDST_RND"},
			DstMin:   o.DstMin,
			DstMax:   o.DstMax,
			Flows:    1024,
			FlowLen:  8,
		}
		if o.Packets > 0 && d.Count == 0 {
			d.Count = 1 // fewer packets than threads: never "forever"
		}
		c.Devices = append(c.Devices, d)
	}
	return c
}

// Validate reports the first problem with c as a one-line error.
func (c PktgenConfig) Validate() error {
	if len(c.Devices) == 0 {
		return errors.New("pktgen: no devices")
	}
	seen := map[string]bool{}
	for _, d := range c.Devices {
		if err := d.validate(); err != nil {
			return err
		}
		if seen[d.name()] {
			return fmt.Errorf("pktgen: device %s listed twice", d.name())
		}
		seen[d.name()] = true
	}
	return nil
}

func (d PktgenDevice) validate() error {
	word := func(s string) bool { return s != "" && !strings.ContainsAny(s, " \t\r\n\"=@/") }
	switch {
	case d.Thread < 0 || d.Thread > 4095:
		return fmt.Errorf("pktgen: thread %d out of range 0..4095", d.Thread)
	case !word(d.Iface) || len(d.Iface) >= 16:
		return fmt.Errorf("pktgen: bad interface name %q", d.Iface)
	case d.CloneSKB < 0, d.Frags < 0, d.PktSize < 0, d.Burst < 0, d.QueueMapMin < 0, d.QueueMapMax < 0, d.Flows < 0, d.FlowLen < 0:
		return fmt.Errorf("pktgen: %s: negative parameter", d.name())
	case d.Delay < 0:
		return fmt.Errorf("pktgen: %s: negative delay %v", d.name(), d.Delay)
	case d.RateP > 0 && d.RateMbps > 0:
		return fmt.Errorf("pktgen: %s: ratep and rate both set (each sets the delay)", d.name())
	case d.DstMAC != nil && len(d.DstMAC) != 6:
		return fmt.Errorf("pktgen: %s: destination MAC %s is not 6 bytes", d.name(), d.DstMAC)
	case d.XmitMode != "" && !word(d.XmitMode):
		return fmt.Errorf("pktgen: %s: bad xmit_mode %q", d.name(), d.XmitMode)
	}
	for _, ip := range []net.IP{d.Dst, d.DstMin, d.DstMax, d.SrcMin, d.SrcMax} {
		if ip != nil && ip.To4() == nil {
			return fmt.Errorf("pktgen: %s: %s is not an IPv4 address", d.name(), ip)
		}
	}
	for _, f := range d.Flags {
		if !word(f) || len(f) > 31 {
			return fmt.Errorf("pktgen: %s: bad flag %q", d.name(), f)
		}
	}
	return nil
}

// commands lists the device writes, in the order of the seed's script.
func (d PktgenDevice) commands() []string {
	var cmds []string
	add := func(format string, a ...any) { cmds = append(cmds, fmt.Sprintf(format, a...)) }
	add("count %d", d.Count)
	if d.XmitMode != "" {
		// Before clone_skb and burst: the kernel checks them against it.
		add("xmit_mode %s", d.XmitMode)
	}
	cmds = addSet(cmds, "clone_skb", d.CloneSKB)
	cmds = addSet(cmds, "frags", d.Frags)
	cmds = addSet(cmds, "pkt_size", d.PktSize)
	cmds = addSet(cmds, "delay", d.Delay.Nanoseconds())
	cmds = addSet(cmds, "ratep", d.RateP)
	cmds = addSet(cmds, "rate", d.RateMbps)
	cmds = addSet(cmds, "burst", d.Burst)
	if d.Dst != nil {
		add("dst %s", d.Dst.To4())
	}
	if d.DstMAC != nil {
		add("dst_mac %s", d.DstMAC)
	}
	for _, f := range d.Flags {
		add("flag %s", f)
	}
	if d.DstMin != nil {
		add("dst_min %s", d.DstMin.To4())
	}
	if d.DstMax != nil {
		add("dst_max %s", d.DstMax.To4())
	}
	if d.SrcMin != nil {
		add("src_min %s", d.SrcMin.To4())
	}
	if d.SrcMax != nil {
		add("src_max %s", d.SrcMax.To4())
	}
	cmds = addSet(cmds, "udp_src_min", d.UDPSrcMin)
	cmds = addSet(cmds, "udp_src_max", d.UDPSrcMax)
	cmds = addSet(cmds, "udp_dst_min", d.UDPDstMin)
	cmds = addSet(cmds, "udp_dst_max", d.UDPDstMax)
	if d.QueueMapMin > 0 || d.QueueMapMax > 0 {
		add("queue_map_min %d", d.QueueMapMin)
		add("queue_map_max %d", d.QueueMapMax)
	}
	if d.Config {
		add("config 1")
	}
	cmds = addSet(cmds, "flows", d.Flows)
	cmds = addSet(cmds, "flowlen", d.FlowLen)
	return cmds
}

// addSet appends the command "name v" to cmds when v is set: zero (and,
// for signed fields, a negative value) leaves the kernel's default.
func addSet[T int | int64 | uint16 | uint64](cmds []string, name string, v T) []string {
	if v > 0 {
		cmds = append(cmds, fmt.Sprintf("%s %d", name, v))
	}
	return cmds
}

// Result line forms, from show_results() in net/core/pktgen.c:
//
//	"OK: %llu(c%llu+d%llu) usec, %llu (%dbyte,%dfrags)\n"
//	"  %llupps %lluMb/sec (%llubps) errors: %llu"
var (
	resultOKRe   = regexp.MustCompile(`^OK: (\d+)\(c(\d+)\+d(\d+)\) usec, (\d+) \((\d+)byte,(\d+)frags\)`)
	resultRateRe = regexp.MustCompile(`^\s*(\d+)pps (\d+) ?Mb/sec \((\d+)bps\) errors: (\d+)`)
	ifnameRe     = regexp.MustCompile(`ifname: (\S+)`)
	// The Current section, from pktgen_if_show():
	//	"     pkts-sofar: %llu  errors: %llu\n"
	currentRe = regexp.MustCompile(`(?m)^\s*pkts-sofar: (\d+)\s+errors: (\d+)`)
)

// resultStarting is the Result pktgen_run() sets on a device it starts;
// show_results() replaces it when the device stops.
const resultStarting = "Starting"

// errNotFinal marks ParsePktgenResult's error for a device still
// "Starting", whose result holds the counters so far.
var errNotFinal = errors.New("the device has not stopped")

// maxPktgenFile caps what ParsePktgenResult looks at: a device file is
// under 2 KB.
const maxPktgenFile = 64 << 10

// resultLine returns the text after "Result: " in a pktgen file, up to the
// end of its line, and the rest of the file after it.
func resultLine(s string) (line, rest string, ok bool) {
	i := strings.Index(s, "Result: ")
	if i < 0 {
		return "", "", false
	}
	s = s[i+len("Result: "):]
	if j := strings.IndexByte(s, '\n'); j >= 0 {
		return strings.TrimSpace(s[:j]), s[j+1:], true
	}
	return strings.TrimSpace(s), "", true
}

// ParsePktgenResult parses the content of a /proc/net/pktgen device file
// (or just its Result lines) after a run. Thread and Iface come from the
// Params section's "ifname: IFACE@N" when it is there. A device whose
// Result still reads "Starting" has no final result: that is an error,
// but the returned result is Partial, with the Current section's counters,
// when that section is there.
func ParsePktgenResult(s string) (PktgenThreadResult, error) {
	if len(s) > maxPktgenFile {
		return PktgenThreadResult{}, fmt.Errorf("pktgen result: %d bytes, more than a device file holds", len(s))
	}
	r := PktgenThreadResult{Raw: s}
	if m := ifnameRe.FindStringSubmatch(s); m != nil {
		name := m[1]
		if at := strings.LastIndexByte(name, '@'); at >= 0 {
			if n, err := strconv.Atoi(name[at+1:]); err == nil {
				r.Thread = n
			}
			name = name[:at]
		}
		r.Iface = name
	}
	line, rest, ok := resultLine(s)
	if !ok {
		return r, errors.New("pktgen result: no Result line")
	}
	if line == "Idle" {
		return r, errors.New("pktgen result: Idle (the device has not run)")
	}
	if line == resultStarting {
		err := fmt.Errorf("pktgen result: not a run result: %q", line)
		if c := currentRe.FindStringSubmatch(s); c != nil {
			sent, serr := strconv.ParseUint(c[1], 10, 64)
			errs, eerr := strconv.ParseUint(c[2], 10, 64)
			if serr == nil && eerr == nil {
				r.Sent, r.Errors, r.Partial = sent, errs, true
				err = fmt.Errorf("%w: %w", err, errNotFinal)
			}
		}
		return r, err
	}
	m := resultOKRe.FindStringSubmatch(line)
	if m == nil {
		return r, fmt.Errorf("pktgen result: not a run result: %q", line)
	}
	// The rate is on the next line (after "\n  ").
	next := rest
	if j := strings.IndexByte(next, '\n'); j >= 0 {
		next = next[:j]
	}
	rm := resultRateRe.FindStringSubmatch(next)
	if rm == nil {
		return r, fmt.Errorf("pktgen result: no rate line after %q", line)
	}
	var err error
	u := func(s string) uint64 {
		v, perr := strconv.ParseUint(s, 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("pktgen result: %q: %w", s, perr)
		}
		return v
	}
	r.Sent = u(m[4])
	pps := u(rm[1])
	bps := u(rm[3])
	r.Errors = u(rm[4])
	if err != nil {
		return r, err
	}
	r.PPS = float64(pps)
	r.Mbps = float64(bps) / 1e6
	return r, nil
}

// sum fills the totals of r from its threads.
func (r *PktgenResult) sum() {
	r.Sent, r.Errors, r.PPS, r.Mbps, r.Partial = 0, 0, 0, 0, false
	for _, t := range r.Threads {
		r.Partial = r.Partial || t.Partial
		r.Sent += t.Sent
		r.Errors += t.Errors
		r.PPS += t.PPS
		r.Mbps += t.Mbps
	}
}
