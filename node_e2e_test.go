// node_e2e_test.go: what a node tells its operator, through the real binary: why a
// leader stepped down, why a server could not be added, what is wrong with a data dir
// it cannot start on, and what it says of itself once removed.
package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// refusedStart runs the binary with args, a node that must not start: it must exit 1
// saying each of want, and leave dir, its data dir, as it was (absent, if it was).
func refusedStart(t *testing.T, dir string, want []string, args ...string) {
	t.Helper()
	var before map[string][]byte
	if _, err := os.Stat(dir); err == nil {
		before = dirFiles(t, dir)
	}
	r := runRaft(raftBinary(t), args...)
	if r.code != exitFailed {
		t.Fatalf("%q: exit %d, want %d; stderr:\n%s", args, r.code, exitFailed, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("%q: the error does not say %q:\n%s", args, w, r.stderr)
		}
	}
	if before == nil {
		if _, err := os.Stat(dir); err == nil {
			t.Fatalf("the refused start made %s", dir)
		}
	} else if after := dirFiles(t, dir); !reflect.DeepEqual(before, after) {
		t.Fatalf("the refused start changed %s", dir)
	}
}

// A leader that loses its majority says why it stepped down, naming the members it did
// not hear from.
func TestEndToEndStepDownSaysWhy(t *testing.T) {
	c, members, _ := runningCluster(t)
	lead := c.send(members[0], "x").leader
	var others []string
	for _, id := range members {
		if id != lead {
			others = append(others, id)
			c.procs[id].cmd.Process.Signal(syscall.SIGSTOP)
		}
	}
	defer func() {
		for _, id := range others {
			c.procs[id].cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	p := c.procs[lead]
	if !p.stderr.waitLine(`msg="stepped down"`) {
		t.Fatalf("the leader cut off from the others did not step down:\n%s", p.stderr)
	}
	var line string
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(l, `msg="stepped down"`) {
			line = l
		}
	}
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "no majority heard from within an election timeout") || !strings.Contains(line, "in contact with 1 of 3 members") {
		t.Fatalf("the step-down does not say why: %s", line)
	}
	for _, id := range others {
		if !strings.Contains(line, id) {
			t.Fatalf("the step-down does not name %s, not heard from: %s", id, line)
		}
	}
}

// addserver of a server that refuses the leader's messages says why it refused them,
// not that it did not answer: a running member named by another address than its own,
// and the member of another cluster.
func TestEndToEndAddServerRefusedSaysWhy(t *testing.T) {
	c, members, other := runningCluster(t)
	lead := c.send(members[0], "x").leader
	_, port, _ := net.SplitHostPort(members[1])
	alias := "localhost:" + port
	r := c.client("-C", "addserver", "-m", alias, "-S", lead, "-timeout", "15s")
	if r.code != exitFailed || !strings.Contains(r.stderr, "the new server answered, but took none of the leader's messages") ||
		!strings.Contains(r.stderr, "reached "+members[1]+", which is how that server names itself") || !strings.Contains(r.stderr, "membership unchanged") {
		t.Fatalf("addserver %s for the member %s: exit %d, %q", alias, members[1], r.code, r.stderr)
	}

	c.startWith(other, "-p", other) // a cluster of its own
	r = c.client("-C", "addserver", "-m", other, "-S", lead, "-timeout", "15s")
	if r.code != exitFailed || !strings.Contains(r.stderr, "the new server answered, but took none of the leader's messages") ||
		!strings.Contains(r.stderr, "it is of cluster "+c.status(lead).Cluster) || !strings.Contains(r.stderr, "membership unchanged") {
		t.Fatalf("addserver of %s, of another cluster: exit %d, %q", other, r.code, r.stderr)
	}
	if st := c.status(lead); len(st.Members) != 3 {
		t.Fatalf("the membership changed: %+v", st.Members)
	}
}

