package traffic

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

var testDst = [4]byte{198, 18, 0, 2}

// request returns the echo request that message m of a batch carries: its
// iovecs joined.
func request(m *unix.Mmsghdr) []byte {
	iovs := unsafe.Slice(m.Hdr.Iov, m.Hdr.Iovlen)
	var b []byte
	for _, v := range iovs {
		if v.Len > 0 {
			b = append(b, unsafe.Slice(v.Base, v.Len)...)
		}
	}
	return b
}

// TestEchoBatch: every message of a batch is a whole, valid echo request
// to the destination, with the next sequence number, across the 16-bit
// wrap.
func TestEchoBatch(t *testing.T) {
	for _, size := range []int{1, 1400, 2048} {
		b, err := newEchoBatch(0x1234, size, testDst)
		if err != nil {
			t.Fatal(err)
		}
		b.seq = 0xffff - 70 // the second batch wraps
		want := b.seq
		for _, n := range []int{batchLen, batchLen, 3, 1} {
			msgs := b.next(n)
			if len(msgs) != n {
				t.Fatalf("next(%d) gave %d messages", n, len(msgs))
			}
			for i := range msgs {
				m := &msgs[i]
				if sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(m.Hdr.Name)); sa.Family != unix.AF_INET || sa.Addr != testDst || m.Hdr.Namelen != unix.SizeofSockaddrInet4 {
					t.Fatalf("size %d: message %d addressed to %+v (len %d)", size, i, sa, m.Hdr.Namelen)
				}
				got := request(m)
				data := make([]byte, size)
				for j := range data {
					data[j] = byte(j)
				}
				wm := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 0x1234, Seq: int(want), Data: data}}
				wb, err := wm.Marshal(nil)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, wb) {
					t.Fatalf("size %d seq %d: request %x..., want %x...", size, want, got[:8], wb[:8])
				}
				want++
			}
		}
	}
}

// sendStep is what a fake sendmmsg does in one call: take the first take
// messages (all if take < 0), or, with take 0, fail with err.
type sendStep struct {
	take int
	err  error
}

// fakeSendmmsg plays steps, one per call (then takes everything), and
// records the sequence numbers of the requests it took.
type fakeSendmmsg struct {
	mu    sync.Mutex
	steps []sendStep
	calls []int // batch length of each call
	seqs  []uint16
}

func (f *fakeSendmmsg) sendmmsg(msgs []unix.Mmsghdr) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, len(msgs))
	st := sendStep{take: -1}
	if len(f.steps) > 0 {
		st, f.steps = f.steps[0], f.steps[1:]
	}
	if st.take == 0 {
		return 0, st.err
	}
	k := len(msgs)
	if st.take > 0 {
		k = min(k, st.take)
	}
	for i := range k {
		f.seqs = append(f.seqs, binary.BigEndian.Uint16(request(&msgs[i])[6:8]))
	}
	return k, nil
}

func newTestRun(c FloodConfig) *floodRun {
	return &floodRun{c: c, got: make(chan struct{}, 1), errors: map[string]int64{}}
}

