package rig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ResumePartner writes one whole RESUME line with a fresh nonce, which the
// host's control reader understands. A file stands in for the guest's
// serial port.
func TestResumePartnerWritesOneLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ttyS2")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	// InGuest also wants the init (PID 1) as parent, which a host test
	// cannot have: call the writer ResumePartner uses after that check.
	require.NoError(t, writeControlLine(path, "RESUME 0a1b2c3d"))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "TXTO RESUME 0a1b2c3d\n", string(b))

	c := newControl("")
	var nonces []string
	c.resume = func(n string) bool { nonces = append(nonces, n); return true }
	c.read(strings.NewReader(string(b)))
	assert.Equal(t, []string{"0a1b2c3d"}, nonces)

	err = writeControlLine(filepath.Join(t.TempDir(), "missing"), "RESUME x")
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.ErrorContains(t, err, "rig: opening the control port: open ")
}
