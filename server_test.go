// server_test.go: tests of the node's answers to clients, without a network.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testNode is a node with a core and a state machine but no storage or network.
func testNode(out io.Writer) *node {
	core := newRaft(coreConfig{ID: ":1", ElectionTicks: 10, HeartbeatTicks: 1, MaxInflight: 1, Rand: rand.New(rand.NewSource(1))},
		persistentState{Bootstrap: Config{Members: []string{":1", ":2", ":3"}}})
	return &node{id: ":1", core: core, out: log.New(out, "", 0), logger: slog.New(slog.DiscardHandler), pending: map[uint64]*proposal{}}
}

// Checklist 6: a client is told "committed" only if the entry committed at its index
// is its own; if another leader's entry took the index, it is told it did not commit.
func TestNodeAnswersOnlyForItsOwnEntry(t *testing.T) {
	n := testNode(io.Discard)
	lost := &proposal{index: 1, term: 2, done: make(chan CommandResponse, 1)}
	mine := &proposal{index: 2, term: 3, done: make(chan CommandResponse, 1)}
	n.pending[1], n.pending[2] = lost, mine
	n.apply(Entry{Index: 1, Term: 3, Type: EntryNormal, Data: []byte("someone else's")})
	n.apply(Entry{Index: 2, Term: 3, Type: EntryNormal, Data: []byte("count")})
	if r := <-lost.done; r.Status != StatusRetry || !strings.Contains(r.Error, "not committed") {
		t.Fatalf("overwritten command answered %+v; want a retryable 'not committed'", r)
	}
	if r := <-mine.done; r.Status != StatusOK || r.Index != 2 || r.Result != "Count 1" {
		t.Fatalf("committed command answered %+v", r)
	}
	if len(n.pending) != 0 {
		t.Fatalf("%d commands still pending after their indices were applied", len(n.pending))
	}
}

// After a restart, entries the node had applied before are applied again to rebuild
// the state machine, without printing their output a second time.
func TestNodeReappliesQuietly(t *testing.T) {
	var out bytes.Buffer
	n := testNode(&out)
	n.quietTo = 2
	for i, msg := range []string{"a", "print", "print"} {
		n.apply(Entry{Index: uint64(i + 1), Term: 1, Type: EntryNormal, Data: []byte(msg)})
	}
	if got := out.String(); got != "Logs [a print print]\n" {
		t.Fatalf("printed %q; want only the entry after the restart point", got)
	}
}

func TestNodeRefusals(t *testing.T) {
	n := testNode(io.Discard)
	cases := []struct {
		err    error
		status CommandStatus
		text   string
	}{
		{errNotLeader, StatusRetry, "no majority"},
		{errChangeInProgress, StatusRetry, "in progress"},
		{errLeaderNotReady, StatusRetry, "not yet committed"},
		{errAlreadyMember, StatusRejected, "already a member"},
		{errLastMember, StatusRejected, "only member"},
	}
	for _, tc := range cases {
		r := n.refusal(tc.err)
		if r.Status != tc.status || !strings.Contains(r.Error, tc.text) {
			t.Errorf("%v: %+v", tc.err, r)
		}
	}
	n.core.leader = ":2"
	if r := n.refusal(errNotLeader); !r.NotLeader || r.Leader != ":2" {
		t.Errorf("not leader with a known leader: %+v", r)
	}
}

func TestCheckCommand(t *testing.T) {
	for _, req := range []CommandRequest{
		{Command: "drop tables", Message: "x"},
		{Command: cmdClient, Message: ""},
		{Command: cmdAddServer, Message: "nonsense"},
		{Command: cmdAddServer, Message: ":09993"}, // not canonical: would never match a member
		{Command: cmdClient, Message: "eleven byte"},
		{Command: cmdRead, Message: "everything"},
		{Command: cmdClient, Message: "x", Session: 5}, // commands of a session count from 1
	} {
		if err := checkCommand(&req, 10); err == nil {
			t.Errorf("%+v accepted", req)
		}
	}
	for _, req := range []CommandRequest{
		{Command: cmdRemoveServer, Message: "127.0.0.1:9993"},
		{Command: cmdClient, Message: "ten bytes!"},
		{Command: cmdTransfer},
	} {
		if err := checkCommand(&req, 10); err != nil {
			t.Errorf("%+v: %v", req, err)
		}
	}
}

