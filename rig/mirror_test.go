package rig

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// cannedGuest is what a guest test binary prints with -test.v=test2json
// for TestMirrorHelper with a passing, a skipped, a failing and a nested
// subtest, followed by a test of another name.
var cannedGuest = strings.Join([]string{
	"\x16=== RUN   TestMirrorHelper",
	"\x16=== RUN   TestMirrorHelper/Pass",
	"    g_test.go:10: passing along",
	"<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=Pass RESULT=pass>",
	"\x16--- PASS: TestMirrorHelper/Pass (0.10s)",
	"\x16=== NAME  TestMirrorHelper",
	"\x16=== RUN   TestMirrorHelper/Skip",
	"    g_test.go:20: flooding",
	"    g_test.go:21: inconclusive: the device never stalled",
	"\x16--- SKIP: TestMirrorHelper/Skip (0.00s)",
	"\x16=== RUN   TestMirrorHelper/Outer",
	"\x16=== RUN   TestMirrorHelper/Outer/Fail",
	"    g_test.go:30: splat seen",
	"\x16--- FAIL: TestMirrorHelper/Outer/Fail (0.00s)",
	"\x16--- FAIL: TestMirrorHelper/Outer (0.00s)",
	"\x16--- FAIL: TestMirrorHelper (0.10s)",
	"\x16=== RUN   TestOther",
	"\x16--- PASS: TestOther (0.00s)",
	"\x16FAIL",
	"",
}, "\n")

// TestMirrorHelper is run by TestMirror in a child process: it mirrors the
// canned guest output into itself.
func TestMirrorHelper(t *testing.T) {
	if os.Getenv("TXTIMEOUT_MIRROR_HELPER") != "1" {
		t.Skip("helper of TestMirror")
	}
	m := &mirror{events: parseGuestOutput(strings.NewReader(cannedGuest))}
	if skip := m.root(t); skip != "" {
		t.Skip(skip)
	}
}

func TestMirror(t *testing.T) {
	_, failed := checkChild(t, "^TestMirrorHelper$", "TXTIMEOUT_MIRROR_HELPER=1", []string{
		"--- PASS: TestMirrorHelper/Pass",
		"g_test.go:10: passing along",
		"--- SKIP: TestMirrorHelper/Skip",
		"inconclusive: the device never stalled",
		"--- FAIL: TestMirrorHelper/Outer/Fail",
		"g_test.go:30: splat seen",
		"--- FAIL: TestMirrorHelper/Outer ",
		"--- PASS: TestMirrorHelper/TestOther",
		// A LAVA line also stands alone at the start of a line.
		"\n<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=Pass RESULT=pass>\n",
	})
	if !failed {
		t.Errorf("the mirrored failure did not fail the helper")
	}
}

// checkChild runs this test binary's tests matching run, with env set,
// checks that their output holds every line of want, and returns the
// output and whether the child failed.
func checkChild(t *testing.T, run, env string, want []string) (output string, failed bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run="+run, "-test.v")
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.CombinedOutput()
	s := string(out)
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("the helper's output lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("helper output:\n%s", s)
	}
	return s, err != nil
}
