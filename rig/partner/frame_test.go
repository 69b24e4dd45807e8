package partner

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
	"time"

	"txtimeout/faultinject"
)

func TestReadFrame(t *testing.T) {
	prefix := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	for _, tc := range []struct {
		name   string
		stream []byte
		want   error
	}{
		{"empty stream", nil, io.EOF},
		{"length 0", prefix(0), ErrFrameLength},
		{"length too big", prefix(MaxFrameLen + 1), ErrFrameLength},
		{"length 4 GiB", prefix(0xffffffff), ErrFrameLength},
		{"truncated prefix", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"truncated frame", append(prefix(60), make([]byte, 59)...), io.ErrUnexpectedEOF},
		{"prefix only", prefix(60), io.ErrUnexpectedEOF},
	} {
		_, err := ReadFrame(bytes.NewReader(tc.stream), make([]byte, 100))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: ReadFrame = %v, want %v", tc.name, err, tc.want)
		}
		if tc.want == io.EOF && err != io.EOF {
			t.Errorf("%s: a clean end must be io.EOF itself, got %v", tc.name, err)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	var stream bytes.Buffer
	frames := [][]byte{{1}, bytes.Repeat([]byte{2}, 60), bytes.Repeat([]byte{3}, 1514), bytes.Repeat([]byte{4}, MaxFrameLen)}
	for _, f := range frames {
		if err := WriteFrame(&stream, f); err != nil {
			t.Fatalf("WriteFrame(%d bytes): %v", len(f), err)
		}
	}
	// One byte per Read, as a stream socket may deliver it.
	r := iotest.OneByteReader(&stream)
	buf := make([]byte, 64) // too small for most: ReadFrame allocates
	for _, want := range frames {
		got, err := ReadFrame(r, buf)
		if err != nil {
			t.Fatalf("ReadFrame: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read %d bytes, want the %d written", len(got), len(want))
		}
	}
	if _, err := ReadFrame(r, buf); err != io.EOF {
		t.Errorf("after the last frame: %v, want io.EOF", err)
	}
	for _, n := range []int{0, MaxFrameLen + 1} {
		if err := WriteFrame(io.Discard, make([]byte, n)); !errors.Is(err, ErrFrameLength) {
			t.Errorf("WriteFrame(%d bytes) = %v, want ErrFrameLength", n, err)
		}
	}
}

// maxFuzzInput caps fuzz inputs: a few frames' worth is enough to reach
// every branch, and keeps each run fast.
const maxFuzzInput = 1 << 17

func FuzzReadFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream []byte) {
		if len(stream) > maxFuzzInput {
			return
		}
		r := bytes.NewReader(stream)
		var again bytes.Buffer
		buf := make([]byte, 1600)
		for {
			fr, err := ReadFrame(r, buf)
			if err != nil {
				consumed := len(stream) - r.Len()
				if err == io.EOF {
					if consumed != len(stream) {
						t.Fatalf("io.EOF with %d bytes left", len(stream)-consumed)
					}
				} else if !errors.Is(err, ErrFrameLength) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			if len(fr) == 0 || len(fr) > MaxFrameLen {
				t.Fatalf("frame of %d bytes accepted", len(fr))
			}
			if err := WriteFrame(&again, fr); err != nil {
				t.Fatalf("WriteFrame of a frame ReadFrame accepted: %v", err)
			}
		}
		if !bytes.HasPrefix(stream, again.Bytes()) {
			t.Fatalf("frames read do not write back to the stream's prefix")
		}
	})
}

func FuzzDecodeFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzInput {
			return
		}
		fr, err := DecodeFrame(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		switch fr.Kind {
		case KindEchoRequest:
			if checksum(fr.Transport) != 0 || fr.Transport[0] != icmpEchoRequest {
				t.Fatalf("echo request with a bad checksum or type accepted")
			}
			fallthrough
		case KindUDP, KindFragment:
			if checksum(fr.Network[:int(fr.Network[0]&0xf)*4]) != 0 {
				t.Fatalf("IPv4 header with a bad checksum accepted")
			}
			if len(fr.Network) > len(b)-14 {
				t.Fatalf("network layer overruns the frame")
			}
		case KindCtrl:
			if _, _, err := faultinject.ParseCtrlEthernet(b); err != nil {
				t.Fatalf("control frame that faultinject rejects: %v", err)
			}
		case KindARP:
			if len(b) < 14+28 {
				t.Fatalf("ARP from %d bytes", len(b))
			}
		}
	})
}

// updateSeeds rewrites the fuzz seeds in testdata from frames built by the
// tests' own builders: go test ./rig/partner -run TestFuzzSeeds -update-seeds
var updateSeeds = flag.Bool("update-seeds", false, "rewrite the fuzz seed corpus in testdata/fuzz")

// seedFrames are the frames the seed corpus holds, by file name.
func seedFrames(tb testing.TB) map[string][]byte {
	ping := echoRequest(tb, DefaultIP, 56, 1500, 1, 1)[0]
	big := echoRequest(tb, DefaultIP, 2048, 1500, 2, 1)
	stall, err := faultinject.CtrlFrame{Command: faultinject.CmdStall, Duration: 6 * time.Second, Nonce: 0x01020304}.MarshalEthernet(DefaultMAC, dutMAC)
	if err != nil {
		tb.Fatal(err)
	}
	opts := append([]byte(nil), ping...)
	opts[14] = 0x46 // IHL 6 without the option bytes: a lying header
	return map[string][]byte{
		"arp-request":   arpWho(tb, DefaultIP),
		"echo-64":       ping,
		"echo-2048-mf":  big[0],
		"echo-2048-end": big[1],
		"ctrl-stall":    stall,
		"ihl-lies":      opts,
		"short":         ping[:13],
	}
}

func TestFuzzSeeds(t *testing.T) {
	frames := seedFrames(t)
	corpus := func(b []byte) []byte { return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b) }
	check := func(target, name string, b []byte) {
		path := filepath.Join("testdata", "fuzz", target, name)
		if *updateSeeds {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, corpus(b), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("seed missing (regenerate with -update-seeds): %v", err)
		}
		if !bytes.Equal(got, corpus(b)) {
			t.Errorf("seed %s is stale (regenerate with -update-seeds)", path)
		}
	}
	for name, b := range frames {
		check("FuzzDecodeFrame", name, b)
	}
	// The stream seeds: frames back to back (in name order, for a stable
	// file), then the framing faults.
	var stream bytes.Buffer
	for _, name := range []string{"arp-request", "ctrl-stall", "echo-2048-end", "echo-2048-mf", "echo-64"} {
		WriteFrame(&stream, frames[name])
	}
	check("FuzzReadFrame", "stream", stream.Bytes())
	check("FuzzReadFrame", "zero-length", []byte{0, 0, 0, 0})
	check("FuzzReadFrame", "huge-length", []byte{0, 1, 0, 14})
	check("FuzzReadFrame", "truncated", []byte{0, 0, 0, 60, 0xff})
}
