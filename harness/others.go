//go:build !linux

package harness

import (
	"context"
	"errors"
	"fmt"
	"time"
)

var errUnsupported = fmt.Errorf("harness: only Linux is supported: %w", ErrNotSupported)

// Preflight fails every check outside Linux.
func Preflight(c Config) []Check {
	var out []Check
	for _, n := range []string{CheckRoot, CheckKmsg, CheckIface, CheckDriver, CheckNetem, CheckPktgen, CheckTracepoint} {
		out = append(out, Check{Name: n, Reason: errUnsupported.Error(), Fix: "run on Linux"})
	}
	return out
}

// Observers is not available outside Linux.
type Observers struct{}

// StartObservers returns an error outside Linux.
func StartObservers(ctx context.Context, c Config, tl *Timeline) (*Observers, error) {
	return nil, errUnsupported
}

// SampleNow returns an error outside Linux.
func (o *Observers) SampleNow() error { return errUnsupported }

// Stop does nothing.
func (o *Observers) Stop() error { return errors.New("harness: observers not running") }

// ProbeNetem reports that netem is not available outside Linux.
func ProbeNetem() error { return errUnsupported }

// ProbePktgen reports that pktgen is not available outside Linux.
func ProbePktgen() error { return errUnsupported }

// ProbeTracepoint reports that tracepoints are not available outside Linux.
func ProbeTracepoint() error { return errUnsupported }

// WaitCarrier is not supported off Linux.
func WaitCarrier(ctx context.Context, iface string, d time.Duration) error { return errUnsupported }
