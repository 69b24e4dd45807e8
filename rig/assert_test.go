package rig

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// A few testify-style checks. testify's assert package needs a go.sum entry
// (go.yaml.in/yaml/v3) that this module does not have, and these are all
// the rig's tests use. assert reports and goes on; require stops the test.
type checker struct{ fatal bool }

var (
	assert  = checker{}
	require = checker{fatal: true}
)

func (c checker) fail(t *testing.T, msg string, extra []any) {
	t.Helper()
	if len(extra) > 0 {
		if f, ok := extra[0].(string); ok {
			msg += ": " + fmt.Sprintf(f, extra[1:]...)
		}
	}
	if c.fatal {
		t.Fatal(msg)
	}
	t.Error(msg)
}

func (c checker) Equal(t *testing.T, want, got any, extra ...any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		c.fail(t, fmt.Sprintf("got %#v, want %#v", got, want), extra)
	}
}

func (c checker) True(t *testing.T, v bool, extra ...any) {
	t.Helper()
	if !v {
		c.fail(t, "false, want true", extra)
	}
}

func (c checker) False(t *testing.T, v bool, extra ...any) {
	t.Helper()
	if v {
		c.fail(t, "true, want false", extra)
	}
}

func (c checker) Contains(t *testing.T, s, sub string, extra ...any) {
	t.Helper()
	if !strings.Contains(s, sub) {
		c.fail(t, fmt.Sprintf("%q does not contain %q", s, sub), extra)
	}
}

func (c checker) NotContains(t *testing.T, s, sub string, extra ...any) {
	t.Helper()
	if strings.Contains(s, sub) {
		c.fail(t, fmt.Sprintf("%q contains %q", s, sub), extra)
	}
}

func (c checker) Empty(t *testing.T, s string, extra ...any) {
	t.Helper()
	if s != "" {
		c.fail(t, fmt.Sprintf("%q, want empty", s), extra)
	}
}

func (c checker) Zero(t *testing.T, v any, extra ...any) {
	t.Helper()
	if !reflect.ValueOf(v).IsZero() {
		c.fail(t, fmt.Sprintf("%v, want zero", v), extra)
	}
}

func (c checker) NotZero(t *testing.T, v any, extra ...any) {
	t.Helper()
	if reflect.ValueOf(v).IsZero() {
		c.fail(t, fmt.Sprintf("%v, want non-zero", v), extra)
	}
}

func (c checker) GreaterOrEqual(t *testing.T, a, b int, extra ...any) {
	t.Helper()
	if a < b {
		c.fail(t, fmt.Sprintf("%d < %d", a, b), extra)
	}
}

func (c checker) NoError(t *testing.T, err error, extra ...any) {
	t.Helper()
	if err != nil {
		c.fail(t, fmt.Sprintf("unexpected error: %v", err), extra)
	}
}

func (c checker) Error(t *testing.T, err error, extra ...any) {
	t.Helper()
	if err == nil {
		c.fail(t, "no error, want one", extra)
	}
}

func (c checker) ErrorIs(t *testing.T, err, target error, extra ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		c.fail(t, fmt.Sprintf("error %v is not %v", err, target), extra)
	}
}

func (c checker) ErrorContains(t *testing.T, err error, sub string, extra ...any) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), sub) {
		c.fail(t, fmt.Sprintf("error %v does not contain %q", err, sub), extra)
	}
}
