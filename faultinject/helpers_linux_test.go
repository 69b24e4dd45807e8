package faultinject

import (
	"net"
	"testing"

	tc "github.com/florianl/go-tc"
	"github.com/vishvananda/netlink"

	"txtimeout/internal/testnet"
)

// vethPair is a veth pair inside a test namespace (testnet.NewPair), with
// the names these tests use.
type vethPair struct {
	NS         string
	A, B       string // A is the DUT side, B the partner side
	AMAC, BMAC net.HardwareAddr
	AIdx, BIdx int
	handle     *netlink.Handle
	nsFD       int
	ns         *testnet.NS
}

// testVeth creates a namespace and a veth pair in it, both ends up.
func testVeth(tb testing.TB) *vethPair {
	tb.Helper()
	p := testnet.NewPair(tb)
	h := p.A.NS.Netlink(tb)
	tb.Cleanup(h.Close)
	return &vethPair{NS: p.A.NS.Path, A: p.A.Name, B: p.B.Name, AMAC: p.A.MAC, BMAC: p.B.MAC,
		AIdx: p.A.Index, BIdx: p.B.Index, handle: h, nsFD: p.A.NS.FD(), ns: p.A.NS}
}

func (v *vethPair) opts(tb testing.TB) Options {
	// The pair is veth, which has no tx-timeout handler: these tests
	// exercise the injectors themselves.
	return Options{NetNS: v.NS, StateDir: tb.TempDir(), AllowNoTxTimeout: true}
}

// tc opens a go-tc connection in the pair's namespace.
func (v *vethPair) tc(tb testing.TB) *tc.Tc {
	tb.Helper()
	t, err := tc.Open(&tc.Config{NetNS: v.nsFD})
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
