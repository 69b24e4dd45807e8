package rig

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ulikunitz/xz"
)

// kmod is one module file to pack into the guest.
type kmod struct {
	Name string // normalised: '-' becomes '_'
	Path string // on the host
	// Data is the module's uncompressed ELF image.
	Data []byte
	// params are the parameters the module declares (see paramsOf).
	params []string
}

// moduleIndex is a kernel's module tree: the files under it by module name
// and the names of the modules built into the kernel.
type moduleIndex struct {
	dir     string
	release string
	files   map[string]string
	builtin map[string]bool
}

// modName normalises a module or file name: "virtio-rng.ko.xz" and
// "virtio_rng" are both "virtio_rng", as the kernel itself compares them.
func modName(s string) string {
	s = filepath.Base(s)
	for _, ext := range []string{".xz", ".gz", ".zst"} {
		s = strings.TrimSuffix(s, ext)
	}
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// hideModule is a test seam: modules it reports true for are treated as
// absent from the module tree.
var hideModule func(name string) bool

// loadModuleIndex indexes the module tree dir (lib/modules/RELEASE). It needs
// no modules.dep (Debian's package has none; depmod runs at install).
func loadModuleIndex(dir string) (*moduleIndex, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("module tree: %w: %w", ErrKernelMissing, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("module tree %s: %w: not a directory", dir, ErrKernelMissing)
	}
	ix := &moduleIndex{
		dir:     dir,
		release: filepath.Base(filepath.Clean(dir)),
		files:   map[string]string{},
		builtin: map[string]bool{},
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n := d.Name()
		if d.Type().IsRegular() && (strings.HasSuffix(n, ".ko") || strings.Contains(n, ".ko.")) {
			name := modName(n)
			if hideModule != nil && hideModule(name) {
				return nil
			}
			if _, dup := ix.files[name]; !dup {
				ix.files[name] = p
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("indexing modules: %w", err)
	}
	if f, err := os.Open(filepath.Join(dir, "modules.builtin")); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if line := strings.TrimSpace(s.Text()); line != "" {
				name := modName(line)
				if hideModule == nil || !hideModule(name) {
					ix.builtin[name] = true
				}
			}
		}
		f.Close()
	}
	return ix, nil
}

// readModule returns the uncompressed ELF image of a module file. The host
// decompresses .ko.xz and .ko.gz itself, so the guest kernel needs no
// CONFIG_MODULE_DECOMPRESS.
func readModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".xz"):
		xr, err := xz.NewReader(bufio.NewReader(f))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = xr
	case strings.HasSuffix(path, ".gz"):
		gr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = gr
	case strings.HasSuffix(path, ".zst"):
		return nil, fmt.Errorf("%s: zstd-compressed modules are not supported (build with CONFIG_MODULE_COMPRESS_XZ or CONFIG_MODULE_COMPRESS_NONE)", path)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// modinfo parses the .modinfo section of a module's ELF image: NUL-ended
// "key=value" strings. Keys may repeat (alias=, parm=).
func modinfo(image []byte) (map[string][]string, error) {
	ef, err := elf.NewFile(bytes.NewReader(image))
	if err != nil {
		return nil, fmt.Errorf("not an ELF module: %w", err)
	}
	defer ef.Close()
	sec := ef.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf(".modinfo: %w", err)
	}
	info := map[string][]string{}
	for _, kv := range bytes.Split(data, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if ok {
			info[k] = append(info[k], v)
		}
	}
	return info, nil
}

// dependsOf returns the names in a module's depends= line.
func dependsOf(info map[string][]string) []string {
	var deps []string
	for _, line := range info["depends"] {
		for _, d := range strings.Split(line, ",") {
			if d = strings.TrimSpace(d); d != "" {
				deps = append(deps, modName(d))
			}
		}
	}
	return deps
}

// resolve returns the modules to load for the wanted names, dependencies
// first, each once; built-in modules are left out. reasons says why a
// wanted module is needed, for the error.
func (ix *moduleIndex) resolve(want []string, reasons map[string]string) ([]kmod, error) {
	var out []kmod
	done := map[string]bool{}
	onPath := map[string]bool{}
	var visit func(name, reason string) error
	visit = func(name, reason string) error {
		name = modName(name)
		if done[name] || ix.builtin[name] {
			return nil
		}
		if onPath[name] {
			return fmt.Errorf("module dependency cycle through %s", name)
		}
		path, ok := ix.files[name]
		if !ok {
			return &ModuleError{Module: name, Kernel: ix.release, Dir: ix.dir, Reason: reason}
		}
		onPath[name] = true
		img, err := readModule(path)
		if err != nil {
			return err
		}
		info, err := modinfo(img)
		if err != nil {
			return fmt.Errorf("module %s (%s): %w", name, path, err)
		}
		for _, d := range dependsOf(info) {
			if err := visit(d, "module "+name); err != nil {
				return err
			}
		}
		onPath[name] = false
		done[name] = true
		out = append(out, kmod{Name: name, Path: path, Data: img, params: paramsOf(info)})
		return nil
	}
	for _, w := range want {
		if err := visit(w, reasons[w]); err != nil {
			return nil, err
		}
	}
	return out, nil
}
