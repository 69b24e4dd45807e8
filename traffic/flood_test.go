package traffic

import (
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

func TestFloodConfigValidate(t *testing.T) {
	dst := net.IPv4(198, 18, 0, 2)
	ok := FloodConfig{Dst: dst, Count: 1}
	tests := []struct {
		name string
		mod  func(*FloodConfig)
		want string // substring of the error, "" for valid
	}{
		{"count only", func(c *FloodConfig) {}, ""},
		{"for only", func(c *FloodConfig) { c.Count, c.For = 0, time.Second }, ""},
		{"both bounds", func(c *FloodConfig) { c.For = time.Second }, ""},
		{"max size", func(c *FloodConfig) { c.Size = MaxSize }, ""},
		{"max senders", func(c *FloodConfig) { c.Senders = MaxSenders }, ""},
		{"iface 15 bytes", func(c *FloodConfig) { c.Iface = strings.Repeat("e", 15) }, ""},
		{"no dst", func(c *FloodConfig) { c.Dst = nil }, "no destination"},
		{"ipv6 dst", func(c *FloodConfig) { c.Dst = net.ParseIP("2001:db8::1") }, "not an IPv4"},
		{"unspecified dst", func(c *FloodConfig) { c.Dst = net.IPv4zero }, "unspecified"},
		{"unbounded", func(c *FloodConfig) { c.Count = 0 }, "unbounded"},
		{"size too big", func(c *FloodConfig) { c.Size = MaxSize + 1 }, "payload size 65508"},
		{"negative size", func(c *FloodConfig) { c.Size = -1 }, "payload size -1"},
		{"negative interval", func(c *FloodConfig) { c.Interval = -time.Millisecond }, "negative interval"},
		{"negative count", func(c *FloodConfig) { c.Count = -5 }, "negative count"},
		{"negative for", func(c *FloodConfig) { c.For = -time.Second }, "negative duration"},
		{"max for", func(c *FloodConfig) { c.For = MaxUnboundedTime }, ""},
		{"for over the bound", func(c *FloodConfig) { c.For = MaxUnboundedTime + time.Second }, "over the 10m0s bound"},
		{"too many senders", func(c *FloodConfig) { c.Senders = MaxSenders + 1 }, "senders"},
		{"negative senders", func(c *FloodConfig) { c.Senders = -1 }, "senders"},
		{"long iface", func(c *FloodConfig) { c.Iface = strings.Repeat("e", 16) }, "longer than 15"},
		{"both socket kinds", func(c *FloodConfig) { c.Privileged, c.Unprivileged = true, true }, "exclusive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q is not one line", err)
			}
		})
	}
}

func TestFloodConfigDefaults(t *testing.T) {
	c := FloodConfig{Dst: net.IPv4(198, 18, 0, 2), Count: 1}.withDefaults()
	if c.Size != DefaultSize || c.Senders != 1 || c.Linger != DefaultLinger {
		t.Fatalf("defaults: size %d senders %d linger %v", c.Size, c.Senders, c.Linger)
	}
}

// TestSetSeq checks the incremental checksum against a full marshal.
func TestSetSeq(t *testing.T) {
	for _, size := range []int{0, 1, 55, 2048, MaxSize} {
		pkt, err := echoTemplate(0x1234, size)
		if err != nil {
			t.Fatal(err)
		}
		for _, seq := range []uint16{1, 2, 0xff, 0x100, 0x7fff, 0xfffe, 0xffff, 0, 42} {
			setSeq(pkt, seq)
			want := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 0x1234, Seq: int(seq), Data: pkt[8:]}}
			wb, err := want.Marshal(nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, w := binary.BigEndian.Uint16(pkt[2:4]), binary.BigEndian.Uint16(wb[2:4]); got != w {
				t.Fatalf("size %d seq %d: checksum %#04x, want %#04x", size, seq, got, w)
			}
			if binary.BigEndian.Uint16(pkt[6:8]) != seq {
				t.Fatalf("seq not written")
			}
		}
	}
}

func TestReplyID(t *testing.T) {
	reply := func(typ byte, id uint16) []byte {
		b := make([]byte, 16)
		b[0] = typ
		binary.BigEndian.PutUint16(b[4:6], id)
		return b
	}
	withIP := func(b []byte) []byte {
		h := make([]byte, 20)
		h[0] = 0x45
		return append(h, b...)
	}
	tests := []struct {
		name   string
		b      []byte
		wantID uint16
		wantOK bool
	}{
		{"reply", reply(0, 7), 7, true},
		{"reply with ip header", withIP(reply(0, 0xfffe)), 0xfffe, true},
		{"request", reply(8, 7), 0, false},
		{"unreachable", reply(3, 7), 0, false},
		{"bad code", append([]byte{0, 1}, make([]byte, 14)...), 0, false},
		{"short", []byte{0, 0, 0}, 0, false},
		{"bad header length", []byte{0x41, 0, 0, 0, 0, 0, 0, 0}, 0, false},
		{"truncated header", []byte{0x4f, 0, 0, 0, 0, 0, 0, 0}, 0, false},
		{"empty", nil, 0, false},
	}
	for _, tt := range tests {
		id, ok := replyID(tt.b)
		if id != tt.wantID || ok != tt.wantOK {
			t.Errorf("%s: replyID = %d, %v, want %d, %v", tt.name, id, ok, tt.wantID, tt.wantOK)
		}
	}
}
