package rig

import (
	"strings"
	"testing"

	"txtimeout/rig/internal/guestproto"
)

// The host acts on RESUME lines (calling the partner's Resume through the
// hook) and records each with whether it ended a stall.
func TestControlReadResume(t *testing.T) {
	c := newControl("")
	stalled := []bool{true, false}
	var got []string
	c.resume = func(nonce, iface string) bool {
		got = append(got, nonce+"@"+iface)
		s := stalled[0]
		stalled = stalled[1:]
		return s
	}
	in := strings.Join([]string{
		guestproto.Prefix + "HELLO",
		guestproto.Prefix + "READY eth0",
		"test output that strayed here",
		guestproto.Prefix + "RESUME 0a1b2c3d",
		guestproto.Prefix + "RESUME ffee0001 eth1\r",
		guestproto.Prefix + "EXIT 0",
		"",
	}, "\n")
	c.read(strings.NewReader(in))
	assert.Equal(t, []string{"0a1b2c3d@", "ffee0001@eth1"}, got, "the old line names no interface, the new one its NIC")
	require.Equal(t, 2, len(c.resumes))
	assert.Equal(t, "0a1b2c3d", c.resumes[0].Nonce)
	assert.Equal(t, "eth0", c.resumes[0].Iface, "a request that names no interface is eth0's")
	assert.Equal(t, "eth1", c.resumes[1].Iface)
	assert.True(t, c.resumes[0].Stalled)
	assert.False(t, c.resumes[1].Stalled)
	assert.False(t, c.resumes[0].At.IsZero())
	code, ok := c.exitCode()
	assert.True(t, ok)
	assert.Zero(t, code)

	// Without a hook (no partner) the lines are recorded and harmless.
	c = newControl("")
	c.read(strings.NewReader(guestproto.Prefix + "RESUME x\n"))
	require.Equal(t, 1, len(c.resumes))
	assert.False(t, c.resumes[0].Stalled)
}
