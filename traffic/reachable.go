package traffic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	probing "github.com/prometheus-community/pro-bing"
)

// ErrNoReply is returned by Reachable when no echo reply arrived in time.
var ErrNoReply = errors.New("no echo reply")

// Reachable sends one echo request with a payload of size bytes (0 means
// 56, ping's default; pro-bing needs at least 24) and waits up to timeout
// for the reply. It uses raw ICMP when the process runs as root, else ICMP
// datagram sockets. The socket is opened in the calling goroutine, so a
// caller locked into a network namespace pings from there.
func Reachable(ctx context.Context, dst net.IP, size int, timeout time.Duration) (rtt time.Duration, err error) {
	switch {
	case dst == nil || dst.IsUnspecified():
		return 0, errors.New("reachable: no destination address")
	case size == 0:
		size = 56
	case size < 24 || size > MaxSize:
		return 0, fmt.Errorf("reachable: payload size %d out of range 24..%d", size, MaxSize)
	}
	if timeout <= 0 {
		return 0, fmt.Errorf("reachable: timeout %v must be positive", timeout)
	}
	p := probing.New(dst.String())
	p.SetIPAddr(&net.IPAddr{IP: dst})
	if dst.To4() == nil {
		p.SetNetwork("ip6")
	} else {
		p.SetNetwork("ip4")
	}
	p.SetPrivileged(os.Geteuid() == 0)
	p.SetLogger(probing.NoopLogger{})
	p.Count = 1
	p.Size = size
	// pro-bing's Interval feeds a time.Ticker and must not be 0; with one
	// request it only paces the (absent) second one.
	p.Interval = timeout
	p.Timeout = timeout
	var sendErr error
	p.OnSendError = func(_ *probing.Packet, err error) { sendErr = err }
	var got time.Duration
	var ok bool
	p.OnRecv = func(pkt *probing.Packet) { got, ok = pkt.Rtt, true }
	if err := p.RunWithContext(ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return 0, fmt.Errorf("reachable: ping %s: %w", dst, err)
	}
	if ok {
		return got, nil
	}
	if sendErr != nil {
		return 0, fmt.Errorf("reachable: ping %s: %w", dst, sendErr)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("reachable: ping %s: %w", dst, err)
	}
	return 0, fmt.Errorf("reachable: ping %s: %w within %v", dst, ErrNoReply, timeout)
}
