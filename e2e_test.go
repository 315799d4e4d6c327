// e2e_test.go: end-to-end tests of the real binary: real processes on 127.0.0.1, the
// real client, SIGKILL and restarts on the same data dirs. Every process a test starts
// is stopped when it ends; every wait is bounded.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// e2e timing: generous, so a loaded 2-core CI machine under -race does not see
// spurious elections.
const (
	e2eHeartbeat = "50ms"
	e2eElection  = "500ms"
	e2eWait      = 20 * time.Second // bound on any single wait
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// raftBinary builds the raft binary once per test run.
func raftBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "raft-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "raft")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// lines collects a process's output line by line, and lets a test wait for a line.
type lines struct {
	mu      sync.Mutex
	partial []byte
	all     []string
	changed chan struct{} // closed and replaced whenever a line arrives
}

func newLines() *lines { return &lines{changed: make(chan struct{})} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.all = append(l.all, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

func (l *lines) snapshot() ([]string, chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.all...), l.changed
}

func (l *lines) String() string {
	all, _ := l.snapshot()
	return strings.Join(all, "\n")
}

// count returns how many lines end with suffix.
func (l *lines) count(suffix string) int {
	all, _ := l.snapshot()
	n := 0
	for _, s := range all {
		if strings.HasSuffix(s, suffix) {
			n++
		}
	}
	return n
}

// waitCount waits until at least n lines end with suffix.
func (l *lines) waitCount(suffix string, n int) bool {
	deadline := time.NewTimer(e2eWait)
	defer deadline.Stop()
	for {
		all, changed := l.snapshot()
		got := 0
		for _, s := range all {
			if strings.HasSuffix(s, suffix) {
				got++
			}
		}
		if got >= n {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}

// proc is a running node.
type proc struct {
	id, dir string
	args    []string
	cmd     *exec.Cmd
	stdout  *lines
	stderr  *lines
	exited  chan struct{}
	err     error // set once exited is closed
}

type e2eCluster struct {
	t       testing.TB
	bin     string
	members string   // -c
	extra   []string // more flags for every node
	// A command that runs a node's binary in its place (e.g. a shell setting limits),
	// by node; the binary and its flags follow it.
	wrap map[string][]string
	// Called on each node's command before it starts (partition_test.go runs it as a
	// user of its own).
	prepare func(p *proc)
	procs   map[string]*proc
}

// Ports handed out to tests: each at most once in a run, so that one a test has not
// started its node on yet is not given to another.
var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// testPortRange is where freePorts and freeDemoBase take ports: from 10000 to the start
// of the kernel's ephemeral range (ip_local_port_range). A port of that range (what a
// listen on :0 returns) can be taken between its check and the node's listen as the
// local port of any outgoing connection on the machine (a client's, a member's, another
// program's), and the node then fails to start: "address already in use". Where the
// range starts too low to leave room below it, ok is false.
func testPortRange() (low, high int, ok bool) {
	high = 32768 // Linux's default start
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &high)
	}
	return 10000, high, high-10000 >= 2000
}

// givePort reports whether port is free on host and was not given to a test before; if
// so, it is given now.
func givePort(host string, port int) bool {
	if portsGiven[port] {
		return false
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	portsGiven[port] = true
	return true
}

// freePorts finds n free ports on 127.0.0.1, outside the ephemeral range (testPortRange).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	low, high, ok := testPortRange()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100*n {
			t.Fatalf("no %d free ports on 127.0.0.1 in %d-%d after %d tries", n, low, high-1, tries)
		}
		port := low + rand.IntN(high-low)
		if !ok { // no room below the ephemeral range: the kernel's choice
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port = ln.Addr().(*net.TCPAddr).Port
			ln.Close()
		}
		if givePort("127.0.0.1", port) {
			ports = append(ports, port)
		}
	}
	return ports
}

// freeAddrs is freePorts as node addresses on 127.0.0.1.
func freeAddrs(t testing.TB, n int) []string {
	var addrs []string
	for _, p := range freePorts(t, n) {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	return addrs
}

// runningCluster skips the test in -short mode; else it starts a three-member cluster of
// the real binary on 127.0.0.1 and returns it, its members and one more free address.
func runningCluster(t *testing.T) (c *e2eCluster, members []string, other string) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	addrs := freeAddrs(t, 4)
	c = newE2ECluster(t, addrs[:3])
	for _, id := range addrs[:3] {
		c.start(id)
	}
	return c, addrs[:3], addrs[3]
}

func newE2ECluster(t testing.TB, addrs []string) *e2eCluster {
	c := &e2eCluster{t: t, bin: raftBinary(t), members: strings.Join(addrs, ","), procs: map[string]*proc{}}
	t.Cleanup(c.stopAll)
	return c
}

