// Package scenario is the engine every tx-timeout scenario runs on: a Spec
// says what the scenario needs, which fault it injects, which load it
// offers and for how long, and how its verdict becomes a result; Run runs
// it on the DUT, or, on a host with no DUT configured, boots the virtual
// rig, runs the test inside it and mirrors the guest's subtests; Main is
// the TestMain of a package of scenarios (flags, the restore guard on
// SIGINT and SIGTERM, the check for state an earlier run left behind).
//
// The stock loads (ICMP, Pktgen) and decisions (Common, StallDecision,
// NapiDecision) are the ones the suite's own scenarios use. A scenario of
// a driver developer's own is a test function that calls Run with a Spec;
// README.md shows one, and scenarios/example_test.go is that example.
package scenario
