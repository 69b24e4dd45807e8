package faultinject

import (
	"errors"
	"fmt"

	"github.com/mdlayher/ethtool"
	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// mdlayher/ethtool v0.7.0 has no pause parameters, so they are read and
// written with the ethtool generic netlink family directly
// (Documentation/networking/ethtool-netlink.rst, PAUSE_GET and PAUSE_SET,
// Linux 5.6 and later).
const (
	ethtoolMsgPauseGet = 21
	ethtoolMsgPauseSet = 22

	ethtoolAPauseHeader  = 1
	ethtoolAPauseAutoneg = 2
	ethtoolAPauseRX      = 3
	ethtoolAPauseTX      = 4

	ethtoolAHeaderDevIndex = 1
)

func ethtoolConn(o Options) (*genetlink.Conn, genetlink.Family, error) {
	ns, err := nsHandle(o)
	if err != nil {
		return nil, genetlink.Family{}, err
	}
	defer ns.Close()
	c, err := genetlink.Dial(&netlink.Config{NetNS: nsFD(ns)})
	if err != nil {
		return nil, genetlink.Family{}, fmt.Errorf("generic netlink: %w", err)
	}
	f, err := c.GetFamily("ethtool")
	if err != nil {
		c.Close()
		if errors.Is(err, unix.ENOENT) {
			return nil, genetlink.Family{}, fmt.Errorf("ethtool netlink (Linux 5.6+, CONFIG_ETHTOOL_NETLINK): %w", ErrUnsupported)
		}
		return nil, genetlink.Family{}, fmt.Errorf("ethtool netlink family: %w", err)
	}
	return c, f, nil
}

func ethtoolHeader(ae *netlink.AttributeEncoder, ifindex int) {
	ae.Nested(ethtoolAPauseHeader, func(nae *netlink.AttributeEncoder) error {
		nae.Uint32(ethtoolAHeaderDevIndex, uint32(ifindex))
		return nil
	})
}

// ethtoolRequest sends the ethtool netlink message cmd about ifindex:
// the header, then whatever attrs (nil: nothing) adds. A get hands every
// attribute of the replies to each; a set (each nil) asks for an
// acknowledgement instead. A refused request is returned through reqErr,
// which says what was being done.
func ethtoolRequest(o Options, ifindex int, cmd uint8, attrs func(*netlink.AttributeEncoder),
	each func(*netlink.AttributeDecoder), reqErr func(error) error) error {
	c, f, err := ethtoolConn(o)
	if err != nil {
		return err
	}
	defer c.Close()
	ae := netlink.NewAttributeEncoder()
	ethtoolHeader(ae, ifindex)
	if attrs != nil {
		attrs(ae)
	}
	b, err := ae.Encode()
	if err != nil {
		return err
	}
	flags := netlink.Request
	if each == nil {
		flags |= netlink.Acknowledge
	}
	msgs, err := c.Execute(genetlink.Message{
		Header: genetlink.Header{Command: cmd, Version: f.Version},
		Data:   b,
	}, f.ID, flags)
	if err != nil {
		return reqErr(err)
	}
	if each == nil {
		return nil
	}
	for _, m := range msgs {
		ad, err := netlink.NewAttributeDecoder(m.Data)
		if err != nil {
			return err
		}
		for ad.Next() {
			each(ad)
		}
		if err := ad.Err(); err != nil {
			return err
		}
	}
	return nil
}

// getPause reads an interface's flow-control setting.
func getPause(o Options, iface string, ifindex int) (savedPause, error) {
	p := savedPause{Iface: iface, Ifindex: ifindex}
	err := ethtoolRequest(o, ifindex, ethtoolMsgPauseGet, nil, func(ad *netlink.AttributeDecoder) {
		switch ad.Type() {
		case ethtoolAPauseAutoneg:
			p.Autoneg = ad.Uint8() != 0
		case ethtoolAPauseRX:
			p.RX = ad.Uint8() != 0
		case ethtoolAPauseTX:
			p.TX = ad.Uint8() != 0
		}
	}, func(err error) error { return pauseErr("reading", iface, err) })
	if err != nil {
		return savedPause{}, err
	}
	return p, nil
}

// FlowControl returns iface's flow-control (pause) setting in words,
// "autoneg on rx on tx off", changing nothing; ErrUnsupported when its
// driver has no pause parameters (veth, virtio_net).
func FlowControl(iface string, o Options) (string, error) {
	idx, err := ringsIndex(o, iface)
	if err != nil {
		return "", err
	}
	p, err := getPause(o, iface, idx)
	if err != nil {
		return "", err
	}
	return p.String(), nil
}

// setPause writes an interface's flow-control setting.
func setPause(o Options, p savedPause) error {
	return ethtoolRequest(o, p.Ifindex, ethtoolMsgPauseSet, func(ae *netlink.AttributeEncoder) {
		ae.Uint8(ethtoolAPauseAutoneg, b2u(p.Autoneg))
		ae.Uint8(ethtoolAPauseRX, b2u(p.RX))
		ae.Uint8(ethtoolAPauseTX, b2u(p.TX))
	}, nil, func(err error) error { return pauseErr("setting", p.Iface, err) })
}

func pauseErr(verb, iface string, err error) error {
	if errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("%s flow control of %s: the driver has no pause parameters: %w", verb, iface, ErrUnsupported)
	}
	return fmt.Errorf("%s flow control of %s: %w", verb, iface, err)
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func (p savedPause) String() string {
	return fmt.Sprintf("autoneg %s rx %s tx %s", onOff(p.Autoneg), onOff(p.RX), onOff(p.TX))
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// linkSpeedMbps returns the link speed reported by ethtool, or 0 when the
// driver does not know it.
func linkSpeedMbps(o Options, ifindex int) int {
	var speed int
	inNetNS(o, func() error {
		c, err := ethtool.New()
		if err != nil {
			return err
		}
		defer c.Close()
		lm, err := c.LinkMode(ethtool.Interface{Index: ifindex})
		if err != nil {
			return err
		}
		if lm.SpeedMegabits > 0 && lm.SpeedMegabits < 10_000_000 {
			speed = lm.SpeedMegabits
		}
		return nil
	})
	return speed
}
