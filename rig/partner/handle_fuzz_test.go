package partner

import (
	"bytes"
	"context"
	"testing"
)

// FuzzHandle feeds a stream of frames (in the link's own framing, so the
// FuzzReadFrame seeds serve here too) through the partner's whole receive
// path, ip4defrag included, and checks that everything it queues for the
// DUT is a frame the DUT's kernel would accept. No Serve loop runs, so a
// stall request only records a stall (and its acknowledgement) and the
// fuzzer goes on.
func FuzzHandle(f *testing.F) {
	for _, b := range seedFrames(f) {
		var stream bytes.Buffer
		WriteFrame(&stream, b)
		f.Add(stream.Bytes())
	}
	var two bytes.Buffer
	for _, b := range echoRequest(f, DefaultIP, 1473, 1500, 9, 9) {
		WriteFrame(&two, b)
	}
	f.Add(two.Bytes())

	f.Fuzz(func(t *testing.T, stream []byte) {
		if len(stream) > maxFuzzInput {
			return
		}
		p := newPartner(t, Config{})
		s := p.newSession(stopReading{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		werr := make(chan error)
		r := bytes.NewReader(stream)
		for {
			b, err := ReadFrame(r, nil)
			if err != nil {
				break
			}
			s.handle(ctx, b, werr)
			for len(s.out) > 0 {
				fr := (*<-s.out)[prefixLen:]
				if len(fr) < minFrameLen || len(fr) > 14+DefaultMTU {
					t.Fatalf("sent a %d-byte frame", len(fr))
				}
				d, err := DecodeFrame(fr)
				if err != nil {
					t.Fatalf("sent a frame the DUT would drop: %v (%x)", err, fr)
				}
				if d.Src.String() != DefaultMAC.String() {
					t.Fatalf("sent a frame from %s", d.Src)
				}
				if d.Network != nil && !d.SrcIP.Equal(DefaultIP) {
					t.Fatalf("sent a datagram from %s", d.SrcIP)
				}
			}
		}
	})
}

// FuzzReassemble drives ip4defrag with well-formed fragments in any order,
// overlap and duplication the fuzzer picks (each 4-byte record: datagram
// ID, offset in 8-byte units, length, flags), since random bytes would
// almost never carry a valid IPv4 checksum. Whatever the partner sends back
// must still be a frame the DUT's kernel accepts.
func FuzzReassemble(f *testing.F) {
	f.Add([]byte{1, 0, 185, 1, 1, 185, 73, 0})                // a 2048-byte ping: 1480 + 576
	f.Add([]byte{1, 185, 73, 0, 1, 0, 185, 1})                // the same, last fragment first
	f.Add([]byte{1, 0, 185, 1, 1, 185, 1, 0x80})              // a 1-byte last fragment
	f.Add([]byte{1, 0, 185, 1, 1, 100, 185, 1, 1, 185, 9, 0}) // overlapping
	f.Add([]byte{1, 0, 185, 1, 1, 0, 185, 1, 1, 185, 9, 0})   // duplicate
	msg := echoRequest(f, DefaultIP, 65000, 65535, 0, 1)[0][14+20:]
	f.Fuzz(func(t *testing.T, recs []byte) {
		if len(recs) > 4*64 {
			return
		}
		p := newPartner(t, Config{})
		s := p.newSession(stopReading{})
		ctx := context.Background()
		for ; len(recs) >= 4; recs = recs[4:] {
			id, off, n, fl := uint16(recs[0]), int(recs[1])*8, int(recs[2])*8, recs[3]
			if fl&0x80 != 0 {
				n = int(recs[2]) % 8 // a short last fragment
			}
			if n == 0 || off+n > len(msg) {
				continue
			}
			ff := uint16(off / 8)
			if fl&1 != 0 {
				ff |= 0x2000
			}
			fr := make([]byte, 14+20+n)
			putEthernet(fr, DefaultMAC, dutMAC, etherTypeIPv4)
			ip := fr[14:34]
			ip[0] = 0x45
			ip[2], ip[3] = byte((20+n)>>8), byte(20+n)
			ip[4], ip[5] = byte(id>>8), byte(id)
			ip[6], ip[7] = byte(ff>>8), byte(ff)
			ip[8], ip[9] = 64, protoICMP
			copy(ip[12:16], dutIP)
			copy(ip[16:20], DefaultIP)
			c := checksum(ip)
			ip[10], ip[11] = byte(c>>8), byte(c)
			copy(fr[34:], msg[off:off+n])
			s.handle(ctx, fr, nil)
			for len(s.out) > 0 {
				out := *<-s.out
				d, err := DecodeFrame(out[prefixLen:])
				if err != nil {
					t.Fatalf("sent a frame the DUT would drop: %v", err)
				}
				if d.Kind == KindOther && checksum(d.Transport) != 0 {
					t.Fatalf("sent an unfragmented echo reply with a bad ICMP checksum")
				}
			}
		}
	})
}
