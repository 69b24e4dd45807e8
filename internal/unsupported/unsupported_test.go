package unsupported

import (
	"errors"
	"fmt"
	"testing"
)

func TestErr(t *testing.T) {
	wrapped := fmt.Errorf("pktgen: no /proc/net/pktgen: %w", Err)
	if !errors.Is(wrapped, errors.ErrUnsupported) || !errors.Is(wrapped, Err) {
		t.Errorf("%v does not match errors.ErrUnsupported and Err", wrapped)
	}
	if Err.Error() != "not supported" {
		t.Errorf("message %q, want %q", Err.Error(), "not supported")
	}
	if errors.Is(errors.New("not supported"), Err) {
		t.Error("an unrelated error with the same text matches Err")
	}
}
