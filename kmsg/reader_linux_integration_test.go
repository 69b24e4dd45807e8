//go:build linux

package kmsg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

// requireKmsg skips unless this process may read and write /dev/kmsg.
func requireKmsg(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat(DefaultPath); errors.Is(err, os.ErrNotExist) {
		tb.Skipf("skipping: %s does not exist (no kernel log device in this container?)", DefaultPath)
	}
	if os.Geteuid() != 0 {
		tb.Skipf("skipping: writing %s needs root (run the tests as root)", DefaultPath)
	}
}

// openKmsg skips as requireKmsg does, then opens the real device with opts
// and closes it at cleanup.
func openKmsg(tb testing.TB, opts Options) *Reader {
	tb.Helper()
	requireKmsg(tb)
	r, err := Open(opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

// kmsgWriter injects records into the real kernel log. The kernel
// rate-limits writes per open file (printk_devkmsg=ratelimit: 10 per 5 s),
// so it reopens the device every few writes.
type kmsgWriter struct {
	tb testing.TB
	f  *os.File
	n  int
}

func newKmsgWriter(tb testing.TB) *kmsgWriter {
	tb.Helper()
	w := &kmsgWriter{tb: tb}
	tb.Cleanup(func() {
		if w.f != nil {
			w.f.Close()
		}
	})
	return w
}

// write logs msg at KERN_DEBUG (so it stays off the console). It must not
// look like an event: other tests scan this machine's log for none.
func (w *kmsgWriter) write(msg string) {
	w.tb.Helper()
	if w.f == nil || w.n == 8 {
		if w.f != nil {
			w.f.Close()
		}
		f, err := os.OpenFile(DefaultPath, os.O_WRONLY, 0)
		if err != nil {
			w.tb.Fatalf("open %s for writing: %v", DefaultPath, err)
		}
		w.f, w.n = f, 0
	}
	if _, err := w.f.WriteString("<7>" + msg + "\n"); err != nil {
		w.tb.Fatalf("write %s: %v", DefaultPath, err)
	}
	w.n++
}

func marker(tb testing.TB) string {
	b := make([]byte, 8)
	rand.Read(b)
	return "txtimeout-kmsg-test " + hex.EncodeToString(b)
}

// waitFor reads r until a record with message msg arrives.
func waitFor(ctx context.Context, r *Reader, msg string) (Record, error) {
	for {
		rec, err := r.Next(ctx)
		var gap *GapError
		switch {
		case errors.As(err, &gap):
			continue
		case err != nil:
			return Record{}, err
		case rec.Message == msg:
			return rec, nil
		}
	}
}

func TestIntegrationFollow(t *testing.T) {
	r := openKmsg(t, Options{})
	w := newKmsgWriter(t)
	m := marker(t)
	w.write(m)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec, err := waitFor(ctx, r, m)
	if err != nil {
		t.Fatalf("marker %q not delivered: %v", m, err)
	}
	// A user-space write gets facility LOG_USER (1).
	if rec.Level != 7 || rec.Facility != 1 || rec.Seq == 0 || rec.Time <= 0 {
		t.Errorf("record = %+v, want level 7, facility 1, a seq and a time", rec)
	}
	if len(NewMatcher().Match(rec)) != 0 {
		t.Errorf("marker %q matched as an event", m)
	}
}

func TestIntegrationFromStartNonBlock(t *testing.T) {
	requireKmsg(t)
	w := newKmsgWriter(t)
	m := marker(t)
	w.write(m)

	r := openKmsg(t, Options{FromStart: true, NonBlock: true})
	var seqs []uint64
	found := false
	for range 1 << 20 {
		rec, err := r.Next(context.Background())
		var gap *GapError
		if errors.As(err, &gap) {
			continue
		}
		if errors.Is(err, ErrNoMore) {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		seqs = append(seqs, rec.Seq)
		found = found || rec.Message == m
	}
	if !found {
		t.Errorf("reading from the start with NonBlock did not reach the marker (%d records)", len(seqs))
	}
	if !slices.IsSorted(seqs) || len(seqs) < 2 {
		t.Errorf("got %d records, sequence numbers not increasing", len(seqs))
	}
}

// TestIntegrationCancel checks that ending the context unblocks Next on the
// real device, and that the Reader still delivers records afterwards.
func TestIntegrationCancel(t *testing.T) {
	r := openKmsg(t, Options{})
	// Cancel once Next has had time to block in the poller; the check is
	// how soon after the cancel it returns, not how long anything takes.
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan time.Time, 1)
	timer := time.AfterFunc(200*time.Millisecond, func() {
		cancelled <- time.Now()
		cancel()
	})
	defer timer.Stop()
	done := make(chan error, 1)
	go func() {
		// Other processes may log meanwhile: read until cancelled.
		for {
			if _, err := r.Next(ctx); err != nil {
				done <- err
				return
			}
		}
	}()
	awaitNextErr(t, done, context.Canceled, "cancel")
	t.Logf("Next returned %v after cancel", time.Since(<-cancelled))

	w := newKmsgWriter(t)
	m := marker(t)
	w.write(m)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel2()
	if _, err := waitFor(ctx2, r, m); err != nil {
		t.Fatalf("after a cancelled Next, marker not delivered: %v", err)
	}
}

// BenchmarkKmsgLatency measures the time from writing a record to
// /dev/kmsg until the follower delivers it. Every iteration writes one
// record to the real kernel log: run it with a bounded count, e.g.
// go test -run '^$' -bench KmsgLatency -benchtime 2000x ./kmsg
func BenchmarkKmsgLatency(b *testing.B) {
	r := openKmsg(b, Options{})
	w := newKmsgWriter(b)
	prefix := marker(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var lat []time.Duration
	i := 0
	for b.Loop() {
		m := fmt.Sprintf("%s %d", prefix, i)
		i++
		start := time.Now()
		w.write(m)
		if _, err := waitFor(ctx, r, m); err != nil {
			b.Fatalf("record %d not delivered: %v", i, err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(q(0.50), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
}
