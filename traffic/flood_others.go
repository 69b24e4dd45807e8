//go:build !linux

package traffic

import "context"

func flood(ctx context.Context, c FloodConfig) (FloodStats, error) {
	return FloodStats{}, errNotLinux
}
