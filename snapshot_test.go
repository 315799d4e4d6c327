// snapshot_test.go: core tests of log compaction and InstallSnapshot (Raft paper §7) on
// the simulated cluster: followers that fall behind past the snapshot point, snapshots
// lost, duplicated and reordered on the way, crashes around them, and a new member that
// can only catch up from a snapshot.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"net"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// compactAll snapshots and compacts every live node up to what it has applied.
func (c *simCluster) compactAll() {
	for _, n := range c.live() {
		c.compact(n)
	}
}

// A follower cut off while the others compacted their logs past what it has gets a
// snapshot, and then the entries after it.
func TestSnapshotCatchesUpLaggingFollower(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 3, 0, faults{})
		l := c.waitLeader()
		f := c.otherThan(l.id)
		c.partition([]string{f})
		for i := 0; i < 100; i++ {
			c.propose()
			c.step()
		}
		c.run(10)
		c.compactAll()
		c.heal()
		for i := 0; i < 20; i++ {
			c.propose()
		}
		c.converge()
		if c.installs[f] == 0 {
			c.fail("%s caught up without a snapshot, though the log it needed was compacted", f)
		}
	}
}

// A server added to a cluster whose log is compacted catches up from a snapshot.
func TestAddServerAfterCompaction(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 3, 1, faults{})
		c.waitLeader()
		for i := 0; i < 50; i++ {
			c.propose()
			c.step()
		}
		c.run(10)
		c.compactAll()
		if !c.runUntil(100, func() bool { return c.changeMembership(confAdd, "n4") }) {
			c.fail("adding n4 was refused")
		}
		if !c.runUntil(30*simElectionTicks, func() bool { return len(c.catchUps) > 0 }) || c.catchUps[0].Err != nil {
			c.fail("adding n4 after compaction: %+v", c.catchUps)
		}
		c.converge()
		if c.installs["n4"] == 0 || !contains(c.members(), "n4") {
			c.fail("n4 joined with %d snapshots installed; members %v", c.installs["n4"], c.members())
		}
	}
}

// Snapshots taken often, on every node, while messages (snapshots included) are lost,
// duplicated and reordered, nodes crash (also between writing and acknowledging) and
// partitions come and go. The invariants hold after every step, including that every
// installed snapshot is exactly the committed log up to its index.
func TestSnapshotsUnderFaults(t *testing.T) {
	var installs int
	defer func() { t.Logf("%d snapshots installed", installs) }()
	for _, seed := range seeds(100) {
		rng := rand.New(rand.NewSource(seed))
		c := newSimCluster(t, seed, 5, 1, faults{drop: 0.1, duplicate: 0.05, maxDelay: 4, crashReady: 0.002, compact: 0.05, asyncWrites: 0.5})
		for tick := 0; tick < 800; tick++ {
			switch x := rng.Intn(100); {
			case x < 40:
				c.propose()
			case x < 42:
				c.crash(c.ids[rng.Intn(len(c.ids))])
			case x < 46:
				c.restart(c.ids[rng.Intn(len(c.ids))])
			case x < 47:
				c.partition([]string{c.ids[rng.Intn(len(c.ids))], c.ids[rng.Intn(len(c.ids))]})
			case x < 49:
				c.heal()
			case x < 50:
				id := c.ids[rng.Intn(len(c.ids))]
				if contains(c.members(), id) {
					if len(c.members()) > 3 {
						c.changeMembership(confRemove, id)
					}
				} else {
					c.changeMembership(confAdd, id)
				}
			}
			c.step()
		}
		c.converge()
		for _, n := range c.installs {
			installs += n
		}
	}
}

