package rig

import "txtimeout/rig/internal/guestproto"

func loadGuestModule(m guestproto.ModuleFile) error { return guestproto.LoadModule(m) }