// A data dir whose log was cut short is refused for what it is (a segment cut short or
// missing), not blamed on a missing snapshot, and says what to do.
func TestEndToEndTruncatedLogRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	a := freeAddrs(t, 1)[0]
	c := newE2ECluster(t, nil)
	p := c.startWith(a, "-p", a)
	for _, msg := range []string{"one", "two"} { // each start opens a new log segment
		c.send(a, msg)
		if err := c.stop(a, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if msg == "one" {
			c.startWith(a, "-p", a)
		}
	}
	first := filepath.Join(p.dir, segmentName(1))
	whole, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	advice := "restore the data dir from a backup, or remove this node from the cluster and add it back with an empty data dir"
	for _, tc := range []struct {
		name string
		cut  func() error
		says string
	}{
		{"first segment deleted", func() error { return os.Remove(first) }, "the log was cut short at its start"},
		{"first segment emptied", func() error { return os.Truncate(first, 0) }, "the one before it was cut short"},
		{"first segment cut in a record", func() error { return os.Truncate(first, int64(len(whole)-3)) }, segmentName(1) + " was cut short: it ends in the middle of the record"},
	} {
		if err := tc.cut(); err != nil {
			t.Fatal(err)
		}
		t.Log(tc.name)
		refusedStart(t, p.dir, []string{tc.says, advice}, p.args...)
		if err := os.WriteFile(first, whole, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// A node that cannot write its data dir does not start: it says that the data dir cannot
// be written or made, naming it, exits 1 and changes nothing. (It said "this node takes
// no more writes", as if it had been running.)
func TestEndToEndUnwritableDataDirRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	a := freeAddrs(t, 1)[0]
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("not a dir"), 0o600); err != nil {
		t.Fatal(err)
	}
	under := filepath.Join(file, "data")
	refusedStart(t, under, []string{"the data dir " + under + " cannot be made", "the node did not start", "-d"}, "-p", a, "-d", under)
	if got, _ := os.ReadFile(file); string(got) != "not a dir" {
		t.Fatalf("the file in the way was changed: %q", got)
	}

	// A data dir that was written, then made read-only: a read-only bind mount as root
	// (permissions do not stop root), a dir without write permission otherwise.
	c := newE2ECluster(t, nil)
	p := c.startWith(a, "-p", a)
	c.send(a, "x")
	if err := c.stop(a, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	says := "(permissions)"
	if os.Geteuid() == 0 {
		if err := syscall.Mount(p.dir, p.dir, "", syscall.MS_BIND, ""); err != nil {
			t.Skipf("cannot bind-mount %s read-only: %v", p.dir, err)
		}
		defer syscall.Unmount(p.dir, 0)
		if err := syscall.Mount(p.dir, p.dir, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			t.Skipf("cannot remount %s read-only: %v", p.dir, err)
		}
		says = "(read-only file system)"
	} else {
		if err := os.Chmod(p.dir, 0o500); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(p.dir, 0o700)
	}
	refusedStart(t, p.dir, []string{"the data dir " + p.dir + " cannot be written " + says, "the node did not start"}, p.args...)
}

// Snapshot files are named by index and term in decimal, as the log says; a data dir
// whose snapshot has the hex name older binaries gave it starts, with every message, and
// the file gets its decimal name.
func TestEndToEndSnapshotNamesDecimal(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	a := freeAddrs(t, 1)[0]
	c := newE2ECluster(t, nil)
	p := c.startWith(a, "-p", a, "-snapshot-entries", "12")
	var want []string
	for i := range 12 {
		want = append(want, fmt.Sprint("m", i))
		c.send(a, want[i])
	}
	if !p.stderr.waitLine("snapshot written; log compacted") {
		t.Fatalf("no snapshot taken:\n%s", p.stderr)
	}
	index := regexp.MustCompile(`msg="snapshot written; log compacted" node=\S+ index=(\d+)`).FindStringSubmatch(p.stderr.String())
	st := c.status(a)
	name := fmt.Sprintf("snap-%s-%d.snap", index[1], st.Term)
	if fmt.Sprint(st.SnapshotIndex) != index[1] || !fileExists(filepath.Join(p.dir, name)) {
		t.Fatalf("the log says snapshot %s, status %d; the data dir holds %v, not %s", index[1], st.SnapshotIndex, dirNames(t, p.dir), name)
	}
	if err := c.stop(a, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var idx uint64
	fmt.Sscan(index[1], &idx)
	hex := hexSnapshotName(SnapshotMeta{Index: idx, Term: st.Term})
	if err := os.Rename(filepath.Join(p.dir, name), filepath.Join(p.dir, hex)); err != nil {
		t.Fatal(err)
	}
	c.startWith(a, "-p", a, "-snapshot-entries", "12")
	if r := c.send(a, "print"); !strings.HasPrefix(r.stdout, "Logs ["+strings.Join(want, " ")+" print]") {
		t.Fatalf("after the restart on a hex-named snapshot, print answered %q", r.stdout)
	}
	if !fileExists(filepath.Join(p.dir, name)) || fileExists(filepath.Join(p.dir, hex)) {
		t.Fatalf("after the restart the data dir holds %v, want %s", dirNames(t, p.dir), name)
	}
}

func dirNames(t *testing.T, dir string) []string {
	names, err := listDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// A removed node keeps running (it can be added back as it is), and its status and log
// say it was removed, by which configuration entry, and what to do. It said "follower,
// term 1, leader -" as if nothing had happened.
func TestEndToEndRemovedNodeSaysSo(t *testing.T) {
	c, members, spare := runningCluster(t)
	c.send(members[0], "x")
	sp := c.start(spare)
	notRemoved := func() {
		t.Helper()
		if r := c.client("-C", "status", "-S", spare); r.code != 0 || strings.Contains(r.stdout, "removed") {
			t.Fatalf("status of %s, not removed: exit %d, %q %q", spare, r.code, r.stdout, r.stderr)
		}
	}
	notRemoved() // a spare never added was not removed
	if r := c.client("-C", "addserver", "-m", spare, "-S", members[0], "-timeout", "10s"); r.code != 0 {
		t.Fatalf("addserver: exit %d, %q", r.code, r.stderr)
	}
	r := c.client("-C", "removeserver", "-m", spare, "-S", members[1], "-timeout", "10s")
	if r.code != 0 || r.index == 0 {
		t.Fatalf("removeserver: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	says := fmt.Sprintf("removed from the cluster by the configuration entry at index %d", r.index)
	if !sp.stderr.waitLine(says) || !sp.stderr.waitLine("raft -C addserver -m "+spare) {
		t.Fatalf("the removed node's log does not say %q and how to add it back:\n%s", says, sp.stderr)
	}
	if r := c.client("-C", "status", "-S", spare); r.code != 0 || !strings.Contains(r.stdout, says) || !strings.Contains(r.stdout, "add it back with raft -C addserver -m "+spare) {
		t.Fatalf("status of the removed node: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if st := c.status(spare); st.RemovedAt != uint64(r.index) {
		t.Fatalf("status -json of the removed node: removed_at %d, want %d", st.RemovedAt, r.index)
	}
	// Restarted, it says so again; added back as it is, it is a member once more.
	if err := c.stop(spare, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if p := c.start(spare); !p.stderr.waitLine(says) {
		t.Fatalf("the removed node, restarted, does not say it was removed:\n%s", p.stderr)
	}
	if r := c.client("-C", "addserver", "-m", spare, "-S", members[0], "-timeout", "10s"); r.code != 0 {
		t.Fatalf("addserver of the removed node: exit %d, %q", r.code, r.stderr)
	}
	c.send(spare, "print")
	c.waitAll(append(slices.Clone(members), spare), " Logs [x print]", 1)
	notRemoved()
}

// -demo on a port in use fails, saying so, without the "cluster is starting, try:" banner
// it printed before its members had their ports.
func TestEndToEndDemoPortInUse(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	base := freeDemoBase()
	busy, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+1))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	r := runRaft(raftBinary(t), "-demo", "-p", fmt.Sprint(base))
	if r.code != exitFailed || !strings.Contains(r.stderr, fmt.Sprintf("listen on :%d", base+1)) || !strings.Contains(r.stderr, "address already in use") {
		t.Fatalf("-demo with :%d in use: exit %d, stderr:\n%s", base+1, r.code, r.stderr)
	}
	if strings.Contains(r.stdout, "try:") || strings.Contains(r.stdout, "is starting") {
		t.Fatalf("-demo printed its banner though it failed:\n%s", r.stdout)
	}
}
