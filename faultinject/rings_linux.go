package faultinject

import (
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Ring sizes through ethtool netlink (RINGS_GET and RINGS_SET, Linux 5.6+),
// for the race scenarios that resize a DUT's rings while its driver
// recovers from a tx timeout.
const (
	ethtoolMsgRingsGet = 15
	ethtoolMsgRingsSet = 16

	ethtoolARingsRXMax = 2
	ethtoolARingsTXMax = 5
	ethtoolARingsRX    = 6
	ethtoolARingsTX    = 9
)

// GetRings reads iface's ring sizes. ErrUnsupported: the driver has no
// ring parameters.
func GetRings(iface string, o Options) (Rings, error) {
	idx, err := ringsIndex(o, iface)
	if err != nil {
		return Rings{}, err
	}
	var r Rings
	err = ethtoolRequest(o, idx, ethtoolMsgRingsGet, nil, func(ad *netlink.AttributeDecoder) {
		switch ad.Type() {
		case ethtoolARingsRX:
			r.RX = ad.Uint32()
		case ethtoolARingsTX:
			r.TX = ad.Uint32()
		case ethtoolARingsRXMax:
			r.RXMax = ad.Uint32()
		case ethtoolARingsTXMax:
			r.TXMax = ad.Uint32()
		}
	}, func(err error) error { return ringsErr("reading", iface, err) })
	if err != nil {
		return Rings{}, err
	}
	return r, nil
}

// SetRings sets iface's RX and TX ring sizes. It blocks for as long as
// the driver takes to reallocate them (a driver that must quiesce its
// NAPI instances first waits for them).
func SetRings(iface string, rx, tx uint32, o Options) error {
	idx, err := ringsIndex(o, iface)
	if err != nil {
		return err
	}
	return ethtoolRequest(o, idx, ethtoolMsgRingsSet, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(ethtoolARingsRX, rx)
		ae.Uint32(ethtoolARingsTX, tx)
	}, nil, func(err error) error { return ringsErr("setting", iface, err) })
}

// ringsIndex is iface's index, for GetRings and SetRings.
func ringsIndex(o Options, iface string) (int, error) {
	idx, err := currentIndex(o, iface)
	if err != nil {
		return 0, err
	}
	if idx == 0 {
		return 0, fmt.Errorf("%w %s: no such interface", ErrUnsafeInterface, iface)
	}
	return idx, nil
}

func ringsErr(verb, iface string, err error) error {
	if errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("%s the ring sizes of %s: the driver cannot resize its rings: %w", verb, iface, ErrUnsupported)
	}
	return fmt.Errorf("%s the ring sizes of %s: %w", verb, iface, err)
}
