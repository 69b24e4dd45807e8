// Package testnet makes throwaway network namespaces and veth pairs for the
// project's tests, and removes them when the test ends.
//
// Every name is unique (txto- and random hex), so that tests of other
// processes running at the same time do not collide, and every address is
// taken from 198.18.0.0/15, the block reserved for benchmarking. Nothing is
// ever done in the caller's own namespace: a namespace is created and
// entered on a thread of its own (package nsexec), never on the test's.
package testnet

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"txtimeout/internal/nsexec"
)

// Dir is where named network namespaces live (ip netns, netns.NewNamed).
const Dir = "/run/netns"

// upTimeout bounds the wait for a veth's operational state: the kernel
// sets it asynchronously (linkwatch), usually within milliseconds.
const upTimeout = 10 * time.Second

// Require skips tb, saying why and how to fix it, when this process cannot
// make network namespaces: it is not root, or the kernel has none
// (CONFIG_NET_NS).
func Require(tb testing.TB) {
	tb.Helper()
	if reason := missing(os.Geteuid(), "/proc/self/ns/net"); reason != "" {
		tb.Skip(reason)
	}
}

// missing says why namespaces cannot be made, or "" when they can.
func missing(euid int, nsFile string) string {
	if euid != 0 {
		return "skipping: needs root to create network namespaces and veth pairs (run as root, as CI does)"
	}
	if _, err := os.Stat(nsFile); errors.Is(err, os.ErrNotExist) {
		return "skipping: this kernel has no network namespaces (" + nsFile + " is missing; build it with CONFIG_NET_NS=y)"
	}
	return ""
}

// UniqueName returns prefix followed by 6 random hex digits, short enough
// for an interface name when prefix has at most 9 bytes.
func UniqueName(tb testing.TB, prefix string) string {
	tb.Helper()
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

// NS is a named network namespace that belongs to one test.
type NS struct {
	Name string // under Dir
	Path string // the namespace file, for Options.NetNS and -netns
	h    netns.NsHandle
}

// NewNS creates a namespace txto-XXXXXX with its loopback up, and deletes
// it at cleanup (its links go with it). It skips, as Require does, when no
// namespace can be made.
func NewNS(tb testing.TB) *NS {
	tb.Helper()
	Require(tb)
	n := &NS{Name: UniqueName(tb, "txto-")}
	n.Path = filepath.Join(Dir, n.Name)
	err := nsexec.DoHandle(netns.None(), n.Name, func() error {
		h, err := netns.NewNamed(n.Name) // moves this thread into it
		n.h = h
		return err
	})
	if err != nil && !n.h.IsOpen() {
		tb.Fatalf("creating network namespace %s: %v", n.Name, err)
	}
	tb.Cleanup(func() {
		n.h.Close()
		if err := netns.DeleteNamed(n.Name); err != nil {
			tb.Errorf("deleting network namespace %s: %v", n.Name, err)
		}
	})
	if err != nil {
		tb.Fatalf("creating network namespace %s: %v", n.Name, err)
	}
	h := n.Netlink(tb)
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		tb.Fatalf("setting lo up in %s: %v", n.Name, err)
	}
	return n
}

// Handle is the namespace's file descriptor, open until cleanup.
func (n *NS) Handle() netns.NsHandle { return n.h }

// FD is the namespace's file descriptor as go-tc and mdlayher/netlink
// take it.
func (n *NS) FD() int { return int(n.h) }

// Netlink opens a rtnetlink handle in the namespace; the caller closes it.
func (n *NS) Netlink(tb testing.TB) *netlink.Handle {
	tb.Helper()
	h, err := netlink.NewHandleAt(n.h)
	if err != nil {
		tb.Fatalf("netlink handle in %s: %v", n.Name, err)
	}
	return h
}

// Do runs fn on a thread inside the namespace.
func (n *NS) Do(fn func() error) error { return nsexec.DoHandle(n.h, n.Name, fn) }

// End is one end of a veth pair.
type End struct {
	NS    *NS
	Name  string
	Index int
	MAC   net.HardwareAddr
	Addr  net.IP // nil until the pair is addressed
}

// Pair is a veth pair: A (the DUT side, for most tests) and B.
type Pair struct{ A, B End }

// NewPair creates a namespace with a veth pair in it, both ends up and
// operationally up, without addresses.
func NewPair(tb testing.TB) *Pair {
	tb.Helper()
	n := NewNS(tb)
	p := n.AddVeth(tb, nil)
	p.Up(tb)
	return p
}

// NewLinked creates two namespaces joined by a veth pair, A in the first
// and B in the second, both up and addressed from a random /30 of
// 198.18.0.0/15 (A the first host, B the second).
func NewLinked(tb testing.TB) *Pair {
	tb.Helper()
	a, b := NewNS(tb), NewNS(tb)
	p := a.AddVeth(tb, b)
	p.Address(tb)
	p.Up(tb)
	return p
}