// Figure 13: a snapshot whose last entry the follower's log already holds only commits
// up to it (the entries after it stay: they may be acknowledged already); one that
// conflicts with the log replaces it.
func TestInstallSnapshotKeepsMatchingLog(t *testing.T) {
	newFollower := func() *raft {
		return newRaft(coreConfig{ID: "b", ElectionTicks: 10, HeartbeatTicks: 1, MaxInflight: 1, Rand: rand.New(rand.NewSource(1))},
			persistentState{HardState: HardState{Term: 2}, Entries: ents(1, 1, "a", "b", "c", "d", "e"), Bootstrap: Config{Members: []string{"a", "b", "c"}}})
	}
	snap := func(index, term uint64) Message {
		return Message{Type: MsgSnap, From: "a", To: "b", Term: 2, Snapshot: &SnapshotMeta{Index: index, Term: term, Config: Config{Members: []string{"a", "b", "c"}}}}
	}
	r := newFollower()
	r.Step(snap(3, 1))
	rd := r.Ready()
	if rd.Snapshot != nil || r.commitIndex != 3 || r.log.lastIndex() != 5 {
		t.Fatalf("matching snapshot: installed %v, commit %d, log to %d; want kept log, commit 3", rd.Snapshot != nil, r.commitIndex, r.log.lastIndex())
	}
	if m := rd.Messages[0]; !m.Success || m.MatchIndex != 3 {
		t.Fatalf("reply %+v", m)
	}
	r = newFollower()
	r.Step(snap(4, 2))
	rd = r.Ready()
	if rd.Snapshot == nil || rd.Snapshot.Index != 4 || r.log.lastIndex() != 4 || r.log.firstIndex() != 5 || r.commitIndex != 4 || r.lastApplied != 4 {
		t.Fatalf("conflicting snapshot: installed %v, log [%d, %d], commit %d, applied %d", rd.Snapshot != nil, r.log.firstIndex(), r.log.lastIndex(), r.commitIndex, r.lastApplied)
	}
	if len(rd.Committed) != 0 {
		t.Fatalf("entries covered by the snapshot handed out to apply: %v", rd.Committed)
	}
}

// An AppendEntries that checks an entry the follower compacted away is answered from
// what the follower has committed, not refused.
func TestAppendBelowSnapshotAnsweredFromCommit(t *testing.T) {
	c := newSimCluster(t, 1, 3, 0, faults{})
	l := c.waitLeader()
	for i := 0; i < 10; i++ {
		c.propose()
	}
	c.run(10)
	f := c.nodes[c.otherThan(l.id)]
	c.compact(f)
	f.r.Step(Message{Type: MsgApp, From: l.id, To: f.id, Term: l.r.currentTerm, PrevLogIndex: 2, PrevLogTerm: 1,
		Entries: []Entry{{Index: 3, Term: 1, Data: []byte("x")}}, LeaderCommit: l.r.commitIndex})
	rd := f.r.Ready()
	m := rd.Messages[len(rd.Messages)-1]
	if !m.Success || m.MatchIndex != f.r.commitIndex {
		t.Fatalf("AppendEntries below the snapshot answered %+v; want success at the commit index %d", m, f.r.commitIndex)
	}
	f.r.Advance(rd)
}

// flakySnapshots serves Raft.InstallSnapshot for a node, losing some pieces on the way
// in: the sender must resume from where the receiver is.
type flakySnapshots struct {
	n     *node
	calls int
	lose  map[int]bool // calls whose piece is lost (the receiver answers as if it never came)
}

func (f *flakySnapshots) InstallSnapshot(c *SnapshotChunk, ack *SnapshotAck) error {
	f.calls++
	if f.lose[f.calls] {
		f.n.recvMu.Lock()
		if f.n.recv != nil {
			ack.Offset = f.n.recv.size
		}
		f.n.recvMu.Unlock()
		return nil
	}
	return f.n.receiveSnapshot(c, ack)
}

