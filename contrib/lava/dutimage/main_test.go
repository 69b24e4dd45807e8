package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckStatic(t *testing.T) {
	if _, err := os.Stat("/bin/ls"); err != nil {
		t.Skip("skipping: no /bin/ls to stand for a dynamically linked binary")
	}
	if err := checkStatic("/bin/ls"); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("checkStatic(/bin/ls) = %v, want a dynamically-linked error", err)
	}
	text := filepath.Join(t.TempDir(), "init.sh")
	if err := os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkStatic(text); err == nil {
		t.Errorf("checkStatic(a shell script) = nil, want an error")
	}
}

// A busybox that is not static fails the build before it writes anything.
func TestBuildRefusesDynamicBusybox(t *testing.T) {
	if _, err := os.Stat("/bin/ls"); err != nil {
		t.Skip("skipping: no /bin/ls to stand for a dynamically linked busybox")
	}
	out := filepath.Join(t.TempDir(), "image")
	err := build(context.Background(), out, "e1000e", "", "/bin/ls", "")
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("build with a dynamic busybox = %v, want a one-line error", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("build left %s behind (%v)", out, err)
	}
}
