// Package faultinject stalls a DUT's transmit path and always puts it back.
//
// Three injectors bring a device's TX queue to the state in which the
// kernel's watchdog fires (a stopped queue with packets waiting):
//
//   - Netem: a root netem qdisc with a long delay (the seed article's
//     method; on its own it holds packets in the qdisc and does not stop
//     the driver's ring, see shared/reference/kernel-facts.md section 1).
//   - Stall: an in-band control frame (ethertype 0x88B5) asks a link
//     partner running this project's partner program to stop reading for
//     a bounded time.
//   - PauseFlood: 802.3x PAUSE frames sent from the partner port, re-sent
//     before each pause expires, optionally with the DUT's RX flow control
//     switched on for the duration.
//
// Every injector checks the interface before it changes anything (exists,
// up, not loopback, and unless allowed no default route and a driver with
// a tx-timeout handler), writes what it is about to change to a state file
// (StateDir/IFACE.json) before changing it, and restores exactly what it
// found. A crashed run leaves the state file
// behind: Cleanup restores from it, and a new Inject refuses to start until
// it has been cleaned. Leftovers says, without changing anything, what a
// run left behind (state files, project qdiscs, pktgen devices, a NAPI
// hog).
//
// # Ownership
//
// The netem qdisc carries the handle 7478: ("tx"), which nothing else in the
// system uses, so a leftover one is recognisable even without a state file.
package faultinject

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"txtimeout/internal/unsupported"
)

// Injector is one way of stalling a DUT's transmit path.
type Injector interface {
	// Name is "netem", "stall" or "pause".
	Name() string
	// Describe is one line for reports: what the injector will change or
	// did change.
	Describe() string
	// Inject checks safety first, records the state it is about to change
	// (the state file) and then changes it.
	Inject(ctx context.Context) error
	// Restore puts back exactly what Inject found. It is idempotent and
	// safe to call when Inject failed or was never called.
	Restore(ctx context.Context) error
	// RestoreBound is the longest Restore can take once called: the time
	// its own steps need (RestoreSteps), plus whatever only time can end,
	// such as a partner stall that cannot be ended from this side and
	// lasts its length. A caller leaves at least this much between its
	// deadline and the point where the fault must be gone, and gives
	// Restore a context of at least this length.
	RestoreBound() time.Duration
	// Status is one line on the fault while it is in place, for progress
	// reports ("" when there is nothing to add).
	Status(ctx context.Context) string
	// Done is closed when the fault has ended, by itself (a PAUSE flood
	// that stopped) or by Restore; nil when the injector does not tell
	// (its fault lasts until Restore or its own bound).
	Done() <-chan struct{}
}

// RestoreSteps bounds what Restore itself does, apart from waiting for a
// fault that only time ends: netlink and sysfs writes, stopping a flood's
// goroutine, killing a hog, and writing threaded, which waits for rtnl
// while a driver reset holds it (about 2 s on e1000).
const RestoreSteps = 10 * time.Second

// Options are common to every injector.
type Options struct {
	// AllowDefaultRoute allows an interface that carries a default route
	// (normally a rig's management link, which must never be stalled).
	AllowDefaultRoute bool
	// AllowNoTxTimeout allows a virtual interface whose driver has no
	// ndo_tx_timeout (veth, dummy, bridge, tun, ...), on which the kernel's
	// TX watchdog never fires: for tests of the injectors themselves,
	// which run on veth pairs.
	AllowNoTxTimeout bool
	// StateDir holds the state files; DefaultStateDir when empty.
	StateDir string
	// NetNS is the path of a network namespace (for example
	// /run/netns/x) to act in; the caller's namespace when empty.
	NetNS string
}

// DefaultStateDir is where state files live unless Options.StateDir says
// otherwise.
const DefaultStateDir = "/run/txtimeout"

func (o Options) stateDir() string {
	if o.StateDir == "" {
		return DefaultStateDir
	}
	return o.StateDir
}

// ProjectQdiscMajor is the major number of the handle of every qdisc this
// project installs: 0x7478 is "tx".
const ProjectQdiscMajor = 0x7478

// ProjectQdiscHandle is the full handle (7478:0) of the project's qdisc.
const ProjectQdiscHandle uint32 = ProjectQdiscMajor << 16

// IsProjectHandle reports whether a qdisc handle belongs to this project.
func IsProjectHandle(h uint32) bool { return h>>16 == ProjectQdiscMajor }

// Errors. Every error an injector returns is one line; these sentinels let
// callers classify it with errors.Is.
var (
	// ErrNetemUnavailable means the kernel has no netem qdisc.
	ErrNetemUnavailable = errors.New("netem qdisc not available in this kernel (CONFIG_NET_SCH_NETEM)")
	// ErrUnsafeInterface means a safety check refused the interface
	// (missing, down, loopback, carries the default route, has no
	// tx-timeout handler).
	ErrUnsafeInterface = errors.New("refusing interface")
	// ErrStaleState means an earlier run left state behind that must be
	// cleaned first ("txtimeout cleanup").
	ErrStaleState = errors.New("stale state from an earlier run")
	// ErrBusy means another process (or another injector in this one)
	// owns the interface: it holds its lock (see Lock) or recorded a state
	// file and is still running. It is not stale; wait for the owner.
	ErrBusy = errors.New("interface busy")
	// ErrNotRestorable means the interface's current configuration could
	// not be put back faithfully, so nothing was changed.
	ErrNotRestorable = errors.New("not restorable")
	// ErrNoAck means the link partner did not acknowledge a control frame.
	ErrNoAck = errors.New("link partner did not acknowledge")
	// ErrUnsupported means the operation is not supported on this
	// platform or by this device. It is the project's one "not
	// supported" error (also traffic.ErrNotSupported and
	// harness.ErrNotSupported), and it matches errors.ErrUnsupported:
	// test with errors.Is(err, errors.ErrUnsupported).
	ErrUnsupported = unsupported.Err
	// ErrBadConfig marks invalid configuration given to a constructor.
	ErrBadConfig = errors.New("invalid configuration")
)