// AddVeth creates a veth pair with unique names, A in n and B in peer (n
// itself when peer is nil), both ends down.
func (n *NS) AddVeth(tb testing.TB, peer *NS) *Pair {
	tb.Helper()
	if peer == nil {
		peer = n
	}
	sfx := UniqueName(tb, "")
	p := &Pair{A: End{NS: n, Name: "txto-a" + sfx}, B: End{NS: peer, Name: "txto-b" + sfx}}
	h := n.Netlink(tb)
	defer h.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: p.A.Name}, PeerName: p.B.Name}
	if peer != n {
		veth.PeerNamespace = netlink.NsFd(peer.FD())
	}
	if err := h.LinkAdd(veth); err != nil {
		tb.Fatalf("creating veth pair %s/%s in %s: %v", p.A.Name, p.B.Name, n.Name, err)
	}
	p.A.fill(tb)
	p.B.fill(tb)
	return p
}

// Ends returns both ends, A first.
func (p *Pair) Ends() []*End { return []*End{&p.A, &p.B} }

// Up sets both ends up and waits until both are operationally up: until
// then a veth's qdisc is noop and silently drops what is sent.
func (p *Pair) Up(tb testing.TB) {
	tb.Helper()
	for _, e := range p.Ends() {
		e.SetUp(tb)
	}
	for _, e := range p.Ends() {
		e.WaitOperUp(tb)
	}
}

// Address gives A and B the first and second host of a random /30 in
// 198.18.0.0/15.
func (p *Pair) Address(tb testing.TB) {
	tb.Helper()
	var r [2]byte
	if _, err := rand.Read(r[:]); err != nil {
		tb.Fatal(err)
	}
	// 2^15 subnets of 4 addresses.
	n := (uint32(r[0])<<8 | uint32(r[1])) & 0x7fff
	base := uint32(198)<<24 | uint32(18)<<16 | n<<2
	p.A.AddAddr(tb, ip4(base+1), 30)
	p.B.AddAddr(tb, ip4(base+2), 30)
}

func ip4(v uint32) net.IP {
	return net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).To4()
}

// Prefix is 198.18.0.0/15, the only block tests may use.
var Prefix = &net.IPNet{IP: net.IPv4(198, 18, 0, 0).To4(), Mask: net.CIDRMask(15, 32)}

// AddAddr puts ip/bits on the end and records it in Addr. It refuses an
// address outside Prefix.
func (e *End) AddAddr(tb testing.TB, ip net.IP, bits int) {
	tb.Helper()
	if !Prefix.Contains(ip) {
		tb.Fatalf("testnet: %s is outside %s, the only block tests may use", ip, Prefix)
	}
	h := e.NS.Netlink(tb)
	defer h.Close()
	l := e.link(tb, h)
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, 32)}}); err != nil {
		tb.Fatalf("adding %s/%d to %s: %v", ip, bits, e.Name, err)
	}
	e.Addr = ip
}

// SetUp sets the end administratively up.
func (e *End) SetUp(tb testing.TB) {
	tb.Helper()
	h := e.NS.Netlink(tb)
	defer h.Close()
	if err := h.LinkSetUp(e.link(tb, h)); err != nil {
		tb.Fatalf("setting %s up: %v", e.Name, err)
	}
}

// WaitOperUp waits, polling the link's state, until the end is
// operationally up, and fails tb after 10 s.
func (e *End) WaitOperUp(tb testing.TB) {
	tb.Helper()
	h := e.NS.Netlink(tb)
	defer h.Close()
	for deadline := time.Now().Add(upTimeout); ; time.Sleep(20 * time.Millisecond) {
		l, err := h.LinkByName(e.Name)
		if err == nil && l.Attrs().OperState == netlink.OperUp {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not operationally up %v after it was set up (error: %v)", e.Name, upTimeout, err)
		}
	}
}

func (e *End) link(tb testing.TB, h *netlink.Handle) netlink.Link {
	tb.Helper()
	l, err := h.LinkByName(e.Name)
	if err != nil {
		tb.Fatalf("finding %s in %s: %v", e.Name, e.NS.Name, err)
	}
	return l
}

// fill records the end's index and MAC address.
func (e *End) fill(tb testing.TB) {
	tb.Helper()
	h := e.NS.Netlink(tb)
	defer h.Close()
	a := e.link(tb, h).Attrs()
	e.Index, e.MAC = a.Index, a.HardwareAddr
}

func (p *Pair) String() string {
	return fmt.Sprintf("%s(%s %s) <-> %s(%s %s)", p.A.NS.Name, p.A.Name, p.A.Addr, p.B.NS.Name, p.B.Name, p.B.Addr)
}
