//go:build !linux

package partner

import (
	"context"
	"fmt"
	"net"

	"txtimeout/faultinject"
)

// PacketLink is an AF_PACKET socket on the partner's port (Linux only).
type PacketLink struct{}

// OpenPacket is supported on Linux only.
func OpenPacket(iface string, logf func(format string, args ...any)) (*PacketLink, error) {
	return nil, fmt.Errorf("AF_PACKET on %s: %w", iface, faultinject.ErrUnsupported)
}

// Interface is nil outside Linux.
func (l *PacketLink) Interface() *net.Interface { return nil }

// Close does nothing outside Linux.
func (l *PacketLink) Close() error { return nil }

// ServePacket is supported on Linux only.
func (p *Partner) ServePacket(ctx context.Context, l *PacketLink, o faultinject.Options) error {
	return fmt.Errorf("partner: AF_PACKET: %w", faultinject.ErrUnsupported)
}
