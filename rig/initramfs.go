package rig

import (
	"fmt"
	"io"
	"os"

	"github.com/u-root/u-root/pkg/cpio"
)

// initramfsFile is one regular file of the initramfs: Data, or the host
// file Path when Data is nil (test binaries are large: they are streamed).
type initramfsFile struct {
	Name string // without a leading slash
	Data []byte
	Path string
	Mode uint64 // permission bits
}

// writeInitramfs writes a newc cpio archive (the format the kernel unpacks)
// with the directories and device nodes the guest init needs and files.
// It uses u-root's cpio writer; the archive is not compressed, which the
// kernel unpacks fastest under TCG.
func writeInitramfs(w io.Writer, files []initramfsFile) error {
	rw := cpio.NewDedupWriter(cpio.Newc.Writer(w))
	recs := []cpio.Record{
		cpio.Directory("dev", 0o755),
		// The kernel opens /dev/console for init's stdin, stdout and
		// stderr before init runs, so before devtmpfs is mounted.
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.Directory("proc", 0o555),
		cpio.Directory("sys", 0o555),
		cpio.Directory("tmp", 0o1777),
		cpio.Directory("report", 0o755),
	}
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for _, f := range files {
		if f.Data != nil || f.Path == "" {
			recs = append(recs, cpio.StaticRecord(f.Data, cpio.Info{Name: f.Name, Mode: cpio.S_IFREG | f.Mode, NLink: 1}))
			continue
		}
		fh, err := os.Open(f.Path)
		if err != nil {
			return fmt.Errorf("initramfs: %w", err)
		}
		closers = append(closers, fh)
		st, err := fh.Stat()
		if err != nil {
			return fmt.Errorf("initramfs: %w", err)
		}
		recs = append(recs, cpio.Record{
			ReaderAt: fh,
			Info:     cpio.Info{Name: f.Name, Mode: cpio.S_IFREG | f.Mode, NLink: 1, FileSize: uint64(st.Size())},
		})
	}
	for i := range recs {
		recs[i] = cpio.MakeReproducible(recs[i])
	}
	if err := cpio.WriteRecordsAndDirs(rw, recs); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	return nil
}
