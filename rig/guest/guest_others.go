//go:build !linux

package guest

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// writeControlLine exists only in the Linux guest.
func writeControlLine(path, line string) error {
	return errors.New("rig: the guest control port exists only on Linux, not " + runtime.GOOS)
}

// Load exists only in the Linux guest.
func (m Module) Load() error {
	return fmt.Errorf("rig: loading module %s: not on %s: %w", m.Name, runtime.GOOS, os.ErrNotExist)
}
