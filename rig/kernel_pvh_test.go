package rig

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fakeELF is a minimal x86-64 ELF with one PT_NOTE segment holding a note
// of the given name and type.
func fakeELF(noteName string, noteType uint32) []byte {
	le := binary.LittleEndian
	name := append([]byte(noteName), 0)
	for len(name)%4 != 0 {
		name = append(name, 0)
	}
	var note []byte
	note = le.AppendUint32(note, uint32(len(noteName)+1))
	note = le.AppendUint32(note, 4)
	note = le.AppendUint32(note, noteType)
	note = append(note, name...)
	note = le.AppendUint32(note, 0x1000000)
	const ehsize, phsize = 64, 56
	h := make([]byte, ehsize)
	copy(h, "\x7fELF\x02\x01\x01")
	le.PutUint16(h[16:], 2)    // ET_EXEC
	le.PutUint16(h[18:], 62)   // EM_X86_64
	le.PutUint32(h[20:], 1)    // EV_CURRENT
	le.PutUint64(h[32:], 64)   // e_phoff
	le.PutUint16(h[52:], 64)   // e_ehsize
	le.PutUint16(h[54:], 56)   // e_phentsize
	le.PutUint16(h[56:], 1)    // e_phnum
	le.PutUint16(h[58:], 64)   // e_shentsize
	ph := make([]byte, phsize) // PT_NOTE
	le.PutUint32(ph[0:], 4)
	le.PutUint64(ph[8:], ehsize+phsize)
	le.PutUint64(ph[32:], uint64(len(note)))
	le.PutUint64(ph[40:], uint64(len(note)))
	le.PutUint64(ph[48:], 4)
	return append(append(h, ph...), note...)
}

// fakeBzImage wraps payload (with the size trailer the kernel build
// appends) in a boot sector and a setup header of protocol 2.15.
func fakeBzImage(payload []byte, size int) []byte {
	const setupSects = 3
	img := make([]byte, (setupSects+1)*512+100)
	img[0x1f1] = setupSects
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x206:], 0x20f)
	p := binary.LittleEndian.AppendUint32(append([]byte(nil), payload...), uint32(size))
	binary.LittleEndian.PutUint32(img[0x248:], 100)
	binary.LittleEndian.PutUint32(img[0x24c:], uint32(len(p)))
	return append(img, p...)
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestUnpackKernel(t *testing.T) {
	good := fakeELF("Xen", pvhNoteType)
	tests := []struct {
		name    string
		image   []byte
		wantErr string
	}{
		{"gzip with a PVH note", fakeBzImage(gzipped(good), len(good)), ""},
		{"no PVH note", fakeBzImage(gzipped(fakeELF("Xen", 5)), len(good)), "no PVH entry note"},
		{"another owner's note", fakeBzImage(gzipped(fakeELF("GNU", pvhNoteType)), len(good)), "no PVH entry note"},
		{"wrong size trailer", fakeBzImage(gzipped(good), len(good)+1), "trailer says"},
		{"unknown compression", fakeBzImage([]byte("\x28\xb5\x2f\xfdzstd..."), len(good)), "compression not handled"},
		{"not a bzImage", good, "not a bzImage"},
		{"payload outside the image", fakeBzImage(gzipped(good), len(good))[:2100], "outside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			bz := filepath.Join(dir, "vmlinuz-6.1.0-test")
			if err := os.WriteFile(bz, tt.image, 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := unpackKernel(context.Background(), bz, t.Logf)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				_, statErr := os.Stat(filepath.Join(dir, "vmlinux-6.1.0-test"))
				assert.True(t, os.IsNotExist(statErr), "a refused image leaves no vmlinux behind")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, filepath.Join(dir, "vmlinux-6.1.0-test"), got)
			b, err := os.ReadFile(got)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(good, b), "the vmlinux is the payload unpacked")
			// The second call finds the file and does not unpack again:
			// the bzImage it would read is unreadable.
			require.NoError(t, os.WriteFile(bz, []byte("junk"), 0o644))
			old := time.Now().Add(-time.Hour)
			require.NoError(t, os.Chtimes(bz, old, old))
			again, err := unpackKernel(context.Background(), bz, t.Logf)
			require.NoError(t, err)
			assert.Equal(t, got, again)
			// A bzImage newer than the vmlinux is unpacked again.
			require.NoError(t, os.Chtimes(bz, time.Now().Add(time.Hour), time.Now().Add(time.Hour)))
			_, err = unpackKernel(context.Background(), bz, t.Logf)
			require.ErrorContains(t, err, "not a bzImage")
		})
	}
}

// A vmlinux left corrupt (not an ELF with the note) is made again.
func TestUnpackKernelRemakesABadFile(t *testing.T) {
	dir := t.TempDir()
	good := fakeELF("Xen", pvhNoteType)
	bz := filepath.Join(dir, "vmlinuz-x")
	require.NoError(t, os.WriteFile(bz, fakeBzImage(gzipped(good), len(good)), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "vmlinux-x"), []byte("junk"), 0o644))
	got, err := unpackKernel(context.Background(), bz, t.Logf)
	require.NoError(t, err)
	b, _ := os.ReadFile(got)
	assert.True(t, bytes.Equal(good, b), "the bad file was replaced")
}

// The pinned Debian kernel is xz-compressed; its unpacked image boots
// with PVH (the rig's integration tests boot it).
func TestIntegrationUnpackDebianKernel(t *testing.T) {
	k := debianModules(t)
	assert.Contains(t, filepath.Base(k.Vmlinuz), "vmlinuz-")
	assert.Equal(t, filepath.Join(filepath.Dir(k.Vmlinuz), "vmlinux-"+k.Release), k.Image)
	f, err := os.Open(k.Image)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, pvhEntry(f))
}
