package leakcheck

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTB records what Check does with a testing.TB.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	errs     []string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Failed() bool      { f.mu.Lock(); defer f.mu.Unlock(); return len(f.errs) > 0 }
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, format)
	_ = args
}
func (f *fakeTB) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func TestSettleSeesGoroutineLeak(t *testing.T) {
	before := Take()
	stop := make(chan struct{})
	go func() { <-stop }()
	defer close(stop)
	now, err := Settle(before, 100*time.Millisecond)
	if !errors.Is(err, ErrLeak) {
		t.Fatalf("Settle with a goroutine left running: err %v, want ErrLeak", err)
	}
	if now.Goroutines != before.Goroutines+1 {
		t.Errorf("goroutines %d, want %d", now.Goroutines, before.Goroutines+1)
	}
	if !strings.Contains(err.Error(), "TestSettleSeesGoroutineLeak") {
		t.Errorf("error does not name the leaked goroutine's function:\n%v", err)
	}
}

func TestSettleSeesFDLeak(t *testing.T) {
	if Take().FDs == nil {
		t.Skip("skipping: /proc/self/fd not readable here (Linux with /proc needed)")
	}
	before := Take()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = Settle(before, 100*time.Millisecond)
	if !errors.Is(err, ErrLeak) {
		t.Fatalf("Settle with a file left open: err %v, want ErrLeak", err)
	}
	if !strings.Contains(err.Error(), "-> /dev/null") {
		t.Errorf("error does not name the leaked descriptor:\n%v", err)
	}
}

// A goroutine that ends within the settle time is not a leak.
func TestSettleWaitsForStragglers(t *testing.T) {
	before := Take()
	release := make(chan struct{})
	done := make(chan struct{})
	go func() { <-release; close(done) }()
	time.AfterFunc(100*time.Millisecond, func() { close(release) })
	now, err := Settle(before, 10*time.Second)
	if err != nil {
		t.Fatalf("Settle: %v", err)
	}
	<-done
	if now.Goroutines > before.Goroutines {
		t.Errorf("settled at %d goroutines, before %d", now.Goroutines, before.Goroutines)
	}
}

// runCleanupsLeaking runs f's cleanups while a goroutine started just
// before them is still running (a leak, as Check sees it), and ends that
// goroutine afterwards.
func (f *fakeTB) runCleanupsLeaking() {
	stop := make(chan struct{})
	go func() { <-stop }()
	f.runCleanups()
	close(stop)
}

func TestCheck(t *testing.T) {
	t.Setenv("TXTIMEOUT_LEAK_SETTLE", "100ms")

	clean := &fakeTB{}
	Check(clean)
	clean.runCleanups()
	if len(clean.errs) != 0 {
		t.Errorf("Check failed a test that leaked nothing: %v", clean.errs)
	}

	leaky := &fakeTB{}
	Check(leaky)
	leaky.runCleanupsLeaking()
	if len(leaky.errs) != 1 {
		t.Errorf("Check did not fail a test that leaked a goroutine (errors: %v)", leaky.errs)
	}
}

// A test that already failed is not also blamed for leaking.
func TestCheckQuietAfterFailure(t *testing.T) {
	t.Setenv("TXTIMEOUT_LEAK_SETTLE", "50ms")
	f := &fakeTB{}
	Check(f)
	f.Errorf("the test's own failure")
	f.runCleanupsLeaking()
	if len(f.errs) != 1 {
		t.Errorf("errors %v, want only the test's own", f.errs)
	}
}

func TestNoProc(t *testing.T) {
	old := fdDir
	fdDir = "/nonexistent/fd"
	defer func() { fdDir = old }()
	s := Take()
	if s.FDs != nil {
		t.Errorf("FDs %v without /proc, want nil", s.FDs)
	}
	if _, err := Settle(s, 10*time.Millisecond); err != nil {
		t.Errorf("Settle without /proc: %v", err)
	}
	if got := s.String(); !strings.HasSuffix(got, "goroutines") {
		t.Errorf("String() = %q", got)
	}
}

func TestLeakcheckSelf(t *testing.T) {
	Check(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); time.Sleep(time.Millisecond) }()
	}
	wg.Wait()
}
