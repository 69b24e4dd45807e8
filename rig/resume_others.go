//go:build !linux

package rig

import (
	"errors"
	"runtime"
)

// writeControlLine exists only in the Linux guest.
func writeControlLine(path, line string) error {
	return errors.New("rig: the guest control port exists only on Linux, not " + runtime.GOOS)
}