// start starts (or restarts, on the same data dir) the member or spare id of the cluster.
func (c *e2eCluster) start(id string) *proc {
	c.t.Helper()
	_, port, _ := net.SplitHostPort(id)
	return c.startWith(id, "-c", c.members, "-p", port)
}

// startWith starts (or restarts, on the same data dir) node id with the given flags.
func (c *e2eCluster) startWith(id string, flags ...string) *proc {
	c.t.Helper()
	dir := filepath.Join(c.t.TempDir(), "data")
	if old := c.procs[id]; old != nil {
		dir = old.dir
	}
	p := &proc{id: id, dir: dir, stdout: newLines(), stderr: newLines(), exited: make(chan struct{})}
	p.args = append(append(flags, c.extra...), "-d", dir, "-heartbeat", e2eHeartbeat, "-election-timeout", e2eElection)
	argv := append(append(append([]string(nil), c.wrap[id]...), c.bin), p.args...)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if c.prepare != nil {
		c.prepare(p)
	}
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	c.procs[id] = p
	// Ready once it says it is listening.
	if !p.stderr.waitLine("msg=listening") {
		c.t.Fatalf("%s did not start:\n%s", id, p.stderr)
	}
	return p
}

// waitLine waits until a line contains substr.
func (l *lines) waitLine(substr string) bool {
	deadline := time.NewTimer(e2eWait)
	defer deadline.Stop()
	for {
		all, changed := l.snapshot()
		for _, s := range all {
			if strings.Contains(s, substr) {
				return true
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}

// signal sends sig to id and waits for it to exit; it returns the exit error.
func (c *e2eCluster) stop(id string, sig syscall.Signal) error {
	c.t.Helper()
	p := c.procs[id]
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(e2eWait):
		p.cmd.Process.Kill()
		<-p.exited
		c.t.Fatalf("%s did not exit on %v", id, sig)
		return nil
	}
}

func (c *e2eCluster) stopAll() {
	for _, p := range c.procs {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
	if c.t.Failed() {
		for id, p := range c.procs {
			c.t.Logf("== %s stderr:\n%s\n== %s stdout:\n%s", id, p.stderr, id, p.stdout)
		}
	}
}

type clientResult struct {
	code           int
	stdout, stderr string
	leader         string
	index          int
}

var committedRE = regexp.MustCompile(`committed at index (\d+) \(term \d+, leader (\S+)\)`)

// client runs the real client.
func (c *e2eCluster) client(args ...string) clientResult {
	c.t.Helper()
	return c.clientIn("", args...)
}

// clientIn runs the real client with stdin as its standard input.
func (c *e2eCluster) clientIn(stdin string, args ...string) clientResult {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := clientResult{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("client %q: %v", args, err)
	}
	if m := committedRE.FindStringSubmatch(r.stdout); m != nil {
		fmt.Sscan(m[1], &r.index)
		r.leader = m[2]
	}
	return r
}

// send appends a message through server and requires success.
func (c *e2eCluster) send(server, msg string) clientResult {
	c.t.Helper()
	r := c.client("-C", "clientcommand", "-m", msg, "-S", server, "-timeout", "10s")
	if r.code != 0 || r.leader == "" {
		c.t.Fatalf("clientcommand %q via %s: exit %d\nstdout: %s\nstderr: %s", msg, server, r.code, r.stdout, r.stderr)
	}
	return r
}

// waitAll waits until every named node has printed a line ending with suffix n times.
func (c *e2eCluster) waitAll(ids []string, suffix string, n int) {
	c.t.Helper()
	for _, id := range ids {
		if !c.procs[id].stdout.waitCount(suffix, n) {
			c.t.Fatalf("%s did not print %q (%d times); stdout:\n%s", id, suffix, n, c.procs[id].stdout)
		}
	}
}

func TestEndToEnd(t *testing.T) {
	c, members, spare := runningCluster(t)

	// A message to any member commits once a leader is elected.
	r := c.send(members[0], "I like beer.")
	leaderID := r.leader
	if !contains(members, leaderID) {
		t.Fatalf("leader %q is not a member", leaderID)
	}

	// To a follower: it forwards to the leader, and the client says so. Bytes are kept
	// exactly: spaces and unicode.
	follower := members[0]
	if follower == leaderID {
		follower = members[1]
	}
	odd := "  héllo,  wörld ☃ "
	r = c.send(follower, odd)
	if !strings.Contains(r.stderr, "forwarded the command to the leader "+leaderID) {
		t.Fatalf("follower %s did not say it forwarded to %s: %q", follower, leaderID, r.stderr)
	}

	// count and print are applied on every server, in log order.
	r = c.send(follower, "count")
	if !strings.HasPrefix(r.stdout, "Count 2\n") {
		t.Fatalf("count answered %q", r.stdout)
	}
	c.waitAll(members, " Count 2", 1)
	want := "Logs [I like beer. " + odd + " count print]"
	r = c.send(leaderID, "print")
	if !strings.HasPrefix(r.stdout, want+"\n") {
		t.Fatalf("print answered %q, want %q", r.stdout, want)
	}
	c.waitAll(members, " "+want, 1)

	// A spare starts, does not campaign, and waits to be added.
	sp := c.start(spare)
	if !sp.stderr.waitLine("not a member, so it will not campaign") {
		t.Fatalf("spare did not say it waits:\n%s", sp.stderr)
	}
	r = c.client("-C", "addserver", "-m", spare, "-S", follower)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Added new peer "+spare) {
		t.Fatalf("addserver: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	all := append(append([]string(nil), members...), spare)
	c.waitAll(all, " Added new peer "+spare, 1)
	// The new member caught up: it applied everything, print included.
	c.waitAll([]string{spare}, " "+want, 1)
	if strings.Contains(sp.stderr.String(), "campaigning") {
		t.Fatalf("the spare campaigned:\n%s", sp.stderr)
	}
	// Adding it again is refused, and changes nothing.
	if r = c.client("-C", "addserver", "-m", spare, "-S", leaderID); r.code != exitFailed || !strings.Contains(r.stderr, "already a member") {
		t.Fatalf("second addserver: exit %d, %q", r.code, r.stderr)
	}
	c.send(spare, "from the new member")
	r = c.client("-C", "removeserver", "-m", spare, "-S", members[2])
	if r.code != 0 {
		t.Fatalf("removeserver: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	c.waitAll(members, " Removed peer "+spare, 1)
	if err := c.stop(spare, syscall.SIGTERM); err != nil {
		t.Fatalf("spare exited with %v on SIGTERM", err)
	}

	// SIGKILL the leader: another is elected, and commands go on.
	acked := []string{"I like beer.", odd, "count", "print", "from the new member"}
	c.stop(leaderID, syscall.SIGKILL)
	var rest []string
	for _, id := range members {
		if id != leaderID {
			rest = append(rest, id)
		}
	}
	r = c.send(rest[0], "after the crash")
	if r.leader == leaderID || !contains(rest, r.leader) {
		t.Fatalf("after killing %s the leader is %q", leaderID, r.leader)
	}
	acked = append(acked, "after the crash")

	// The killed node restarts on its data dir, catches up, and nothing acknowledged is lost.
	c.start(leaderID)
	c.send(leaderID, "print")
	acked = append(acked, "print")
	want = "Logs [" + strings.Join(acked, " ") + "]"
	c.waitAll(members, " "+want, 1)

	// A whole-cluster restart keeps everything too.
	for _, id := range members {
		if err := c.stop(id, syscall.SIGTERM); err != nil {
			t.Fatalf("%s exited with %v on SIGTERM", id, err)
		}
		if !c.procs[id].stderr.waitLine("stopped") {
			t.Fatalf("%s did not log its stop", id)
		}
	}
	for _, id := range members {
		c.start(id)
	}
	c.send(members[1], "count")
	c.waitAll(members, fmt.Sprintf(" Count %d", len(acked)), 1)
}

// A node started without -c is a cluster of one; it grows with addserver.
func TestEndToEndOneNodeClusterGrows(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	ports := freePorts(t, 2)
	a, b := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	c := newE2ECluster(t, nil)
	c.startWith(a, "-p", a)
	if r := c.send(a, "alone"); r.leader != a {
		t.Fatalf("the one-member cluster's leader is %q", r.leader)
	}
	// The new node is a spare of the one-member cluster; a bare port takes its host.
	c.startWith(b, "-c", a, "-p", fmt.Sprint(ports[1]))
	if r := c.client("-C", "addserver", "-m", b, "-S", a); r.code != 0 {
		t.Fatalf("addserver: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	c.waitAll([]string{a, b}, " Added new peer "+b, 1)
	c.send(b, "print")
	c.waitAll([]string{a, b}, " Logs [alone print]", 1)
	// The spare learned the cluster id from the leader.
	if ida, idb := c.status(a).Cluster, c.status(b).Cluster; ida != idb || len(ida) != 16 {
		t.Fatalf("cluster ids: %s has %q, the added %s has %q", a, ida, b, idb)
	}

	// A node of a new cluster that names a member in its -c (a copy-paste error) is
	// refused: the member logs it once, and neither its term nor its log changes; the
	// node, told why, never forms its cluster.
	stray := freeAddrs(t, 1)[0]
	before := c.status(a)
	sp := c.startWith(stray, "-c", stray+","+a, "-p", stray)
	if !c.procs[a].stderr.waitLine("refused messages from " + stray) {
		t.Fatalf("%s did not log refusing the stray node:\n%s", a, c.procs[a].stderr)
	}
	if !sp.stderr.waitLine("refused messages from " + stray) {
		t.Fatalf("the stray node was not told why:\n%s", sp.stderr)
	}
	if r := c.send(a, "after"); r.code != 0 || r.leader != a { // the member serves on
		t.Fatalf("append after the stray node came: exit %d, leader %q", r.code, r.leader)
	}
	after := c.status(a)
	if after.Term != before.Term || after.LastIndex != before.LastIndex+1 {
		t.Fatalf("the stray node changed %s: before %+v, after %+v", a, before, after)
	}
	if r := c.client("-C", "status", "-S", stray); r.code == 0 || !strings.Contains(r.stderr, "forming a new cluster") {
		t.Fatalf("status of the stray node: exit %d, %s %s", r.code, r.stdout, r.stderr)
	}
	all, _ := c.procs[a].stderr.snapshot()
	if n := len(slices.DeleteFunc(all, func(l string) bool { return !strings.Contains(l, "refused messages from "+stray) })); n != 1 {
		t.Fatalf("%s logged the stray node's refusal %d times, want once", a, n)
	}
}

// Failures the client must report clearly, with the documented exit status.
func TestEndToEndClientFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	c := newE2ECluster(t, nil)
	dead := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	start := time.Now()
	r := c.client("-C", "clientcommand", "-m", "hello", "-S", dead, "-timeout", "1s")
	if r.code != exitFailed || !strings.Contains(r.stderr, "cannot reach "+dead) || !strings.Contains(r.stderr, "not committed") {
		t.Fatalf("to a dead server: exit %d, stderr %q", r.code, r.stderr)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("-timeout 1s took %v", took)
	}

	// A cluster that has lost its majority: the surviving member knows no leader, the
	// client gives up at its timeout and says why.
	ids := freeAddrs(t, 3)
	c = newE2ECluster(t, ids)
	for _, id := range ids {
		c.start(id)
	}
	c.send(ids[0], "before")
	c.stop(ids[1], syscall.SIGKILL)
	c.stop(ids[2], syscall.SIGKILL)
	r = c.client("-C", "clientcommand", "-m", "hello", "-S", ids[0], "-timeout", "1500ms")
	if r.code != exitFailed || !strings.Contains(r.stderr, "no majority") {
		t.Fatalf("without a majority: exit %d, stderr %q", r.code, r.stderr)
	}
	// And the same data dir cannot be opened twice.
	p := c.procs[ids[0]]
	out, err := exec.Command(c.bin, append([]string(nil), p.args...)...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitFailed || !strings.Contains(string(out), "in use") {
		t.Fatalf("second node on one data dir: %v, %s", err, out)
	}
}

// Leadership transfer by command and on SIGTERM, and an addserver that cannot complete.
func TestEndToEndTransferAndHandOff(t *testing.T) {
	c, members, nobody := runningCluster(t)
	lead := c.send(members[0], "before").leader
	var followers []string
	for _, id := range members {
		if id != lead {
			followers = append(followers, id)
		}
	}

	// Named target, asked through the other follower: it forwards to the leader.
	r := c.client("-C", "transfer", "-m", followers[0], "-S", followers[1])
	if r.code != 0 || !strings.Contains(r.stdout, "leadership transferred from "+lead+" to "+followers[0]) {
		t.Fatalf("transfer: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r = c.send(lead, "after transfer"); r.leader != followers[0] {
		t.Fatalf("after the transfer the leader is %q, want %s", r.leader, followers[0])
	}
	// To the leader itself: nothing to do, and that is a success.
	if r = c.client("-C", "transfer", "-m", followers[0], "-S", followers[0]); r.code != 0 || !strings.Contains(r.stdout, "already the leader") {
		t.Fatalf("transfer to the leader: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}

	// SIGTERM on the leader hands leadership over before the process exits.
	if err := c.stop(followers[0], syscall.SIGTERM); err != nil {
		t.Fatalf("leader exited with %v on SIGTERM", err)
	}
	if !c.procs[followers[0]].stderr.waitLine("handed leadership over") {
		t.Fatalf("the leader stopped without handing over:\n%s", c.procs[followers[0]].stderr)
	}
	if r = c.send(lead, "after SIGTERM"); r.leader == followers[0] {
		t.Fatalf("the stopped node still leads")
	}
	c.start(followers[0])

	// Adding a server that is not running fails after its catch-up gives up, with a
	// reason, and the membership stays as it was.
	r = c.client("-C", "addserver", "-m", nobody, "-S", lead, "-timeout", "15s")
	if r.code != exitFailed || !strings.Contains(r.stderr, "did not answer") || !strings.Contains(r.stderr, "membership unchanged") {
		t.Fatalf("addserver of a dead server: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	c.send(lead, "print")
	want := " Logs [before after transfer after SIGTERM print]"
	c.waitAll(members, want, 1)
	for _, id := range members {
		if n := c.procs[id].stdout.count(" Added new peer " + nobody); n != 0 {
			t.Fatalf("%s announced the failed addition", id)
		}
	}
}

// With a small snapshot threshold, every member compacts its log; a member added
// afterwards catches up from a snapshot and prints the same log as the others, and a
// member restarted loads its snapshot and goes on.
func TestEndToEndSnapshots(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	ids := freeAddrs(t, 4)
	members, spare := ids[:3], ids[3]
	c := newE2ECluster(t, members)
	start := func(id string) *proc {
		_, port, _ := net.SplitHostPort(id)
		return c.startWith(id, "-c", c.members, "-p", port, "-snapshot-entries", "20")
	}
	for _, id := range members {
		start(id)
	}
	var msgs []string
	for i := 1; i <= 50; i++ {
		msgs = append(msgs, fmt.Sprintf("m%d", i))
		c.send(members[i%3], msgs[i-1])
	}
	for _, id := range members {
		if !c.procs[id].stderr.waitLine("log compacted") {
			t.Fatalf("%s never compacted its log:\n%s", id, c.procs[id].stderr)
		}
	}
	sp := start(spare)
	if r := c.client("-C", "addserver", "-m", spare, "-S", members[0]); r.code != 0 {
		t.Fatalf("addserver: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if !sp.stderr.waitLine("installed snapshot") {
		t.Fatalf("the new member did not catch up from a snapshot:\n%s", sp.stderr)
	}
	c.send(spare, "print")
	all := append(append([]string(nil), members...), spare)
	want := " Logs [" + strings.Join(append(msgs, "print"), " ") + "]"
	c.waitAll(all, want, 1)

	// A restarted member loads its snapshot, not the whole log.
	c.stop(members[1], syscall.SIGKILL)
	p := start(members[1])
	if !p.stderr.waitLine("snapshot_index=") {
		t.Fatalf("%s restarted without its snapshot:\n%s", members[1], p.stderr)
	}
	c.send(members[1], "count")
	c.waitAll(all, fmt.Sprintf(" Count %d", len(msgs)+1), 1)

	// Backup and restore: a copy of a member's latest snapshot, taken while it runs,
	// starts a new cluster (other addresses, its own token) with the state it holds.
	snaps, _ := filepath.Glob(filepath.Join(c.procs[members[0]].dir, "snap-*.snap"))
	if len(snaps) != 1 {
		t.Fatalf("want one snapshot in %s's data dir, found %v", members[0], snaps)
	}
	backup := filepath.Join(t.TempDir(), "backup.snap")
	raw, err := os.ReadFile(snaps[0])
	if err == nil {
		err = os.WriteFile(backup, raw, 0o600)
	}
	meta, data, derr := decodeSnapshotFile(raw)
	var saved machine
	if err != nil || derr != nil || saved.restore(data, meta.Machine) != nil || len(saved.messages) == 0 {
		t.Fatalf("backup of %s: %v %v, %d messages", snaps[0], err, derr, len(saved.messages))
	}
	restored := freeAddrs(t, 3)
	b := newE2ECluster(t, restored)
	for _, id := range restored {
		_, port, _ := net.SplitHostPort(id)
		p := b.startWith(id, "-c", b.members, "-p", port, "-restore", backup, "-cluster-token", "restored")
		if !p.stderr.waitLine("restored a snapshot into a new data dir") {
			t.Fatalf("%s: no restore logged:\n%s", id, p.stderr)
		}
	}
	b.send(restored[1], "print")
	b.waitAll(restored, " Logs ["+strings.Join(append(saved.messages, "print"), " ")+"]", 1)
	if st := b.status(restored[0]); st.Cluster == c.status(members[0]).Cluster || st.SnapshotIndex != meta.Index {
		t.Fatalf("restored cluster: id %s (the old one's is %s), snapshot index %d, want %d", st.Cluster, c.status(members[0]).Cluster, st.SnapshotIndex, meta.Index)
	}
	// Started again with the same -restore (a service's command line), a member starts on
	// its data dir as it is, and says so. Another file never overwrites a data dir in
	// use: the start is refused, saying to drop -restore, and changes nothing.
	b.stop(restored[2], syscall.SIGTERM)
	_, port, _ := net.SplitHostPort(restored[2])
	p = b.startWith(restored[2], "-c", b.members, "-p", port, "-restore", backup, "-cluster-token", "restored")
	if !p.stderr.waitLine("restored from this file already") || !p.stderr.waitLine("-restore can be dropped") {
		t.Fatalf("%s restarted with the same -restore does not say it started as it was:\n%s", restored[2], p.stderr)
	}
	b.send(restored[2], "count")
	b.waitAll(restored, fmt.Sprintf(" Count %d", len(saved.messages)+1), 1)
	b.stop(restored[2], syscall.SIGTERM)
	other := filepath.Join(t.TempDir(), "other.snap")
	if err := os.WriteFile(other, encodeSnapshotFile(SnapshotMeta{Index: meta.Index + 1, Term: meta.Term, Machine: meta.Machine}, data), 0o600); err != nil {
		t.Fatal(err)
	}
	refusedStart(t, p.dir, []string{"was restored from another file", "drop -restore", "move the data dir away"},
		"-c", b.members, "-p", port, "-d", p.dir, "-restore", other, "-cluster-token", "restored")
}

// BenchmarkCatchUp1M measures how long a new member takes to join a 3-node cluster
// whose members hold a million 64-byte messages, compacted into a snapshot (as they would
// be with the default -snapshot-entries): addserver's time, which covers sending the
// snapshot, installing it and the catch-up rounds. It also reports a restart of a
// member with that data dir, as the node logs it.
//
//	go test -run '^$' -bench CatchUp1M -benchtime 1x .
func BenchmarkCatchUp1M(b *testing.B) {
	const total = 1_000_000
	ids := freeAddrs(b, 4)
	members, spare := ids[:3], ids[3]
	messages := make([]string, total)
	for i := range messages {
		messages[i] = fmt.Sprintf("%063d", i+1)
	}
	data := encodeMachine(viewOf(messages))
	cfg := Config{Members: members}
	meta := SnapshotMeta{Index: total, Term: 1, Config: cfg, Machine: machineFormat}
	c := newE2ECluster(b, members)
	for _, id := range members {
		dir := filepath.Join(b.TempDir(), "data")
		s, _, _, _, err := openStorage(dir, id, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := writeSnapshot(dir, meta, data); err != nil {
			b.Fatal(err)
		}
		if err := s.SaveSnapshot(meta, true); err != nil {
			b.Fatal(err)
		}
		if err := s.Save(&HardState{Term: 1, Commit: total}, nil); err != nil {
			b.Fatal(err)
		}
		s.Close()
		c.procs[id] = &proc{id: id, dir: dir} // start reuses its data dir
	}
	for _, id := range members {
		p := c.start(id)
		loaded := regexp.MustCompile(`loaded in (\S+);`).FindStringSubmatch(p.stderr.String())
		b.Logf("%s started on a snapshot of %d messages; data dir loaded in %s", id, total, loaded[1])
	}
	c.send(members[0], "first")
	c.start(spare)
	b.ResetTimer()
	start := time.Now()
	r := c.client("-C", "addserver", "-m", spare, "-S", members[0], "-timeout", "60s")
	took := time.Since(start)
	b.StopTimer()
	if r.code != 0 {
		b.Fatalf("addserver: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	b.ReportMetric(float64(took.Milliseconds()), "ms-to-join")
	b.Logf("a new member joined a cluster of %d messages in %v (snapshot %d MiB)", total, took.Round(time.Millisecond), len(data)>>20)
}

// rawCommand sends one request to server over net/rpc, as the client does, and returns
// the answer (or an error if the server could not be asked).
func rawCommand(server string, req *CommandRequest) (CommandResponse, error) {
	var resp CommandResponse
	conn, err := net.DialTimeout("tcp", server, time.Second)
	if err != nil {
		return resp, err
	}
	defer conn.Close()
	req.Wait = 5 * time.Second
	err = rpc.NewClient(conn).Call("Raft.Command", req, &resp)
	return resp, err
}

// What a program can rely on: a command retried after the leader died having
// committed it is applied once and answered as the first time; reads see every
// committed write without growing the log; -json, stdin mode, several -S members and
// status.
func TestEndToEndClientSemantics(t *testing.T) {
	c, members, dead := runningCluster(t)
	lead := c.send(members[0], "first").leader

	// Exactly once: the leader commits and answers; it dies; the same command (same
	// session and number), sent again elsewhere, gets the same answer and is not applied
	// again.
	const session = 0xfeed
	first, err := rawCommand(lead, &CommandRequest{Command: cmdClient, Message: "count", Session: session, Seq: 1})
	if err != nil || first.Status != StatusOK || first.Result != "Count 1" {
		t.Fatalf("count: %+v, %v", first, err)
	}
	c.stop(lead, syscall.SIGKILL)
	var rest []string
	for _, id := range members {
		if id != lead {
			rest = append(rest, id)
		}
	}
	c.send(rest[0], "after") // a new leader, and the log moves on
	var again CommandResponse
	deadline := time.Now().Add(e2eWait)
	for again.Status != StatusOK && time.Now().Before(deadline) {
		again, err = rawCommand(rest[1], &CommandRequest{Command: cmdClient, Message: "count", Session: session, Seq: 1})
		if again.Status != StatusOK {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if again.Status != StatusOK || again.Result != first.Result || again.Index != first.Index {
		t.Fatalf("retried count answered %+v (%v); want the first answer %q at index %d", again, err, first.Result, first.Index)
	}
	c.start(lead)

	// Reads: the state as of the read, and nothing appended for it (as the leader sees
	// its log: the restarted node may still be catching up).
	leaderNow := c.status(rest[0]).Leader
	before := c.status(leaderNow)
	if r := c.client("-C", "read", "-m", "count", "-S", members[0]); r.code != 0 || !strings.HasPrefix(r.stdout, "Count 3\n") {
		t.Fatalf("read count: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r := c.client("-C", "read", "-m", "print", "-from", "2", "-n", "2", "-S", members[1]); r.code != 0 || !strings.HasPrefix(r.stdout, "Logs [count after]\n") {
		t.Fatalf("read print -from 2 -n 2: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if after := c.status(leaderNow); after.LastIndex != before.LastIndex {
		t.Fatalf("reads grew the log from %d to %d", before.LastIndex, after.LastIndex)
	}

	// -json, with a dead member listed first in -S.
	r := c.client("-C", "clientcommand", "-m", "json", "-json", "-S", dead+","+members[2])
	var j jsonResult
	if err := json.Unmarshal([]byte(r.stdout), &j); r.code != 0 || err != nil || j.Outcome != "ok" || j.Index == 0 || j.Leader == "" {
		t.Fatalf("-json: exit %d, %q (%v)", r.code, r.stdout, err)
	}

	// Stdin mode: one result per line, in order, over one connection.
	var in strings.Builder
	var lines []string
	for i := 0; i < 100; i++ {
		lines = append(lines, fmt.Sprintf("line%d", i))
		fmt.Fprintln(&in, lines[i])
	}
	fmt.Fprintln(&in, "count")
	cmd := exec.Command(c.bin, "-C", "clientcommand", "-m", "-", "-S", members[1])
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil || len(got) != 101 || !strings.HasPrefix(got[0], "committed at index ") || got[100] != "Count 104" {
		t.Fatalf("stdin mode: %v; %d lines, first %q, last %q", err, len(got), got[0], got[len(got)-1])
	}
	want := "Logs [first count after json " + strings.Join(lines, " ") + " count print]"
	c.send(members[0], "print")
	c.waitAll(members, " "+want, 1)

	// status, for people.
	r = c.client("-C", "status", "-S", members[0])
	if r.code != 0 || !strings.Contains(r.stdout, "MEMBER") || !strings.Contains(r.stdout, members[2]) {
		t.Fatalf("status: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}

	// The load generator: one summary line, and exactly -n appends committed.
	r = c.client("-C", "bench", "-S", strings.Join(members, ","), "-n", "300", "-c", "8", "-size", "32")
	summary := regexp.MustCompile(`^ops=300 conc=8 size=32 secs=[0-9.]+ ops_per_sec=[0-9]+ p50_ms=[0-9.]+ p99_ms=[0-9.]+ errors=0 mode=rpc\n$`)
	if r.code != 0 || !summary.MatchString(r.stdout) {
		t.Fatalf("bench: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r = c.client("-C", "read", "-m", "count", "-S", members[0]); !strings.HasPrefix(r.stdout, "Count 406\n") {
		t.Fatalf("after 300 bench appends to 106 messages, read count says %q", r.stdout)
	}
	// -mux: the same, batched on one connection.
	r = c.client("-C", "bench", "-S", strings.Join(members, ","), "-n", "300", "-c", "32", "-mux")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ops=300 conc=32 size=64 ") || !strings.HasSuffix(r.stdout, " errors=0 mode=mux\n") {
		t.Fatalf("bench -mux: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r = c.client("-C", "read", "-m", "count", "-S", members[1]); !strings.HasPrefix(r.stdout, "Count 706\n") {
		t.Fatalf("after 300 more bench appends, read count says %q", r.stdout)
	}
	if r = c.client("-C", "bench", "-S", dead, "-n", "10", "-timeout", "1s"); r.code != exitFailed || !strings.Contains(r.stderr, "connection refused") {
		t.Fatalf("bench against nothing: exit %d, %q", r.code, r.stderr)
	}
}

// status asks id for its status with the real client's -json.
func (c *e2eCluster) status(id string) NodeStatus {
	c.t.Helper()
	r := c.client("-C", "status", "-json", "-S", id)
	var st NodeStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); r.code != 0 || err != nil {
		c.t.Fatalf("status -json of %s: exit %d, %q (%v)", id, r.code, r.stdout, err)
	}
	return st
}

// freeDemoBase finds three free ports in a row for -demo -p, which listens on every
// interface.
func freeDemoBase() int {
	portsMu.Lock()
	defer portsMu.Unlock()
	low, high, ok := testPortRange()
	if !ok { // no room below the ephemeral range: anywhere in 20000-39999, as before
		low, high = 20000, 40000
	}
	for {
		base := low + rand.IntN(high-low-3)
		if givePort("", base) && givePort("", base+1) && givePort("", base+2) {
			return base
		}
	}
}

// raft -demo runs three members in one process; they serve, and Ctrl-C stops them and
// removes their data.
func TestEndToEndDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	bin := raftBinary(t)
	base := freeDemoBase()
	out := newLines()
	cmd := exec.Command(bin, "-demo", "-p", fmt.Sprint(base))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	c := &e2eCluster{t: t, bin: bin}
	if !out.waitLine("elected leader") {
		t.Fatalf("the demo cluster elected no leader:\n%s", out)
	}
	r := c.send(fmt.Sprintf(":%d", base+1), "hello demo")
	if r.code != 0 {
		t.Fatalf("send to the demo: %+v", r)
	}
	if !out.waitCount(" Logs [hello demo print]", 0) || c.send(fmt.Sprintf(":%d", base), "print").code != 0 || !out.waitCount(" Logs [hello demo print]", 3) {
		t.Fatalf("the three demo members did not print:\n%s", out)
	}
	dir := regexp.MustCompile(`\(data in (\S+)\)`).FindStringSubmatch(out.String())
	if dir == nil {
		t.Fatalf("the demo did not say where its data is:\n%s", out)
	}
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the demo exited with %v on Ctrl-C:\n%s", err, out)
		}
	case <-time.After(e2eWait):
		t.Fatal("the demo did not stop on Ctrl-C")
	}
	exited <- nil // for the deferred cleanup
	if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
		t.Fatalf("the demo's data dir %s is still there (%v)", dir[1], err)
	}
}

// A node whose disk fills up stops with an error that says so, and loses nothing it
// acknowledged: the others go on committing, and once it has room again it restarts on
// its data dir (the half-written record cut off) and catches up. The disk fills by a
// file size limit (ulimit -f), which fails writes as a full disk does, for any user.
func TestEndToEndDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	members := freeAddrs(t, 3)
	full := members[0]
	c := newE2ECluster(t, members)
	// 512 blocks: 256 KiB (dash counts 512-byte blocks) or 512 KiB (bash: 1 KiB).
	c.wrap = map[string][]string{full: {"sh", "-c", `ulimit -f 512 && exec "$@"`, "sh"}}
	for _, id := range members {
		c.start(id)
	}
	big := strings.Repeat("x", 8<<10)
	sent := 0
	for ; sent < 200; sent++ {
		select {
		case <-c.procs[full].exited:
		default:
			c.send(members[1+sent%2], fmt.Sprintf("%d-%s", sent, big))
			continue
		}
		break
	}
	p := c.procs[full]
	select {
	case <-p.exited:
	case <-time.After(e2eWait):
		t.Fatalf("%s never ran out of room after %d 8 KiB appends", full, sent)
	}
	if ee, ok := p.err.(*exec.ExitError); !ok || ee.ExitCode() != exitFailed || !strings.Contains(p.stderr.String(), "no room left to write the data dir") {
		t.Fatalf("%s out of room: exit %v, stderr:\n%s", full, p.err, p.stderr)
	}
	// The others commit on, and the full node comes back with room and catches up.
	c.send(members[1], "after")
	delete(c.wrap, full)
	c.start(full)
	c.send(members[2], "count")
	c.waitAll(members, fmt.Sprintf(" Count %d", sent+1), 1) // count counts the messages before it
}
