package rig

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// A bzImage (vmlinuz) carries the kernel compressed: booted as it is, the
// guest's own decompressor unpacks it before the kernel starts, which
// under TCG is most of the time from QEMU's start to the kernel's first
// line (measured: about 2.5 s of xz for Debian's 8 MB image, with SeaBIOS
// about 3 s, against 0.2 s for the same kernel uncompressed). QEMU boots
// an uncompressed ELF kernel directly, through its PVH entry point
// (CONFIG_PVH, which Debian's kernels have), and loads its segments from
// the host. unpackKernel makes that ELF once per image.

// pvhNoteType is XEN_ELFNOTE_PHYS32_ENTRY, the note naming the 32-bit
// entry point of a PVH boot; QEMU boots an ELF kernel only with it.
const pvhNoteType = 18

// unpackKernel returns the uncompressed kernel of the bzImage bz: the
// file vmlinux-* beside it, made the first time and again when bz is newer
// (the cache's lock is held by the caller).
func unpackKernel(ctx context.Context, bz string, progressf func(string, ...any)) (string, error) {
	base := filepath.Base(bz)
	name := strings.Replace(base, "vmlinuz", "vmlinux", 1)
	if name == base {
		name = base + ".elf"
	}
	out := filepath.Join(filepath.Dir(bz), name)
	bst, err := os.Stat(bz)
	if err != nil {
		return "", err
	}
	if f, err := os.Open(out); err == nil {
		st, serr := f.Stat()
		err = pvhEntry(f)
		f.Close()
		if err == nil && serr == nil && !st.ModTime().Before(bst.ModTime()) {
			return out, nil
		}
	}
	img, err := os.ReadFile(bz)
	if err != nil {
		return "", err
	}
	payload, err := bzPayload(img)
	if err != nil {
		return "", fmt.Errorf("%s: %w", bz, err)
	}
	progressf("unpacking %s for QEMU's direct (PVH) boot, once", base)
	elfImg, err := decompressPayload(ctx, payload)
	if err != nil {
		return "", fmt.Errorf("%s: %w", bz, err)
	}
	if err := pvhEntry(bytes.NewReader(elfImg)); err != nil {
		return "", fmt.Errorf("%s: %w", bz, err)
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, elfImg, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return out, nil
}

// bzPayload returns the compressed kernel inside a bzImage: boot protocol
// 2.08 or later (Documentation/arch/x86/boot.rst) gives its offset from
// the protected-mode code and its length.
func bzPayload(img []byte) ([]byte, error) {
	if len(img) < 0x250 || string(img[0x202:0x206]) != "HdrS" {
		return nil, errors.New("not a bzImage (no HdrS boot header)")
	}
	if v := binary.LittleEndian.Uint16(img[0x206:]); v < 0x208 {
		return nil, fmt.Errorf("boot protocol %#x has no payload fields (want 2.08 or later)", v)
	}
	setup := int(img[0x1f1])
	if setup == 0 {
		setup = 4
	}
	off := (setup+1)*512 + int(binary.LittleEndian.Uint32(img[0x248:]))
	n := int(binary.LittleEndian.Uint32(img[0x24c:]))
	if off > len(img) || n < 8 || n > len(img)-off {
		return nil, fmt.Errorf("payload at %d, %d bytes, lies outside the %d-byte image", off, n, len(img))
	}
	return img[off : off+n], nil
}

// decompressPayload unpacks a bzImage's payload, whose last 4 bytes are the
// uncompressed size (the kernel build appends them). xz, what Debian uses,
// needs the xz command: the kernel's stream has the x86 BCJ filter, which
// the Go xz package cannot read.
func decompressPayload(ctx context.Context, p []byte) ([]byte, error) {
	size := int(binary.LittleEndian.Uint32(p[len(p)-4:]))
	var out []byte
	switch {
	case bytes.HasPrefix(p, []byte("\xfd7zXZ\x00")):
		if _, err := exec.LookPath("xz"); err != nil {
			return nil, errors.New("payload is xz-compressed and there is no xz command (Debian package xz-utils)")
		}
		cmd := exec.CommandContext(ctx, "xz", "-dc", "--single-stream")
		cmd.Stdin = bytes.NewReader(p)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("xz -d: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		out = stdout.Bytes()
	case bytes.HasPrefix(p, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(p))
		if err != nil {
			return nil, fmt.Errorf("gzip payload: %w", err)
		}
		zr.Multistream(false)
		if out, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("gzip payload: %w", err)
		}
	default:
		return nil, fmt.Errorf("payload compression not handled (magic % x; xz and gzip are)", p[:min(len(p), 4)])
	}
	if len(out) != size {
		return nil, fmt.Errorf("payload unpacked to %d bytes, its trailer says %d", len(out), size)
	}
	return out, nil
}

// pvhEntry checks that r is an x86-64 ELF kernel with a PVH entry note.
func pvhEntry(r io.ReaderAt) error {
	ef, err := elf.NewFile(r)
	if err != nil {
		return fmt.Errorf("unpacked kernel: %w", err)
	}
	defer ef.Close()
	if ef.Machine != elf.EM_X86_64 {
		return fmt.Errorf("unpacked kernel is for %v, not x86-64", ef.Machine)
	}
	for _, p := range ef.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		notes, err := io.ReadAll(p.Open())
		if err != nil {
			return fmt.Errorf("unpacked kernel's notes: %w", err)
		}
		for len(notes) >= 12 {
			nameSz := int(binary.LittleEndian.Uint32(notes))
			descSz := int(binary.LittleEndian.Uint32(notes[4:]))
			typ := binary.LittleEndian.Uint32(notes[8:])
			name := 12 + (nameSz+3)&^3
			next := name + (descSz+3)&^3
			if nameSz > len(notes) || next > len(notes) || next < 12 {
				break
			}
			if typ == pvhNoteType && string(bytes.TrimRight(notes[12:12+nameSz], "\x00")) == "Xen" {
				return nil
			}
			notes = notes[next:]
		}
	}
	return errors.New("unpacked kernel has no PVH entry note (CONFIG_PVH), so QEMU cannot boot it directly")
}