// storedNode is a node with real storage in a temporary data dir, but no network; the
// test drives its loop's steps (step, handleReady) itself.
func storedNode(t *testing.T, snapshotEntries uint64) *node {
	dir := t.TempDir()
	id := "127.0.0.1:1"
	cfg := nodeConfig{ID: id, DataDir: dir, Bootstrap: Config{Members: []string{id, "127.0.0.1:2", "127.0.0.1:3"}},
		Heartbeat: 100 * time.Millisecond, Election: time.Second, SnapshotEntries: snapshotEntries}
	store, st, _, _, err := openStorage(dir, id, cfg.Bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(cfg, st, store, nil, io.Discard, slog.New(slog.DiscardHandler))
	go n.writer()
	t.Cleanup(func() {
		n.flushWrites()
		n.stopWriter()
		close(n.donec)
		n.trans.stop()
		store.Close()
	})
	return n
}

// receive hands n a whole snapshot from the leader, as the transport would, and lets
// the loop take it.
func receive(t *testing.T, n *node, meta SnapshotMeta, messages []string) {
	t.Helper()
	file := encodeSnapshotFile(meta, encodeMachine(viewOf(messages)))
	var ack SnapshotAck
	if err := n.receiveSnapshot(&SnapshotChunk{From: "127.0.0.1:2", To: n.id, Term: 1, Meta: meta, Data: file, Done: true}, &ack); err != nil {
		t.Fatal(err)
	}
	n.step(<-n.recvc)
	if err := n.handleReady(); err != nil {
		t.Fatal(err)
	}
}

// A snapshot the node did not need (it had the entries) is not left in its data dir.
// (Found in review: each one stayed until the next restart.)
func TestUnneededSnapshotRemoved(t *testing.T) {
	n := storedNode(t, 0)
	n.step(Message{Type: MsgApp, From: "127.0.0.1:2", To: n.id, Term: 1, Entries: ents(1, 1, "a", "b", "c", "d", "e"), LeaderCommit: 5})
	if err := n.handleReady(); err != nil {
		t.Fatal(err)
	}
	receive(t, n, SnapshotMeta{Index: 3, Term: 1, Config: n.core.config(), Machine: machineFormat}, []string{"a", "b", "c"})
	if n.flushWrites() != nil || n.core.snapshot.Index != 0 {
		t.Fatalf("the node installed a snapshot it did not need (at %d)", n.core.snapshot.Index)
	}
	names, _ := listDir(n.dir)
	for _, name := range names {
		if strings.HasPrefix(name, "recv-") {
			t.Fatalf("the unneeded snapshot is still in the data dir: %v", names)
		}
	}
}

// After installing the leader's snapshot a node does not write the same one again.
// (Found in review.)
func TestInstalledSnapshotNotWrittenAgain(t *testing.T) {
	n := storedNode(t, 10)
	msgs := make([]string, 50)
	for i := range msgs {
		msgs[i] = fmt.Sprint(i)
	}
	receive(t, n, SnapshotMeta{Index: 50, Term: 1, Config: n.core.config(), Machine: machineFormat}, msgs)
	if n.core.snapshot.Index != 50 || int(n.sm.total()) != 50 {
		t.Fatalf("snapshot not installed: at %d, %d messages", n.core.snapshot.Index, int(n.sm.total()))
	}
	if n.snapshotting {
		t.Fatalf("after installing the leader's snapshot at 50 the node writes a snapshot at %d", (<-n.snapc).meta.Index)
	}
}

// Commands are stamped with the cluster's clock: the log's time when this node became
// leader plus how long it has led, by the monotonic clock. The wall clock (here decades
// ahead of the log's) does not come into it, so a server whose clock is off cannot make
// sessions expire early. (Found in review: a retry through a leader with a fast clock
// was applied twice.)
func TestClusterClockIgnoresWallClock(t *testing.T) {
	n := testNode(io.Discard)
	n.sm.clock = int64(time.Hour)
	start := n.clusterTime() // the first command of this term starts the count
	n.leadSince = n.leadSince.Add(-time.Second)
	got := n.clusterTime() - start
	if start-n.sm.clock > int64(time.Millisecond) || got < int64(time.Second) || got > int64(time.Minute) {
		t.Fatalf("cluster time started at %d (log clock %d) and moved %v in one second of leading", start, n.sm.clock, time.Duration(got))
	}
}

// Every command the loop took is answered by its deadline: one appended but not
// committed in time is "unknown" (it may still commit), a read not confirmed in time
// may simply be retried.
func TestWaitingCommandsAnsweredAtDeadline(t *testing.T) {
	n := testNode(io.Discard)
	n.adding, n.reads = map[string]*proposal{}, map[uint64]*proposal{}
	now := time.Now()
	appended := &proposal{req: &CommandRequest{Command: cmdClient, Wait: time.Second}, deadline: now.Add(-time.Millisecond), done: make(chan CommandResponse, 1)}
	later := &proposal{req: &CommandRequest{Command: cmdClient, Wait: time.Hour}, deadline: now.Add(time.Hour), done: make(chan CommandResponse, 1)}
	read := &proposal{req: &CommandRequest{Command: cmdRead, Wait: time.Second}, deadline: now.Add(-time.Millisecond), done: make(chan CommandResponse, 1)}
	n.pending[7], n.pending[8], n.reads[1] = appended, later, read
	n.expireWaiting(now)
	if r := <-appended.done; r.Status != StatusUnknown || !strings.Contains(r.Error, "may still commit") {
		t.Fatalf("appended, past its deadline: %+v", r)
	}
	if r := <-read.done; r.Status != StatusRetry {
		t.Fatalf("read, past its deadline: %+v", r)
	}
	if len(later.done) != 0 || n.pending[8] == nil {
		t.Fatal("a command still in its time was answered or dropped")
	}
}

// With -log-format json every line a node writes to stderr is one JSON object with a
// level and a message, and the node's identity on each.
func TestNodeLogsJSON(t *testing.T) {
	addr := freeAddrs(t, 1)[0]
	cfg := nodeConfig{ID: addr, Bootstrap: Config{Members: []string{addr}}, DataDir: t.TempDir(),
		Heartbeat: 30 * time.Millisecond, Election: 150 * time.Millisecond, MaxMessage: 1 << 20, NoHandOff: true}
	logs := newLines()
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- runNode(cfg, io.Discard, newLogger(logs, "json", slog.LevelDebug), stop) }()
	if !logs.waitLine(`"msg":"elected leader"`) {
		close(stop)
		t.Fatalf("no election logged:\n%s", logs)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	all, _ := logs.snapshot()
	for _, l := range all {
		var rec struct{ Level, Msg, Node string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.Level == "" || rec.Msg == "" || rec.Node != addr {
			t.Errorf("not a JSON log record of %s: %s (%v)", addr, l, err)
		}
	}
}

// Messages of another cluster never reach the loop, and the refusal is logged once per
// sender; a server that does not know its cluster yet joins the first leader's, for
// good, and only a leader's.
func TestOtherClusterRefused(t *testing.T) {
	n := storedNode(t, 0)
	logs := newLines()
	n.logger = slog.New(slog.NewTextHandler(logs, nil))
	svc := newRPCService(n)
	from := "127.0.0.1:2"
	vote := Message{Type: MsgVote, From: from, To: n.id, Term: 1}
	beat := Message{Type: MsgHeartbeat, From: from, To: n.id, Term: 1}
	if err := svc.Deliver(&Batch{Cluster: 7, Messages: []Message{vote}}, &Ack{}); err == nil || clusterOf(n.store) != 0 {
		t.Fatalf("a vote request made the node join cluster %d (err %v)", clusterOf(n.store), err)
	}
	if err := svc.Deliver(&Batch{Cluster: 7, Messages: []Message{beat}}, &Ack{}); err != nil || clusterOf(n.store) != 7 {
		t.Fatalf("a leader's heartbeat: err %v, cluster %d; want 7", err, clusterOf(n.store))
	}
	if m := <-n.recvc; m.Type != MsgHeartbeat {
		t.Fatalf("the loop got %+v", m)
	}
	for range 3 {
		if err := svc.Deliver(&Batch{Cluster: 8, Messages: []Message{beat}}, &Ack{}); err == nil || !strings.Contains(err.Error(), "cluster 0000000000000008") {
			t.Fatalf("a heartbeat of cluster 8: err %v", err)
		}
	}
	if err := svc.Deliver(&Batch{Messages: []Message{beat}}, &Ack{}); err == nil {
		t.Fatal("a heartbeat with no cluster id was taken")
	}
	var ack SnapshotAck
	if err := svc.InstallSnapshot(&SnapshotChunk{Cluster: 8, From: from, To: n.id, Term: 1, Data: []byte("x")}, &ack); err == nil || n.recv != nil {
		t.Fatalf("a snapshot of cluster 8: err %v, receiving %v", err, n.recv != nil)
	}
	if len(n.recvc) != 0 || clusterOf(n.store) != 7 {
		t.Fatalf("refused messages reached the loop (%d) or changed the cluster (%d)", len(n.recvc), clusterOf(n.store))
	}
	all, _ := logs.snapshot()
	if got := len(slices.DeleteFunc(all, func(l string) bool { return !strings.Contains(l, "of cluster 0000000000000008") })); got != 1 {
		t.Fatalf("the refusals of cluster 8 were logged %d times, want once:\n%s", got, logs)
	}
	if d, err := readDataDir(n.dir, n.id); err != nil || d.meta.ClusterID != 7 {
		t.Fatalf("the data dir records cluster %v (%v), want 7", d.meta, err)
	}
}

// Errors of a data dir that cannot be written say what to do, and keep the cause.
func TestStorageErrorsExplained(t *testing.T) {
	for errno, want := range map[syscall.Errno]string{
		syscall.ENOSPC: "no room left", syscall.EDQUOT: "no room left", syscall.EFBIG: "no room left",
		syscall.EROFS: "cannot be written", syscall.EACCES: "cannot be written", syscall.EIO: "I/O error",
	} {
		err := explainStorageError(fmt.Errorf("write wal-1.log: %w", errno))
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "write wal-1.log") || !errors.Is(err, errno) {
			t.Errorf("%v: %v", errno, err)
		}
	}
	if err := errors.New("other"); explainStorageError(err) != err {
		t.Error("an unrelated error was changed")
	}
	// At start the node never ran: it says so, and names the data dir.
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG, syscall.EROFS, syscall.EACCES, syscall.EPERM, syscall.ENOTDIR, syscall.EIO} {
		err := explainStartError("/data/dir", fmt.Errorf("create log segment: %w", errno))
		if msg := err.Error(); !strings.Contains(msg, "the node did not start") || !strings.Contains(msg, "data dir /data/dir") ||
			strings.Contains(msg, "no more writes") || !errors.Is(err, errno) {
			t.Errorf("at start, %v: %v", errno, err)
		}
	}
	if err := errors.New("other"); explainStartError("/data/dir", err) != err {
		t.Error("an unrelated error was changed at start")
	}
}

