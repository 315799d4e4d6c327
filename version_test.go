// version_test.go: tests of -version and the version nodes report.
package main

import (
	"os/exec"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFormatVersion(t *testing.T) {
	platform := " " + runtime.GOOS + "/" + runtime.GOARCH + ")"
	setting := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	cases := []struct {
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{nil, false, "(devel) (revision unknown; " + runtime.Version() + platform},
		{&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, true, "(devel) (revision unknown; go1.26.8" + platform},
		{&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"},
			Settings: setting("vcs", "git", "vcs.revision", "48b24f2f6aa6", "vcs.time", "2026-11-26T17:14:00Z", "vcs.modified", "false")},
			true, "v1.2.3 (revision 48b24f2f6aa6, 2026-11-26T17:14:00Z; go1.26.8" + platform},
		{&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261126171400-48b24f2f6aa6+dirty"},
			Settings: setting("vcs.revision", "48b24f2f6aa6", "vcs.time", "2026-11-26T17:14:00Z", "vcs.modified", "true")},
			true, "v0.0.0-20261126171400-48b24f2f6aa6+dirty (revision 48b24f2f6aa6, 2026-11-26T17:14:00Z, modified; go1.26.8" + platform},
		{&debug.BuildInfo{GoVersion: "go1.26.8", Settings: setting("vcs.revision", "abc")}, true, "(devel) (revision abc; go1.26.8" + platform},
	}
	for _, tc := range cases {
		if got := formatVersion(tc.info, tc.ok); got != tc.want {
			t.Errorf("formatVersion(%+v) = %q; want %q", tc.info, got, tc.want)
		}
	}
	if got := shortVersion("v1.2.3 (revision abc; go1.26.8 linux/amd64)"); got != "v1.2.3" {
		t.Errorf("shortVersion = %q", got)
	}
}

// raft -version prints what go build stamped in the binary, as go version -m reads it,
// and exits 0; a running node reports the same in status -json.
func TestEndToEndVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	c := newE2ECluster(t, nil)
	r := c.client("-version")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "raft ") || strings.Count(r.stdout, "\n") != 1 || r.stderr != "" {
		t.Fatalf("-version: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	line := strings.TrimSpace(r.stdout)
	out, err := exec.Command("go", "version", "-m", c.bin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	mod := regexp.MustCompile(`(?m)^\s+mod\s+\S+\s+(\S+)`).FindSubmatch(out)
	if mod == nil || !strings.HasPrefix(line, "raft "+string(mod[1])+" (") {
		t.Fatalf("-version says %q; go version -m says:\n%s", line, out)
	}
	// In a git checkout go build stamps the revision (not in a linked worktree, nor with
	// -buildvcs=false: then there is none to show).
	want := "revision unknown"
	if rev := regexp.MustCompile(`(?m)vcs\.revision=(\S+)`).FindSubmatch(out); rev != nil {
		want = "revision " + string(rev[1])
	}
	if !strings.Contains(line, want) {
		t.Fatalf("-version says %q; want %q (go version -m:\n%s)", line, want, out)
	}
	if r = c.client("-version", "-p", "9990"); r.code != exitUsage || !strings.Contains(r.stderr, "-version takes no other flag") {
		t.Fatalf("-version with -p: exit %d, %q", r.code, r.stderr)
	}

	a := freeAddrs(t, 1)[0]
	c.startWith(a, "-p", a)
	if st := c.status(a); "raft "+st.Version != line {
		t.Fatalf("status -json says version %q; -version says %q", st.Version, line)
	}
}