// A snapshot of several pieces reaches the follower whole although pieces are lost, and
// only once it checks out does the follower's event loop hear of it.
func TestSnapshotStreamResumes(t *testing.T) {
	leaderDir, followerDir := t.TempDir(), t.TempDir()
	var messages []string
	for i := 0; len(messages) < 80000; i++ {
		messages = append(messages, fmt.Sprintf("message %d with some padding to make it longer", i))
	}
	meta := SnapshotMeta{Index: 80000, Term: 3, Config: Config{Members: []string{"a", "b"}}}
	if err := writeSnapshot(leaderDir, meta, encodeMachine(viewOf(messages))); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(leaderDir, snapshotName(meta)))
	if len(want) < 2*snapshotChunkBytes {
		t.Fatalf("the snapshot is %d bytes; the test needs several pieces", len(want))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f := &node{id: ln.Addr().String(), dir: followerDir, recvc: make(chan Message, 1), donec: make(chan struct{})}
	srv := rpc.NewServer()
	srv.RegisterName("Raft", &flakySnapshots{n: f, lose: map[int]bool{2: true, 4: true}})
	go serveListener(ln, srv)

	failed := make(chan Message, 1)
	tr := newTransport("a", leaderDir, func(m Message) { failed <- m }, slog.New(slog.DiscardHandler))
	defer tr.stop()
	tr.send([]Message{{Type: MsgSnap, From: "a", To: f.id, Term: 3, Snapshot: &meta}})
	select {
	case m := <-f.recvc:
		if m.Type != MsgSnap || m.Snapshot.Index != meta.Index || m.From != "a" {
			t.Fatalf("the follower's loop got %+v", m)
		}
	case m := <-failed:
		t.Fatalf("the transport gave up: %+v", m)
	case <-time.After(20 * time.Second):
		t.Fatal("the snapshot never arrived")
	}
	got, err := os.ReadFile(filepath.Join(followerDir, recvName(meta)))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("received %d bytes (%v), want the %d-byte snapshot", len(got), err, len(want))
	}
}

// A snapshot that arrives damaged is refused whole: nothing reaches the event loop and
// nothing is left where the node would look for it.
func TestSnapshotDamagedInTransitRefused(t *testing.T) {
	dir := t.TempDir()
	f := &node{id: "b", dir: dir, recvc: make(chan Message, 1), donec: make(chan struct{})}
	meta := SnapshotMeta{Index: 5, Term: 1}
	file := encodeSnapshotFile(meta, encodeMachine(viewOf([]string{"a", "b", "c", "d", "e"})))
	file[len(file)-2] ^= 1
	var ack SnapshotAck
	err := f.receiveSnapshot(&SnapshotChunk{From: "a", To: "b", Term: 1, Meta: meta, Data: file, Done: true}, &ack)
	if err == nil || len(f.recvc) != 0 {
		t.Fatalf("a damaged snapshot was accepted (err %v)", err)
	}
	if names, _ := listDir(dir); len(names) != 0 {
		t.Fatalf("a refused snapshot left %v behind", names)
	}
}

// Crashes that lose writes not yet fsynced, often: nothing acknowledged (a vote, an
// append, a client's command) may depend on a lost write, so every acknowledged entry
// survives.
func TestCrashLosesUnsyncedWrites(t *testing.T) {
	lost, acked := 0, 0
	for _, seed := range seeds(50) {
		rng := rand.New(rand.NewSource(seed))
		c := newSimCluster(t, seed, 3, 0, faults{crashReady: 0.03, drop: 0.05, compact: 0.02, asyncWrites: 0.5})
		for tick := 0; tick < 600; tick++ {
			if rng.Intn(2) == 0 {
				c.propose()
			}
			if rng.Intn(10) == 0 {
				c.restart(c.ids[rng.Intn(len(c.ids))])
			}
			c.step()
		}
		c.converge()
		lost += c.lostWrites
		acked += len(c.acked)
	}
	t.Logf("%d writes lost to crashes before their fsync; %d acknowledged proposals kept", lost, acked)
	if acked == 0 || lost == 0 {
		t.Fatal("nothing was acknowledged, or no write was lost: the test proves nothing")
	}
}

// restoreChildEnv makes the test binary restore a backup under a small file size limit
// and exit (TestRestoreFailsWhole): "backup:dir".
const restoreChildEnv = "RAFT_TEST_RESTORE_UNDER_LIMIT"

