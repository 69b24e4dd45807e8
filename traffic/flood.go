package traffic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Defaults and limits of FloodConfig.
const (
	// DefaultSize is the default ICMP payload: above a 1500-byte MTU, so
	// every request leaves as two IPv4 fragments and takes two ring slots.
	DefaultSize = 2048
	// MaxSize is the largest ICMP echo payload that fits in one IPv4
	// datagram: 65535 - 20 (IPv4 header) - 8 (ICMP header).
	MaxSize = 65507
	// MaxSenders bounds FloodConfig.Senders: each sender is a socket, a
	// goroutine and, for datagram sockets, a reader goroutine.
	MaxSenders = 256
	// DefaultLinger is how long Flood waits for outstanding replies after
	// its last send.
	DefaultLinger = time.Second
	// MaxUnboundedTime bounds a flood that has only a Count and a context
	// without a deadline: behind a device that never drains again the
	// count is never reached, and a flood must stop by itself.
	MaxUnboundedTime = 10 * time.Minute
)

// FloodConfig describes one bounded ICMP echo flood.
type FloodConfig struct {
	Dst      net.IP        // IPv4 destination
	Iface    string        // optional: bind to this device (SO_BINDTODEVICE)
	Size     int           // payload bytes, default 2048, max 65507
	Interval time.Duration // per sender; 0 = as fast as possible
	Count    int           // total requests across senders; 0 = no count bound (then For must be set)
	For      time.Duration // time bound; 0 = no time bound (then Count must be set); both zero is an error
	Senders  int           // default 1

	// Privileged selects raw ICMP sockets (CAP_NET_RAW). When the process
	// runs as root, raw sockets are used even when Privileged is false,
	// unless Unprivileged is set.
	Privileged bool
	// Unprivileged forces ICMP datagram sockets ("ping sockets"), which
	// need the caller's group in net.ipv4.ping_group_range of the
	// namespace the sockets are opened in.
	Unprivileged bool

	// NetNS optionally names a network namespace file (for example
	// /run/netns/NAME or /proc/PID/ns/net) to open the sockets in. Empty
	// means the namespace of the calling thread.
	NetNS string

	// Linger is how long to wait for outstanding replies after the last
	// send: 0 means DefaultLinger, a negative value means not at all.
	// Linger never extends past the end of the context.
	Linger time.Duration

	Progress func(FloodStats) // optional, called about once a second, from another goroutine
}

// FloodStats reports what a flood did.
type FloodStats struct {
	Sent, Received int64
	Errors         map[string]int64 // by errno name, e.g. "ENOBUFS", "EAGAIN"
	Elapsed        time.Duration    // from the first send to the last
	PPS            float64          // sent / elapsed seconds
}

// Validate reports the first problem with c as a one-line error.
func (c FloodConfig) Validate() error {
	switch {
	case c.Dst == nil:
		return errors.New("flood: no destination address")
	case c.Dst.To4() == nil:
		return fmt.Errorf("flood: destination %s is not an IPv4 address", c.Dst)
	case c.Dst.IsUnspecified():
		return fmt.Errorf("flood: destination %s is unspecified", c.Dst)
	case len(c.Iface) >= 16:
		return fmt.Errorf("flood: interface name %q is longer than 15 bytes", c.Iface)
	case c.Size < 0 || c.Size > MaxSize:
		return fmt.Errorf("flood: payload size %d out of range 1..%d", c.Size, MaxSize)
	case c.Interval < 0:
		return fmt.Errorf("flood: negative interval %v", c.Interval)
	case c.Count < 0:
		return fmt.Errorf("flood: negative count %d", c.Count)
	case c.For < 0:
		return fmt.Errorf("flood: negative duration %v", c.For)
	case c.For > MaxUnboundedTime:
		return fmt.Errorf("flood: duration %v is over the %v bound", c.For, MaxUnboundedTime)
	case c.Count == 0 && c.For == 0:
		return errors.New("flood: unbounded: set a count, a duration or both")
	case c.Senders < 0 || c.Senders > MaxSenders:
		return fmt.Errorf("flood: senders %d out of range 1..%d", c.Senders, MaxSenders)
	case c.Privileged && c.Unprivileged:
		return errors.New("flood: privileged and unprivileged are exclusive")
	}
	return nil
}

// withDefaults returns c with zero fields set to their defaults.
func (c FloodConfig) withDefaults() FloodConfig {
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.Senders == 0 {
		c.Senders = 1
	}
	if c.Linger == 0 {
		c.Linger = DefaultLinger
	}
	return c
}

// Flood sends ICMP echo requests to c.Dst and counts the replies. It stops
// at c.Count requests sent, after c.For, or at the end of ctx, whichever
// comes first (with only a Count and no ctx deadline, after
// MaxUnboundedTime at the latest); then it waits up to c.Linger for
// outstanding replies (not past the end of ctx).
//
// Send errors that a stalled or resetting device causes (ENOBUFS, EAGAIN,
// ENOMEM, unreachable, network down) are counted in FloodStats.Errors and
// the same request is retried after a back-off of 100µs doubling to 10ms;
// a socket buffer that is full (EAGAIN) is waited on, 10ms at a time so
// that the bound is seen, and not counted. Any other send error ends the flood and is
// returned with the statistics so far. The end of ctx is not an error.
// A qdisc that drops a request is not seen: raw sockets report such drops
// only with IP_RECVERR, which Flood does not set.
func Flood(ctx context.Context, c FloodConfig) (FloodStats, error) {
	if err := c.Validate(); err != nil {
		return FloodStats{}, err
	}
	c = c.withDefaults()
	if _, ok := ctx.Deadline(); !ok && c.For == 0 {
		c.For = MaxUnboundedTime
	}
	return flood(ctx, c)
}
