//go:build !linux

package traffic

import (
	"context"
	"net"
	"time"
)

func reach(ctx context.Context, dst net.IP, size int, timeout time.Duration) (time.Duration, error) {
	return 0, errNotLinux
}
