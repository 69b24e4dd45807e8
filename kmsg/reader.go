package kmsg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
)

// DefaultPath is the kernel log device.
const DefaultPath = "/dev/kmsg"

// bufSize is the read buffer: a read with a buffer smaller than the record
// fails with EINVAL, and a record is at most CONSOLE_EXT_LOG_MAX (8 KiB).
const bufSize = 16 << 10

// ErrNoMore is returned by Next in non-blocking mode when there is no new
// record. It wraps EAGAIN.
var ErrNoMore = fmt.Errorf("kmsg: no new record: %w", syscall.EAGAIN)

// GapError reports records that were overwritten before the Reader read
// them (the kernel's read returned EPIPE). The Reader carries on with the
// oldest record still there: call Next again.
type GapError struct {
	// Lost is how many sequence numbers were skipped. It is 0 when the
	// Reader had not read any record before the gap, so it cannot tell.
	Lost uint64
}

func (e *GapError) Error() string {
	if e.Lost == 0 {
		return "kmsg: records lost (reader fell behind)"
	}
	return fmt.Sprintf("kmsg: %d records lost (reader fell behind)", e.Lost)
}

// Unwrap makes errors.Is(err, syscall.EPIPE) true.
func (e *GapError) Unwrap() error { return syscall.EPIPE }

// Options configure Open.
type Options struct {
	// Path is the device to read; default "/dev/kmsg".
	Path string
	// FromStart starts at the oldest record still in the ring buffer
	// (SEEK_SET) instead of after the newest (SEEK_END: only new records).
	FromStart bool
	// NonBlock makes Next return ErrNoMore instead of waiting when
	// there is no new record.
	NonBlock bool
}

// Reader follows the kernel log. Next and Close may be called from
// different goroutines; Next itself is not safe for concurrent use.
type Reader struct {
	// read reads one record into p; it returns ctx.Err() when ctx ends,
	// ErrNoMore in non-blocking mode, or the kernel's error (EPIPE). It
	// is the seam that tests replace.
	read  func(ctx context.Context, p []byte) (int, error)
	close func() error

	buf      []byte
	lastSeq  uint64
	haveLast bool
	gap      bool    // EPIPE seen; the next record tells how much was lost
	pending  *Record // record read after a gap, returned by the next Next
}

// Next returns the next record. It blocks until there is one or ctx ends
// (then it returns ctx.Err()). After records were overwritten it returns a
// *GapError once; the caller calls Next again. A record that does not parse
// gives an error wrapping ErrMalformed, and the next call goes on.
func (r *Reader) Next(ctx context.Context) (Record, error) {
	if r.pending != nil {
		rec := *r.pending
		r.pending = nil
		return rec, nil
	}
	for {
		n, err := r.read(ctx, r.buf)
		if errors.Is(err, syscall.EPIPE) {
			// The kernel has moved us to the oldest record; the next
			// read tells how many were skipped.
			r.gap = true
			continue
		}
		if err != nil {
			return Record{}, err
		}
		if n == 0 {
			return Record{}, io.EOF
		}
		rec, err := ParseRecord(r.buf[:n])
		if err != nil {
			return Record{}, err
		}
		var lost uint64
		if r.haveLast && rec.Seq > r.lastSeq+1 {
			lost = rec.Seq - r.lastSeq - 1
		}
		r.lastSeq, r.haveLast = rec.Seq, true
		if r.gap {
			r.gap = false
			r.pending = &rec
			return Record{}, &GapError{Lost: lost}
		}
		return rec, nil
	}
}

// Close releases the device. A Next blocked in another goroutine returns
// an error wrapping os.ErrClosed.
func (r *Reader) Close() error {
	if r.close == nil {
		return nil
	}
	return r.close()
}
