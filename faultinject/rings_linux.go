package faultinject

import (
	"errors"
	"fmt"

	"github.com/mdlayher/genetlink"
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
	idx, err := currentIndex(o, iface)
	if err != nil {
		return Rings{}, err
	}
	if idx == 0 {
		return Rings{}, fmt.Errorf("%w %s: no such interface", ErrUnsafeInterface, iface)
	}
	c, f, err := ethtoolConn(o)
	if err != nil {
		return Rings{}, err
	}
	defer c.Close()
	ae := netlink.NewAttributeEncoder()
	ethtoolHeader(ae, idx)
	b, err := ae.Encode()
	if err != nil {
		return Rings{}, err
	}
	msgs, err := c.Execute(genetlink.Message{Header: genetlink.Header{Command: ethtoolMsgRingsGet, Version: f.Version}, Data: b}, f.ID, netlink.Request)
	if err != nil {
		return Rings{}, ringsErr("reading", iface, err)
	}
	var r Rings
	for _, m := range msgs {
		ad, err := netlink.NewAttributeDecoder(m.Data)
		if err != nil {
			return Rings{}, err
		}
		for ad.Next() {
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
		}
		if err := ad.Err(); err != nil {
			return Rings{}, err
		}
	}
	return r, nil
}

// SetRings sets iface's RX and TX ring sizes. It blocks for as long as
// the driver takes to reallocate them (a driver that must quiesce its
// NAPI instances first waits for them).
func SetRings(iface string, rx, tx uint32, o Options) error {
	idx, err := currentIndex(o, iface)
	if err != nil {
		return err
	}
	if idx == 0 {
		return fmt.Errorf("%w %s: no such interface", ErrUnsafeInterface, iface)
	}
	c, f, err := ethtoolConn(o)
	if err != nil {
		return err
	}
	defer c.Close()
	ae := netlink.NewAttributeEncoder()
	ethtoolHeader(ae, idx)
	ae.Uint32(ethtoolARingsRX, rx)
	ae.Uint32(ethtoolARingsTX, tx)
	b, err := ae.Encode()
	if err != nil {
		return err
	}
	_, err = c.Execute(genetlink.Message{Header: genetlink.Header{Command: ethtoolMsgRingsSet, Version: f.Version}, Data: b}, f.ID, netlink.Request|netlink.Acknowledge)
	if err != nil {
		return ringsErr("setting", iface, err)
	}
	return nil
}

func ringsErr(verb, iface string, err error) error {
	if errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("%s the ring sizes of %s: the driver cannot resize its rings: %w", verb, iface, ErrUnsupported)
	}
	return fmt.Errorf("%s the ring sizes of %s: %w", verb, iface, err)
}
