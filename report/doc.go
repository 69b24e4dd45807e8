// Package report turns txtimeout's report.json files into what people look
// at: a timeline figure per scenario, one self-contained HTML page per run,
// and the kernel × NIC × scenario matrix with its JSON, KTAP, JUnit and HTML
// files and its comparison against a previous matrix.
//
// The package only reads reports (harness.ReadReport) and writes files
// derived from them; it never runs a scenario. A page needs no network
// when it is viewed: its CSS and its SVG figures are inline.
package report
