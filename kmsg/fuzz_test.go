package kmsg

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// maxFuzzInput caps fuzz inputs; records are at most 8 KiB anyway.
const maxFuzzInput = 16 << 10

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte("2,1234,9164193,-;virtio_net virtio0 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms\n"))
	f.Add([]byte("4,88,5000000,-;msg\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:19.0\n"))
	f.Add([]byte(`14,7,1,c,caller=T42;a\x09b\x5cc\x0ad`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzInput {
			return
		}
		r, err := ParseRecord(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if r.Level < 0 || r.Level > 7 || r.Facility < 0 || r.Time < 0 {
			t.Fatalf("out of range: %+v", r)
		}
		if len(r.Message) > len(b) {
			t.Fatalf("message longer than input")
		}
		NewMatcher().Match(r)
	})
}

func FuzzLogReader(f *testing.F) {
	f.Add([]byte("[    9.164193] virtio_net virtio0 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms\n"))
	f.Add([]byte("<2>[    9.164193] NETDEV WATCHDOG: eth0 (e1000e): transmit queue 0 timed out 5120 ms\nWARNING: CPU: 1 PID: 0 at net/sched/sch_generic.c:525 dev_watchdog+0x21f/0x230\n"))
	f.Add([]byte("2,1,2,-;x\n SUBSYSTEM=net\n\n[ 1.0] [  T1] y\n  indented\n\x00\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzInput {
			return
		}
		lr := NewLogReader(bytes.NewReader(b))
		m := NewMatcher()
		lines := strings.Count(string(b), "\n") + 1
		n := 0
		for {
			r, err := lr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			n++
			if n > lines {
				t.Fatalf("more records (%d) than lines (%d)", n, lines)
			}
			m.Match(r)
		}
		if lr.Skipped()+n > lines {
			t.Fatalf("%d records + %d skipped > %d lines", n, lr.Skipped(), lines)
		}
	})
}
