package kmsg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeRead is a scripted read function for the Reader's seam: each call
// returns the next step, a record or an error.
type fakeRead []any

func (f *fakeRead) read(ctx context.Context, p []byte) (int, error) {
	if len(*f) == 0 {
		return 0, io.EOF
	}
	step := (*f)[0]
	*f = (*f)[1:]
	switch s := step.(type) {
	case error:
		return 0, s
	case string:
		return copy(p, s), nil
	}
	panic(fmt.Sprintf("bad step %T", step))
}

func rec(seq uint64) string { return fmt.Sprintf("6,%d,100,-;record %d\n", seq, seq) }

// steps runs Next until io.EOF and describes what it returned.
func steps(t *testing.T, script fakeRead) []string {
	t.Helper()
	r := &Reader{read: script.read, buf: make([]byte, bufSize)}
	var got []string
	for range 100 {
		rec, err := r.Next(context.Background())
		var gap *GapError
		switch {
		case errors.Is(err, io.EOF):
			return got
		case errors.As(err, &gap):
			if !errors.Is(err, syscall.EPIPE) {
				t.Errorf("GapError %v does not wrap EPIPE", err)
			}
			got = append(got, fmt.Sprintf("gap %d", gap.Lost))
		case err != nil:
			got = append(got, "error: "+err.Error())
		default:
			got = append(got, rec.Message)
		}
	}
	t.Fatal("Next never returned io.EOF")
	return nil
}

func TestReaderGap(t *testing.T) {
	tests := []struct {
		name   string
		script fakeRead
		want   []string
	}{
		{
			name:   "gap after records",
			script: fakeRead{rec(10), rec(11), syscall.EPIPE, rec(50), rec(51)},
			want:   []string{"record 10", "record 11", "gap 38", "record 50", "record 51"},
		},
		{
			name:   "gap before any record cannot be sized",
			script: fakeRead{syscall.EPIPE, rec(5), rec(6)},
			want:   []string{"gap 0", "record 5", "record 6"},
		},
		{
			name:   "two EPIPEs in a row are one gap",
			script: fakeRead{rec(1), syscall.EPIPE, syscall.EPIPE, rec(9)},
			want:   []string{"record 1", "gap 7", "record 9"},
		},
		{
			name:   "context ends after the gap: the gap is reported with the next record",
			script: fakeRead{rec(1), syscall.EPIPE, context.Canceled, rec(4)},
			want:   []string{"record 1", "error: context canceled", "gap 2", "record 4"},
		},
		{
			name:   "malformed record is an error, reading goes on",
			script: fakeRead{rec(1), "garbage", rec(2)},
			want:   []string{"record 1", "error: kmsg: malformed record: no ';' after the prefix", "record 2"},
		},
		{
			name:   "non-blocking end",
			script: fakeRead{rec(1), ErrNoMore, rec(2)},
			want:   []string{"record 1", "error: " + ErrNoMore.Error(), "record 2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, steps(t, tt.script)); diff != "" {
				t.Errorf("Next results (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrNoMoreWrapsEAGAIN(t *testing.T) {
	if !errors.Is(ErrNoMore, syscall.EAGAIN) {
		t.Error("ErrNoMore does not wrap EAGAIN")
	}
}

func TestGapErrorMessage(t *testing.T) {
	for _, tt := range []struct {
		e    GapError
		want string
	}{
		{GapError{Lost: 3}, "kmsg: 3 records lost (reader fell behind)"},
		{GapError{}, "kmsg: records lost (reader fell behind)"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
