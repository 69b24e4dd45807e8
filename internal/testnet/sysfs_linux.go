package testnet

import (
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DoWithSys runs fn on an OS thread that has entered the namespace with a
// mount namespace of its own, in which a sysfs of the namespace is mounted
// on /sys and tracefs on /sys/kernel/tracing, so that code reading
// /sys/class/net sees the namespace's view. Afterwards the thread goes back
// to the process's mount and network namespaces and stays locked, so that
// it ends with the goroutine: unsharing the mount namespace also unshared
// the thread's filesystem attributes, which no other goroutine may
// inherit. (Should the goroutine run on the main thread, Go keeps that
// thread instead of ending it, and the main thread is what /proc/self and
// /proc/net follow: hence the way back.)
func (n *NS) DoWithSys(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked
		origNet, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer origNet.Close()
		origMnt, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/mnt", unix.Gettid()))
		if err != nil {
			errc <- err
			return
		}
		defer origMnt.Close()
		defer func() {
			if err := unix.Setns(int(origMnt.Fd()), unix.CLONE_NEWNS); err != nil {
				panic("cannot return to the original mount namespace: " + err.Error())
			}
			if err := netns.Set(origNet); err != nil {
				panic("cannot return to the original network namespace: " + err.Error())
			}
		}()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			errc <- fmt.Errorf("making mounts private: %w", err)
			return
		}
		if err := netns.Set(n.h); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		if err := unix.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
			errc <- fmt.Errorf("mounting sysfs: %w", err)
			return
		}
		if err := unix.Mount("nodev", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
			errc <- fmt.Errorf("mounting tracefs: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
