//go:build !linux

package rig

import "testing"

// testResumeEndsStall runs only in the rig's guest, which is Linux.
func testResumeEndsStall(t *testing.T) {
	t.Skip("runs only inside the virtual rig's Linux guest")
}
