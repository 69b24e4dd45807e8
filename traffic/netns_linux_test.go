package traffic

import (
	"os"
	"testing"

	"github.com/vishvananda/netlink"

	"txtimeout/internal/testnet"
)

// inNS runs fn on a thread inside ns; fn reports failures with
// tb.Errorf, since it does not run on the test's goroutine.
func inNS(tb testing.TB, ns *testnet.NS, fn func()) {
	tb.Helper()
	if err := ns.Do(func() error { fn(); return nil }); err != nil {
		tb.Fatal(err)
	}
}

// setPingGroupRange allows every group to open ICMP datagram sockets in
// ns (the namespace is the test's own).
func setPingGroupRange(tb testing.TB, ns *testnet.NS) {
	tb.Helper()
	err := ns.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte("0 2147483647\n"), 0)
	})
	if err != nil {
		tb.Fatalf("set ping_group_range in %s: %v", ns.Name, err)
	}
}

// throttleA puts a slow TBF root qdisc (1 Mbit/s) with a deep queue (4 MB)
// on A in its namespace. Like a stalled device's ring, it holds the
// packets, which stay charged to the sending socket: once the socket's
// send buffer is used up, fragmenting sends fail with ENOBUFS. It is removed
// with the namespace.
func throttleA(tb testing.TB, v *testnet.Pair) {
	tb.Helper()
	nl := v.A.NS.Netlink(tb)
	defer nl.Close()
	q := &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: v.A.Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
		Rate:       125000, // bytes/s
		Limit:      4 << 20,
		Buffer:     netlink.Xmittime(125000, 3200), // in ticks, as tc computes it from "burst 3200"
	}
	if err := nl.QdiscReplace(q); err != nil {
		tb.Fatalf("add tbf on %s in %s: %v", v.A.Name, v.A.NS.Name, err)
	}
}
