package testnet

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

func TestMissing(t *testing.T) {
	if r := missing(1000, "/proc/self/ns/net"); !strings.Contains(r, "needs root") {
		t.Errorf("not root: %q", r)
	}
	if r := missing(0, filepath.Join(t.TempDir(), "none")); !strings.Contains(r, "CONFIG_NET_NS") {
		t.Errorf("no namespaces: %q", r)
	}
	if r := missing(0, os.Args[0]); r != "" {
		t.Errorf("root with namespaces: %q", r)
	}
}

// TestNewLinked: two namespaces joined by a veth, addressed in 198.18/15,
// both ends up, and gone after the test that made them.
func TestNewLinked(t *testing.T) {
	Require(t)
	var p *Pair
	t.Run("make", func(t *testing.T) {
		p = NewLinked(t)
		if p.A.NS == p.B.NS || p.A.NS.Path == p.B.NS.Path {
			t.Fatalf("both ends in one namespace: %s", p)
		}
		for _, e := range p.Ends() {
			if !Prefix.Contains(e.Addr) || e.Index == 0 || len(e.MAC) != 6 {
				t.Errorf("end %+v", e)
			}
			if !strings.HasPrefix(e.Name, "txto-") || len(e.Name) > 15 {
				t.Errorf("name %q", e.Name)
			}
			h := e.NS.Netlink(t)
			l, err := h.LinkByName(e.Name)
			h.Close()
			if err != nil {
				t.Fatalf("%s not in %s: %v", e.Name, e.NS.Name, err)
			}
			if l.Attrs().OperState.String() != "up" {
				t.Errorf("%s is %s", e.Name, l.Attrs().OperState)
			}
		}
		if p.A.Addr.Equal(p.B.Addr) {
			t.Errorf("same address on both ends: %s", p)
		}
		// Not in the test's own namespace.
		self, err := netns.Get()
		if err != nil {
			t.Fatal(err)
		}
		defer self.Close()
		if p.A.NS.Handle().Equal(self) {
			t.Error("the test's thread is in the new namespace")
		}
	})
	if p == nil {
		t.FailNow()
	}
	for _, n := range []*NS{p.A.NS, p.B.NS} {
		if _, err := os.Stat(n.Path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after its test: %v", n.Path, err)
		}
	}
}

// TestNewPair: one namespace holds both ends; Do runs there.
func TestNewPair(t *testing.T) {
	p := NewPair(t)
	if p.A.NS != p.B.NS || p.A.Addr != nil {
		t.Fatalf("pair %s", p)
	}
	var inside netns.NsHandle
	if err := p.A.NS.Do(func() (err error) { inside, err = netns.Get(); return err }); err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	if !inside.Equal(p.A.NS.Handle()) {
		t.Errorf("Do ran in %s, not in %s", inside, p.A.NS.Handle())
	}
	// Names differ between pairs, so that parallel tests do not collide.
	q := p.A.NS.AddVeth(t, nil)
	if q.A.Name == p.A.Name || q.B.Name == p.B.Name {
		t.Errorf("two pairs share names: %s and %s", p, q)
	}
}