func clusterOf(s *storage) uint64 {
	id, _ := s.ClusterID()
	return id
}

// Data dirs written before cluster ids: a one-member cluster grown by adding spares
// (started with -c of that member), the way the README shows. Each opens with the same
// id, so they keep talking after the upgrade; the spares' ids are guesses, which a
// leader's id replaces if they differ. (Found in review: the spares stayed at "none",
// and a cluster of them never elected a leader again.)
func TestClusterIDsOfOldDataDirs(t *testing.T) {
	a, b := "127.0.0.1:1", "127.0.0.1:2"
	boot := Config{Members: []string{a}}
	open := func(id string, withLog bool) (*storage, persistentState) {
		dir := t.TempDir()
		store, st, _, _, err := openStorage(dir, id, boot)
		if err != nil {
			t.Fatal(err)
		}
		st.Bootstrap = boot // as a binary from before incarnations wrote it
		if withLog {
			if err := store.Save(&HardState{Term: 2}, []Entry{{Index: 1, Term: 1}, {Index: 2, Term: 2}}); err != nil {
				t.Fatal(err)
			}
			st.Entries = []Entry{{Index: 1, Term: 1}, {Index: 2, Term: 2}}
		}
		t.Cleanup(func() { store.Close() })
		return store, st
	}
	sa, sta := open(a, true)
	sb, stb := open(b, true)
	fresh, stf := open("127.0.0.1:3", false)
	for _, c := range []struct {
		store *storage
		st    persistentState
		id    string
	}{{sa, sta, a}, {sb, stb, b}, {fresh, stf, "127.0.0.1:3"}} {
		if err := initClusterID(c.store, c.st, nodeConfig{ID: c.id}); err != nil {
			t.Fatal(err)
		}
	}
	ida, guessedA := sa.ClusterID()
	idb, guessedB := sb.ClusterID()
	if ida == 0 || ida != idb || guessedA || !guessedB || clusterOf(fresh) != 0 {
		t.Fatalf("member %x (guessed %v), joined spare %x (guessed %v), fresh spare %x", ida, guessedA, idb, guessedB, clusterOf(fresh))
	}
	// A leader of another id corrects the guess, once; other messages do not.
	n := &node{id: b, store: sb, logger: slog.New(slog.DiscardHandler)}
	if err := n.checkCluster(ida+1, a, false); err == nil || clusterOf(sb) != ida {
		t.Fatalf("a vote request changed the guessed id: %v, %x", err, clusterOf(sb))
	}
	if err := n.checkCluster(ida+1, a, true); err != nil || clusterOf(sb) != ida+1 {
		t.Fatalf("a leader did not correct the guessed id: %v, %x", err, clusterOf(sb))
	}
	if err := n.checkCluster(ida, a, true); err == nil {
		t.Fatal("once corrected, the id changed again")
	}
}

