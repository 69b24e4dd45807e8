//go:build !linux

package traffic

import "fmt"

// errNotLinux is returned on systems other than Linux.
var errNotLinux = fmt.Errorf("traffic: needs Linux: %w", ErrNotSupported)
