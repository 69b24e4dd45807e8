package traffic

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"txtimeout/internal/testnet"
)

func TestReachableValidate(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name    string
		dst     net.IP
		size    int
		timeout time.Duration
		want    string
	}{
		{"no dst", nil, 0, time.Second, "no destination"},
		{"unspecified", net.IPv4zero, 0, time.Second, "no destination"},
		{"ipv6", net.ParseIP("2001:db8::1"), 0, time.Second, "not an IPv4"},
		{"negative size", net.IPv4(198, 18, 0, 1), -1, time.Second, "payload size -1"},
		{"huge size", net.IPv4(198, 18, 0, 1), MaxSize + 1, time.Second, "payload size 65508"},
		{"zero timeout", net.IPv4(198, 18, 0, 1), 0, 0, "timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Reachable(ctx, tt.dst, tt.size, tt.timeout)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Reachable = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Reachable(cancelled, net.IPv4(198, 18, 0, 1), 0, time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("Reachable with a cancelled context = %v, want context.Canceled", err)
	}
}

// silentPeers are addresses nobody answers: the broadcast address of the
// veth pair's /30 (hosts ignore broadcast echo requests), and a unicast
// address routed through B, which does not forward.
func silentPeers(t *testing.T, v *testnet.Pair) []net.IP {
	t.Helper()
	bcast := append(net.IP(nil), v.B.Addr...)
	bcast[3] |= 3
	unicast := append(net.IP(nil), v.B.Addr...)
	unicast[2] ^= 0x80 // another /30 of 198.18.0.0/15
	h := v.A.NS.Netlink(t)
	defer h.Close()
	if err := h.RouteAdd(&netlink.Route{LinkIndex: v.A.Index, Dst: &net.IPNet{IP: unicast, Mask: net.CIDRMask(32, 32)}, Gw: v.B.Addr}); err != nil {
		t.Fatalf("route to %s via %s: %v", unicast, v.B.Addr, err)
	}
	return []net.IP{bcast, unicast}
}

// TestIntegrationReachableSockets: one reply across the veth on each kind
// of socket, a silent address gives ErrNoReply at its timeout, and the end
// of the context ends the wait.
func TestIntegrationReachableSockets(t *testing.T) {
	v := testnet.NewLinked(t)
	setPingGroupRange(t, v.A.NS)
	silent := silentPeers(t, v)
	for _, raw := range []bool{true, false} {
		name := map[bool]string{true: "raw", false: "datagram"}[raw]
		t.Run(name, func(t *testing.T) {
			old := reachRaw
			reachRaw = func() bool { return raw }
			t.Cleanup(func() { reachRaw = old })
			inNS(t, v.A.NS, func() {
				for _, size := range []int{0, 2048, MaxSize} {
					rtt, err := Reachable(context.Background(), v.B.Addr, size, 5*time.Second)
					if err != nil {
						t.Errorf("Reachable(%s, size %d): %v", v.B.Addr, size, err)
					} else if rtt <= 0 || rtt > 5*time.Second {
						t.Errorf("Reachable(%s, size %d): rtt %v", v.B.Addr, size, rtt)
					}
				}

				for _, dst := range silent {
					const timeout = 400 * time.Millisecond
					start := time.Now()
					_, err := Reachable(context.Background(), dst, 0, timeout)
					el := time.Since(start)
					if !errors.Is(err, ErrNoReply) {
						t.Errorf("Reachable(silent %s) = %v, want ErrNoReply", dst, err)
					}
					if el < timeout || el > timeout+5*time.Second {
						t.Errorf("Reachable(silent %s) returned after %v, want about its timeout %v", dst, el, timeout)
					}

					ctx, cancel := context.WithCancel(context.Background())
					time.AfterFunc(200*time.Millisecond, cancel)
					start = time.Now()
					_, err = Reachable(ctx, dst, 0, time.Minute)
					el = time.Since(start)
					if !errors.Is(err, context.Canceled) {
						t.Errorf("Reachable(silent %s, cancelled) = %v, want context.Canceled", dst, err)
					}
					if el > 10*time.Second {
						t.Errorf("Reachable(silent %s, cancelled) returned %v after the cancel, want promptly", dst, el)
					}

					dctx, dcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
					_, err = Reachable(dctx, dst, 0, time.Minute)
					dcancel()
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("Reachable(silent %s, ctx deadline) = %v, want context.DeadlineExceeded", dst, err)
					}
				}
			})
		})
	}
}

// TestIntegrationReachableENOBUFS: a request that fails with ENOBUFS at
// every send (the socket cannot be charged for its fragments, as behind a
// stalled queue) is retried only until the timeout, and then, or at the
// end of the context, Reachable returns, naming ENOBUFS. pro-bing v0.9.1
// retried it forever.
func TestIntegrationReachableENOBUFS(t *testing.T) {
	v := testnet.NewLinked(t)
	old := reachSndBuf
	reachSndBuf = 4096 // the kernel doubles it; a 65507-byte request needs 45 fragments of ~1.5 KB
	t.Cleanup(func() { reachSndBuf = old })
	inNS(t, v.A.NS, func() {
		const timeout = 500 * time.Millisecond
		start := time.Now()
		_, err := Reachable(context.Background(), v.B.Addr, MaxSize, timeout)
		el := time.Since(start)
		if !errors.Is(err, ErrNoReply) || !errors.Is(err, unix.ENOBUFS) {
			t.Errorf("Reachable = %v, want ErrNoReply wrapping ENOBUFS", err)
			return
		}
		if el < timeout || el > timeout+5*time.Second {
			t.Errorf("returned after %v, want about its timeout %v", el, timeout)
		}
		t.Logf("%v after %v", err, el)

		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		start = time.Now()
		_, err = Reachable(ctx, v.B.Addr, MaxSize, time.Minute)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Reachable(cancelled) = %v, want context.Canceled", err)
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Errorf("Reachable(cancelled) returned after %v, want promptly", el)
		}
	})
}