// TestSendLoopPartialBatches: a batch the kernel takes in part is resent
// from the first request it did not take, errors between are counted once
// each (EAGAIN, a socket buffer that stayed full, not at all), and every
// request goes out once, in order, up to the Count.
func TestSendLoopPartialBatches(t *testing.T) {
	const count = 3*batchLen + 5
	f := &fakeSendmmsg{steps: []sendStep{
		{take: 10},                    // first batch: 10, then
		{err: unix.ENOBUFS},           // a failure mid-batch,
		{err: unix.ENOBUFS},           // twice,
		{take: 1},                     // one more,
		{take: -1},                    // the rest of the batch;
		{err: unix.EAGAIN},            // second batch: fails first,
		{take: batchLen - 1},          // then all but its last,
		{err: unix.ENETDOWN},          // which fails,
		{take: -1},                    // then goes;
		{take: -1},                    // third batch whole;
		{take: 2}, {err: unix.ENOMEM}, // fourth (5 left): 2, an error, the rest
	}}
	r := newTestRun(FloodConfig{Dst: net.IP(testDst[:]), Count: count})
	b, err := newEchoBatch(7, 100, testDst)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.sendLoop(context.Background(), b, f.sendmmsg, nil); err != nil {
		t.Fatal(err)
	}
	if got := r.sent.Load(); got != count {
		t.Fatalf("sent %d, want %d", got, count)
	}
	if len(f.seqs) != count {
		t.Fatalf("the kernel took %d requests, want %d", len(f.seqs), count)
	}
	for i, s := range f.seqs {
		if s != uint16(i) {
			t.Fatalf("request %d has sequence number %d: sent twice or skipped (%v)", i, s, f.seqs)
		}
	}
	st := r.stats(time.Second)
	want := map[string]int64{"ENOBUFS": 2, "ENETDOWN": 1, "ENOMEM": 1}
	if len(st.Errors) != len(want) {
		t.Fatalf("errors %v, want %v", st.Errors, want)
	}
	for k, v := range want {
		if st.Errors[k] != v {
			t.Fatalf("errors %v, want %v", st.Errors, want)
		}
	}
	// Each call resends from the first request not taken.
	wantCalls := []int{64, 54, 54, 54, 53, 64, 64, 1, 1, 64, 5, 3, 3}
	if len(f.calls) != len(wantCalls) {
		t.Fatalf("calls %v, want %v", f.calls, wantCalls)
	}
	for i := range wantCalls {
		if f.calls[i] != wantCalls[i] {
			t.Fatalf("calls %v, want %v", f.calls, wantCalls)
		}
	}
}

// TestSendLoopFatalMidBatch: an error that is not transient ends the flood
// with what was sent before it counted, and the error counted.
func TestSendLoopFatalMidBatch(t *testing.T) {
	f := &fakeSendmmsg{steps: []sendStep{{take: 5}, {err: unix.EPERM}}}
	r := newTestRun(FloodConfig{Dst: net.IP(testDst[:]), Count: 1000})
	b, _ := newEchoBatch(7, 100, testDst)
	err := r.sendLoop(context.Background(), b, f.sendmmsg, nil)
	if !errors.Is(err, unix.EPERM) {
		t.Fatalf("err = %v, want EPERM", err)
	}
	if got := r.sent.Load(); got != 5 {
		t.Fatalf("sent %d, want 5", got)
	}
	if st := r.stats(time.Second); st.Errors["EPERM"] != 1 || len(st.Errors) != 1 {
		t.Fatalf("errors %v, want EPERM once", st.Errors)
	}
}

// TestSendLoopInterval: with an Interval, one request per call and per
// tick.
func TestSendLoopInterval(t *testing.T) {
	f := &fakeSendmmsg{}
	r := newTestRun(FloodConfig{Dst: net.IP(testDst[:]), Count: 5, Interval: time.Millisecond})
	b, _ := newEchoBatch(7, 100, testDst)
	if err := r.sendLoop(context.Background(), b, f.sendmmsg, nil); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 5 || r.sent.Load() != 5 {
		t.Fatalf("calls %v sent %d, want 5 calls of 1", f.calls, r.sent.Load())
	}
	for _, n := range f.calls {
		if n != 1 {
			t.Fatalf("calls %v, want 5 calls of 1", f.calls)
		}
	}
}

