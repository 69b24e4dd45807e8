//go:build !linux

package traffic

import "context"

// PktgenAvailable reports ErrNotSupported: pktgen is Linux's.
func PktgenAvailable() error { return errNotLinux }

// RunPktgen reports ErrNotSupported: pktgen is Linux's.
func RunPktgen(ctx context.Context, c PktgenConfig) (PktgenResult, error) {
	return PktgenResult{}, errNotLinux
}
