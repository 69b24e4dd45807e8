package report

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"txtimeout/harness"
)

// The runs under testdata/runs are report.json files that harness wrote
// during runs of the scenarios on the virtual rig (go test ./scenarios
// -run TxTimeout -args -report-dir DIR, Debian 6.1.0-56 and 6.12.117
// kernels under TCG, e1000 and virtio-net-pci), compacted (jq -c) and
// gzipped to keep the tree small. 6.1-virtio-napi predates the reset and
// link fields of the verdict.

// fixtureRuns unpacks every fixture run into its own directory under a
// temporary directory and returns the run directories, sorted.
func fixtureRuns(tb testing.TB) []string {
	tb.Helper()
	gzs, err := filepath.Glob(filepath.Join("testdata", "runs", "*", harness.ReportJSON+".gz"))
	if err != nil || len(gzs) == 0 {
		tb.Fatalf("no fixture runs under testdata/runs: %v", err)
	}
	root := tb.TempDir()
	var dirs []string
	for _, gz := range gzs {
		dir := filepath.Join(root, filepath.Base(filepath.Dir(gz)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, harness.ReportJSON), gunzip(tb, gz), 0o644); err != nil {
			tb.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	sort.Strings(dirs)
	return dirs
}

func gunzip(tb testing.TB, path string) []byte {
	tb.Helper()
	gz, err := os.ReadFile(path)
	if err == nil {
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(gz)); err == nil {
			var b []byte
			if b, err = io.ReadAll(zr); err == nil {
				return b
			}
		}
	}
	tb.Fatalf("%s: %v", path, err)
	return nil
}

// fixtureReport reads one fixture run's report ("6.12-e1000").
func fixtureReport(tb testing.TB, name string) *harness.Report {
	tb.Helper()
	r, err := harness.ParseReport(gunzip(tb, filepath.Join("testdata", "runs", name, harness.ReportJSON+".gz")))
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// fixtureScenario is one scenario of a fixture run.
func fixtureScenario(tb testing.TB, run, scenario string) harness.ScenarioReport {
	tb.Helper()
	for _, s := range fixtureReport(tb, run).Scenarios {
		if s.Name == scenario {
			return s
		}
	}
	tb.Fatalf("fixture %s has no scenario %s", run, scenario)
	return harness.ScenarioReport{}
}
