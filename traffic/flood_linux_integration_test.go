//go:build linux

package traffic

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"txtimeout/internal/leakcheck"
	"txtimeout/internal/testnet"
)

// TestIntegrationFloodLowRate: at a low rate every request gets its reply.
func TestIntegrationFloodLowRate(t *testing.T) {
	v := testnet.NewLinked(t)
	leakcheck.Check(t) // sockets closed, senders and readers gone
	for _, tc := range []struct {
		name string
		c    FloodConfig
	}{
		{"raw", FloodConfig{Privileged: true}},
		{"datagram", FloodConfig{Unprivileged: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.c.Unprivileged {
				setPingGroupRange(t, v.A.NS)
			}
			c := tc.c
			c.Dst, c.NetNS, c.Iface = v.B.Addr, v.A.NS.Path, v.A.Name
			c.Size, c.Interval, c.Count, c.Senders = 2048, 5*time.Millisecond, 40, 2
			c.Linger = 5 * time.Second
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			st, err := Flood(ctx, c)
			if err != nil {
				t.Fatalf("Flood: %v (stats %+v)", err, st)
			}
			t.Logf("%s: %+v", v, st)
			if st.Sent != 40 || st.Received != 40 {
				t.Fatalf("sent %d received %d, want 40 and 40 (errors %v)", st.Sent, st.Received, st.Errors)
			}
		})
	}
}

