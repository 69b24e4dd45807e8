package rig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"syscall"
)

// DefaultKernelPackage is the pinned guest kernel: Debian bookworm's
// linux-image-6.1.0-56-amd64 (6.1.192). It is the one place the pin lives.
// Debian removes superseded kernel ABIs from its archive; when this one is
// gone, the newest linux-image-6.1.0-*-amd64 that apt knows is used instead,
// and the progress output says so.
const DefaultKernelPackage = "linux-image-6.1.0-56-amd64"

// CacheDir is where fetched kernels are kept: $TXTIMEOUT_CACHE, else
// $XDG_CACHE_HOME/txtimeout, else ~/.cache/txtimeout.
func CacheDir() (string, error) {
	if d := os.Getenv("TXTIMEOUT_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory (set TXTIMEOUT_CACHE): %w", err)
	}
	return filepath.Join(d, "txtimeout"), nil
}

// Kernel is an extracted kernel: its image and module tree.
type Kernel struct {
	Package string // Debian package, if fetched
	// Image is what QEMU boots: the uncompressed vmlinux made from
	// Vmlinuz (see unpackKernel), or Vmlinuz itself when that fails.
	Image   string
	Vmlinuz string // the package's compressed image
	Modules string // lib/modules/RELEASE
	Release string
}

// FetchKernel returns the pinned Debian kernel, downloading it with
// `apt-get download` and extracting it with `dpkg-deb -x` into the cache
// the first time. Concurrent callers (several test binaries) serialise on a
// lock file in the cache.
func FetchKernel(ctx context.Context, progressf func(string, ...any)) (Kernel, error) {
	return fetchCached(ctx, progressf, fetchLocked)
}

// fetchCached runs fetch under the cache's lock and unpacks the image it
// returns (unpackKernel), so that concurrent callers fetch and unpack a
// kernel once.
func fetchCached(ctx context.Context, progressf func(string, ...any), fetch func(ctx context.Context, cache string, progressf func(string, ...any)) (Kernel, error)) (Kernel, error) {
	if progressf == nil {
		progressf = func(string, ...any) {}
	}
	cache, err := CacheDir()
	if err != nil {
		return Kernel{}, err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return Kernel{}, err
	}
	lock, err := os.OpenFile(filepath.Join(cache, "kernel.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return Kernel{}, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return Kernel{}, fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	k, err := fetch(ctx, cache, progressf)
	if err != nil {
		return Kernel{}, err
	}
	if k.Image, err = unpackKernel(ctx, k.Vmlinuz, progressf); err != nil {
		progressf("booting the compressed %s (%v): the guest decompresses it itself, seconds more under TCG", filepath.Base(k.Vmlinuz), err)
		k.Image = k.Vmlinuz
	}
	return k, nil
}

// fetchLocked is FetchKernel's work under the cache lock.
func fetchLocked(ctx context.Context, cache string, progressf func(string, ...any)) (Kernel, error) {
	pkg := DefaultKernelPackage
	if k, err := extractedKernel(cache, pkg); err == nil {
		return k, nil
	}
	progressf("fetching kernel %s (apt-get download)", pkg)
	deb, err := aptDownload(ctx, cache, pkg)
	if err != nil {
		alt, aerr := newestKernelPackage(ctx)
		if aerr != nil || alt == pkg {
			return Kernel{}, fmt.Errorf("%w: pinned package %s cannot be downloaded: %w", ErrKernelMissing, pkg, err)
		}
		progressf("pinned kernel package %s is no longer downloadable (%v); falling back to %s, the newest apt knows", pkg, err, alt)
		pkg = alt
		if k, err := extractedKernel(cache, pkg); err == nil {
			return k, nil
		}
		if deb, err = aptDownload(ctx, cache, pkg); err != nil {
			return Kernel{}, fmt.Errorf("%w: %s: %w", ErrKernelMissing, pkg, err)
		}
	}
	return extractKernelDeb(ctx, cache, pkg, deb, progressf)
}

// extractedKernel finds the image and module tree of an extracted package.
func extractedKernel(cache, pkg string) (Kernel, error) {
	root := filepath.Join(cache, pkg)
	images, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	trees, _ := filepath.Glob(filepath.Join(root, "lib", "modules", "*"))
	if len(images) != 1 || len(trees) != 1 {
		return Kernel{}, fmt.Errorf("%w: %s is not an extracted kernel package", ErrKernelMissing, root)
	}
	return Kernel{Package: pkg, Image: images[0], Vmlinuz: images[0], Modules: trees[0], Release: filepath.Base(trees[0])}, nil
}

// aptDownload runs `apt-get download pkg` in dir and returns the .deb.
// apt-get runs with dir as its working directory: as root it then warns
// that _apt cannot read the directory, which is harmless.
func aptDownload(ctx context.Context, dir, pkg string) (string, error) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", fmt.Errorf("apt-get not found (give -kernel and -modules instead): %w", err)
	}
	cmd := exec.CommandContext(ctx, "apt-get", "download", "-q", pkg)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("apt-get download %s: %w: %s", pkg, err, lastLine(out))
	}
	debs, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(debs) == 0 {
		return "", fmt.Errorf("apt-get download %s left no .deb in %s", pkg, dir)
	}
	sort.Strings(debs)
	return debs[len(debs)-1], nil
}

var kernelPkgRE = regexp.MustCompile(`^linux-image-6\.1\.0-([0-9]+)-amd64$`)

// newestKernelPackage asks apt's local package lists for the newest
// linux-image-6.1.0-N-amd64.
func newestKernelPackage(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "pkgnames", "linux-image-6.1.0-").Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache pkgnames: %w", err)
	}
	return newestKernel(out)
}

// newestKernel picks the highest ABI number among apt-cache pkgnames lines.
func newestKernel(out []byte) (string, error) {
	best, bestN := "", -1
	for _, l := range bytes.Split(out, []byte("\n")) {
		m := kernelPkgRE.FindSubmatch(bytes.TrimSpace(l))
		if m == nil {
			continue
		}
		if n, _ := strconv.Atoi(string(m[1])); n > bestN {
			best, bestN = string(m[0]), n
		}
	}
	if best == "" {
		return "", errors.New("apt knows no linux-image-6.1.0-*-amd64 (run apt-get update)")
	}
	return best, nil
}

func lastLine(b []byte) string {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return string(lines[len(lines)-1])
}
