// Package nsexec runs a function on an OS thread inside a network namespace.
//
// The one thread strategy of the project: fn runs on a fresh goroutine
// locked to its thread, which enters the namespace, runs fn and goes back.
// The thread is unlocked only once it is back; if it cannot go back it stays
// locked, and the runtime discards it when the goroutine ends, so no other
// goroutine ever runs in the wrong namespace. Sockets that fn opens keep the
// namespace after the thread has left it.
package nsexec

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// errGoexit is returned when fn did not return but ended its goroutine.
var errGoexit = errors.New("the function run in the network namespace ended its goroutine (runtime.Goexit, t.FailNow) instead of returning")

// Do runs fn in the network namespace whose file is path (for example
// /run/netns/NAME). An empty path means the caller's namespace: fn runs
// on the calling goroutine.
func Do(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", path, err)
	}
	defer h.Close()
	return DoHandle(h, path, fn)
}

// DoHandle runs fn in the namespace h; name only names it in errors. A
// closed handle (netns.None()) runs fn on a thread of its own that starts
// in the caller's namespace and is brought back to it afterwards: for an fn
// that moves its thread, as netns.NewNamed does.
func DoHandle(h netns.NsHandle, name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := enter(h); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering network namespace %s: %w", name, err)
			return
		}
		// Deferred, so that the thread also goes back when fn ends
		// with runtime.Goexit (as t.FailNow does).
		ferr := errGoexit
		defer func() {
			if err := netns.Set(orig); err != nil {
				// Leave the thread locked: the runtime discards it
				// when this goroutine exits.
				errc <- errors.Join(ferr, fmt.Errorf("leaving network namespace %s: %w", name, err))
				return
			}
			runtime.UnlockOSThread()
			errc <- ferr
		}()
		ferr = fn()
	}()
	return <-errc
}

func enter(h netns.NsHandle) error {
	if !h.IsOpen() {
		return nil
	}
	return netns.Set(h)
}
