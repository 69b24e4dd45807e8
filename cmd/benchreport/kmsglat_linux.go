package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"txtimeout/harness"
	"txtimeout/kmsg"
)

// kmsgReopenEvery reopens /dev/kmsg for writing after this many writes:
// the kernel rate-limits each open file to a burst of 10 records per 5 s
// (devkmsg_write, kernel.printk_devkmsg=ratelimit, the default).
const kmsgReopenEvery = 8

// harnessKmsgLatency measures, n times, the time from writing a marked
// NETDEV WATCHDOG line to /dev/kmsg until the harness's kernel-log observer
// has put it on its timeline as a watchdog event (Timeline.WaitFor
// returns): the path a real watchdog line takes to a scenario's verdict.
//
// The observers watch the loopback device of a network namespace of its
// own (txto-<random>, deleted at the end), seen through a sysfs mounted
// on a thread with a private mount namespace, so that nothing of this
// machine's own network is touched. The lines name an interface that
// exists nowhere (txto-<random>), which every other test's verdict
// ignores, and are written at KERN_DEBUG so they stay off the console.
func harnessKmsgLatency(ctx context.Context, n int, progress func(int)) ([]time.Duration, error) {
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	name := "txto-" + hex.EncodeToString(rnd[:])
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()

	type started struct {
		obs *harness.Observers
		tl  *harness.Timeline
		err error
	}
	ch := make(chan started, 1)
	go func() {
		// Never unlocked: the thread is discarded with its namespaces
		// when this goroutine ends.
		runtime.LockOSThread()
		// Named first, while the thread still shares the machine's
		// mount namespace, so that the name can be deleted from there.
		h, err := netns.NewNamed(name)
		if err != nil {
			ch <- started{err: fmt.Errorf("creating network namespace %s: %w", name, err)}
			return
		}
		h.Close()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			ch <- started{err: fmt.Errorf("unshare mount namespace: %w", err)}
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			ch <- started{err: fmt.Errorf("making mounts private: %w", err)}
			return
		}
		if err := unix.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
			ch <- started{err: fmt.Errorf("mounting the namespace's sysfs: %w", err)}
			return
		}
		tl := harness.NewTimeline()
		obs, err := harness.StartObservers(ctx, harness.Config{Iface: "lo"}, tl)
		ch <- started{obs: obs, tl: tl, err: err}
	}()
	st := <-ch
	defer func() {
		if err := netns.DeleteNamed(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "benchreport: deleting network namespace %s: %v\n", name, err)
		}
	}()
	if st.err != nil {
		return nil, st.err
	}
	defer st.obs.Stop()

	iface := name // an interface name that exists nowhere
	var w *os.File
	defer func() {
		if w != nil {
			w.Close()
		}
	}()
	lat := make([]time.Duration, 0, n)
	for i := 1; i <= n; i++ {
		if ctx.Err() != nil {
			return lat, ctx.Err()
		}
		if w == nil || (i-1)%kmsgReopenEvery == 0 {
			if w != nil {
				w.Close()
			}
			f, err := os.OpenFile(kmsg.DefaultPath, os.O_WRONLY, 0)
			if err != nil {
				return lat, fmt.Errorf("opening %s for writing: %w", kmsg.DefaultPath, err)
			}
			w = f
		}
		// The "timed out N ms" field carries the record's number.
		line := fmt.Sprintf("<7>virtio_net virtio0 %s: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out %d ms\n", iface, i)
		seen := func(tl *harness.Timeline) bool {
			evs := tl.Events()
			// Newest first, down to our previous record.
			for j := len(evs) - 1; j >= 0; j-- {
				if e := evs[j]; e.Iface == iface && e.Kind == kmsg.KindWatchdog {
					return e.TimedOutMS == i
				}
			}
			return false
		}
		start := time.Now()
		if _, err := w.WriteString(line); err != nil {
			return lat, fmt.Errorf("writing to %s: %w", kmsg.DefaultPath, err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		err := st.tl.WaitFor(wctx, seen)
		wcancel()
		if err != nil {
			return lat, fmt.Errorf("record %d did not arrive as a harness event within 10s: %w", i, err)
		}
		lat = append(lat, time.Since(start))
		if progress != nil {
			progress(i)
		}
	}
	if st.tl.HasMark(harness.MarkKmsgGap) {
		return lat, errors.New("the kernel log overwrote records during the measurement (kmsg_gap mark)")
	}
	return lat, nil
}
