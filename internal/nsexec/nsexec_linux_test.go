package nsexec

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

// newNS makes an unnamed namespace on a thread of its own and returns its
// handle; the thread is given back in the caller's namespace.
func newNS(t *testing.T) netns.NsHandle {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create a network namespace (run as root)")
	}
	var h netns.NsHandle
	if err := DoHandle(netns.None(), "new", func() (err error) { h, err = netns.New(); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestDoHandle(t *testing.T) {
	h := newNS(t)
	self, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	if self.Equal(h) {
		t.Fatal("DoHandle left the caller's thread in the new namespace")
	}
	var inside netns.NsHandle
	if err := DoHandle(h, "test", func() (err error) { inside, err = netns.Get(); return err }); err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	if !inside.Equal(h) {
		t.Errorf("fn ran in %s, want %s", inside, h)
	}
	want := errors.New("from fn")
	if err := DoHandle(h, "test", func() error { return want }); err != want {
		t.Errorf("DoHandle = %v, want fn's error", err)
	}
	// fn that ends its goroutine instead of returning: an error, and no
	// deadlock.
	err = DoHandle(h, "test", func() error { runtime.Goexit(); return nil })
	if !errors.Is(err, errGoexit) {
		t.Errorf("DoHandle(Goexit) = %v, want errGoexit", err)
	}
}

func TestDo(t *testing.T) {
	ran := false
	if err := Do("", func() error { ran = true; return nil }); err != nil || !ran {
		t.Errorf("Do(\"\") = %v, ran %v", err, ran)
	}
	err := Do("/nonexistent/txto", func() error { t.Error("fn ran"); return nil })
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/txto") {
		t.Errorf("Do(missing) = %v", err)
	}
}