// TestSendLoopCountAcrossSenders: senders claiming batches at once send
// exactly Count between them.
func TestSendLoopCountAcrossSenders(t *testing.T) {
	const count, senders = 10*batchLen + 17, 4
	r := newTestRun(FloodConfig{Dst: net.IP(testDst[:]), Count: count})
	var wg sync.WaitGroup
	fakes := make([]*fakeSendmmsg, senders)
	for i := range fakes {
		fakes[i] = &fakeSendmmsg{steps: []sendStep{{take: 3}, {err: unix.ENOBUFS}}}
		b, _ := newEchoBatch(uint16(i), 100, testDst)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.sendLoop(context.Background(), b, fakes[i].sendmmsg, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, f := range fakes {
		total += len(f.seqs)
	}
	if total != count || r.sent.Load() != count {
		t.Fatalf("the kernel took %d, sent counted %d, want %d", total, r.sent.Load(), count)
	}
}

// TestSendLoopContextEndsRetries: a batch that keeps failing is retried
// until the context ends, and then the loop returns without an error.
func TestSendLoopContextEndsRetries(t *testing.T) {
	steps := make([]sendStep, 1<<16)
	for i := range steps {
		steps[i] = sendStep{err: unix.ENOBUFS}
	}
	f := &fakeSendmmsg{steps: steps}
	r := newTestRun(FloodConfig{Dst: net.IP(testDst[:]), Count: 10})
	b, _ := newEchoBatch(7, 100, testDst)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.sendLoop(ctx, b, f.sendmmsg, nil); err != nil {
		t.Fatal(err)
	}
	st := r.stats(time.Second)
	if st.Sent != 0 || st.Errors["ENOBUFS"] == 0 || st.Errors["ENOBUFS"] != int64(len(f.calls)) {
		t.Fatalf("sent %d, errors %v in %d calls: want none sent, every failed call counted", st.Sent, st.Errors, len(f.calls))
	}
}

// socketpair returns the two ends of an AF_UNIX datagram socket pair,
// blocking with sockPoll timeouts as a flood's sockets are: a stand-in for
// an ICMP socket that needs no network. A receiver's queue holds
// net.unix.max_dgram_qlen datagrams (10 by default), so a batch larger
// than that is taken in part once the send times out.
func socketpair(t *testing.T) (a, b *floodSocket) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(sockPoll.Nanoseconds())
	for _, fd := range fds {
		t.Cleanup(func() { unix.Close(fd) })
		for _, opt := range []int{unix.SO_SNDTIMEO, unix.SO_RCVTIMEO} {
			if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
				t.Fatal(err)
			}
		}
	}
	return &floodSocket{fd: fds[0]}, &floodSocket{fd: fds[1]}
}

// unaddressed returns a batch of echo requests without a destination, for
// a connected socket pair that refuses one.
func unaddressed(t *testing.T, size int) *echoBatch {
	t.Helper()
	b, err := newEchoBatch(7, size, testDst)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b.msgs {
		b.msgs[i].Hdr.Name, b.msgs[i].Hdr.Namelen = nil, 0
	}
	return b
}

// TestMmsgPartialSends: through a real socket whose peer's queue is
// shorter than a batch, sendmmsg takes part of a batch when its wait for
// room times out, the rest follows, and every request arrives once, in
// order; the reader gets them in batches, truncated to replyPeek bytes.
func TestMmsgPartialSends(t *testing.T) {
	a, b := socketpair(t)
	const count = 5*batchLen + 3
	// The reader starts only after the first partial send, so that one
	// is sure to happen, whatever the scheduling.
	var partial int
	firstPartial := make(chan struct{})
	sendmmsg := func(msgs []unix.Mmsghdr) (int, error) {
		k, err := mmsg(unix.SYS_SENDMMSG, a.fd, msgs, 0)
		if err == nil && k < len(msgs) {
			if partial == 0 {
				close(firstPartial)
			}
			partial++
		}
		return k, err
	}
	r := newTestRun(FloodConfig{Dst: net.IP(testDst[:]), Count: count})
	eb := unaddressed(t, 1400)
	done := make(chan error, 1)
	go func() { done <- r.sendLoop(context.Background(), eb, sendmmsg, nil) }()
	select {
	case <-firstPartial:
	case err := <-done:
		t.Fatalf("the sender ended before any partial send: %v", err)
	}

	rb := newReplyBatch()
	var seqs []uint16
	maxBatch := 0
	for deadline := time.Now().Add(20 * time.Second); len(seqs) < count; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests arrived in 20 s", len(seqs), count)
		}
		k, err := mmsg(unix.SYS_RECVMMSG, b.fd, rb.msgs, unix.MSG_WAITFORONE)
		if errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			t.Fatalf("recvmmsg after %d: %v", len(seqs), err)
		}
		maxBatch = max(maxBatch, k)
		for i := range k {
			d := rb.datagram(i)
			if len(d) != replyPeek {
				t.Fatalf("datagram of %d bytes, want %d (truncated)", len(d), replyPeek)
			}
			seqs = append(seqs, binary.BigEndian.Uint16(d[6:8]))
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i, s := range seqs {
		if s != uint16(i) {
			t.Fatalf("datagram %d has sequence number %d", i, s)
		}
	}
	if r.sent.Load() != count || len(r.errors) != 0 {
		t.Fatalf("sent %d errors %v, want %d and none", r.sent.Load(), r.errors, count)
	}
	t.Logf("%d partial sends, reads of up to %d", partial, maxBatch)
}

