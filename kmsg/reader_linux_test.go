package kmsg

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

// pipeReader returns a Reader over a pipe, which the runtime polls like
// /dev/kmsg, and the pipe's write end. No root needed.
func pipeReader(tb testing.TB, nonBlock bool) (*Reader, *os.File) {
	tb.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	r, err := newReader(pr, nonBlock)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		r.Close()
		pw.Close()
	})
	return r, pw
}

// awaitNextErr waits for the error that a blocked Next, unblocked by event
// (a cancel, a Close), sends on done, and fails unless it is want or if it
// takes more than 10 s.
func awaitNextErr(tb testing.TB, done <-chan error, want error, event string) {
	tb.Helper()
	select {
	case err := <-done:
		if !errors.Is(err, want) {
			tb.Fatalf("Next after %s = %v, want %v", event, err, want)
		}
	case <-time.After(10 * time.Second):
		tb.Fatalf("Next did not return within 10s of %s", event)
	}
}

func TestReaderPipe(t *testing.T) {
	r, w := pipeReader(t, false)
	if _, err := w.WriteString("4,7,1000,-;hello\n SUBSYSTEM=net\n"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := r.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	if got.Message != "hello" || got.Seq != 7 || got.Dict["SUBSYSTEM"] != "net" {
		t.Errorf("Next = %+v", got)
	}
}

// TestReaderCancel checks that ending the context unblocks a waiting Next
// promptly, and that the Reader still works afterwards.
func TestReaderCancel(t *testing.T) {
	r, w := pipeReader(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := r.Next(ctx)
		done <- err
	}()
	cancel()
	awaitNextErr(t, done, context.Canceled, "cancel")

	if _, err := w.WriteString("6,8,1,-;after\n"); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	got, err := r.Next(ctx2)
	if err != nil || got.Message != "after" {
		t.Fatalf("Next after a cancelled Next = %+v, %v; want record after", got, err)
	}
}

func TestReaderDeadline(t *testing.T) {
	r, _ := pipeReader(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next = %v, want context.DeadlineExceeded", err)
	}
}

func TestReaderCloseUnblocks(t *testing.T) {
	r, _ := pipeReader(t, false)
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		_, err := r.Next(context.Background())
		done <- err
	}()
	<-started
	// Close may land before or during the read; either way Next must
	// return os.ErrClosed.
	r.Close()
	awaitNextErr(t, done, os.ErrClosed, "Close")
}

func TestReaderNonBlock(t *testing.T) {
	r, w := pipeReader(t, true)
	if _, err := r.Next(context.Background()); !errors.Is(err, ErrNoMore) {
		t.Fatalf("Next on empty = %v, want ErrNoMore", err)
	}
	if _, err := w.WriteString("6,1,1,-;x\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Next(context.Background()); err != nil || got.Message != "x" {
		t.Fatalf("Next = %+v, %v", got, err)
	}
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(Options{Path: "/nonexistent/kmsg"})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want os.ErrNotExist", err)
	}
	// A regular file cannot be polled: Next must say so, not hang.
	f := t.TempDir() + "/file"
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open(Options{Path: f, FromStart: true})
	if err != nil {
		t.Fatalf("Open(regular file) = %v", err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.Next(ctx); err == nil {
		t.Error("Next on a regular file: no error")
	}
}

// TestOpenFIFO follows a named pipe the way it follows /dev/kmsg, one
// record per write.
func TestOpenFIFO(t *testing.T) {
	path := t.TempDir() + "/kmsg"
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	// O_RDWR never blocks on a FIFO and keeps a writer so reads wait
	// instead of seeing end of file.
	w, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r, err := Open(Options{Path: path})
	if err != nil {
		t.Fatalf("Open(fifo) = %v", err)
	}
	defer r.Close()
	if _, err := w.WriteString("2,3,4,-;via fifo\n"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := r.Next(ctx); err != nil || got.Message != "via fifo" {
		t.Fatalf("Next = %+v, %v", got, err)
	}
}
