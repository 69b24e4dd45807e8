package rig

import (
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Progress lines that tools read back from a run's output (Config.Progress,
// RunTest's log), written and parsed here only.
const (
	progressFirstTest = "first test running in the guest %.1fs after start"
	progressGuestInit = "guest init up %.1fs after QEMU started"
	progressKept      = "work directory kept: %s"
)

var (
	firstTestRE = regexp.MustCompile(`first test running in the guest ([0-9.]+)s after start`)
	guestInitRE = regexp.MustCompile(`guest init up ([0-9.]+)s after QEMU started`)
	keptRE      = regexp.MustCompile(`work directory kept: (\S+)`)
)

// Progress is what the progress lines in a run's output say, e.g. in the
// output of `go test ./scenarios` (cmd/benchreport reads it so).
type Progress struct {
	// BootTime and GuestBootTime are Result.BootTime and
	// Result.GuestBootTime of the first run in the output, to 0.1 s; zero
	// when the output does not say.
	BootTime, GuestBootTime time.Duration
	// Kept are the work directories that runs kept, each once, in order.
	Kept []string
}

// ParseProgress reads the progress lines in out.
func ParseProgress(out string) Progress {
	var p Progress
	p.BootTime = firstSeconds(firstTestRE, out)
	p.GuestBootTime = firstSeconds(guestInitRE, out)
	for _, m := range keptRE.FindAllStringSubmatch(out, -1) {
		if !slices.Contains(p.Kept, m[1]) {
			p.Kept = append(p.Kept, m[1])
		}
	}
	return p
}

func firstSeconds(re *regexp.Regexp, out string) time.Duration {
	m := re.FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	s, err := strconv.ParseFloat(m[1], 64)
	if err != nil || s < 0 || s > 1e6 {
		return 0
	}
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond)
}
