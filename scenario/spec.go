package scenario

import (
	"context"
	"testing"
	"time"

	"txtimeout/faultinject"
	"txtimeout/harness"
)

// Spec is one scenario: baseline, inject Fault, offer Load for Window,
// watch, remove the fault, check recovery and cleanup, and Decide.
type Spec struct {
	// Needs are the preflight checks (harness.CheckRoot, ...) the
	// scenario cannot run without: one that fails skips the scenario
	// with its reason, before Fault is called.
	Needs []string
	// Fault makes the injector. It is called once the checks passed;
	// an error fails the scenario.
	Fault func() (faultinject.Injector, error)
	// Load offers traffic while the fault is in place.
	Load Load
	// Window bounds the fault: how long traffic is offered (default:
	// the run's flood bound, harness.Config.FloodFor).
	Window time.Duration
	// UntilTimeout ends the window at the first timeout signal: the
	// scenario has what it came for.
	UntilTimeout bool
	// FailFast, when set, ends the window early if tx_packets still
	// moves that long after the load started (over half a second): the
	// fault did not stop the device, and waiting for a watchdog that
	// cannot fire only delays the verdict. NoStall, when set, says why
	// in plain words (Outcome.NoStall).
	FailFast time.Duration
	NoStall  func(faultinject.Injector) string
	// Race, when set, runs once the first timeout signal is in, while
	// the driver's recovery is pending, concurrently with the fault's
	// release.
	Race RaceAction
	// Verdict says how the timeline is judged. Its Iface and
	// RecoverWithin default to the run's (harness.Config).
	Verdict harness.VerdictOptions
	// Decide turns the verdict into a result and a reason.
	Decide Decision
	// Hook, when set, is called at each phase in the test's goroutine
	// (the crash-safety tests stop or kill the scenario there).
	Hook func(ctx context.Context, tl *harness.Timeline, p Phase)
	// Report, when set, receives the outcome instead of the run's
	// report (the soak keeps each run's timeline out of report.json).
	Report *harness.Report
}

// Build returns the Spec of a scenario for this run's configuration. It
// may skip t (Skip) when the DUT cannot run the scenario.
type Build func(t *testing.T, cfg harness.Config) Spec

// Load offers traffic to the DUT until ctx ends and reports what it did.
// It adds what it offers to the timeline (Timeline.AddOffered) where it
// can count it.
type Load func(ctx context.Context, tl *harness.Timeline) (LoadReport, error)

// LoadReport is what a load did: a line for the log and its figures for
// the report.
type LoadReport struct {
	Summary      string
	Measurements []harness.Measurement
}

// Outcome is what the run saw besides the verdict, for Decide.
type Outcome struct {
	Load LoadReport
	// NoStall is set when the run ended the fault early because
	// tx_packets kept moving (Spec.FailFast): why, in plain words.
	NoStall string
	// Race is what the race action did, RaceErr why it failed (both
	// empty when the scenario raced nothing); RaceErr starts with
	// RaceUnsupported when the DUT cannot do what the race needs.
	Race, RaceErr string
}

// Decision turns a verdict into a result and a reason in plain words.
type Decision func(v harness.Verdict, o Outcome) (harness.Result, string)

// Phase is a point of a scenario at which Spec.Hook is called.
type Phase string

// The phases.
const (
	PhaseBaseline Phase = "baseline" // observers running, nothing changed yet
	PhaseInjected Phase = "injected" // the fault is in place, no traffic yet
	PhaseFlood    Phase = "flood"    // the fault is in place and the load runs
)

// RaceAction is what a race scenario does to the DUT once the first
// timeout signal is in. It calls started right before its first blocking
// call into the kernel, and returns what it did in plain words. It must
// put back what it changed before it returns.
type RaceAction func(ctx context.Context, started func()) (done string, err error)
