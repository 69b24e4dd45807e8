package scenarios

import (
	"os"
	"strings"
	"testing"

	"txtimeout/rig/guest"
)

// TestReadmeExample checks that the scenario README.md shows under
// "Writing your own scenario" is example_test.go, which make test runs on
// the virtual rig: the example a reader copies is one that passes.
func TestReadmeExample(t *testing.T) {
	if guest.Inside() {
		t.Skip("skipping: README.md is not in the rig's guest; the host runs this test")
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "## Writing your own scenario")
	if !ok {
		t.Fatal(`README.md has no "Writing your own scenario" section`)
	}
	_, block, ok := strings.Cut(after, "```go\n")
	if ok {
		block, _, ok = strings.Cut(block, "```")
	}
	if !ok {
		t.Fatal("README.md's scenario section has no ```go block")
	}
	if block != string(example) {
		t.Errorf("README.md's example scenario differs from scenarios/example_test.go; copy the file into the README:\n%s", example)
	}
	if n := strings.Count(block, "\n"); n > 30 {
		t.Errorf("the README's example scenario is %d lines; it is meant to be read at a glance (30 at most)", n)
	}
}
