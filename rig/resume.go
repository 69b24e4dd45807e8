package rig

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"txtimeout/rig/internal/guestproto"
)

// ResumePartner ends the link partner's current stall now. It works only
// inside the rig's guest (InGuest): a stalled partner does not read the DUT
// link, so the in-band resume frame cannot reach it, but the host owns the
// partner and listens on the guest's control serial port, where
// ResumePartner writes one "TXTO RESUME nonce" line. The host answers
// nothing and does nothing when no stall is in progress; the caller sees
// the effect on the link (TX draining again, the partner acknowledging a
// control frame). Outside the guest the error matches os.ErrNotExist.
//
// faultinject.StallConfig.Resume takes it as
//
//	func(context.Context) error { return rig.ResumePartner() }
func ResumePartner() error {
	if !InGuest() {
		return fmt.Errorf("rig: no link partner to resume: not inside the virtual rig's guest (TXTIMEOUT_RIG=1, child of the rig's init): %w", os.ErrNotExist)
	}
	var nb [4]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return err
	}
	return writeControlLine(guestproto.ControlTTY, guestproto.Resume+" "+hex.EncodeToString(nb[:]))
}

// ResumeRequest is a ResumePartner request the host received.
type ResumeRequest struct {
	Nonce string
	At    time.Time
	// Stalled reports whether the partner was stalled when the request
	// came, that is, whether the request ended a stall.
	Stalled bool
}