// A print whose stored messages cannot be read stops the node before it prints or
// answers anything. (Found in review: it printed and answered a short "Logs [...]".)
func TestUnreadableStoredMessagesStopTheNode(t *testing.T) {
	var out bytes.Buffer
	n := testNode(&out)
	storeInSnapshot(t, t.TempDir(), SnapshotMeta{Index: 3, Term: 1, Machine: machineFormat}, []string{"a", "b", "c"}, &n.sm)
	n.sm.stored.f.Close() // as if the disk failed
	if err := n.apply(Entry{Index: 4, Term: 1, Type: EntryNormal, Data: []byte("print")}); err == nil || out.Len() != 0 {
		t.Fatalf("apply: %v, printed %q", err, out.String())
	}
}

// The loop ticks the core for the time gone by, up to the first tick that matters; the
// ticks after it are dropped, as a ticker drops those of a loop that was held up. With
// no client waiting, it sleeps until that tick; with one, a tick at a time.
func TestLazyClock(t *testing.T) {
	n := testNode(io.Discard)
	n.tick, n.lastTick = 10*time.Millisecond, time.Now()
	next := n.core.TicksToNext() // a follower: its election timeout
	if next < 10 {
		t.Fatalf("a new follower's next tick that matters is %d ticks away, want its election timeout (at least 10)", next)
	}
	if d := n.untilNextTick(); d > time.Duration(next)*n.tick || d < time.Duration(next-1)*n.tick {
		t.Fatalf("idle, the loop would wake in %v; want about %d ticks of %v", d, next, n.tick)
	}
	n.pending[1] = &proposal{}
	if d := n.untilNextTick(); d > n.tick {
		t.Fatalf("with a client waiting, the loop would wake in %v; want within a tick", d)
	}
	delete(n.pending, 1)
	start := time.Now().Add(-time.Duration(next+5) * n.tick)
	n.lastTick = start
	n.advanceClock()
	if st := n.core.status(); st.Role != preCandidate && st.Role != candidate {
		t.Fatalf("after its election timeout went by, the follower is %v", st.Role)
	}
	if got := n.lastTick.Sub(start); got != time.Duration(next+5)*n.tick {
		t.Fatalf("the clock moved %v, want %v", got, time.Duration(next+5)*n.tick)
	}
}
