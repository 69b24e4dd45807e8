// Package unsupported holds the project's one "not supported" error.
//
// faultinject.ErrUnsupported, traffic.ErrNotSupported and
// harness.ErrNotSupported are this one value, and it matches
// errors.ErrUnsupported, so a caller tests any of them with
// errors.Is(err, errors.ErrUnsupported) whatever package said it.
package unsupported

import "errors"

// Err means the operation is not supported on this platform, by this
// kernel or by this device. Its message is "not supported"; errors.Is
// matches it to errors.ErrUnsupported.
var Err error = notSupported{}

type notSupported struct{}

func (notSupported) Error() string { return "not supported" }

// Unwrap makes errors.Is(Err, errors.ErrUnsupported) true.
func (notSupported) Unwrap() error { return errors.ErrUnsupported }
