//go:build !linux

package kmsg

import (
	"errors"
	"fmt"
)

var errUnsupported = errors.New("kmsg: /dev/kmsg is only available on Linux")

// Open opens the kernel log for reading. It is supported only on Linux;
// saved logs can be read anywhere with NewLogReader.
func Open(o Options) (*Reader, error) {
	return nil, fmt.Errorf("%w", errUnsupported)
}
