package traffic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// ErrNoReply is returned by Reachable when no echo reply arrived in time.
var ErrNoReply = errors.New("no echo reply")

// Reachable sends one echo request with a payload of size bytes (0 means
// 56, ping's default) to the IPv4 address dst and waits up to timeout for
// the reply. It uses raw ICMP when the process runs as root, else ICMP
// datagram sockets. The socket is opened in the calling goroutine, so a
// caller locked into a network namespace pings from there.
//
// It always returns by timeout or the end of ctx, whichever comes first:
// a send that fails because the transmit queue is full (ENOBUFS, as on a
// stalled device) is retried with a back-off until then, and the error
// then wraps both ErrNoReply and the send error. (pro-bing v0.9.1, which
// Reachable used before, retries such a send at once and forever, without
// looking at its context.) The end of ctx is returned as ctx's error.
func Reachable(ctx context.Context, dst net.IP, size int, timeout time.Duration) (rtt time.Duration, err error) {
	switch {
	case dst == nil || dst.IsUnspecified():
		return 0, errors.New("reachable: no destination address")
	case dst.To4() == nil:
		return 0, fmt.Errorf("reachable: %s is not an IPv4 address", dst)
	case size == 0:
		size = 56
	case size < 0 || size > MaxSize:
		return 0, fmt.Errorf("reachable: payload size %d out of range 1..%d", size, MaxSize)
	}
	if timeout <= 0 {
		return 0, fmt.Errorf("reachable: timeout %v must be positive", timeout)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("reachable: ping %s: %w", dst, err)
	}
	return reach(ctx, dst.To4(), size, timeout)
}
