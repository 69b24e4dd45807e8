package traffic

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// vethPair is a veth pair between two network namespaces that the test
// owns: A (ifA, addrA) and B (ifB, addrB), addresses from 198.18.0.0/15.
type vethPair struct {
	nsA, nsB     string // namespace file paths
	ifA, ifB     string
	addrA, addrB net.IP
}

// skipUnlessRoot skips tb when not root, naming the fix.
func skipUnlessRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("skipping: needs root to create network namespaces and veth pairs (run as root)")
	}
}

// newNamedNS creates a network namespace named txto-<random> without
// leaving the calling thread in it, and deletes it at cleanup.
func newNamedNS(tb testing.TB) (string, netns.NsHandle) {
	tb.Helper()
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		tb.Fatal(err)
	}
	name := "txto-" + hex.EncodeToString(suffix[:])
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		tb.Fatalf("get current netns: %v", err)
	}
	defer orig.Close()
	h, err := netns.NewNamed(name)
	// NewNamed leaves the thread in the new namespace: go back first.
	if serr := netns.Set(orig); serr != nil {
		tb.Fatalf("return to original netns: %v", serr)
	}
	if err != nil {
		tb.Fatalf("create netns %s: %v", name, err)
	}
	tb.Cleanup(func() {
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			tb.Errorf("delete netns %s: %v", name, err)
		}
	})
	return filepath.Join("/var/run/netns", name), h
}

// newVethPair creates two namespaces joined by a veth pair, both ends up
// with addresses 198.18.X.Y/30. Nothing is done in the caller's namespace.
func newVethPair(tb testing.TB) *vethPair {
	tb.Helper()
	skipUnlessRoot(tb)
	pathA, hA := newNamedNS(tb)
	pathB, hB := newNamedNS(tb)
	var r [2]byte
	if _, err := rand.Read(r[:]); err != nil {
		tb.Fatal(err)
	}
	// A random /30 in 198.18.0.0/15: 2^15 subnets of 4 addresses.
	n := (uint32(r[0])<<8 | uint32(r[1])) & 0x7fff
	base := uint32(198)<<24 | uint32(18)<<16 | n<<2
	ip := func(v uint32) net.IP { return net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).To4() }
	v := &vethPair{nsA: pathA, nsB: pathB, ifA: "txto-a", ifB: "txto-b", addrA: ip(base + 1), addrB: ip(base + 2)}

	hdlA, err := netlink.NewHandleAt(hA)
	if err != nil {
		tb.Fatalf("netlink handle in %s: %v", pathA, err)
	}
	defer hdlA.Close()
	hdlB, err := netlink.NewHandleAt(hB)
	if err != nil {
		tb.Fatalf("netlink handle in %s: %v", pathB, err)
	}
	defer hdlB.Close()

	la := netlink.NewLinkAttrs()
	la.Name = v.ifA
	veth := &netlink.Veth{LinkAttrs: la, PeerName: v.ifB, PeerNamespace: netlink.NsFd(int(hB))}
	if err := hdlA.LinkAdd(veth); err != nil {
		tb.Fatalf("add veth %s/%s: %v", v.ifA, v.ifB, err)
	}
	for _, e := range []struct {
		h    *netlink.Handle
		name string
		addr net.IP
	}{{hdlA, v.ifA, v.addrA}, {hdlB, v.ifB, v.addrB}} {
		lo, err := e.h.LinkByName("lo")
		if err != nil {
			tb.Fatal(err)
		}
		if err := e.h.LinkSetUp(lo); err != nil {
			tb.Fatalf("set lo up: %v", err)
		}
		l, err := e.h.LinkByName(e.name)
		if err != nil {
			tb.Fatalf("find %s: %v", e.name, err)
		}
		if err := e.h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: e.addr, Mask: net.CIDRMask(30, 32)}}); err != nil {
			tb.Fatalf("add %s to %s: %v", e.addr, e.name, err)
		}
		if err := e.h.LinkSetUp(l); err != nil {
			tb.Fatalf("set %s up: %v", e.name, err)
		}
	}
	// Wait for carrier on both ends (poll a real condition, with a
	// generous deadline).
	deadline := time.Now().Add(10 * time.Second)
	for {
		la, errA := hdlA.LinkByName(v.ifA)
		lb, errB := hdlB.LinkByName(v.ifB)
		if errA == nil && errB == nil && la.Attrs().OperState == netlink.OperUp && lb.Attrs().OperState == netlink.OperUp {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("veth %s/%s not up after 10s", v.ifA, v.ifB)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return v
}

// inNS runs fn on a locked thread inside the namespace at path.
func inNS(tb testing.TB, path string, fn func()) {
	tb.Helper()
	if err := inNetNS(path, func() error { fn(); return nil }); err != nil {
		tb.Fatal(err)
	}
}

// setPingGroupRange allows every group to open ICMP datagram sockets in
// the namespace at path (the namespace is the test's own).
func setPingGroupRange(tb testing.TB, path string) {
	tb.Helper()
	inNS(tb, path, func() {
		if err := os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte("0 2147483647\n"), 0); err != nil {
			tb.Fatalf("set ping_group_range in %s: %v", path, err)
		}
	})
}

func (v *vethPair) String() string {
	return fmt.Sprintf("%s(%s %s) <-> %s(%s %s)", v.nsA, v.ifA, v.addrA, v.nsB, v.ifB, v.addrB)
}

// throttleA puts a slow TBF root qdisc (1 Mbit/s) with a deep queue (4 MB)
// on ifA in namespace A. Like a stalled device's ring, it holds the
// packets, which stay charged to the sending socket: once the socket's
// send buffer is used up, fragmenting sends fail with ENOBUFS. It is removed
// with the namespace.
func (v *vethPair) throttleA(tb testing.TB) {
	tb.Helper()
	h, err := netns.GetFromPath(v.nsA)
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		tb.Fatal(err)
	}
	defer nl.Close()
	l, err := nl.LinkByName(v.ifA)
	if err != nil {
		tb.Fatal(err)
	}
	q := &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
		Rate:       125000, // bytes/s
		Limit:      4 << 20,
		Buffer:     netlink.Xmittime(125000, 3200), // in ticks, as tc computes it from "burst 3200"
	}
	if err := nl.QdiscReplace(q); err != nil {
		tb.Fatalf("add tbf on %s in %s: %v", v.ifA, v.nsA, err)
	}
}
