package partner

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// BenchmarkEchoReply measures echo round trips through Serve on the kind of
// socket QEMU uses, requests pipelined as a ping flood sends them. It
// reports requests per second (frames/s counts the reply frames).
func BenchmarkEchoReply(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
	}{{"64B", 56}, {"2048B-fragmented", 2048}} {
		b.Run(bc.name, func(b *testing.B) {
			a, q := socketPair(b)
			p := startPartner(b, Config{}, a, q).p

			var stream bytes.Buffer
			reqs := echoRequest(b, DefaultIP, bc.size, 1500, 1, 1)
			for _, f := range reqs {
				WriteFrame(&stream, f)
			}
			perReq := echoReplyFrames(8+bc.size, 1500)
			req := stream.Bytes()

			b.SetBytes(int64(len(req)))
			b.ResetTimer()
			start := time.Now()
			// Keep at most a window of requests in flight, as the TX
			// queue would, so no reply is dropped.
			const window = 256
			sent := make(chan struct{}, window)
			werr := make(chan error, 1)
			go func() {
				for range b.N {
					sent <- struct{}{}
					if _, err := q.Write(req); err != nil {
						werr <- err
						return
					}
				}
				werr <- nil
			}()
			buf := make([]byte, MaxFrameLen)
			for range b.N {
				for range perReq {
					if _, err := ReadFrame(q, buf); err != nil {
						b.Fatalf("reading replies: %v", err)
					}
				}
				<-sent
			}
			if err := <-werr; err != nil {
				b.Fatalf("writing requests: %v", err)
			}
			el := time.Since(start)
			b.ReportMetric(float64(b.N)/el.Seconds(), "requests/s")
			b.ReportMetric(float64(b.N*perReq)/el.Seconds(), "frames/s")
			if s := p.Stats(); s.TxDropped != 0 || s.EchoReplies != uint64(b.N) {
				b.Errorf("stats %+v, want %d replies, none dropped", s, b.N)
			}
		})
	}
}

// BenchmarkReceiveUDP measures how fast the partner swallows a pktgen
// flood (1400-byte UDP frames, no replies) from the socket.
func BenchmarkReceiveUDP(b *testing.B) {
	a, q := socketPair(b)
	r := startPartner(b, Config{}, a, q)
	p := r.p

	frame := make([]byte, 1400)
	putEthernet(frame, DefaultMAC, dutMAC, etherTypeIPv4)
	ip := frame[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, protoUDP
	binary.BigEndian.PutUint16(ip[2:4], 1400-14)
	copy(ip[12:16], dutIP)
	copy(ip[16:20], DefaultIP)
	c := checksum(ip)
	ip[10], ip[11] = byte(c>>8), byte(c)
	var stream bytes.Buffer
	for range 64 {
		WriteFrame(&stream, frame)
	}
	batch := stream.Bytes()

	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += 64 {
		if _, err := q.Write(batch); err != nil {
			b.Fatal(err)
		}
	}
	want := uint64((b.N + 63) / 64 * 64)
	for p.Stats().UDP < want {
		select {
		case err := <-r.done:
			b.Fatalf("Serve returned: %v", err)
		default:
			time.Sleep(time.Millisecond)
		}
	}
	b.ReportMetric(float64(want)/time.Since(start).Seconds(), "frames/s")
}
