// wipe_e2e_test.go: the real binary when an operator replaces a member's disk, wipes
// several, restarts a wiped one with its old command line, or gives a data dir another
// -c: the schedules that formed second clusters and lost acknowledged writes before
// data dirs had identities (membership.go).
package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// wipe kills node id, deletes its data dir, and starts it again with the command line
// it had, as an operator replacing its disk (or "resetting" it) would.
func (c *e2eCluster) wipe(id string) *proc {
	c.t.Helper()
	p := c.procs[id]
	c.stop(id, syscall.SIGKILL)
	if err := os.RemoveAll(p.dir); err != nil {
		c.t.Fatal(err)
	}
	// Its flags as given: startWith adds c.extra, -d, -heartbeat and -election-timeout.
	return c.startWith(id, p.args[:len(p.args)-len(c.extra)-6]...)
}

// readd removes id through member and adds it back, as the README says to.
func (c *e2eCluster) readd(id, member string) {
	c.t.Helper()
	for _, cmd := range []string{"removeserver", "addserver"} {
		if r := c.client("-C", cmd, "-m", id, "-S", member, "-timeout", "10s"); r.code != 0 {
			c.t.Fatalf("%s %s via %s: exit %d\nstdout: %s\nstderr: %s", cmd, id, member, r.code, r.stdout, r.stderr)
		}
	}
}

// An original member whose data dir is wiped and that is started again with its old
// command line does not bootstrap and is not counted: it says it waits as a spare, the
// members say they refuse it, the others go on; removed and added back, it catches up
// with everything.
func TestEndToEndWipedMemberComesBackAsSpare(t *testing.T) {
	c, members, _ := runningCluster(t)
	c.send(members[0], "a")
	leader := c.send(members[1], "b").leader
	p := c.wipe(leader) // the leader, of all members
	if !p.stderr.waitLine("this data dir is new, but the cluster is not") {
		t.Fatalf("the wiped %s did not say that it lost its data:\n%s", leader, p.stderr)
	}
	others := slices.DeleteFunc(slices.Clone(members), func(m string) bool { return m == leader })
	next := c.send(others[0], "c").leader
	said := func(id string) bool {
		all, _ := c.procs[id].stderr.snapshot()
		return strings.Contains(strings.Join(all, "\n"), leader+": this server knows")
	}
	if !said(others[0]) && !said(others[1]) && !c.procs[next].stderr.waitLine(leader+": this server knows") {
		t.Fatalf("no member logged refusing the wiped %s:\n%s", leader, c.procs[next].stderr)
	}
	if st := c.status(leader); st.Role == "leader" || st.Term != 0 || st.LastIndex != 0 {
		t.Fatalf("the wiped %s takes part: %+v", leader, st)
	}
	c.readd(leader, others[1])
	c.send(leader, "print")
	c.waitAll(members, " Logs [a b c print]", 1)
}

// Two of three members are removed and wiped before either is added back. They are a
// majority of -c, with empty logs: started again with their old command lines they
// must not form a cluster of their own (which took writes and deposed the real
// leader); added back, they catch up.
func TestEndToEndWipedMajorityDoesNotFormACluster(t *testing.T) {
	c, members, _ := runningCluster(t)
	c.send(members[0], "a")
	keep := members[0]
	for _, id := range members[1:] {
		if r := c.client("-C", "removeserver", "-m", id, "-S", keep, "-timeout", "10s"); r.code != 0 {
			t.Fatalf("removeserver %s: exit %d: %s", id, r.code, r.stderr)
		}
	}
	for _, id := range members[1:] {
		if p := c.wipe(id); !p.stderr.waitLine("this data dir is new, but the cluster is not") {
			t.Fatalf("the wiped %s did not say that the cluster exists:\n%s", id, p.stderr)
		}
	}
	// A write sent to them is not committed by them.
	r := c.client("-C", "clientcommand", "-m", "impostor", "-S", members[1], "-timeout", "1s", "-json")
	if strings.Contains(r.stdout, `"leader":"`+members[1]+`"`) || strings.Contains(r.stdout, `"leader":"`+members[2]+`"`) {
		t.Fatalf("a wiped server led a write: %s", r.stdout)
	}
	before := c.status(keep)
	c.send(keep, "b")
	if st := c.status(keep); st.Role != "leader" || st.Term != before.Term {
		t.Fatalf("the member left changed: before %+v, after %+v", before, st)
	}
	for _, id := range members[1:] {
		if r := c.client("-C", "addserver", "-m", id, "-S", keep, "-timeout", "10s"); r.code != 0 {
			t.Fatalf("addserver %s: exit %d: %s", id, r.code, r.stderr)
		}
	}
	c.send(members[2], "print")
	want := " Logs [a b print]"
	if r.code == 0 {
		want = " Logs [a impostor b print]" // forwarded to the real leader, and committed there
	}
	c.waitAll(members, want, 1)
}

