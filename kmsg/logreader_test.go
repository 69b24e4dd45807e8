package kmsg

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// readAll reads every record from a LogReader.
func readAll(tb testing.TB, r io.Reader) ([]Record, int) {
	tb.Helper()
	lr := NewLogReader(r)
	var recs []Record
	for {
		rec, err := lr.Next()
		if errors.Is(err, io.EOF) {
			return recs, lr.Skipped()
		}
		if err != nil {
			tb.Fatalf("Next: %v", err)
		}
		recs = append(recs, rec)
	}
}

func TestLogReaderForms(t *testing.T) {
	in := strings.Join([]string{
		// dmesg
		"[    9.164193] virtio_net virtio0 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms",
		// dmesg -r
		"<2>[    9.164193] virtio_net virtio0 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms",
		// raw /dev/kmsg with its dictionary
		"2,1234,9164193,-;virtio_net virtio0 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms",
		" SUBSYSTEM=virtio",
		" DEVICE=+virtio:virtio0",
		// dmesg -x
		"user  :crit  : [ 1151.457703] virtio_net virtio0 txto-669895a: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms",
		"kern  :err   : [    2.000000] x",
		"kern  :bogus : [    2.000000] not a level",
		"kern  :warn  : 2.000000 no timestamp brackets",
		// dmesg with the caller-id column, CRLF line ending
		"[12345.000001] [  T123] hello\r",
		// dmesg -r of a user-space record
		"<14>[    0.5] short fraction",
		// a dmesg record whose message had newlines
		"[    1.000000] e1000e 0000:00:19.0 eth0: Detected Hardware Unit Hang:",
		"  TDH                  <9c>",
		"",
		"not a log line",
		"[not a timestamp] x",
		"<x>[    1.0] bad prio",
		"9,9;too few fields",
		" SUBSYSTEM=orphan",
		"6,5,7,-;last line without newline",
	}, "\n")
	recs, skipped := readAll(t, strings.NewReader(in))
	const msg = "virtio_net virtio0 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms"
	ts := 9164193 * time.Microsecond
	want := []Record{
		{Level: -1, Facility: -1, Time: ts, Message: msg},
		{Level: 2, Facility: 0, Time: ts, Message: msg},
		{Level: 2, Seq: 1234, Time: ts, Flags: "-", Message: msg,
			Dict: map[string]string{"SUBSYSTEM": "virtio", "DEVICE": "+virtio:virtio0"}},
		{Level: 2, Facility: 1, Time: 1151457703 * time.Microsecond, Message: "virtio_net virtio0 txto-669895a: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms"},
		{Level: 3, Facility: 0, Time: 2 * time.Second, Message: "x"},
		{Level: -1, Facility: -1, Time: 12345*time.Second + time.Microsecond, Message: "hello"},
		{Level: 6, Facility: 1, Time: 500 * time.Millisecond, Message: "short fraction"},
		{Level: -1, Facility: -1, Time: time.Second, Message: "e1000e 0000:00:19.0 eth0: Detected Hardware Unit Hang:\nTDH                  <9c>"},
		{Level: 6, Seq: 5, Time: 7 * time.Microsecond, Flags: "-", Message: "last line without newline"},
	}
	if diff := cmp.Diff(want, recs); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if skipped != 7 {
		t.Errorf("Skipped() = %d, want 7", skipped)
	}
}

func TestLogReaderLongLineAndGarbage(t *testing.T) {
	var b strings.Builder
	b.WriteString("[    1.000000] before\n")
	b.WriteString("[    2.000000] " + strings.Repeat("x", 3*maxLine) + "\n")
	b.WriteString("\x00\xff\xfe garbage \x1b[31m\n")
	b.WriteString("[    3.000000] after\n")
	recs, skipped := readAll(t, iotest.OneByteReader(strings.NewReader(b.String())))
	var msgs []string
	for _, r := range recs {
		msgs = append(msgs, r.Message)
	}
	if diff := cmp.Diff([]string{"before", "after"}, msgs); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
	if skipped != 2 {
		t.Errorf("Skipped() = %d, want 2", skipped)
	}
}

func TestLogReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	lr := NewLogReader(io.MultiReader(strings.NewReader("[    1.000000] one\n"), iotest.ErrReader(boom)))
	rec, err := lr.Next()
	if err != nil || rec.Message != "one" {
		t.Fatalf("Next = %+v, %v; want record one", rec, err)
	}
	if _, err := lr.Next(); !errors.Is(err, boom) {
		t.Fatalf("Next = %v, want %v", err, boom)
	}
	if _, err := lr.Next(); !errors.Is(err, boom) {
		t.Fatalf("Next again = %v, want %v", err, boom)
	}
}

// TestLogReaderBootLogs reads this project's machine's own boot log in the
// three forms and checks that every line is understood and nothing in a
// clean boot is an event. Captured on Linux 6.18.44 (the development
// machine) with:
//
//	timeout 5 dd if=/dev/kmsg iflag=nonblock bs=16k > testdata/boot-6.18.kmsg
//	dmesg -r > testdata/boot-6.18.dmesg-r
//	dmesg > testdata/boot-6.18.dmesg
func TestLogReaderBootLogs(t *testing.T) {
	for _, tt := range []struct {
		file  string
		level int
	}{
		{"testdata/boot-6.18.kmsg", 5},
		{"testdata/boot-6.18.dmesg-r", 5},
		{"testdata/boot-6.18.dmesg", -1},
	} {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			recs, skipped := readAll(t, f)
			if skipped != 0 {
				t.Errorf("Skipped() = %d, want 0", skipped)
			}
			if len(recs) < 300 {
				t.Fatalf("got %d records, want the whole boot log (>= 300)", len(recs))
			}
			if recs[0].Level != tt.level || !strings.HasPrefix(recs[0].Message, "Linux version 6.18.44") {
				t.Errorf("first record = %+v, want the banner at level %d", recs[0], tt.level)
			}
			m := NewMatcher()
			for _, r := range recs {
				if evs := m.Match(r); len(evs) != 0 {
					t.Errorf("clean boot log gave events %+v", evs)
				}
			}
		})
	}
}

func TestLogReaderRawDict(t *testing.T) {
	f, err := os.Open("testdata/boot-6.18.kmsg")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, _ := readAll(t, f)
	var dicts, tabs int
	for _, r := range recs {
		if r.Dict["SUBSYSTEM"] != "" && strings.HasPrefix(r.Dict["DEVICE"], "+") {
			dicts++
		}
		if strings.Contains(r.Message, "\t") {
			tabs++
		}
		if strings.Contains(r.Message, `\x`) {
			t.Errorf("escape left in %q", r.Message)
		}
	}
	if dicts == 0 || tabs == 0 {
		t.Errorf("got %d records with SUBSYSTEM/DEVICE and %d with a decoded tab, want some of each", dicts, tabs)
	}
}
