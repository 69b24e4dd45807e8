//go:build !linux

package traffic

import "context"

// PktgenAvailable reports ErrUnsupported: pktgen is Linux's.
func PktgenAvailable() error { return ErrUnsupported }

// RunPktgen reports ErrUnsupported: pktgen is Linux's.
func RunPktgen(ctx context.Context, c PktgenConfig) (PktgenResult, error) {
	return PktgenResult{}, ErrUnsupported
}
