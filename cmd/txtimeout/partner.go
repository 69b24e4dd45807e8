package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"txtimeout/faultinject"
	"txtimeout/rig/partner"
)

func init() {
	register(command{
		name:    "partner",
		summary: "be the DUT's link partner on a hardware rig: answer ARP and ping, PAUSE-flood on a stall frame",
		run:     runPartner,
	})
}

const partnerUsage = `usage: txtimeout partner -iface IFACE [-ip ADDR/PREFIX] [-for-max D] [-state-dir DIR] [-allow-default-route]

Runs on the partner machine (or partner port) of a hardware rig, until
SIGINT or SIGTERM or until IFACE goes away. It answers ARP and ICMP echo
(fragmented too) for ADDR over AF_PACKET on IFACE, and obeys the suite's
in-band stall frame (ethertype 0x88B5, sent by "txtimeout inject stall" and
the PartnerStall scenarios) by flooding 802.3x PAUSE frames (quanta 0xFFFF)
at the DUT for the time asked, at most -for-max; a resume frame ends the
flood early. The DUT must honour PAUSE (ethtool -A DUT rx on). In a network
namespace, run it with "ip netns exec NS txtimeout partner ...".

ADDR defaults to IFACE's own IPv4 address, which the kernel answers for
too (replies come twice): better leave IFACE without an address and give
the DUT's partner address with -ip.`

func runPartner(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("partner", stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, partnerUsage); fs.PrintDefaults() }
	iface := fs.String("iface", "", "the port facing the DUT (required)")
	ipFlag := fs.String("ip", "", "the address to answer for, ADDR or ADDR/PREFIX (default: IFACE's own IPv4 address)")
	forMax := fs.Duration("for-max", faultinject.MaxStall, "longest stall obeyed; a longer request is obeyed for this long")
	stateDir := fs.String("state-dir", faultinject.DefaultStateDir, "directory of the PAUSE flood's crash-recovery state files")
	allowDefault := fs.Bool("allow-default-route", false, "allow an IFACE that carries a default route (normally the management link)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *iface == "" {
		return usagef("-iface is required")
	}
	if *forMax <= 0 || *forMax > faultinject.MaxStall {
		return usagef("-for-max %v out of range (0..%v]", *forMax, faultinject.MaxStall)
	}
	var want netip.Addr
	if *ipFlag != "" {
		a, err := parseUnicastIPv4(*ipFlag)
		if err != nil {
			return usagef("-ip: %v", err)
		}
		want = a
	}

	logf := progressLogger(stdout)
	l, err := partner.OpenPacket(*iface, logf)
	if err != nil {
		return err
	}
	defer l.Close()
	ifi := l.Interface()
	own, err := ownIPv4(ifi)
	if err != nil {
		return err
	}
	switch {
	case !want.IsValid() && len(own) == 0:
		return fmt.Errorf("%s has no IPv4 address to answer for: give one with -ip ADDR/PREFIX", ifi.Name)
	case !want.IsValid():
		want = own[0]
	}
	if slices.Contains(own, want) {
		logf("warning: %s is %s's own address, which the kernel answers for too: the DUT gets every ARP and echo reply twice (remove it from %s and pass -ip)", want, ifi.Name, ifi.Name)
	}
	o := faultinject.Options{StateDir: *stateDir, AllowDefaultRoute: *allowDefault}
	if err := checkPartnerPort(ifi.Name, o); err != nil {
		return err
	}
	p, err := partner.New(partner.Config{MAC: ifi.HardwareAddr, IP: want.AsSlice(), MTU: ifi.MTU, MaxStall: *forMax, Logf: logf})
	if err != nil {
		return err
	}
	logf("partner on %s (%s, MTU %d) answering ARP and ping for %s; a stall frame floods PAUSE for at most %v; SIGINT or SIGTERM stops",
		ifi.Name, ifi.HardwareAddr, ifi.MTU, want, *forMax)
	err = p.ServePacket(ctx, l, o)
	s := p.Stats()
	logf("partner stopped: %d frames in, %d out (%d dropped); %d ARP, %d echo requests, %d replies, %d control frames, %d stalls, %d malformed",
		s.RxFrames, s.TxFrames, s.TxDropped, s.ARP, s.EchoRequests, s.EchoReplies, s.Ctrl, s.Stalls, s.Malformed)
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return nil // a signal: the way to stop it
	case errors.Is(err, partner.ErrInterfaceGone):
		return fmt.Errorf("%s went away", ifi.Name)
	}
	return err
}

// parseUnicastIPv4 parses ADDR or ADDR/PREFIX into a unicast IPv4 address.
func parseUnicastIPv4(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if strings.Contains(s, "/") {
		var p netip.Prefix
		p, err = netip.ParsePrefix(s)
		a = p.Addr()
	}
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address or ADDR/PREFIX", s)
	}
	if !a.Is4() || a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || a.IsLoopback() {
		return netip.Addr{}, fmt.Errorf("%s is not a unicast IPv4 address", a)
	}
	return a, nil
}

// ownIPv4 are the interface's IPv4 addresses.
func ownIPv4(ifi *net.Interface) ([]netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", ifi.Name, err)
	}
	var v4 []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok && n.IP.To4() != nil {
				v4 = append(v4, ip)
			}
		}
	}
	return v4, nil
}

// checkPartnerPort refuses, before serving, a port that a stall's PAUSE
// flood would refuse later: one that carries the default route, or one
// with an earlier run's state.
func checkPartnerPort(iface string, o faultinject.Options) error {
	def, err := faultinject.CarriesDefaultRoute(iface, o)
	if err != nil {
		return err
	}
	if def && !o.AllowDefaultRoute {
		return fmt.Errorf("%w %s: it carries a default route, probably the management link (if it is the DUT link, allow it: -allow-default-route)", faultinject.ErrUnsafeInterface, iface)
	}
	stale, err := faultinject.StaleState(o)
	if err != nil {
		return err
	}
	if slices.Contains(stale, iface) {
		return fmt.Errorf("%w: %s has a state file in %s: another partner floods it, or an earlier run died (then run 'txtimeout cleanup -iface %s -state-dir %s')", faultinject.ErrStaleState, iface, o.StateDir, iface, o.StateDir)
	}
	return nil
}

// progressLogger prints one timestamped line per call on w.
func progressLogger(w io.Writer) func(format string, args ...any) {
	var mu sync.Mutex
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
}