// Default values.
const (
	DefaultNetemDelay = 9 * time.Second
	DefaultNetemLimit = 1000
	DefaultAckTimeout = 2 * time.Second
	DefaultQuanta     = 0xFFFF
	// MaxPause bounds a PAUSE flood.
	MaxPause = 10 * time.Minute
	// maxNetemDelay bounds the netem delay to something a test could
	// sensibly wait for; the kernel accepts more.
	maxNetemDelay = time.Hour
)

// NetemConfig configures a root netem qdisc.
type NetemConfig struct {
	// Delay of every packet; DefaultNetemDelay when zero. Jitter is
	// optional.
	Delay, Jitter time.Duration
	// Loss is a percentage, 0..100.
	Loss float64
	// Limit is the queue length in packets; DefaultNetemLimit when zero
	// (the kernel would drop everything with a limit of 0).
	Limit uint32
}

func (c NetemConfig) withDefaults() NetemConfig {
	if c.Delay == 0 {
		c.Delay = DefaultNetemDelay
	}
	if c.Limit == 0 {
		c.Limit = DefaultNetemLimit
	}
	return c
}

func (c NetemConfig) validate() error {
	switch {
	case c.Delay < 0 || c.Delay > maxNetemDelay:
		return fmt.Errorf("%w: netem delay %v out of range (0..%v)", ErrBadConfig, c.Delay, maxNetemDelay)
	case c.Jitter < 0 || c.Jitter > c.Delay:
		return fmt.Errorf("%w: netem jitter %v out of range (0..delay %v)", ErrBadConfig, c.Jitter, c.Delay)
	case !(c.Loss >= 0 && c.Loss <= 100): // also rejects NaN
		return fmt.Errorf("%w: netem loss %v%% out of range (0..100)", ErrBadConfig, c.Loss)
	}
	return nil
}

// StallConfig configures a link-partner stall.
type StallConfig struct {
	// For is how long the partner stops reading (at most MaxStall).
	For time.Duration
	// PeerMAC is the partner's MAC address; broadcast when nil.
	PeerMAC net.HardwareAddr
	// AckTimeout bounds the wait for the partner's acknowledgement;
	// DefaultAckTimeout when zero.
	AckTimeout time.Duration
	// Resume, when set, ends the stall early by a path other than the
	// stalled link (which the partner does not read): on the virtual rig,
	// the control serial port to the host that owns the partner
	// (guest.ResumePartner, package rig/guest). Restore calls it, then sends a CmdResume control
	// frame until the partner acknowledges it, the proof that it reads the
	// link again. Its context ends when the stall would end by itself.
	// When it fails or no acknowledgement comes, Restore waits for the
	// stall to run out, as it does without Resume.
	Resume func(ctx context.Context) error
}

// PauseConfig configures a PAUSE flood.
type PauseConfig struct {
	// For is how long the flood lasts (at most MaxPause).
	For time.Duration
	// Quanta is the pause time in units of 512 bit times; DefaultQuanta
	// when zero.
	Quanta uint16
	// DUTIface, when set, is the DUT's interface on this machine: its RX
	// flow control is switched on through ethtool netlink for the flood
	// and restored afterwards.
	DUTIface string
	// DUTNetNS is the path of the network namespace DUTIface is in (for
	// example /run/netns/x); the caller's namespace when empty, whatever
	// Options.NetNS, where the partner port is. Locks and state files go
	// by interface name, so DUTIface must differ from the partner port's
	// name even in another namespace.
	DUTNetNS string
}

// Rings are an interface's RX and TX ring sizes (descriptors) and their
// maximums (GetRings, SetRings).
type Rings struct {
	RX, TX       uint32
	RXMax, TXMax uint32
}

// QdiscStats are the counters of the project's qdisc.
type QdiscStats struct {
	Kind       string
	Handle     uint32
	Bytes      uint64 // sent
	Packets    uint64 // sent
	Backlog    uint32 // bytes waiting
	QLen       uint32 // packets waiting
	Drops      uint32
	Requeues   uint32
	Overlimits uint32
}

func validIfaceName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty interface name", ErrBadConfig)
	}
	if len(name) > 15 {
		return fmt.Errorf("%w: interface name %q longer than 15 bytes", ErrBadConfig, name)
	}
	for _, r := range name {
		if r == '/' || r == ':' || r <= ' ' || r > '~' {
			return fmt.Errorf("%w: interface name %q has invalid character %q", ErrBadConfig, name, r)
		}
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: invalid interface name %q", ErrBadConfig, name)
	}
	return nil
}

func fmtHandle(h uint32) string {
	if h&0xFFFF == 0 {
		return fmt.Sprintf("%x:", h>>16)
	}
	return fmt.Sprintf("%x:%x", h>>16, h&0xFFFF)
}
