package harness

import (
	"strings"
	"testing"
	"time"
)

func TestDriverCheck(t *testing.T) {
	for _, tc := range []struct {
		name, driver, release, kallsyms string
		ok                              bool
		reason                          string
	}{
		{"virtio_net new", "virtio_net", "6.1.0-50-amd64", "", true, "driver virtio_net has a tx-timeout handler (logs: TX timeout on queue"},
		{"virtio_net before 5.16", "virtio_net", "5.15.0-91-generic", "", false, "only since Linux 5.16; this kernel is 5.15.0-91-generic"},
		{"virtio_net 5.16 exactly", "virtio_net", "5.16.0", "", true, "has a tx-timeout handler"},
		{"e1000e", "e1000e", "6.12.117+deb12-amd64", "", true, "has a tx-timeout handler"},
		{"veth", "veth", "6.18.44", "", false, "driver veth has no tx-timeout handler"},
		{"dummy", "dummy", "6.18.44", "", false, "driver dummy has no tx-timeout handler"},
		{"loopback", "loopback", "6.18.44", "", false, "no tx-timeout handler"},
		{"unknown with a symbol", "foonic", "6.1.0", "foonic_tx_timeout", true, "has a function foonic_tx_timeout"},
		{"unknown without", "foonic", "6.1.0", "", true, "not in the table"},
		{"no driver", "", "6.1.0", "", true, "driver unknown"},
	} {
		c := driverCheck("eth0", tc.driver, tc.release, tc.kallsyms)
		if c.Name != CheckDriver || c.OK != tc.ok || !strings.Contains(c.Reason, tc.reason) {
			t.Errorf("%s: got %s, want ok=%v and %q", tc.name, c, tc.ok, tc.reason)
		}
		if !c.OK && c.Fix == "" {
			t.Errorf("%s: a failed check needs a fix: %s", tc.name, c)
		}
	}
}

func TestKallsymsTxTimeout(t *testing.T) {
	// Lines as /proc/kallsyms shows them to root (addresses shortened).
	text := `ffffffffc0a01000 t __pfx_virtnet_tx_timeout	[virtio_net]
ffffffffc0a01010 t virtnet_tx_timeout	[virtio_net]
ffffffffc0b02000 t foo_xmit	[foonic]
ffffffffc0b03000 d foo_tx_timeout_table	[foonic]
ffffffff81eadc40 t tx_timeout_show`
	text = strings.ReplaceAll(text, "\t", " ")
	if got := kallsymsTxTimeout(text, "virtio_net"); got != "virtnet_tx_timeout" {
		t.Errorf("virtio_net: %q", got)
	}
	if got := kallsymsTxTimeout(text, "foonic"); got != "" {
		t.Errorf("foonic has only data named tx_timeout, got %q", got)
	}
	if got := kallsymsTxTimeout(text, "nomod"); got != "" {
		t.Errorf("nomod: %q", got)
	}
}

func TestCheckString(t *testing.T) {
	wantEq(t, Check{Name: "netem", Reason: "missing", Fix: "modprobe sch_netem"}.String(), "netem: FAILED: missing (fix: modprobe sch_netem)", "failed check")
	wantEq(t, Check{Name: "kmsg", OK: true, Reason: "readable", Fix: "x"}.String(), "kmsg: ok: readable", "passed check")
}

// BenchmarkVerdict derives a verdict from a ten-minute timeline sampled
// every SampleInterval, the largest a scenario makes; WaitFor predicates
// derive one on every sample.
func BenchmarkVerdict(b *testing.B) {
	var s Snapshot
	s.Start = t0
	n := int(10 * time.Minute / SampleInterval)
	for i := 0; i < n; i++ {
		ms := int64(i) * SampleInterval.Milliseconds()
		smp := Sample{Time: at(ms), SinceMS: ms, TxPackets: uint64(i), Offered: uint64(i * 2), HaveQdisc: true}
		if i > n/3 && i < 2*n/3 {
			smp.TxPackets = uint64(n / 3)
		}
		s.Samples = append(s.Samples, smp)
	}
	s.Marks = []TimelineMark{{Name: MarkFaultInjected, Time: at(200_000)}, {Name: MarkFaultRemoved, Time: at(400_000)}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = s.Verdict(VerdictOptions{})
	}
}
