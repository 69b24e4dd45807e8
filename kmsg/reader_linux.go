package kmsg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Open opens the kernel log for reading. Errors wrap the kernel's, so
// errors.Is(err, os.ErrPermission) and errors.Is(err, os.ErrNotExist) work.
func Open(o Options) (*Reader, error) {
	path := o.Path
	if path == "" {
		path = DefaultPath
	}
	// O_NONBLOCK puts the fd under the runtime's poller, so that a read
	// deadline (set when ctx ends) or Close unblocks a waiting Next.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("kmsg: open: %w", err)
	}
	if !o.FromStart {
		// A named pipe (a log forwarded from a rig, or a test) has no
		// end to seek to: reading it starts with what arrives.
		if _, err := f.Seek(0, io.SeekEnd); err != nil && !errors.Is(err, syscall.ESPIPE) {
			f.Close()
			return nil, fmt.Errorf("kmsg: seek to end of %s: %w", path, err)
		}
	}
	r, err := newReader(f, o.NonBlock)
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

// aLongTimeAgo is a read deadline in the past: it wakes a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// newReader reads records from f, which must be pollable (a non-blocking
// character device or a pipe). Tests hand it one end of a pipe.
func newReader(f *os.File, nonBlock bool) (*Reader, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("kmsg: %w", err)
	}
	// The raw conn reports a closed file with an internal error value;
	// closed turns that into os.ErrClosed.
	var closed atomic.Bool
	closeFile := func() error {
		closed.Store(true)
		return f.Close()
	}
	read := func(ctx context.Context, p []byte) (int, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if closed.Load() {
			return 0, fmt.Errorf("kmsg: read %s: %w", f.Name(), os.ErrClosed)
		}
		if err := f.SetReadDeadline(time.Time{}); err != nil {
			return 0, fmt.Errorf("kmsg: %s is not pollable: %w", f.Name(), err)
		}
		woken := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			defer close(woken)
			f.SetReadDeadline(aLongTimeAgo)
		})
		defer func() {
			if !stop() {
				<-woken // the deadline is set: let it land before the next reset
			}
		}()
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			for {
				n, rerr = unix.Read(int(fd), p)
				if rerr != unix.EINTR {
					break
				}
			}
			// Returning false waits in the poller for the fd to
			// become readable (or the deadline to pass).
			return !(rerr == unix.EAGAIN && !nonBlock)
		})
		switch {
		case err != nil:
			if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
				return 0, ctx.Err()
			}
			if closed.Load() {
				return 0, fmt.Errorf("kmsg: read %s: %w", f.Name(), os.ErrClosed)
			}
			return 0, fmt.Errorf("kmsg: read %s: %w", f.Name(), err)
		case rerr == unix.EAGAIN:
			return 0, ErrNoMore
		case rerr != nil:
			return 0, fmt.Errorf("kmsg: read %s: %w", f.Name(), rerr)
		}
		return n, nil
	}
	return &Reader{read: read, close: closeFile, buf: make([]byte, bufSize)}, nil
}
