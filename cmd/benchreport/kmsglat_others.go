//go:build !linux

package main

import (
	"context"
	"errors"
	"time"
)

func harnessKmsgLatency(context.Context, int, func(int)) ([]time.Duration, error) {
	return nil, errors.New("the kernel log latency needs Linux (/dev/kmsg)")
}
