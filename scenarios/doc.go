// Package scenarios holds the tx-timeout scenarios that users run with
// `go test ./scenarios -run TxTimeout` (and `-run Pktgen`).
//
// With no DUT interface configured (TXTIMEOUT_IFACE unset, no -iface flag)
// the test binary boots the built-in virtual rig (package rig), re-runs
// itself inside the guest and mirrors the guest's subtests; with an
// interface configured the scenarios run directly on it. -short skips the
// virtual rig. See harness for every setting and README.md for the
// scenarios, verdict fields and results.
package scenarios
