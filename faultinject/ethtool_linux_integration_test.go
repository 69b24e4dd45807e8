//go:build linux

package faultinject

import "testing"

// veth has neither ring nor pause parameters: every ethtool request is
// answered EOPNOTSUPP, which must reach the caller as ErrUnsupported
// naming what was being done; a missing interface is refused before
// any request.
func TestIntegrationEthtoolUnsupported(t *testing.T) {
	v := testVeth(t)
	o := v.opts(t)
	_, err := GetRings(v.A, o)
	check.ErrorIs(t, err, ErrUnsupported)
	check.ErrorContains(t, err, "reading the ring sizes of "+v.A)
	err = SetRings(v.A, 256, 256, o)
	check.ErrorIs(t, err, ErrUnsupported)
	check.ErrorContains(t, err, "setting the ring sizes of "+v.A)
	_, err = GetRings("txto-none0", o)
	check.ErrorIs(t, err, ErrUnsafeInterface)
	_, err = getPause(o, v.A, v.AIdx)
	check.ErrorIs(t, err, ErrUnsupported)
	check.ErrorContains(t, err, "reading flow control of "+v.A)
	err = setPause(o, savedPause{Iface: v.A, Ifindex: v.AIdx})
	check.ErrorIs(t, err, ErrUnsupported)
	check.ErrorContains(t, err, "setting flow control of "+v.A)
}
