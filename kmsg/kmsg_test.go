package kmsg

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseRecord(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Record
	}{
		{
			name: "verbatim watchdog, Debian 6.1.176",
			in:   "2,1234,9164193,-;virtio_net virtio0 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms\n",
			want: Record{Level: 2, Facility: 0, Seq: 1234, Time: 9164193 * time.Microsecond, Flags: "-",
				Message: "virtio_net virtio0 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms"},
		},
		{
			name: "dictionary",
			in:   "4,88,5000000,-;e1000e 0000:00:19.0 eth0: Reset adapter unexpectedly\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:19.0\n",
			want: Record{Level: 4, Seq: 88, Time: 5 * time.Second, Flags: "-",
				Message: "e1000e 0000:00:19.0 eth0: Reset adapter unexpectedly",
				Dict:    map[string]string{"SUBSYSTEM": "pci", "DEVICE": "+pci:0000:00:19.0"}},
		},
		{
			name: "escapes, user facility, caller id field, no trailing newline",
			in:   `14,7,1,c,caller=T42;a\x09b\x5cc\x0ad\xZZ`,
			want: Record{Level: 6, Facility: 1, Seq: 7, Time: time.Microsecond, Flags: "c",
				Message: "a\tb\\c\nd\\xZZ"},
		},
		{
			name: "no flags, empty message",
			in:   "0,0,0;",
			want: Record{},
		},
		{
			name: "message with semicolons and equals",
			in:   "6,9,10,-;a;b=c\n",
			want: Record{Level: 6, Seq: 9, Time: 10 * time.Microsecond, Flags: "-", Message: "a;b=c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRecord([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseRecord: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseRecord (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRecordErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"\n",
		"no semicolon here",
		"6,1;too few fields",
		"x,1,2,-;bad prio",
		"-1,1,2,-;negative prio",
		"4294967296,1,2,-;prio too big",
		"6,x,2,-;bad seq",
		"6,1,-2,-;negative ts",
		"6,1,99999999999999999999,-;ts overflows",
		"6,1,9223372036854775807,-;ts overflows a Duration",
		"6,1,2,-;msg\nno leading space",
		"6,1,2,-;msg\n novalue",
		"6,1,2,-;msg\n =value",
	} {
		_, err := ParseRecord([]byte(in))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseRecord(%q) = %v, want ErrMalformed", in, err)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseRecord(%q) error %q spans lines", in, err)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		``:            ``,
		`plain`:       `plain`,
		`\x41\x42`:    `AB`,
		`\x4`:         `\x4`,
		`end\`:        `end\`,
		`\x\x41`:      `\xA`,
		`\xff\xFe`:    "\xff\xfe",
		`a\\x41`:      `a\A`,
		`\x5cx41`:     `\x41`,
		`tab\x09tail`: "tab\ttail",
	} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
