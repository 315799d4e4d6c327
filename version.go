// version.go: what this binary is, as `go build` stamped it (runtime/debug.ReadBuildInfo):
// the module version and the VCS revision, time and modified flag of the checkout it was
// built from. `raft -version` prints it, and every node reports it in `status -json`
// (NodeStatus.Version) and `health`, so a rolling upgrade can be followed member by member.
package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// buildVersion is this binary's version line (without the leading "raft "), e.g.
//
//	v0.0.0-20261126171400-48b24f2abcde+dirty (revision 48b24f2abcde..., 2026-11-26T17:14:00Z, modified; go1.26.8 linux/amd64)
var buildVersion = sync.OnceValue(func() string {
	info, ok := debug.ReadBuildInfo()
	return formatVersion(info, ok)
})

// formatVersion describes a build: the module version ("(devel)" when the toolchain
// stamped none), then the revision ("unknown" when built without VCS information, e.g.
// from a tarball or with -buildvcs=false), its commit time, whether the checkout had
// uncommitted changes, and the Go toolchain.
func formatVersion(info *debug.BuildInfo, ok bool) string {
	version, goVersion := "(devel)", runtime.Version()
	settings := map[string]string{}
	if ok && info != nil {
		if info.Main.Version != "" {
			version = info.Main.Version
		}
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
	}
	vcs := "revision unknown"
	if rev := settings["vcs.revision"]; rev != "" {
		vcs = "revision " + rev
		if t := settings["vcs.time"]; t != "" {
			vcs += ", " + t
		}
		if settings["vcs.modified"] == "true" {
			vcs += ", modified"
		}
	}
	return fmt.Sprintf("%s (%s; %s %s/%s)", version, vcs, goVersion, runtime.GOOS, runtime.GOARCH)
}

// shortVersion is the first word of a version line: the module version, for tables.
func shortVersion(v string) string {
	v, _, _ = strings.Cut(v, " ")
	return v
}

// printVersion answers -version.
func printVersion(w io.Writer) {
	fmt.Fprintln(w, "raft "+buildVersion())
}