// The node of a one-member cluster (plain ./raft), grown with spares, removed and
// wiped, then started again with its plain command line: that is a new one-member
// cluster, of another id, which the old cluster refuses to take in. Started as a spare
// of the cluster instead, it is added back.
func TestEndToEndWipedFirstMemberOfOneMemberCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	addrs := freeAddrs(t, 2)
	a, b := addrs[0], addrs[1]
	c := newE2ECluster(t, nil)
	c.startWith(a, "-p", a)
	c.send(a, "x")
	c.startWith(b, "-c", a, "-p", b)
	if r := c.client("-C", "addserver", "-m", b, "-S", a, "-timeout", "10s"); r.code != 0 {
		t.Fatalf("addserver %s: exit %d: %s", b, r.code, r.stderr)
	}
	cluster := c.status(b).Cluster
	if r := c.client("-C", "removeserver", "-m", a, "-S", b, "-timeout", "10s"); r.code != 0 {
		t.Fatalf("removeserver %s: exit %d: %s", a, r.code, r.stderr)
	}
	c.send(b, "y") // b leads: a stepped down once its removal committed
	c.wipe(a)
	if id := c.status(a).Cluster; id == cluster {
		t.Fatalf("the wiped %s formed a cluster with the old one's id %s", a, id)
	}
	if r := c.client("-C", "addserver", "-m", a, "-S", b, "-timeout", "10s"); r.code == 0 {
		t.Fatalf("the cluster took in %s, a member of another cluster: %s", a, r.stdout)
	}
	if !c.procs[a].stderr.waitLine("refused messages from " + b) {
		t.Fatalf("%s did not log refusing the other cluster's leader:\n%s", a, c.procs[a].stderr)
	}
	if !c.procs[b].stderr.waitLine("not adding server") {
		t.Fatalf("%s did not give up adding %s:\n%s", b, a, c.procs[b].stderr)
	}
	// The right way: an empty data dir, started as a spare of the cluster.
	c.stop(a, syscall.SIGKILL)
	os.RemoveAll(c.procs[a].dir)
	c.startWith(a, "-c", b, "-p", a)
	if r := c.client("-C", "addserver", "-m", a, "-S", b, "-timeout", "10s"); r.code != 0 {
		t.Fatalf("addserver %s as a spare: exit %d: %s", a, r.code, r.stderr)
	}
	c.send(a, "print")
	c.waitAll([]string{a, b}, " Logs [x y print]", 1)
}

// A data dir belongs to the cluster it was made for: started with a -c that contradicts
// it, the node refuses to start and says how to fix it, changing nothing. (The data dir
// of plain ./raft, started as a member of a new three-member cluster, led a one-member
// cluster of its own beside the other two.)
func TestEndToEndContradictingMembersRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	addrs := freeAddrs(t, 3)
	c := newE2ECluster(t, nil)
	p := c.startWith(addrs[0], "-p", addrs[0])
	c.send(addrs[0], "alone")
	if err := c.stop(addrs[0], syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(p.dir)
	out, err := exec.Command(c.bin, "-c", strings.Join(addrs, ","), "-p", addrs[0], "-d", p.dir).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFailed || !strings.Contains(string(out), "was made with -c '"+addrs[0]+"'") ||
		!strings.Contains(string(out), strings.Join(addrs, ",")) || !strings.Contains(string(out), "-d") {
		t.Fatalf("a contradicting -c: %v\n%s", err, out)
	}
	if after, _ := os.ReadDir(p.dir); len(after) != len(before) {
		t.Fatalf("the refused start changed the data dir: %v, then %v", before, after)
	}
}

// A start that fails before the node serves (its address in use; the -metrics address:
// TestMetricsAddressTaken) writes nothing: a data dir left behind would later be taken
// as the node's own.
func TestEndToEndFailedStartWritesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free := freeAddrs(t, 1)[0]
	bin := raftBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	out, err := exec.Command(bin, "-c", busy.Addr().String()+","+free, "-p", busy.Addr().String(), "-d", dir).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFailed || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("a node on an address in use: %v\n%s", err, out)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed start left %s (%v)", dir, err)
	}
}

// Three fresh members started minutes apart, in any order, form one cluster: until the
// last one starts, the others wait, and say so.
func TestEndToEndMembersStartInAnyOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	addrs := freeAddrs(t, 3)
	c := newE2ECluster(t, addrs)
	for _, id := range []string{addrs[2], addrs[0]} {
		p := c.start(id)
		if !p.stderr.waitLine("forming a new cluster: waiting for") {
			t.Fatalf("%s does not say what it waits for:\n%s", id, p.stderr)
		}
	}
	if r := c.client("-C", "clientcommand", "-m", "early", "-S", addrs[0], "-timeout", "500ms"); r.code == 0 || !strings.Contains(r.stderr, "forming a new cluster") {
		t.Fatalf("a command before the cluster formed: exit %d, %s", r.code, r.stderr)
	}
	c.start(addrs[1])
	c.send(addrs[2], "hello")
	c.send(addrs[1], "print")
	c.waitAll(addrs, " Logs [hello print]", 1)
	for _, id := range addrs {
		if !c.procs[id].stderr.waitLine("formed a new cluster") {
			t.Fatalf("%s did not say it formed the cluster:\n%s", id, c.procs[id].stderr)
		}
	}
	if a, b := c.status(addrs[0]).Cluster, c.status(addrs[1]).Cluster; a != b {
		t.Fatalf("cluster ids differ: %s and %s", a, b)
	}
}
