package faultinject

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The qdisc dump and the re-creation of a saved root qdisc speak rtnetlink
// directly: go-tc decodes options into typed structs and fails on
// attributes it does not know, while a faithful restore needs the options
// exactly as the kernel dumped them.

const (
	tcaKind    = 1
	tcaOptions = 2
	tcaStats2  = 7
	tcaStab    = 8

	tcaStatsBasic = 1
	tcaStatsQueue = 3

	tcHRoot    = 0xFFFFFFFF
	tcHIngress = 0xFFFFFFF1

	tcmsgLen = 20
)

// qdiscInfo is one qdisc as the kernel dumps it.
type qdiscInfo struct {
	Ifindex int
	Handle  uint32
	Parent  uint32
	Kind    string
	Options []byte
	HasStab bool
	Stats   QdiscStats
}

func tcmsg(ifindex int, handle, parent uint32) []byte {
	b := make([]byte, tcmsgLen)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:8], uint32(int32(ifindex)))
	binary.NativeEndian.PutUint32(b[8:12], handle)
	binary.NativeEndian.PutUint32(b[12:16], parent)
	return b
}

func dialRoute(o Options) (*netlink.Conn, error) {
	ns, err := nsHandle(o)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: nsFD(ns)})
	if err != nil {
		return nil, fmt.Errorf("rtnetlink: %w", err)
	}
	return c, nil
}

// dumpQdiscs returns the visible qdiscs of ifindex (all interfaces when 0).
func dumpQdiscs(o Options, ifindex int) ([]qdiscInfo, error) {
	c, err := dialRoute(o)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETQDISC, Flags: netlink.Request | netlink.Dump},
		Data:   tcmsg(0, 0, 0),
	})
	if err != nil {
		return nil, fmt.Errorf("dumping qdiscs: %w", err)
	}
	var out []qdiscInfo
	for _, m := range msgs {
		q, err := parseQdiscMsg(m.Data)
		if err != nil {
			return nil, err
		}
		if ifindex == 0 || q.Ifindex == ifindex {
			out = append(out, q)
		}
	}
	return out, nil
}

// parseQdiscMsg decodes an RTM_NEWQDISC message body.
func parseQdiscMsg(b []byte) (qdiscInfo, error) {
	if len(b) < tcmsgLen {
		return qdiscInfo{}, fmt.Errorf("qdisc message too short (%d bytes)", len(b))
	}
	q := qdiscInfo{
		Ifindex: int(int32(binary.NativeEndian.Uint32(b[4:8]))),
		Handle:  binary.NativeEndian.Uint32(b[8:12]),
		Parent:  binary.NativeEndian.Uint32(b[12:16]),
	}
	ad, err := netlink.NewAttributeDecoder(b[tcmsgLen:])
	if err != nil {
		return qdiscInfo{}, fmt.Errorf("qdisc attributes: %w", err)
	}
	for ad.Next() {
		switch ad.Type() {
		case tcaKind:
			q.Kind = ad.String()
		case tcaOptions:
			q.Options = append([]byte(nil), ad.Bytes()...)
		case tcaStab:
			q.HasStab = true
		case tcaStats2:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					v := nad.Bytes()
					switch nad.Type() {
					case tcaStatsBasic: // struct gnet_stats_basic: u64 bytes, u32 packets
						if len(v) >= 12 {
							q.Stats.Bytes = binary.NativeEndian.Uint64(v[0:8])
							q.Stats.Packets = uint64(binary.NativeEndian.Uint32(v[8:12]))
						}
					case tcaStatsQueue: // struct gnet_stats_queue
						if len(v) >= 20 {
							q.Stats.QLen = binary.NativeEndian.Uint32(v[0:4])
							q.Stats.Backlog = binary.NativeEndian.Uint32(v[4:8])
							q.Stats.Drops = binary.NativeEndian.Uint32(v[8:12])
							q.Stats.Requeues = binary.NativeEndian.Uint32(v[12:16])
							q.Stats.Overlimits = binary.NativeEndian.Uint32(v[16:20])
						}
					}
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return qdiscInfo{}, fmt.Errorf("qdisc attributes: %w", err)
	}
	q.Stats.Kind, q.Stats.Handle = q.Kind, q.Handle
	return q, nil
}

// rootQdisc returns the root qdisc of ifindex among qs.
func rootQdisc(qs []qdiscInfo) (qdiscInfo, bool) {
	for _, q := range qs {
		if q.Parent == tcHRoot {
			return q, true
		}
	}
	return qdiscInfo{}, false
}

// restorableKinds are classless qdiscs whose dumped options are accepted
// as they are when the qdisc is created again, and which carry no filters
// or classes that would be lost.
var restorableKinds = map[string]bool{
	"pfifo": true, "bfifo": true, "pfifo_head_drop": true, "pfifo_fast": true,
	"tbf": true, "sfq": true, "fq_codel": true, "codel": true, "fq": true,
	"pie": true, "fq_pie": true, "cake": true, "hhf": true,
}

// classifyRoot decides what a netem injection must save: nil for the
// device's default qdisc (handle 0, it comes back by itself when the root
// qdisc is deleted), a savedQdisc for an explicitly configured one that can
// be re-created, or ErrNotRestorable.
func classifyRoot(iface string, qs []qdiscInfo) (*savedQdisc, error) {
	root, ok := rootQdisc(qs)
	if !ok {
		return nil, nil
	}
	if root.Handle == 0 {
		// A default root (mq, fq_codel, pfifo_fast, noqueue) comes back
		// by itself, but only with default children: an explicitly
		// configured child (it has a handle) would be lost.
		for _, q := range qs {
			if q.Parent != tcHRoot && q.Parent != tcHIngress && q.Handle != 0 {
				return nil, fmt.Errorf("%w: %s's default %s root qdisc has an explicitly configured child %s %s; nothing changed",
					ErrNotRestorable, iface, root.Kind, q.Kind, fmtHandle(q.Handle))
			}
		}
		return nil, nil
	}
	if IsProjectHandle(root.Handle) {
		return nil, fmt.Errorf("%w: %s already has this project's %s qdisc %s (run 'txtimeout cleanup -iface %s')",
			ErrStaleState, iface, root.Kind, fmtHandle(root.Handle), iface)
	}
	if !restorableKinds[root.Kind] {
		return nil, fmt.Errorf("%w: %s has a %s root qdisc %s, which cannot be re-created faithfully; nothing changed",
			ErrNotRestorable, iface, root.Kind, fmtHandle(root.Handle))
	}
	if root.HasStab {
		return nil, fmt.Errorf("%w: %s's root qdisc %s %s has a size table; nothing changed",
			ErrNotRestorable, iface, root.Kind, fmtHandle(root.Handle))
	}
	for _, q := range qs {
		if q.Parent != tcHRoot && q.Parent != tcHIngress && q.Parent>>16 == root.Handle>>16 {
			return nil, fmt.Errorf("%w: %s's root qdisc %s %s has a child qdisc %s %s; nothing changed",
				ErrNotRestorable, iface, root.Kind, fmtHandle(root.Handle), q.Kind, fmtHandle(q.Handle))
		}
	}
	return &savedQdisc{Kind: root.Kind, Handle: root.Handle, Options: root.Options}, nil
}

// replaceRoot makes s the root qdisc of ifindex (replacing whatever is
// there) with the options exactly as they were dumped.
func replaceRoot(o Options, ifindex int, s *savedQdisc) error {
	c, err := dialRoute(o)
	if err != nil {
		return err
	}
	defer c.Close()
	ae := netlink.NewAttributeEncoder()
	ae.String(tcaKind, s.Kind)
	if s.Options != nil {
		ae.Bytes(tcaOptions, s.Options)
	}
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	_, err = c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_NEWQDISC, Flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Replace},
		Data:   append(tcmsg(ifindex, s.Handle, tcHRoot), attrs...),
	})
	if err != nil {
		return fmt.Errorf("re-creating root qdisc %s: %w", s, err)
	}
	return nil
}

