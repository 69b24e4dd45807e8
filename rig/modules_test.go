package rig

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ulikunitz/xz"
)

// debianModules fetches (or finds in the cache) the pinned Debian kernel.
func debianModules(t *testing.T) Kernel {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: fetches the pinned Debian kernel package")
	}
	k, err := FetchKernel(context.Background(), t.Logf)
	if err != nil {
		t.Fatalf("fetching the pinned kernel (needs apt-get and the Debian archive): %v", err)
	}
	return k
}

func TestIntegrationModulesDebian(t *testing.T) {
	k := debianModules(t)
	ix, err := loadModuleIndex(k.Modules)
	require.NoError(t, err)
	assert.Equal(t, k.Release, ix.release)
	mods, err := ix.resolve([]string{"virtio_pci", "virtio_net", "sch_netem", "pktgen", "af_packet"}, nil)
	require.NoError(t, err)
	var names []string
	for _, m := range mods {
		names = append(names, m.Name)
		if !bytes.HasPrefix(m.Data, []byte("\x7fELF")) {
			t.Errorf("%s: not an ELF image", m.Name)
		}
	}
	t.Logf("load order: %v", names)
	// kernel-facts.md section 4: what 6.1 needs for virtio_net. af_packet
	// is built in (modules.builtin), so it is not loaded.
	want := []string{"virtio", "virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci", "failover", "net_failover", "virtio_net", "sch_netem", "pktgen"}
	for _, w := range want {
		if !slices.Contains(names, w) {
			t.Errorf("%s missing from %v", w, names)
		}
	}
	assert.False(t, slices.Contains(names, "af_packet"), "built-in af_packet loaded as a module")
	// Every module comes after its dependencies.
	pos := map[string]int{}
	for i, n := range names {
		pos[n] = i
	}
	for _, m := range mods {
		info, err := modinfo(m.Data)
		require.NoError(t, err)
		for _, d := range dependsOf(info) {
			if p, ok := pos[d]; ok && p > pos[m.Name] {
				t.Errorf("%s loads before its dependency %s", m.Name, d)
			}
		}
	}
	for _, nic := range NICModels {
		if _, err := ix.resolve(nic.Modules, nil); err != nil {
			t.Errorf("NIC %s: %v", nic.Name, err)
		}
	}
}

// TestModulesCompressedTree builds a module tree like a user's own kernel
// build: .ko.xz files, a driver built in, a module missing.
func TestModulesCompressedTree(t *testing.T) {
	k := debianModules(t)
	src, err := loadModuleIndex(k.Modules)
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "6.99.0-test")
	for _, n := range []string{"virtio_net", "net_failover", "failover"} {
		img, err := readModule(src.files[n])
		require.NoError(t, err)
		var buf bytes.Buffer
		w, err := xz.NewWriter(&buf)
		require.NoError(t, err)
		w.Write(img)
		require.NoError(t, w.Close())
		p := filepath.Join(dir, "kernel", "drivers", n+".ko.xz")
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, buf.Bytes(), 0o644))
	}
	// virtio and virtio_ring built in, as in Debian's 6.12.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "modules.builtin"),
		[]byte("kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\n"), 0o644))
	ix, err := loadModuleIndex(dir)
	require.NoError(t, err)
	mods, err := ix.resolve([]string{"virtio_net"}, nil)
	require.NoError(t, err)
	var names []string
	for _, m := range mods {
		names = append(names, m.Name)
	}
	assert.Equal(t, []string{"failover", "net_failover", "virtio_net"}, names)
	orig, _ := readModule(src.files["virtio_net"])
	assert.True(t, bytes.Equal(orig, mods[2].Data), "decompressed virtio_net differs from the original")

	_, err = ix.resolve([]string{"sch_netem"}, map[string]string{"sch_netem": "netem"})
	var me *ModuleError
	assert.ErrorIs(t, err, ErrModuleNotFound)
	if assertAs(t, err, &me) {
		assert.Equal(t, "sch_netem", me.Module)
		assert.Equal(t, "6.99.0-test", me.Kernel)
		assert.Contains(t, err.Error(), "needed for netem")
	}
}

func assertAs(t *testing.T, err error, me **ModuleError) bool {
	t.Helper()
	e, ok := err.(*ModuleError)
	if !ok {
		t.Errorf("error %v (%T) is not a *ModuleError", err, err)
		return false
	}
	*me = e
	return true
}

func TestModName(t *testing.T) {
	for in, want := range map[string]string{
		"virtio-rng.ko.xz":                    "virtio_rng",
		"kernel/net/packet/af_packet.ko":      "af_packet",
		"8139cp.ko.gz":                        "8139cp",
		"virtio_net":                          "virtio_net",
		"kernel/drivers/net/e1000e/e1000e.ko": "e1000e",
	} {
		assert.Equal(t, want, modName(in), in)
	}
}

func TestModinfoRejectsGarbage(t *testing.T) {
	if _, err := modinfo([]byte("not an elf")); err == nil {
		t.Error("modinfo of garbage: no error")
	}
}

func FuzzModinfo(f *testing.F) {
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Add([]byte("depends=a,b\x00license=GPL\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		info, err := modinfo(b)
		if err == nil {
			dependsOf(info)
		}
	})
}
