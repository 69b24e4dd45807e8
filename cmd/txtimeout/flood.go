package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"time"

	"txtimeout/faultinject"
	"txtimeout/traffic"
)

func init() {
	register(command{
		name:    "flood",
		summary: "flood a destination with oversized ICMP echo requests, bounded by count and time",
		run:     runFlood,
	})
}

// floodSummary is the -json output of flood icmp.
type floodSummary struct {
	Dst      string           `json:"dst"`
	Size     int              `json:"size"`
	Senders  int              `json:"senders"`
	Sent     int64            `json:"sent"`
	Received int64            `json:"received"`
	Errors   map[string]int64 `json:"errors"`
	Seconds  float64          `json:"seconds"`
	PPS      float64          `json:"pps"`
}

// prefixTrimmed drops a package's own "name: " prefix from an error that
// main prints after "txtimeout: name: ", keeping it for errors.Is.
type prefixTrimmed struct {
	err    error
	prefix string
}

func (e prefixTrimmed) Error() string { return strings.TrimPrefix(e.err.Error(), e.prefix) }
func (e prefixTrimmed) Unwrap() error { return e.err }

func runFlood(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Fprintln(stderr, "usage: txtimeout flood icmp -dst IP [flags]  (run 'txtimeout flood icmp -h')")
			return nil
		}
		return usagef("want a kind: txtimeout flood icmp -dst IP [flags]")
	}
	if args[0] != "icmp" {
		return usagef("unknown kind %q: icmp is the only one", args[0])
	}
	fs := newFlagSet("flood icmp", stderr)
	dst := fs.String("dst", "", "destination IPv4 `address` (required)")
	iface := fs.String("iface", "", "bind the sockets to this `device` (SO_BINDTODEVICE)")
	size := fs.Int("size", traffic.DefaultSize, "ICMP payload `bytes` (1..65507); above the MTU, each request is several fragments")
	interval := fs.Duration("interval", 100*time.Millisecond, "gap between requests per sender; 0 = as fast as possible")
	count := fs.Int("count", 0, "stop after this many requests over all senders; 0 = no count bound")
	dur := fs.Duration("for", 0, "stop after this long; 0 = no time bound (then -count is required)")
	senders := fs.Int("senders", 1, "parallel sockets; one socket cannot fill a 256-entry ring")
	unpriv := fs.Bool("unprivileged", false, "use ICMP datagram sockets even as root (needs net.ipv4.ping_group_range)")
	netnsPath := fs.String("netns", "", "open the sockets in this network namespace `file` (e.g. /run/netns/NAME)")
	jsonOut := fs.Bool("json", false, "print the summary as JSON")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *dst == "" {
		return usagef("-dst is required")
	}
	ip := net.ParseIP(*dst)
	if ip == nil {
		return usagef("-dst %q is not an IP address", *dst)
	}
	if *size == 0 {
		return usagef("-size must be at least 1")
	}
	// Every flood stops by itself: a time bound beyond the one Flood puts
	// on a count-only flood is refused rather than trusted.
	if *dur > traffic.MaxUnboundedTime {
		return usagef("-for %v is longer than %v", *dur, traffic.MaxUnboundedTime)
	}
	c := traffic.FloodConfig{
		Dst: ip, Iface: *iface, Size: *size, Interval: *interval, Count: *count, For: *dur,
		Senders: *senders, Unprivileged: *unpriv, NetNS: *netnsPath,
	}
	if c.Senders == 0 {
		return usagef("-senders must be at least 1")
	}
	if err := c.Validate(); err != nil {
		return usagef("%s", strings.TrimPrefix(err.Error(), "flood: "))
	}
	if c.Iface != "" {
		release, err := lockIface(c.Iface, faultinject.Options{NetNS: c.NetNS}, stderr)
		if err != nil {
			return err
		}
		defer release()
	}
	c.Progress = func(s traffic.FloodStats) {
		if s.Elapsed < 2*time.Second {
			return
		}
		fmt.Fprintf(stderr, "flood icmp: %4.0fs sent %d received %d errors %d (%.0f pps)\n",
			s.Elapsed.Seconds(), s.Sent, s.Received, floodErrTotal(s.Errors), s.PPS)
	}
	st, err := traffic.Flood(ctx, c)
	if err != nil {
		return prefixTrimmed{err, "flood: "}
	}
	if *jsonOut {
		sum := floodSummary{
			Dst: ip.String(), Size: c.Size, Senders: c.Senders,
			Sent: st.Sent, Received: st.Received, Errors: st.Errors,
			Seconds: st.Elapsed.Seconds(), PPS: st.PPS,
		}
		if sum.Errors == nil {
			sum.Errors = map[string]int64{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	fmt.Fprintf(stdout, "flood icmp %s: sent %d received %d in %.2fs (%.0f pps), errors: %s\n",
		ip, st.Sent, st.Received, st.Elapsed.Seconds(), st.PPS, floodErrString(st.Errors))
	return nil
}

func floodErrTotal(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func floodErrString(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