// deleteRoot deletes the root qdisc of ifindex if its handle is handle.
func deleteRoot(o Options, ifindex int, handle uint32) error {
	c, err := dialRoute(o)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_DELQDISC, Flags: netlink.Request | netlink.Acknowledge},
		Data:   tcmsg(ifindex, handle, tcHRoot),
	})
	if err != nil {
		return fmt.Errorf("deleting root qdisc %s: %w", fmtHandle(handle), err)
	}
	return nil
}

// netemOptions is the part of a dumped netem TCA_OPTIONS this package
// checks: struct tc_netem_qopt then nested attributes.
type netemOptions struct {
	Latency, Limit, Loss, Gap, Duplicate, Jitter uint32
	Latency64, Jitter64                          *int64
}

const (
	tcaNetemLatency64 = 10
	tcaNetemJitter64  = 11
	netemQoptLen      = 24
)

func parseNetemOptions(b []byte) (netemOptions, error) {
	if len(b) < netemQoptLen {
		return netemOptions{}, fmt.Errorf("netem options too short (%d bytes)", len(b))
	}
	var n netemOptions
	for i, p := range []*uint32{&n.Latency, &n.Limit, &n.Loss, &n.Gap, &n.Duplicate, &n.Jitter} {
		*p = binary.NativeEndian.Uint32(b[i*4 : i*4+4])
	}
	if len(b) == netemQoptLen {
		return n, nil
	}
	ad, err := netlink.NewAttributeDecoder(b[netemQoptLen:])
	if err != nil {
		return netemOptions{}, fmt.Errorf("netem attributes: %w", err)
	}
	for ad.Next() {
		switch ad.Type() {
		case tcaNetemLatency64, tcaNetemJitter64:
			v := ad.Bytes()
			if len(v) != 8 {
				return netemOptions{}, fmt.Errorf("netem attribute %d has %d bytes, want 8", ad.Type(), len(v))
			}
			x := int64(binary.NativeEndian.Uint64(v))
			if ad.Type() == tcaNetemLatency64 {
				n.Latency64 = &x
			} else {
				n.Jitter64 = &x
			}
		}
	}
	if err := ad.Err(); err != nil {
		return netemOptions{}, fmt.Errorf("netem attributes: %w", err)
	}
	return n, nil
}

// isErrno reports whether err carries errno e (mdlayher/netlink wraps
// kernel errors in *netlink.OpError).
func isErrno(err error, e unix.Errno) bool {
	return errors.Is(err, e)
}
