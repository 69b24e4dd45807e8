package faultinject

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// 802.3x PAUSE frames (IEEE 802.3 Annex 31B): a MAC control frame to the
// reserved multicast address, opcode 1, with the pause time in quanta of
// 512 bit times.
const (
	EtherTypeMACControl = 0x8808
	pauseOpcode         = 0x0001
	pauseFrameLen       = 60 // minimum Ethernet frame without FCS
)

// PauseDst is the reserved multicast address PAUSE frames are sent to.
var PauseDst = net.HardwareAddr{0x01, 0x80, 0xC2, 0x00, 0x00, 0x01}

// ErrNotPause is returned by ParsePause for any other frame.
var ErrNotPause = errors.New("not a PAUSE frame")

// MarshalPause returns a PAUSE frame from src asking for quanta × 512 bit
// times of silence, padded to the 60-byte minimum.
func MarshalPause(src net.HardwareAddr, quanta uint16) ([]byte, error) {
	if len(src) != 6 {
		return nil, fmt.Errorf("PAUSE frame needs a 6-byte source MAC, got %q", src)
	}
	b := make([]byte, pauseFrameLen)
	copy(b[0:6], PauseDst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], EtherTypeMACControl)
	binary.BigEndian.PutUint16(b[14:16], pauseOpcode)
	binary.BigEndian.PutUint16(b[16:18], quanta)
	return b, nil
}

// ParsePause decodes a PAUSE frame (Ethernet header onwards).
func ParsePause(frame []byte) (quanta uint16, src net.HardwareAddr, err error) {
	if len(frame) < 18 || binary.BigEndian.Uint16(frame[12:14]) != EtherTypeMACControl ||
		binary.BigEndian.Uint16(frame[14:16]) != pauseOpcode {
		return 0, nil, ErrNotPause
	}
	return binary.BigEndian.Uint16(frame[16:18]), net.HardwareAddr(append([]byte(nil), frame[6:12]...)), nil
}

// assumedSpeedMbps is the link speed assumed when the driver does not
// report one: the fastest common Ethernet, so that pauses are renewed
// early enough on any link.
const assumedSpeedMbps = 400_000

// minResend bounds how often a PAUSE frame is re-sent.
const minResend = 50 * time.Microsecond

// pauseDuration is how long quanta pause a link of speedMbps (0: unknown).
func pauseDuration(quanta uint16, speedMbps int) time.Duration {
	if speedMbps <= 0 {
		speedMbps = assumedSpeedMbps
	}
	bits := int64(quanta) * 512
	return time.Duration(bits * 1000 / int64(speedMbps)) // bits / (Mb/s) = µs; ×1000 ns
}

// resendInterval renews a pause at half its duration, so one lost or
// late frame still leaves the link paused.
func resendInterval(quanta uint16, speedMbps int) time.Duration {
	d := pauseDuration(quanta, speedMbps) / 2
	if d < minResend {
		d = minResend
	}
	return d
}
