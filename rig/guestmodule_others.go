//go:build !linux

package rig

import (
	"fmt"
	"os"
	"runtime"

	"txtimeout/rig/internal/guestproto"
)

func loadGuestModule(m guestproto.ModuleFile) error {
	return fmt.Errorf("rig: loading module %s: not on %s: %w", m.Name, runtime.GOOS, os.ErrNotExist)
}
