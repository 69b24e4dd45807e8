package rig

import (
	"bytes"
	"slices"
	"testing"
)

func TestIntegrationGuestModules(t *testing.T) {
	k := debianModules(t)
	mods, err := GuestModules(k.Modules, "e1000e", []string{"macvlan", "ext4"}, "e1000e.IntMode=1")
	require.NoError(t, err)
	names := make([]string, len(mods))
	for i, m := range mods {
		names[i] = m.Name
		want := map[string]string{"e1000e": "IntMode=1"}[m.Name]
		assert.Equal(t, want, m.Params, m.Name+" params")
		assert.True(t, bytes.HasPrefix(m.Data, []byte("\x7fELF")), "%s: not an uncompressed ELF image", m.Name)
	}
	t.Logf("load order: %v", names)
	for _, w := range []string{"e1000e", "sch_netem", "pktgen", "macvlan", "jbd2", "ext4"} {
		assert.True(t, slices.Contains(names, w), "%s missing from %v", w, names)
	}
	assert.True(t, slices.Index(names, "jbd2") < slices.Index(names, "ext4"), "ext4 before its dependency jbd2 in %v", names)

	// Bad input is refused with the rig's own errors.
	_, err = GuestModules(k.Modules, "ne2000", nil, "")
	assert.ErrorIs(t, err, ErrNICUnsupported)
	_, err = GuestModules(k.Modules, "e1000e", nil, "e1000.TxIntDelay=0")
	assert.ErrorIs(t, err, ErrModParam)
	_, err = GuestModules(k.Modules, "e1000e", []string{"kernel/x.ko"}, "")
	assert.Error(t, err)
	_, err = GuestModules(k.Modules, "e1000e", []string{"no_such_module"}, "")
	assert.ErrorIs(t, err, ErrModuleNotFound)
}