func TestMain(m *testing.M) {
	if arg := os.Getenv(restoreChildEnv); arg != "" {
		backup, dir, _ := strings.Cut(arg, string(os.PathListSeparator))
		limit := syscall.Rlimit{Cur: 64 << 10, Max: 64 << 10} // the backup is larger
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limit); err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		_, err := restoreSnapshot(backup, dir, "127.0.0.1:1", Config{Members: []string{"127.0.0.1:1", "127.0.0.1:2"}})
		fmt.Println(err)
		if !errors.Is(err, syscall.EFBIG) {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A restore that fails half-way (here: a file size limit, as a full disk would) leaves
// no data dir behind, so a later start cannot take it for a new, empty one; the same
// restore succeeds once there is room. (Found in review: it left meta and a log.)
func TestRestoreFailsWhole(t *testing.T) {
	var msgs []string
	for i := range 20000 {
		msgs = append(msgs, fmt.Sprintf("message %d of the backup", i))
	}
	meta := SnapshotMeta{Index: 20001, Term: 4, Config: Config{Members: []string{"old:1"}}, Machine: machineFormat}
	backup := filepath.Join(t.TempDir(), "backup.snap")
	if err := os.WriteFile(backup, encodeSnapshotFile(meta, encodeMachine(viewOf(msgs))), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	members := Config{Members: []string{"127.0.0.1:1", "127.0.0.1:2"}}
	// A file size limit holds for a whole process: lowered here, it would also fail
	// whatever else this test binary writes meanwhile, such as the log of the run that
	// go test keeps when it may cache results. The restore that must fail runs in a
	// child process of its own (TestMain).
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), restoreChildEnv+"="+backup+string(os.PathListSeparator)+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "file too large") {
		t.Fatalf("restore over the size limit, in a child process: %v: %s", err, out)
	}
	for _, p := range []string{dir, dir + ".restoring"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("a failed restore left %s (%v)", p, err)
		}
	}
	got, err := restoreSnapshot(backup, dir, members.Members[0], members)
	if err != nil || got.Index != meta.Index || !slices.Equal(got.Config.Members, members.Members) {
		t.Fatalf("restore with room: %+v, %v", got, err)
	}
	store, st, data, _, err := openStorage(dir, members.Members[0], members)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var sm machine
	if err := sm.restore(data, st.Snapshot.Machine); err != nil || len(sm.messages) != len(msgs) || st.HardState.Term != meta.Term || st.HardState.Commit != meta.Index {
		t.Fatalf("restored dir: %d messages (%v), hard state %+v", len(sm.messages), err, st.HardState)
	}
}

// -restore into a data dir that is not empty: the file it was restored from is a no-op
// (errRestoredAlready); another file, or a data dir that was never restored, is refused,
// saying to drop -restore; none of them changes the data dir.
func TestRestoreIntoUsedDataDir(t *testing.T) {
	meta := SnapshotMeta{Index: 3, Term: 2, Config: Config{Members: []string{"old:1"}}, Machine: machineFormat}
	later := meta
	later.Index++
	base := t.TempDir()
	backup, other := filepath.Join(base, "backup.snap"), filepath.Join(base, "other.snap")
	os.WriteFile(backup, encodeSnapshotFile(meta, encodeMachine(machineView{})), 0o600)
	os.WriteFile(other, encodeSnapshotFile(later, encodeMachine(machineView{})), 0o600)
	members := Config{Members: []string{"127.0.0.1:1"}}
	restored, plain := filepath.Join(base, "restored"), filepath.Join(base, "plain")
	if _, err := restoreSnapshot(backup, restored, members.Members[0], members); err != nil {
		t.Fatal(err)
	}
	s, _, _, _, err := openStorage(plain, members.Members[0], members)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, tc := range []struct {
		file, dir string
		want      []string
	}{
		{backup, restored, []string{"restored from this file already"}},
		{other, restored, []string{"was restored from another file", "drop -restore"}},
		{backup, plain, []string{"is not empty", "was not restored from this file", "drop -restore"}},
	} {
		before := dirFiles(t, tc.dir)
		_, err := restoreSnapshot(tc.file, tc.dir, members.Members[0], members)
		if err == nil || errors.Is(err, errRestoredAlready) != (tc.file == backup && tc.dir == restored) {
			t.Fatalf("-restore %s into %s: %v", tc.file, tc.dir, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("-restore %s into %s: %q does not say %q", tc.file, tc.dir, err, w)
			}
		}
		if after := dirFiles(t, tc.dir); !reflect.DeepEqual(before, after) {
			t.Fatalf("-restore %s into %s changed it", tc.file, tc.dir)
		}
	}
}
