package harness

import (
	"errors"
	"strings"
	"testing"
)

// testify's assert package does not build with this module's go.sum, so
// the tests use go-cmp and these few helpers.

func mustNoErr(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("unexpected error: %v", err)
	}
}

func wantErrContains(tb testing.TB, err error, sub string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("got no error, want one containing %q", sub)
	}
	if !strings.Contains(err.Error(), sub) {
		tb.Fatalf("error %q does not contain %q", err, sub)
	}
}

func wantIs(tb testing.TB, err, target error) {
	tb.Helper()
	if !errors.Is(err, target) {
		tb.Errorf("error %v is not %v", err, target)
	}
}

func wantEq[T comparable](tb testing.TB, got, want T, what string) {
	tb.Helper()
	if got != want {
		tb.Errorf("%s = %v, want %v", what, got, want)
	}
}

func wantContains(tb testing.TB, s, sub string) {
	tb.Helper()
	if !strings.Contains(s, sub) {
		tb.Errorf("%q does not contain %q", s, sub)
	}
}
