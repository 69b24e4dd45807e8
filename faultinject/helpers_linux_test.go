package faultinject

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	tc "github.com/florianl/go-tc"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// requireRoot skips, saying why, when the test cannot create network
// namespaces.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("skipping: needs root to create network namespaces and veth pairs (run as root, as CI does)")
	}
}

func randSuffix(tb testing.TB) string {
	tb.Helper()
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// testNS creates a named network namespace txto-XXXXXX and removes it at
// cleanup. It returns its path under /run/netns.
func testNS(tb testing.TB) string {
	tb.Helper()
	requireRoot(tb)
	name := "txto-" + randSuffix(tb)
	errc := make(chan error, 1)
	go func() {
		// NewNamed moves the calling thread into the new namespace;
		// the thread is thrown away (still locked) when this goroutine
		// ends, so no other goroutine runs in it.
		runtime.LockOSThread()
		h, err := netns.NewNamed(name)
		if err == nil {
			h.Close()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		tb.Fatalf("creating network namespace %s: %v", name, err)
	}
	tb.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil {
			tb.Errorf("deleting network namespace %s: %v", name, err)
		}
	})
	return filepath.Join("/run/netns", name)
}

// vethPair is a veth pair inside a test namespace.
type vethPair struct {
	NS         string
	A, B       string // A is the DUT side, B the partner side
	AMAC, BMAC net.HardwareAddr
	AIdx, BIdx int
	handle     *netlink.Handle
	nsFD       netns.NsHandle
}

// testVeth creates a namespace and a veth pair in it, both ends up.
func testVeth(tb testing.TB) *vethPair {
	tb.Helper()
	path := testNS(tb)
	ns, err := netns.GetFromPath(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(h.Close)
	sfx := randSuffix(tb)
	v := &vethPair{NS: path, A: "txto-a" + sfx, B: "txto-b" + sfx, handle: h, nsFD: ns}
	la := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: v.A}, PeerName: v.B}
	if err := h.LinkAdd(la); err != nil {
		tb.Fatalf("creating veth pair: %v", err)
	}
	for _, n := range []string{v.A, v.B} {
		l, err := h.LinkByName(n)
		if err != nil {
			tb.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			tb.Fatal(err)
		}
		l, _ = h.LinkByName(n)
		if n == v.A {
			v.AMAC, v.AIdx = l.Attrs().HardwareAddr, l.Attrs().Index
		} else {
			v.BMAC, v.BIdx = l.Attrs().HardwareAddr, l.Attrs().Index
		}
	}
	return v
}

func (v *vethPair) opts(tb testing.TB) Options {
	// The pair is veth, which has no tx-timeout handler: these tests
	// exercise the injectors themselves.
	return Options{NetNS: v.NS, StateDir: tb.TempDir(), AllowNoTxTimeout: true}
}

// tc opens a go-tc connection in the pair's namespace.
func (v *vethPair) tc(tb testing.TB) *tc.Tc {
	tb.Helper()
	t, err := tc.Open(&tc.Config{NetNS: int(v.nsFD)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { t.Close() })
	return t
}

// root returns the root qdisc of ifindex as the kernel dumps it.
func (v *vethPair) root(tb testing.TB, ifindex int) qdiscInfo {
	tb.Helper()
	qs, err := dumpQdiscs(Options{NetNS: v.NS}, ifindex)
	if err != nil {
		tb.Fatal(err)
	}
	r, ok := rootQdisc(qs)
	if !ok {
		tb.Fatalf("interface %d has no root qdisc", ifindex)
	}
	return r
}
