package rig

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Kernels other than the pinned one come from Debian's archive by package
// name, from whichever suite serves them: bookworm's own (what the
// machine's apt already knows), or another suite of the same configured
// mirror (bullseye's linux-image-5.10.0-32-amd64). The machine's apt
// configuration is never changed: another suite is read into a private
// apt state directory in the cache, with the mirror URIs and keyrings the
// machine has configured.

// KernelAliases name the kernels of the matrix by their version: the
// Debian package (a pattern for a series whose ABI number moves).
var KernelAliases = map[string]string{
	"5.10": "linux-image-5.10.0-32-amd64",
	"6.1":  DefaultKernelPackage,
	"6.12": `linux-image-6\.12\.[0-9]+\+deb[0-9]+-amd64`,
}

// OtherSuites are the Debian suites searched, beyond the machine's own,
// for a kernel package: the main archive's and the security archive's.
var OtherSuites = struct{ Main, Security []string }{
	Main:     []string{"bookworm", "bookworm-updates", "bullseye", "bullseye-updates"},
	Security: []string{"bookworm-security", "bullseye-security"},
}

// aptSource is one configured apt source: a URI and what signs it.
type aptSource struct {
	URI, SignedBy string
	Suites        []string
}

// security reports whether s is Debian's security archive (its suites
// end in -security).
func (s aptSource) security() bool {
	return slices.ContainsFunc(s.Suites, func(x string) bool { return strings.HasSuffix(x, "-security") })
}

// debianSuiteRE matches the suites of Debian's own archive.
var debianSuiteRE = regexp.MustCompile(`^(buster|bullseye|bookworm|trixie|forky|sid)(-[a-z]+)?$`)

// parseAptSources reads the Debian sources of an apt configuration: the
// deb822 .sources form and the one-line .list form, "deb" entries whose
// suites are Debian's.
func parseAptSources(name string, b []byte) []aptSource {
	var out []aptSource
	add := func(s aptSource) {
		if s.URI != "" && slices.ContainsFunc(s.Suites, debianSuiteRE.MatchString) {
			out = append(out, s)
		}
	}
	if strings.HasSuffix(name, ".sources") {
		for _, stanza := range strings.Split(string(b), "\n\n") {
			f := map[string]string{}
			for _, l := range strings.Split(stanza, "\n") {
				if k, v, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, " ") {
					f[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
				}
			}
			if !slices.Contains(strings.Fields(f["types"]), "deb") || strings.EqualFold(f["enabled"], "no") {
				continue
			}
			for _, uri := range strings.Fields(f["uris"]) {
				add(aptSource{URI: uri, SignedBy: f["signed-by"], Suites: strings.Fields(f["suites"])})
			}
		}
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[0] != "deb" {
			continue
		}
		s := aptSource{}
		rest := fields[1:]
		if strings.HasPrefix(rest[0], "[") {
			for len(rest) > 0 {
				opt := strings.Trim(rest[0], "[]")
				if v, ok := strings.CutPrefix(opt, "signed-by="); ok {
					s.SignedBy = v
				}
				end := strings.HasSuffix(rest[0], "]")
				rest = rest[1:]
				if end {
					break
				}
			}
		}
		if len(rest) < 2 {
			continue
		}
		s.URI, s.Suites = rest[0], []string{rest[1]}
		add(s)
	}
	return out
}

// configuredSources reads the machine's apt sources.
func configuredSources() ([]aptSource, error) {
	files := []string{"/etc/apt/sources.list"}
	more, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	files = append(files, more...)
	var out []aptSource
	for _, f := range files {
		if !strings.HasSuffix(f, ".list") && !strings.HasSuffix(f, ".sources") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		out = append(out, parseAptSources(f, b)...)
	}
	if len(out) == 0 {
		return nil, errors.New("no Debian archive in the machine's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d)")
	}
	return out, nil
}

