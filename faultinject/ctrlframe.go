package faultinject

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// The in-band control frame asks a link partner that runs this project's
// partner program (the virtual rig's, for instance) to stop receiving for a
// while. It travels on the DUT link itself, so no management network is
// needed, and the partner resumes by itself when the duration ends: a stall
// is bounded even when the DUT side dies.
//
// Layout (all integers big-endian), after the 14-byte Ethernet header:
//
//	offset size field
//	0      4    magic "TXTO"
//	4      1    version (CtrlVersion)
//	5      1    command (CmdStall, ...; an acknowledgement has AckBit set)
//	6      2    reserved, zero
//	8      4    duration in milliseconds
//	12     4    nonce chosen by the sender, echoed in the acknowledgement
//
// Frames shorter than the Ethernet minimum are padded with zeros by the
// sender; a decoder ignores bytes after the 16-byte payload.
const (
	// EtherTypeCtrl is IEEE 802 "local experimental ethertype 1".
	EtherTypeCtrl = 0x88B5
	// CtrlVersion is the only payload version this package speaks.
	CtrlVersion = 1
	// CtrlPayloadLen is the length of the control payload.
	CtrlPayloadLen = 16
	// MaxStall bounds the duration a control frame may request.
	MaxStall = 10 * time.Minute
)

var ctrlMagic = [4]byte{'T', 'X', 'T', 'O'}

// CtrlCommand is the command byte of a control frame.
type CtrlCommand uint8

const (
	// CmdStall: stop reading from the DUT link for the duration.
	CmdStall CtrlCommand = 1
	// CmdResume: end a stall early (useful only where the partner still
	// receives control frames, for example on a second path).
	CmdResume CtrlCommand = 2
	// AckBit is set in the command of the partner's acknowledgement.
	AckBit CtrlCommand = 0x80
)

func (c CtrlCommand) String() string {
	ack := ""
	if c&AckBit != 0 {
		ack = "-ack"
	}
	switch c &^ AckBit {
	case CmdStall:
		return "stall" + ack
	case CmdResume:
		return "resume" + ack
	}
	return fmt.Sprintf("command(%#x)", uint8(c))
}

// CtrlFrame is a decoded control payload.
type CtrlFrame struct {
	Command  CtrlCommand
	Duration time.Duration // millisecond resolution
	Nonce    uint32
}

// Errors returned by ParseCtrl.
var (
	ErrNotCtrl         = errors.New("not a txtimeout control frame")
	ErrCtrlVersion     = errors.New("unsupported control frame version")
	ErrCtrlTooShort    = errors.New("control frame too short")
	ErrCtrlBadDuration = errors.New("control frame duration out of range")
)

// MarshalPayload returns the 16-byte control payload.
func (f CtrlFrame) MarshalPayload() ([]byte, error) {
	if f.Duration < 0 || f.Duration > MaxStall {
		return nil, fmt.Errorf("%w: %v (max %v)", ErrCtrlBadDuration, f.Duration, MaxStall)
	}
	b := make([]byte, CtrlPayloadLen)
	copy(b[0:4], ctrlMagic[:])
	b[4] = CtrlVersion
	b[5] = byte(f.Command)
	binary.BigEndian.PutUint32(b[8:12], uint32(f.Duration/time.Millisecond))
	binary.BigEndian.PutUint32(b[12:16], f.Nonce)
	return b, nil
}

// ParseCtrlPayload decodes a control payload (the bytes after the
// Ethernet header).
func ParseCtrlPayload(b []byte) (CtrlFrame, error) {
	if len(b) < 4 || [4]byte(b[0:4]) != ctrlMagic {
		return CtrlFrame{}, ErrNotCtrl
	}
	if len(b) < CtrlPayloadLen {
		return CtrlFrame{}, fmt.Errorf("%w: %d bytes", ErrCtrlTooShort, len(b))
	}
	if b[4] != CtrlVersion {
		return CtrlFrame{}, fmt.Errorf("%w: %d", ErrCtrlVersion, b[4])
	}
	f := CtrlFrame{
		Command:  CtrlCommand(b[5]),
		Duration: time.Duration(binary.BigEndian.Uint32(b[8:12])) * time.Millisecond,
		Nonce:    binary.BigEndian.Uint32(b[12:16]),
	}
	if f.Duration > MaxStall {
		return CtrlFrame{}, fmt.Errorf("%w: %v (max %v)", ErrCtrlBadDuration, f.Duration, MaxStall)
	}
	return f, nil
}

// MarshalEthernet returns a whole Ethernet frame (header, payload, padding
// to the 60-byte minimum) carrying f from src to dst.
func (f CtrlFrame) MarshalEthernet(dst, src net.HardwareAddr) ([]byte, error) {
	if len(dst) != 6 || len(src) != 6 {
		return nil, fmt.Errorf("control frame needs 6-byte MAC addresses, got %q and %q", dst, src)
	}
	p, err := f.MarshalPayload()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 60)
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], EtherTypeCtrl)
	copy(b[14:], p)
	return b, nil
}

// ParseCtrlEthernet decodes a whole Ethernet frame. It returns ErrNotCtrl
// for any frame that is not a control frame (other ethertype, VLAN tag,
// wrong magic), so a partner can call it on every frame it receives.
func ParseCtrlEthernet(frame []byte) (f CtrlFrame, src net.HardwareAddr, err error) {
	if len(frame) < 14 || binary.BigEndian.Uint16(frame[12:14]) != EtherTypeCtrl {
		return CtrlFrame{}, nil, ErrNotCtrl
	}
	f, err = ParseCtrlPayload(frame[14:])
	if err != nil {
		return CtrlFrame{}, nil, err
	}
	return f, net.HardwareAddr(append([]byte(nil), frame[6:12]...)), nil
}
