package report

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"txtimeout/harness"
)

// ktapTest is a test line of a KTAP document with its subtests.
type ktapTest struct {
	ok, skip bool
	num      int
	name     string
	subtests []ktapTest
}

var ktapResult = regexp.MustCompile(`^(ok|not ok) (\d+) ([^#]*?)(?: # (SKIP)?.*)?$`)

// parseKTAP parses a KTAP version 1 document with nested subtests
// (Documentation/dev-tools/ktap.rst): at each level a version line, a
// plan, and result lines, a subtest block indented two more spaces before
// its parent's result line. It checks plans and numbering.
func parseKTAP(tb testing.TB, lines []string, indent string) ([]ktapTest, []string) {
	tb.Helper()
	if len(lines) == 0 || lines[0] != indent+"KTAP version 1" {
		tb.Fatalf("want %q, got %q", indent+"KTAP version 1", head(lines))
	}
	lines = lines[1:]
	for len(lines) > 0 && strings.HasPrefix(lines[0], indent+"# ") {
		lines = lines[1:]
	}
	var plan int
	if len(lines) == 0 || !strings.HasPrefix(lines[0], indent+"1..") {
		tb.Fatalf("want a plan at indent %q, got %q", indent, head(lines))
	}
	plan, err := strconv.Atoi(strings.TrimPrefix(lines[0], indent+"1.."))
	if err != nil {
		tb.Fatalf("bad plan %q", lines[0])
	}
	lines = lines[1:]
	var tests []ktapTest
	var subs []ktapTest
	for len(tests) < plan {
		if len(lines) == 0 {
			tb.Fatalf("plan 1..%d at indent %q, got %d tests", plan, indent, len(tests))
		}
		l := lines[0]
		switch {
		case l == indent+"  KTAP version 1":
			subs, lines = parseKTAP(tb, lines, indent+"  ")
		case strings.HasPrefix(l, indent+"# "):
			lines = lines[1:]
		case strings.HasPrefix(l, indent+"ok ") || strings.HasPrefix(l, indent+"not ok "):
			g := ktapResult.FindStringSubmatch(strings.TrimPrefix(l, indent))
			if g == nil {
				tb.Fatalf("bad result line %q", l)
			}
			n, _ := strconv.Atoi(g[2])
			if n != len(tests)+1 {
				tb.Fatalf("test %d numbered %d: %q", len(tests)+1, n, l)
			}
			tests = append(tests, ktapTest{ok: g[1] == "ok", skip: g[4] == "SKIP", num: n, name: g[3], subtests: subs})
			subs, lines = nil, lines[1:]
		default:
			tb.Fatalf("unexpected line at indent %q: %q", indent, l)
		}
	}
	return tests, lines
}

func head(lines []string) string {
	if len(lines) == 0 {
		return "end of document"
	}
	return lines[0]
}

func TestMatrixKTAP(t *testing.T) {
	m, _ := fixtureMatrix(t)
	// One failure, to see it bubble up to its NIC and kernel.
	const failed = "6.12.117+deb12-amd64 × e1000 × TxTimeout/Race/Unbind"
	for i := range m.Cells {
		if m.Cells[i].Key() == failed {
			m.Cells[i].Result, m.Cells[i].Report.Result = harness.Fail, harness.Fail
		}
	}
	var b bytes.Buffer
	if err := m.WriteKTAP(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	kernels, rest := parseKTAP(t, lines, "")
	if len(rest) != 0 {
		t.Fatalf("lines after the top-level tests: %q", rest)
	}
	leaves := 0
	for _, k := range kernels {
		if indexOf(m.Kernels, k.name) == len(m.Kernels) {
			t.Errorf("top-level test %q is not a kernel", k.name)
		}
		anyFail := false
		for _, n := range k.subtests {
			nicFail := false
			for _, s := range n.subtests {
				leaves++
				c, ok := m.Cell(k.name, n.name, s.name)
				if !ok {
					t.Errorf("%s × %s × %s: no such cell", k.name, n.name, s.name)
					continue
				}
				wantSkip := c.Result == harness.Skip || c.Result == harness.Inconclusive
				if s.ok != (c.Result != harness.Fail) || s.skip != wantSkip {
					t.Errorf("%s: ok %v skip %v for result %s", c.Key(), s.ok, s.skip, c.Result)
				}
				nicFail = nicFail || !s.ok
			}
			if n.ok == nicFail {
				t.Errorf("%s × %s: ok %v, but a subtest failed: %v", k.name, n.name, n.ok, nicFail)
			}
			anyFail = anyFail || nicFail
		}
		if k.ok == anyFail {
			t.Errorf("%s: ok %v, a subtest failed: %v", k.name, k.ok, anyFail)
		}
	}
	if leaves != len(m.Cells) {
		t.Errorf("%d scenario lines, want %d cells", leaves, len(m.Cells))
	}
}