// otherSuitesList is a deb822 sources file with the configured Debian
// URIs and OtherSuites.
func otherSuitesList(srcs []aptSource) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, s := range srcs {
		if seen[s.URI] {
			continue
		}
		seen[s.URI] = true
		suites := OtherSuites.Main
		if s.security() {
			suites = OtherSuites.Security
		}
		fmt.Fprintf(&b, "Types: deb\nURIs: %s\nSuites: %s\nComponents: main\n", s.URI, strings.Join(suites, " "))
		if s.SignedBy != "" {
			fmt.Fprintf(&b, "Signed-By: %s\n", s.SignedBy)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// privateApt is apt with its own sources and state under dir.
type privateApt struct{ dir string }

func (a privateApt) opts() []string {
	return []string{
		"-o", "Dir::Etc::SourceList=" + filepath.Join(a.dir, "none.list"),
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(a.dir, "sources.list.d"),
		"-o", "Dir::State::Lists=" + filepath.Join(a.dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(a.dir, "cache"),
		"-o", "Debug::NoLocking=1",
	}
}

// prepare writes the sources and reads the suites' package lists.
func (a privateApt) prepare(ctx context.Context, srcs []aptSource) error {
	for _, d := range []string{"sources.list.d", "lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(a.dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(a.dir, "none.list"), nil, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(a.dir, "sources.list.d", "txtimeout.sources"), []byte(otherSuitesList(srcs)), 0o644); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "apt-get", append(a.opts(), "-q", "update")...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("apt-get update (other suites of the configured mirror): %w: %s", err, lastLine(out))
	}
	return nil
}

// pkgnames lists the package names with prefix that apt knows.
func pkgnames(ctx context.Context, extra []string, prefix string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", append(extra, "pkgnames", prefix)...).Output()
	if err != nil {
		return nil, fmt.Errorf("apt-cache pkgnames %s: %w", prefix, err)
	}
	return strings.Fields(string(out)), nil
}

// resolvePackage turns a name or a pattern (a regular expression over
// whole package names) into the newest package name apt knows.
func resolvePackage(names []string, pattern string) string {
	re, err := regexp.Compile("^" + pattern + "$")
	if err != nil {
		return ""
	}
	var hits []string
	for _, n := range names {
		if re.MatchString(n) {
			hits = append(hits, n)
		}
	}
	if len(hits) == 0 {
		return ""
	}
	sort.Slice(hits, func(i, j int) bool { return versionLess(hits[i], hits[j]) })
	return hits[len(hits)-1]
}

// versionLess orders package names by the numbers in them.
func versionLess(a, b string) bool {
	na, nb := numbers(a), numbers(b)
	for i := 0; i < len(na) && i < len(nb); i++ {
		if na[i] != nb[i] {
			return na[i] < nb[i]
		}
	}
	if len(na) != len(nb) {
		return len(na) < len(nb)
	}
	return a < b
}

var numberRE = regexp.MustCompile(`[0-9]+`)

func numbers(s string) []int {
	var out []int
	for _, m := range numberRE.FindAllString(s, -1) {
		n := 0
		for _, c := range m {
			n = n*10 + int(c-'0')
		}
		out = append(out, n)
	}
	return out
}

// packagePrefix is the literal start of a package pattern.
func packagePrefix(pattern string) string {
	if i := strings.IndexAny(pattern, `.*+?[](){}|\^$`); i >= 0 {
		return pattern[:i]
	}
	return pattern
}

// FetchKernelPackage returns the Debian kernel package name (or an alias
// of KernelAliases, or a pattern such as linux-image-6.12.*-amd64), from
// the cache, else downloaded with apt-get from the machine's own sources,
// else from another suite of the configured Debian mirror (OtherSuites),
// and extracted into the cache.
func FetchKernelPackage(ctx context.Context, name string, progressf func(string, ...any)) (Kernel, error) {
	if progressf == nil {
		progressf = func(string, ...any) {}
	}
	if a, ok := KernelAliases[name]; ok {
		name = a
	}
	if name == DefaultKernelPackage {
		return FetchKernel(ctx, progressf)
	}
	if !strings.HasPrefix(name, "linux-image-") {
		return Kernel{}, fmt.Errorf("%w: %q is neither a kernel alias (%s) nor a linux-image-* package", ErrKernelMissing, name, strings.Join(KernelAliasNames(), ", "))
	}
	return fetchCached(ctx, progressf, func(ctx context.Context, cache string, progressf func(string, ...any)) (Kernel, error) {
		return fetchPackageLocked(ctx, cache, name, progressf)
	})
}

// fetchPackageLocked is FetchKernelPackage's work under the cache lock.
func fetchPackageLocked(ctx context.Context, cache, name string, progressf func(string, ...any)) (Kernel, error) {
	if k, err := cachedKernel(cache, name); err == nil {
		return k, nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return Kernel{}, fmt.Errorf("%w: apt-get not found (give -kernel and -modules instead)", ErrKernelMissing)
	}
	// The machine's own sources first.
	prefix := packagePrefix(name)
	var extra []string
	pkg := ""
	if names, err := pkgnames(ctx, nil, prefix); err == nil {
		pkg = resolvePackage(names, name)
	}
	if pkg == "" {
		srcs, err := configuredSources()
		if err != nil {
			return Kernel{}, fmt.Errorf("%w: %s: %w", ErrKernelMissing, name, err)
		}
		apt := privateApt{dir: filepath.Join(cache, "apt")}
		progressf("looking for %s in other suites of the configured Debian mirror (%s, %s)", name, strings.Join(OtherSuites.Main, " "), strings.Join(OtherSuites.Security, " "))
		if err := apt.prepare(ctx, srcs); err != nil {
			return Kernel{}, fmt.Errorf("%w: %s: %w", ErrKernelMissing, name, err)
		}
		extra = apt.opts()
		names, err := pkgnames(ctx, extra, prefix)
		if err != nil {
			return Kernel{}, fmt.Errorf("%w: %w", ErrKernelMissing, err)
		}
		if pkg = resolvePackage(names, name); pkg == "" {
			return Kernel{}, fmt.Errorf("%w: no package %s in the machine's sources nor in %s of its Debian mirror", ErrKernelMissing, name, strings.Join(append(slices.Clone(OtherSuites.Main), OtherSuites.Security...), ", "))
		}
	}
	if k, err := extractedKernel(cache, pkg); err == nil {
		return k, os.WriteFile(filepath.Join(cache, aliasFile(name)), []byte(pkg), 0o644)
	}
	progressf("fetching kernel %s (apt-get download)", pkg)
	cmd := exec.CommandContext(ctx, "apt-get", append(extra, "download", "-q", pkg)...)
	cmd.Dir = cache
	if out, err := cmd.CombinedOutput(); err != nil {
		return Kernel{}, fmt.Errorf("%w: apt-get download %s: %w: %s", ErrKernelMissing, pkg, err, lastLine(out))
	}
	debs, _ := filepath.Glob(filepath.Join(cache, pkg+"_*.deb"))
	if len(debs) == 0 {
		return Kernel{}, fmt.Errorf("%w: apt-get download %s left no .deb in %s", ErrKernelMissing, pkg, cache)
	}
	k, err := extractKernelDeb(ctx, cache, pkg, debs[len(debs)-1], progressf)
	if err != nil {
		return Kernel{}, err
	}
	return k, os.WriteFile(filepath.Join(cache, aliasFile(name)), []byte(pkg), 0o644)
}

// cachedKernel is the extracted kernel a name resolved to before.
func cachedKernel(cache, name string) (Kernel, error) {
	b, err := os.ReadFile(filepath.Join(cache, aliasFile(name)))
	if err != nil {
		return extractedKernel(cache, name)
	}
	return extractedKernel(cache, strings.TrimSpace(string(b)))
}

// aliasFile records what a kernel name or pattern resolved to.
func aliasFile(name string) string {
	return "resolved-" + regexp.MustCompile(`[^A-Za-z0-9.+-]`).ReplaceAllString(name, "_")
}

// KernelAliasNames are KernelAliases' names, sorted.
func KernelAliasNames() []string {
	var out []string
	for k := range KernelAliases {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// extractKernelDeb unpacks a kernel .deb into cache/pkg and removes it.
func extractKernelDeb(ctx context.Context, cache, pkg, deb string, progressf func(string, ...any)) (Kernel, error) {
	progressf("extracting %s", filepath.Base(deb))
	root := filepath.Join(cache, pkg)
	tmp := root + ".tmp"
	os.RemoveAll(tmp)
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return Kernel{}, fmt.Errorf("dpkg-deb -x %s: %w: %s", deb, err, bytes.TrimSpace(out))
	}
	os.RemoveAll(root)
	if err := os.Rename(tmp, root); err != nil {
		return Kernel{}, err
	}
	os.Remove(deb)
	return extractedKernel(cache, pkg)
}
