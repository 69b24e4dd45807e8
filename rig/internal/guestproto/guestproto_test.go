package guestproto

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHeartbeatRoundTrip(t *testing.T) {
	for _, h := range []Heartbeat{
		{Seq: 1, Uptime: 3210 * time.Millisecond, Load1: 0.52, TestCPU: 830 * time.Millisecond},
		{Seq: 45, Uptime: 95 * time.Second, Load1: -1, TestCPU: -1},
		{Seq: 0, Uptime: 0, Load1: 0, TestCPU: 0},
	} {
		s := h.String()
		got, err := ParseHeartbeat(s)
		require.NoError(t, err, s)
		assert.Equal(t, h, got, s)
	}
	assert.Equal(t, "seq=7 uptime_ms=45210 load1=1.25 test_cpu_ms=30210",
		Heartbeat{Seq: 7, Uptime: 45210 * time.Millisecond, Load1: 1.25, TestCPU: 30210 * time.Millisecond}.String())
}

func TestParseHeartbeat(t *testing.T) {
	// Unknown keys are ignored and the order is free.
	h, err := ParseHeartbeat("uptime_ms=12 future=x seq=3")
	require.NoError(t, err)
	assert.Equal(t, Heartbeat{Seq: 3, Uptime: 12 * time.Millisecond, Load1: -1, TestCPU: -1}, h)

	for _, bad := range []string{
		"",
		"seq=1",
		"uptime_ms=5",
		"seq=1 uptime_ms=5 junk",
		"seq=-1 uptime_ms=5",
		"seq=1 uptime_ms=-5",
		"seq=1 uptime_ms=99999999999999999999",
		"seq=1 uptime_ms=5 load1=NaN",
		"seq=1 uptime_ms=5 load1=-0.5",
		"seq=1 uptime_ms=5 test_cpu_ms=x",
	} {
		if _, err := ParseHeartbeat(bad); err == nil {
			t.Errorf("ParseHeartbeat(%q) accepted it", bad)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseHeartbeat(%q): error of several lines: %v", bad, err)
		}
	}
}

func FuzzParseHeartbeat(f *testing.F) {
	f.Add("seq=1 uptime_ms=3210 load1=0.52 test_cpu_ms=830")
	f.Add("seq=2 uptime_ms=0")
	f.Add("uptime_ms=1e3 seq=0x1 load1=Inf")
	f.Fuzz(func(t *testing.T, in string) {
		if len(in) > 4096 {
			return
		}
		h, err := ParseHeartbeat(in)
		if err != nil {
			return
		}
		if h.Seq < 0 || h.Uptime < 0 {
			t.Fatalf("accepted %q as %+v", in, h)
		}
		// What parses formats to something that parses the same.
		h2, err := ParseHeartbeat(h.String())
		if err != nil {
			t.Fatalf("%q parsed, but its formatting %q does not: %v", in, h.String(), err)
		}
		if h2.Seq != h.Seq || h2.Uptime != h.Uptime || h2.TestCPU.Milliseconds() != h.TestCPU.Milliseconds() {
			t.Fatalf("%+v formats as %q, which parses as %+v", h, h.String(), h2)
		}
	})
}