// TestMmsgTimeouts: a send blocked on a full queue and a read on an empty
// one end with EAGAIN after the socket's timeout; a read without waiting
// ends at once.
func TestMmsgTimeouts(t *testing.T) {
	a, b := socketpair(t)
	eb := unaddressed(t, 100)
	sent := 0
	for {
		k, err := mmsg(unix.SYS_SENDMMSG, a.fd, eb.next(batchLen), 0)
		sent += k
		if err != nil {
			if !errors.Is(err, unix.EAGAIN) {
				t.Fatalf("send: %v, want EAGAIN", err)
			}
			break
		}
		if sent > 1<<20 {
			t.Fatal("the queue never filled")
		}
	}
	rb := newReplyBatch()
	for got := 0; got < sent; {
		k, err := mmsg(unix.SYS_RECVMMSG, b.fd, rb.msgs, unix.MSG_DONTWAIT)
		if err != nil {
			t.Fatalf("read %d of %d: %v", got, sent, err)
		}
		got += k
	}
	if _, err := mmsg(unix.SYS_RECVMMSG, b.fd, rb.msgs, unix.MSG_DONTWAIT); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("read of an empty queue without waiting: %v, want EAGAIN", err)
	}
	if _, err := mmsg(unix.SYS_RECVMMSG, b.fd, rb.msgs, unix.MSG_WAITFORONE); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("read of an empty queue: %v, want EAGAIN", err)
	}
}

// TestDrainAndRead: drain counts the echo replies queued, with the flood's
// identifiers only on a raw socket, without waiting; read waits for them
// until it is stopped, and then takes what is queued.
func TestDrainAndRead(t *testing.T) {
	a, b := socketpair(t)
	b.raw = true
	const base = 0xfffe // the identifiers wrap: 0xfffe, 0xffff, 0
	r := newTestRun(FloodConfig{Dst: net.IP(testDst[:]), Count: 1, Senders: 3})
	r.base = base
	put := func(typ byte, id uint16) {
		t.Helper()
		d := make([]byte, 20+8+1400)
		d[0] = 0x45 // as a raw socket receives it: IPv4 header first
		d[20] = typ
		binary.BigEndian.PutUint16(d[24:26], id)
		if _, err := unix.Write(a.fd, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []uint16{0xfffe, 0xffff, 0, 1, 0xfffd} {
		put(0, id) // replies: three are the flood's
	}
	put(8, 0xfffe) // a request is not a reply
	rb := newReplyBatch()
	r.drain(b, rb)
	if got := r.received.Load(); got != 3 {
		t.Fatalf("drain counted %d replies, want 3", got)
	}
	r.drain(b, rb) // nothing queued: returns at once
	if got := r.received.Load(); got != 3 {
		t.Fatalf("a second drain counted %d, want still 3", got)
	}

	<-r.got // the drain's signal
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.read(b, newReplyBatch(), &stop)
	}()
	put(0, 0)
	select {
	case <-r.got:
	case <-time.After(20 * time.Second):
		t.Fatal("read did not count a reply in 20 s")
	}
	if got := r.received.Load(); got != 4 {
		t.Fatalf("read counted %d in all, want 4", got)
	}
	put(0, 0xffff) // queued as read is stopped: still counted
	stop.Store(true)
	<-done
	if got := r.received.Load(); got != 5 {
		t.Fatalf("after stop %d in all, want 5", got)
	}
}