// TestIntegrationFloodCallerNetNS: a caller locked into a namespace floods
// from it without naming it.
func TestIntegrationFloodCallerNetNS(t *testing.T) {
	v := testnet.NewLinked(t)
	var st FloodStats
	var err error
	inNS(t, v.A.NS, func() {
		st, err = Flood(context.Background(), FloodConfig{Dst: v.B.Addr, Count: 5, Interval: time.Millisecond, Linger: 5 * time.Second})
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Sent != 5 || st.Received != 5 {
		t.Fatalf("sent %d received %d, want 5 and 5", st.Sent, st.Received)
	}
	// From this (the test's) namespace the destination does not exist:
	// the sockets really were opened in A.
}

// boundedFloodNet is a linked veth pair for a flood that must end by
// itself, checked at the end for sockets, senders and readers left
// behind, and a context that ends the test's flood after 30 s if the
// flood's own bound does not.
func boundedFloodNet(tb testing.TB) (*testnet.Pair, context.Context) {
	tb.Helper()
	v := testnet.NewLinked(tb)
	leakcheck.Check(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return v, ctx
}

// TestIntegrationFloodFullRateCount: as fast as possible, stops at Count.
func TestIntegrationFloodFullRateCount(t *testing.T) {
	v, ctx := boundedFloodNet(t)
	const n = 20000
	st, err := Flood(ctx, FloodConfig{Dst: v.B.Addr, NetNS: v.A.NS.Path, Size: 1400, Count: n, Senders: 3, Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", st)
	if st.Sent != n {
		t.Fatalf("sent %d, want exactly %d", st.Sent, n)
	}
	if st.PPS <= 0 || st.Elapsed <= 0 {
		t.Fatalf("no rate reported: %+v", st)
	}
	if st.Received > st.Sent {
		t.Fatalf("received %d > sent %d", st.Received, st.Sent)
	}
}

// TestIntegrationFloodFullRateFor: as fast as possible, stops at For.
func TestIntegrationFloodFullRateFor(t *testing.T) {
	v, ctx := boundedFloodNet(t)
	var progress []FloodStats
	begin := time.Now()
	st, err := Flood(ctx, FloodConfig{Dst: v.B.Addr, NetNS: v.A.NS.Path, For: 1500 * time.Millisecond, Senders: 2, Linger: -1,
		Progress: func(s FloodStats) { progress = append(progress, s) }})
	took := time.Since(begin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v in %v", st, took)
	if st.Sent == 0 || st.PPS <= 0 {
		t.Fatalf("nothing sent: %+v", st)
	}
	// The bound, not a speed: the flood must have ended by itself long
	// before the context's 30 s.
	if took > 20*time.Second {
		t.Fatalf("flood ran %v for a 1.5 s bound", took)
	}
	if st.Elapsed < 1500*time.Millisecond {
		t.Fatalf("stopped after %v, before its 1.5 s bound", st.Elapsed)
	}
	if len(progress) == 0 {
		t.Fatal("Progress never called in a 1.5 s flood")
	}
}

// TestIntegrationFloodCancel: the end of the context stops an otherwise
// long flood, and is not an error.
func TestIntegrationFloodCancel(t *testing.T) {
	v := testnet.NewLinked(t)
	leakcheck.Check(t) // sockets closed, senders and readers gone
	ctx, cancel := context.WithCancel(context.Background())
	var first FloodStats
	got := make(chan struct{})
	done := make(chan struct{})
	var st FloodStats
	var err error
	go func() {
		defer close(done)
		st, err = Flood(ctx, FloodConfig{Dst: v.B.Addr, NetNS: v.A.NS.Path, For: MaxUnboundedTime, Count: 1 << 30, Interval: 100 * time.Microsecond,
			Progress: func(s FloodStats) {
				if first.Sent == 0 {
					first = s
					close(got)
				}
			}})
	}()
	select {
	case <-got:
	case <-done:
		t.Fatalf("flood ended before cancel: %+v %v", st, err)
	case <-time.After(20 * time.Second):
		t.Fatal("no progress in 20 s")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("flood did not stop within 20 s of cancel")
	}
	if err != nil {
		t.Fatal(err)
	}
	if st.Sent < first.Sent || st.Sent >= 1<<30 {
		t.Fatalf("sent %d (first progress %d)", st.Sent, first.Sent)
	}
}

// TestIntegrationFloodNoSuchIface: a bad interface is a clear error and
// sends nothing.
func TestIntegrationFloodNoSuchIface(t *testing.T) {
	v := testnet.NewLinked(t)
	leakcheck.Check(t) // sockets closed, senders and readers gone
	st, err := Flood(context.Background(), FloodConfig{Dst: v.B.Addr, NetNS: v.A.NS.Path, Iface: "txto-nope", Count: 1})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want os.ErrNotExist", err)
	}
	if st.Sent != 0 {
		t.Fatalf("sent %d", st.Sent)
	}
}

// TestIntegrationReachable: pro-bing gets one reply across the veth, and
// a silent address gives ErrNoReply.
func TestIntegrationReachable(t *testing.T) {
	v := testnet.NewLinked(t)
	inNS(t, v.A.NS, func() {
		rtt, err := Reachable(context.Background(), v.B.Addr, 2048, 5*time.Second)
		if err != nil {
			t.Errorf("Reachable(%s): %v", v.B.Addr, err)
		} else if rtt <= 0 {
			t.Errorf("rtt %v", rtt)
		}
		// The other address of the /30 is in the subnet but nobody has it.
		silent := append([]byte(nil), v.B.Addr...)
		silent[3]++
		_, err = Reachable(context.Background(), silent, 0, 500*time.Millisecond)
		if !errors.Is(err, ErrNoReply) {
			t.Errorf("Reachable(%s) = %v, want ErrNoReply", silent, err)
		}
	})
}

// TestIntegrationFloodENOBUFS: behind a queue that holds packets the
// kernel answers ENOBUFS (sock_wmalloc in __ip_append_data, for the second
// fragment of a 2048-byte request); the flood counts it, keeps going to its
// bound, and backs off instead of spinning (at most one error per
// minBackoff per sender).
func TestIntegrationFloodENOBUFS(t *testing.T) {
	v, ctx := boundedFloodNet(t)
	throttleA(t, v)
	const senders = 2
	st, err := Flood(ctx, FloodConfig{Dst: v.B.Addr, NetNS: v.A.NS.Path, For: time.Second, Senders: senders, Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", st)
	n := st.Errors["ENOBUFS"]
	if n == 0 || st.Sent == 0 {
		t.Fatalf("want sends and ENOBUFS behind a 1 Mbit/s TBF holding 4 MB, got %+v", st)
	}
	if limit := int64(senders) * (int64(st.Elapsed/minBackoff) + 1); n > limit {
		t.Fatalf("%d ENOBUFS in %v: more than one per %v per sender (%d): spinning", n, st.Elapsed, minBackoff, limit)
	}
	if st.Elapsed < time.Second {
		t.Fatalf("stopped after %v, before its 1 s bound", st.Elapsed)
	}
}
