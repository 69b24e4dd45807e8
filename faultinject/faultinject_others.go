//go:build !linux

package faultinject

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// Outside Linux every injector exists, so that callers build, and every
// operation that would touch the system returns ErrUnsupported.

var errPlatform = fmt.Errorf("fault injection on %s: %w", runtime.GOOS, ErrUnsupported)

// stub is what every injector here is: Inject refuses, Restore has
// nothing to undo.
type stub struct{ iface string }

func (stub) Inject(context.Context) error  { return errPlatform }
func (stub) Restore(context.Context) error { return nil }
func (stub) RestoreBound() time.Duration   { return RestoreSteps }
func (stub) Status(context.Context) string { return "" }
func (stub) Done() <-chan struct{}         { return nil }

// Netem attaches a root netem qdisc (Linux only).
type Netem struct{ stub }

// NewNetem validates its input; on this platform the injector cannot act.
func NewNetem(iface string, c NetemConfig, o Options) (*Netem, error) {
	if err := validIfaceName(iface); err != nil {
		return nil, err
	}
	if err := c.withDefaults().validate(); err != nil {
		return nil, err
	}
	return &Netem{stub{iface}}, nil
}

func (n *Netem) Name() string                              { return "netem" }
func (n *Netem) Describe() string                          { return "netem on " + n.iface + " (unsupported here)" }
func (n *Netem) Stats(context.Context) (QdiscStats, error) { return QdiscStats{}, errPlatform }

// Stall asks the link partner to stop reading (Linux only).
type Stall struct{ stub }

// NewStall returns an injector that cannot act on this platform.
func NewStall(iface string, c StallConfig, o Options) (*Stall, error) {
	if err := validIfaceName(iface); err != nil {
		return nil, err
	}
	return &Stall{stub{iface}}, nil
}

func (s *Stall) Name() string     { return "stall" }
func (s *Stall) Describe() string { return "stall on " + s.iface + " (unsupported here)" }

// PauseFlood sends PAUSE frames (Linux only).
type PauseFlood struct{ stub }

// NewPauseFlood returns an injector that cannot act on this platform.
func NewPauseFlood(partnerIface string, c PauseConfig, o Options) (*PauseFlood, error) {
	if err := validIfaceName(partnerIface); err != nil {
		return nil, err
	}
	return &PauseFlood{stub{partnerIface}}, nil
}

func (p *PauseFlood) Name() string     { return "pause" }
func (p *PauseFlood) Describe() string { return "pause from " + p.iface + " (unsupported here)" }
func (p *PauseFlood) Sent() uint64     { return 0 }

// NapiStarve starves a device's NAPI threads (Linux only).
type NapiStarve struct{ stub }

// NewNapiStarve validates its input; on this platform the injector cannot act.
func NewNapiStarve(iface string, c NapiConfig, o Options) (*NapiStarve, error) {
	if err := validIfaceName(iface); err != nil {
		return nil, err
	}
	if _, err := c.validate(); err != nil {
		return nil, err
	}
	return &NapiStarve{stub{iface}}, nil
}

func (n *NapiStarve) Name() string { return "napi" }
func (n *NapiStarve) Describe() string {
	return "NAPI starvation of " + n.iface + " (unsupported here)"
}
func (n *NapiStarve) Release(context.Context) error { return nil }
func (n *NapiStarve) Running() bool                 { return false }
func (n *NapiStarve) Diagnose(pktgen bool) string   { return "" }

var (
	_ Injector = (*Netem)(nil)
	_ Injector = (*Stall)(nil)
	_ Injector = (*PauseFlood)(nil)
	_ Injector = (*NapiStarve)(nil)
)

// FlowControl is unsupported outside Linux.
func FlowControl(iface string, o Options) (string, error) { return "", errPlatform }

// GetRings is unsupported outside Linux.
func GetRings(iface string, o Options) (Rings, error) { return Rings{}, errPlatform }

// SetRings is unsupported outside Linux.
func SetRings(iface string, rx, tx uint32, o Options) error { return errPlatform }

// Cleanup is unsupported outside Linux.
func Cleanup(ctx context.Context, iface string, o Options) ([]string, error) {
	return nil, errPlatform
}

// CleanupAll is unsupported outside Linux.
func CleanupAll(ctx context.Context, o Options) ([]string, error) { return nil, errPlatform }

// CarriesDefaultRoute reports that routes cannot be read on this system.
func CarriesDefaultRoute(iface string, o Options) (bool, error) { return false, errPlatform }

// Lock takes iface's ownership lock (Linux only).
func Lock(iface string, o Options) (release func(), err error) {
	if err := validIfaceName(iface); err != nil {
		return nil, err
	}
	return nil, errPlatform
}

// liveOwner reports no owner alive: there are no injections here.
func liveOwner(pid int) (owner, bool) { return owner{}, false }

// Leftovers is unsupported outside Linux.
func Leftovers(iface string, o Options) ([]string, error) { return nil, errPlatform }
