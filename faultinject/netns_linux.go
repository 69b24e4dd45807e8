package faultinject

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"txtimeout/drivers"
	"txtimeout/internal/nsexec"
)

// nsHandle opens the namespace named by o.NetNS, or returns a closed
// handle (-1) meaning "the caller's namespace".
func nsHandle(o Options) (netns.NsHandle, error) {
	if o.NetNS == "" {
		return netns.None(), nil
	}
	h, err := netns.GetFromPath(o.NetNS)
	if err != nil {
		return netns.None(), fmt.Errorf("network namespace %s: %w", o.NetNS, err)
	}
	return h, nil
}

// nsFD is the value go-tc and mdlayher/netlink take for a namespace: 0
// means the caller's.
func nsFD(h netns.NsHandle) int {
	if !h.IsOpen() {
		return 0
	}
	return int(h)
}

// linkHandle returns a vishvananda/netlink handle in o's namespace.
func linkHandle(o Options) (*netlink.Handle, error) {
	ns, err := nsHandle(o)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	if !ns.IsOpen() {
		return netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	return netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
}

// inNetNS runs fn on an OS thread that is in o's namespace, so that
// sockets fn opens (AF_PACKET, generic netlink) belong to it. Sockets keep
// their namespace after the thread leaves it.
func inNetNS(o Options, fn func() error) error { return nsexec.Do(o.NetNS, fn) }

// ifaceInfo is what the safety checks learned about an interface.
type ifaceInfo struct {
	Name  string
	Index int
	MAC   net.HardwareAddr
	MTU   int
}

func (i ifaceInfo) netInterface() *net.Interface {
	return &net.Interface{Index: i.Index, Name: i.Name, HardwareAddr: i.MAC, MTU: i.MTU}
}

// checkIface refuses, with one line, an interface that must not be
// touched: it does not exist, is down, is loopback, carries a default
// route (unless allowed), or is a virtual device whose driver has no
// ndo_tx_timeout (unless allowed).
func checkIface(o Options, name string) (ifaceInfo, error) {
	if err := validIfaceName(name); err != nil {
		return ifaceInfo{}, err
	}
	h, err := linkHandle(o)
	if err != nil {
		return ifaceInfo{}, err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return ifaceInfo{}, fmt.Errorf("%w %s: no such interface", ErrUnsafeInterface, name)
		}
		return ifaceInfo{}, fmt.Errorf("looking up %s: %w", name, err)
	}
	a := l.Attrs()
	info := ifaceInfo{Name: a.Name, Index: a.Index, MAC: a.HardwareAddr, MTU: a.MTU}
	if a.Flags&net.FlagLoopback != 0 {
		return info, fmt.Errorf("%w %s: it is a loopback interface", ErrUnsafeInterface, name)
	}
	if a.Flags&net.FlagUp == 0 {
		return info, fmt.Errorf("%w %s: it is down (ip link set %s up)", ErrUnsafeInterface, name, name)
	}
	if !o.AllowDefaultRoute {
		def, err := carriesDefaultRoute(h, a.Index)
		if err != nil {
			return info, err
		}
		if def {
			return info, fmt.Errorf("%w %s: it carries a default route, probably the management link (if it is the DUT link, allow it: -allow-default-route, Options.AllowDefaultRoute)", ErrUnsafeInterface, name)
		}
	}
	if !o.AllowNoTxTimeout {
		if kind, none := noTxTimeoutKind(l.Type()); none {
			return info, fmt.Errorf("%w %s: it has no tx-timeout handler (%s), so the kernel never arms its TX watchdog (to exercise the injector itself, allow it: -allow-no-handler, Options.AllowNoTxTimeout)", ErrUnsafeInterface, name, kind)
		}
	}
	return info, nil
}

// noTxTimeoutKind reports whether a link of this kind (IFLA_INFO_KIND, as
// vishvananda/netlink names it in Link.Type) has no tx-timeout handler,
// with the kernel's name of the kind. The kernel arms the TX watchdog only
// for devices that have one (net/sched/sch_generic.c, dev_watchdog), so a
// stalled injection there can never fire it. Physical NICs have no kind
// ("device"); loopback is refused on its own.
func noTxTimeoutKind(linkType string) (string, bool) {
	d, ok := drivers.LookupKind(linkType)
	if !ok || d.TxTimeout {
		return "", false
	}
	return d.Kinds[0], true
}

// CarriesDefaultRoute reports whether iface (in o's namespace) carries a
// default route, IPv4 or IPv6, in any table: the sign of a management
// link, which tools that flood an interface (pktgen) must not pick by
// accident.
func CarriesDefaultRoute(iface string, o Options) (bool, error) {
	if err := validIfaceName(iface); err != nil {
		return false, err
	}
	h, err := linkHandle(o)
	if err != nil {
		return false, err
	}
	defer h.Close()
	l, err := h.LinkByName(iface)
	if err != nil {
		return false, fmt.Errorf("looking up %s: %w", iface, err)
	}
	return carriesDefaultRoute(h, l.Attrs().Index)
}

// carriesDefaultRoute reports whether any routing table holds a default
// route (IPv4 or IPv6) through ifindex.
func carriesDefaultRoute(h *netlink.Handle, ifindex int) (bool, error) {
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return false, fmt.Errorf("listing routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if r.Type != unix.RTN_UNICAST && r.Type != 0 {
			continue
		}
		if r.LinkIndex == ifindex {
			return true, nil
		}
		for _, nh := range r.MultiPath {
			if nh.LinkIndex == ifindex {
				return true, nil
			}
		}
	}
	return false, nil
}
