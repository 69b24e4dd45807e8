package rig

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestBootOnceMore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		errs  []error // what each run returns
		runs  int
		want  error
		retry bool
	}{
		{"passes", []error{nil}, 1, nil, false},
		{"no boot, then boots", []error{fmt.Errorf("%w: console", ErrBootTimeout), nil}, 2, nil, true},
		{"no boot twice", []error{ErrBootTimeout, ErrBootTimeout}, 2, ErrBootTimeout, true},
		{"a panic is not retried", []error{ErrGuestPanic}, 1, ErrGuestPanic, false},
		{"a hang during the tests is not retried", []error{ErrGuestHung}, 1, ErrGuestHung, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			var said []string
			_, err := bootOnceMore(context.Background(), func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }, func() (*Result, error) {
				n++
				return &Result{}, tc.errs[n-1]
			})
			if n != tc.runs || !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("%d runs, error %v; want %d runs, %v", n, err, tc.runs, tc.want)
			}
			if got := len(said) == 1 && strings.Contains(said[0], "booting once more"); got != tc.retry {
				t.Errorf("progress %q; want a retry line: %t", said, tc.retry)
			}
		})
	}
	// A cancelled run is not booted again.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := 0
	bootOnceMore(ctx, func(string, ...any) {}, func() (*Result, error) { n++; return nil, ErrBootTimeout })
	if n != 1 {
		t.Errorf("a cancelled run booted %d times", n)
	}
}

func TestGuestDuration(t *testing.T) {
	for in, want := range map[string]string{
		"--- PASS: TestTxTimeout/NetemDelay (17.71s)": "17.71s",
		"--- SKIP: TestX (0.00s)":                     "0.00s",
		"--- FAIL: TestY":                             "",
		"--- PASS: TestZ (odd)":                       "",
	} {
		if got := guestDuration(in); got != want {
			t.Errorf("guestDuration(%q) = %q, want %q", in, got, want)
		}
	}
}
