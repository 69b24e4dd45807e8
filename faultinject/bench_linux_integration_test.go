//go:build linux

package faultinject

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkIntegrationPauseResend measures how well the flood keeps a
// veth (10 Gb/s as ethtool reports it) paused: frames per second and the
// share of gaps longer than one pause, for a long and a short pause.
//
//	go test -run XXX -bench PauseResend -benchtime 3x ./faultinject/
func BenchmarkIntegrationPauseResend(b *testing.B) {
	for _, q := range []uint16{0xFFFF, 0x1000} {
		b.Run(fmt.Sprintf("quanta=%#x", q), func(b *testing.B) {
			v := testVeth(b)
			var sent, late uint64
			var maxGap time.Duration
			const dur = 300 * time.Millisecond
			for b.Loop() {
				p, err := NewPauseFlood(v.B, PauseConfig{For: dur, Quanta: q}, Options{NetNS: v.NS, StateDir: b.TempDir(), AllowNoTxTimeout: true})
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Inject(context.Background()); err != nil {
					b.Fatal(err)
				}
				<-p.Done()
				if err := p.Restore(context.Background()); err != nil {
					b.Fatal(err)
				}
				l, g := p.Late()
				sent += p.Sent()
				late += l
				maxGap = max(maxGap, g)
			}
			b.ReportMetric(float64(sent)/(float64(b.N)*dur.Seconds()), "frames/s")
			b.ReportMetric(float64(late)/float64(sent), "late/frame")
			b.ReportMetric(float64(maxGap.Microseconds()), "maxgap-µs")
			b.ReportMetric(float64(pauseDuration(q, 10_000).Microseconds()), "pause-µs")
		})
	}
}
