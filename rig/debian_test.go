package rig

import (
	"strings"
	"testing"
)

func TestParseAptSources(t *testing.T) {
	deb822 := `Types: deb
# a comment
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://mirror.invalid/debian
Suites: bookworm

Types: deb
URIs: https://vendor.invalid/apt
Suites: nodistro
Components: main

Types: deb
Enabled: no
URIs: http://off.invalid/debian
Suites: bookworm
`
	got := parseAptSources("debian.sources", []byte(deb822))
	assert.Equal(t, []aptSource{
		{URI: "http://mirror.invalid/debian", SignedBy: "/usr/share/keyrings/debian-archive-keyring.gpg", Suites: []string{"bookworm", "bookworm-updates"}},
		{URI: "http://mirror.invalid/debian-security", Suites: []string{"bookworm-security"}},
	}, got)
	assert.False(t, got[0].security())
	assert.True(t, got[1].security())

	oneLine := "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.invalid/debian bullseye main\ndeb http://vendor.invalid/apt cloud-sdk main\ndeb-src http://mirror.invalid/debian bullseye main\n"
	assert.Equal(t, []aptSource{{URI: "http://mirror.invalid/debian", SignedBy: "/k.gpg", Suites: []string{"bullseye"}}},
		parseAptSources("sources.list", []byte(oneLine)))
}

func TestOtherSuitesList(t *testing.T) {
	l := otherSuitesList([]aptSource{
		{URI: "http://mirror.invalid/debian", SignedBy: "/k.gpg", Suites: []string{"bookworm"}},
		{URI: "http://mirror.invalid/debian", Suites: []string{"bookworm-updates"}},
		{URI: "http://mirror.invalid/debian-security", Suites: []string{"bookworm-security"}},
	})
	assert.Equal(t, 2, strings.Count(l, "Types: deb\n"), l)
	assert.Contains(t, l, "URIs: http://mirror.invalid/debian\nSuites: "+strings.Join(OtherSuites.Main, " ")+"\nComponents: main\nSigned-By: /k.gpg\n")
	assert.Contains(t, l, "URIs: http://mirror.invalid/debian-security\nSuites: "+strings.Join(OtherSuites.Security, " ")+"\n")
}

func TestResolvePackage(t *testing.T) {
	names := []string{
		"linux-image-6.12-amd64", "linux-image-6.12.9+deb12-amd64", "linux-image-6.12.115+deb12-amd64",
		"linux-image-6.12.117+deb12-rt-amd64", "linux-image-6.12.115+deb12-cloud-amd64-unsigned",
		"linux-image-6.12.101+deb12-amd64", "linux-image-5.10.0-32-amd64",
	}
	assert.Equal(t, "linux-image-6.12.115+deb12-amd64", resolvePackage(names, KernelAliases["6.12"]))
	assert.Equal(t, "linux-image-5.10.0-32-amd64", resolvePackage(names, KernelAliases["5.10"]))
	assert.Equal(t, "", resolvePackage(names, "linux-image-4.19.0-1-amd64"))
	assert.Equal(t, "", resolvePackage(names, "linux-image-(")) // a bad pattern finds nothing
	// apt-cache pkgnames takes the literal start of a pattern.
	assert.Equal(t, "linux-image-6", packagePrefix(`linux-image-6\.12\.[0-9]+`))
	assert.Equal(t, "linux-image-5", packagePrefix(KernelAliases["5.10"]))
}
