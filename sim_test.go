// sim_test.go: a simulated cluster for testing the core. Cores are driven exactly as
// server.go drives them (Ready: persist, send, apply, Advance), over a seeded network
// that can drop, duplicate, delay and reorder messages and be partitioned, with a
// simulated disk that survives crashes. Invariants are checked after every Ready.
// A failure names the seed and how to replay it.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
)

var (
	seedFlag      = flag.Int64("seed", 0, "run the randomized core tests with this seed only (to replay a failure)")
	schedulesFlag = flag.Int("schedules", 0, "randomized schedules per test (0: the test's default)")
	traceFlag     = flag.Bool("trace", false, "print every simulated event of a failing schedule")
)

// seeds lists the seeds a randomized test runs: -seed alone, or 1..n (-schedules overrides n).
func seeds(n int) []int64 {
	if *seedFlag != 0 {
		return []int64{*seedFlag}
	}
	if *schedulesFlag > 0 {
		n = *schedulesFlag
	}
	s := make([]int64, n)
	for i := range s {
		s[i] = int64(i + 1)
	}
	return s
}

// faults describes how hostile the simulated world is.
type faults struct {
	drop       float64 // a message is lost
	duplicate  float64 // a message is delivered twice
	maxDelay   int     // extra ticks a message may take (so messages overtake each other)
	crashReady float64 // a node crashes at a Ready, before persisting it or after persisting but before sending
	compact    float64 // a node snapshots what it applied and compacts its log (per node and tick)
	// A node's writes complete (fsync) only at a later tick, each tick with this chance,
	// while it goes on handing out Readys; 0: at once.
	asyncWrites float64
}

// randomFaults draws a schedule's faults: some loss, duplication, delay and crashes,
// with or without compaction and late fsyncs.
func randomFaults(rng *rand.Rand) faults {
	return faults{drop: rng.Float64() * 0.2, duplicate: rng.Float64() * 0.1, maxDelay: rng.Intn(5), crashReady: rng.Float64() * 0.005,
		compact: []float64{0, 0.01, 0.05}[rng.Intn(3)], asyncWrites: []float64{0, 0.3, 0.7}[rng.Intn(3)]}
}

const (
	simElectionTicks  = 10
	simHeartbeatTicks = 2
)

type simMsg struct {
	at    int
	seq   int // send order, to keep each link first-in first-out among messages due together
	m     Message
	snap  uint64 // MsgSnap: the snapshot's data (the digest of the log it covers)
	local bool   // a report from the sender's own transport: no network in between
}

type simProposal struct {
	term uint64
	data string
}

type simNode struct {
	id      string
	inc     uint64                 // its data dir's incarnation: a wipe gives it a new one
	r       *raft                  // nil while crashed
	disk    logState               // what survives a crash
	snap    uint64                 // on disk with it: the snapshot's data, a digest of the log it covers
	recv    map[logPosition]uint64 // snapshots received, waiting for the core to take them
	applied uint64                 // last index applied in this incarnation
	pending map[uint64]simProposal
	// hashes[i] digests the log up to index hashBase+i, so two logs' prefixes compare in
	// O(1). hashBase is where the log starts (its snapshot's index).
	hashes     []uint64
	hashBase   uint64
	readStates []ReadState // handed out by the core, for tests to collect
	warnings   []string    // handed out by the core, for tests to look at
	writes     []simWrite  // handed to the disk, not yet durable
	checked    uint64      // commit index already checked against the committed log
	// The data dirs it lost (wipe), by incarnation, as they were then: what one held
	// until it was lost counts toward the commits that its acknowledgements made.
	lost map[uint64]logState
}

type simCluster struct {
	t      testing.TB
	name   string
	seed   int64
	rng    *rand.Rand
	ids    []string
	nodes  map[string]*simNode
	first  Config // the first configuration, as every member's data dir records it
	now    int
	net    []simMsg
	seq    int
	faults faults
	group  map[string]int     // partition: messages cross only within a group
	deaf   map[string]bool    // messages to these nodes are lost (they can still talk)
	slow   map[string]int     // extra ticks for every message to or from these nodes
	lose   func(Message) bool // messages it picks are lost at delivery
	old    map[string]bool    // nodes that run a binary from before incarnations: they send none and check none

	// What the invariants are checked against.
	leaders    map[uint64]string // term -> its leader (election safety)
	committed  []Entry           // the committed log, as any node has learned it
	chash      []uint64          // hash chain of committed, like simNode.hashes
	acked      map[string]uint64 // proposals a leader answered as committed -> index
	proposed   int
	crashes    int
	catchUps   []catchUpResult // every catch-up that ended, in order
	lostWrites int             // crashes that lost a write not yet fsynced
	installs   map[string]int  // snapshots installed, by node

	// Statistics.
	sent      map[MsgType]int
	refusals  map[string]int // AppendEntries refused, by the refusing node
	entryData map[string]int // bytes of entry data sent to each node
	trace     []string
}

func newSimCluster(t testing.TB, seed int64, members, spares int, f faults) *simCluster {
	c := &simCluster{
		t: t, name: t.Name(), seed: seed, rng: rand.New(rand.NewSource(seed)), nodes: map[string]*simNode{},
		faults: f, group: map[string]int{}, deaf: map[string]bool{}, slow: map[string]int{}, leaders: map[uint64]string{}, acked: map[string]uint64{}, chash: []uint64{0},
		sent: map[MsgType]int{}, entryData: map[string]int{}, refusals: map[string]int{}, installs: map[string]int{},
	}
	cfg := Config{Incarnations: map[string]uint64{}}
	for i := 1; i <= members+spares; i++ {
		id := fmt.Sprintf("n%d", i)
		c.ids = append(c.ids, id)
		if i <= members {
			cfg.Members = append(cfg.Members, id)
			cfg.Incarnations[id] = simIncarnation(id, 1)
		}
	}
	c.first = cfg
	for _, id := range c.ids {
		n := &simNode{id: id, inc: simIncarnation(id, 1), disk: logState{persistentState: persistentState{Bootstrap: cfg}}}
		c.nodes[id] = n
		c.start(n)
	}
	return c
}

// simIncarnation names the k-th data dir of node id (k counts from 1; a wipe makes the next).
func simIncarnation(id string, k int) uint64 {
	var n uint64
	fmt.Sscanf(id, "n%d", &n)
	return n<<32 | uint64(k)
}

func (c *simCluster) fail(format string, args ...any) {
	c.t.Helper()
	msg := fmt.Sprintf(format, args...)
	if *traceFlag {
		msg += "\ntrace:\n" + strings.Join(c.trace, "\n")
	} else if len(c.trace) > 0 {
		msg += "\nlast events:\n" + strings.Join(c.trace[max(0, len(c.trace)-30):], "\n")
	}
	c.t.Fatalf("seed %d, tick %d: %s\nreplay: go test -run '^%s$' -seed %d -trace", c.seed, c.now, msg, strings.Split(c.name, "/")[0], c.seed)
}

func (c *simCluster) logf(format string, args ...any) {
	c.trace = append(c.trace, fmt.Sprintf("%5d ", c.now)+fmt.Sprintf(format, args...))
}

func (c *simCluster) start(n *simNode) {
	n.r = newRaft(coreConfig{
		ID: n.id, Incarnation: map[bool]uint64{false: n.inc, true: 0}[c.old[n.id]], ElectionTicks: simElectionTicks, HeartbeatTicks: simHeartbeatTicks,
		MaxMsgBytes: 64, MaxInflight: 4, Rand: rand.New(rand.NewSource(c.rng.Int63())),
	}, persistentState{HardState: n.disk.HardState, Snapshot: n.disk.Snapshot, Entries: slices.Clone(n.disk.Entries), Bootstrap: n.disk.Bootstrap})
	n.applied, n.checked = n.disk.Snapshot.Index, n.disk.Snapshot.Index
	n.pending = map[uint64]simProposal{}
	n.recv = map[logPosition]uint64{}
	n.rebase()
}

// rebase restarts the hash chain at the log's start, whose digest is the snapshot's.
func (n *simNode) rebase() {
	n.hashBase = n.r.snapshot.Index
	n.hashes = []uint64{n.snap}
	n.rehash(n.hashBase + 1)
}

// rehash recomputes the hash chain from index on, after the log changed there.
func (n *simNode) rehash(index uint64) {
	n.hashes = n.hashes[:index-n.hashBase]
	for i := index; i <= n.r.log.lastIndex(); i++ {
		n.hashes = append(n.hashes, chainHash(n.hashes[i-1-n.hashBase], n.r.log.entries[i-n.hashBase]))
	}
}

// hashAt is the digest of the log up to index; a compacted prefix is committed, so its
// digest is the committed log's.
func (c *simCluster) hashAt(n *simNode, index uint64) uint64 {
	if index <= n.hashBase {
		return c.chash[index]
	}
	return n.hashes[index-n.hashBase]
}

// compact snapshots what n has applied and compacts its log, as server.go does once a
// snapshot file is durable.
func (c *simCluster) compact(n *simNode) {
	c.flush(n)
	if n.r == nil {
		return // crashed meanwhile
	}
	index := n.r.lastApplied
	if index <= n.r.snapshot.Index {
		return
	}
	meta := n.r.snapshotMeta(index)
	n.snap = c.hashAt(n, index)
	if err := n.disk.apply(walRecord{Snapshot: &meta}); err != nil {
		c.fail("%s: compaction at %d does not fit its log: %v", n.id, index, err)
	}
	n.r.Compact(meta)
	n.rebase()
	c.logf("%s compacts its log up to %d", n.id, index)
}

func chainHash(prev uint64, e Entry) uint64 {
	// FNV-1a over the previous hash and the entry.
	h := prev ^ 14695981039346656037
	mix := func(b byte) { h ^= uint64(b); h *= 1099511628211 }
	for _, v := range []uint64{e.Index, e.Term, uint64(e.Type)} {
		for k := 0; k < 64; k += 8 {
			mix(byte(v >> k))
		}
	}
	for _, b := range e.Data {
		mix(b)
	}
	return h
}

func (c *simCluster) crash(id string) {
	n := c.nodes[id]
	if n.r != nil {
		c.logf("crash %s (%v, term %d)", id, n.r.role, n.r.currentTerm)
		c.crashes++
		n.r, n.writes = nil, nil
	}
}

// wipe crashes node id and gives it a new, empty data dir, as a replaced disk does. It
// comes back (restart) with a new incarnation and the cluster's first configuration,
// which is what the server's first start on an empty data dir learns from any member
// that answers (the cluster exists): its address in it belongs to the data dir it lost,
// so it takes no part until it is removed and added back.
func (c *simCluster) wipe(id string) {
	n := c.nodes[id]
	c.crash(id)
	if n.lost == nil {
		n.lost = map[uint64]logState{}
	}
	n.lost[n.inc] = n.disk
	n.inc++
	n.disk = logState{persistentState: persistentState{Bootstrap: c.first}}
	n.snap = 0
	c.logf("wipe %s: data dir %x", id, n.inc)
}

func (c *simCluster) restart(id string) {
	n := c.nodes[id]
	if n.r == nil {
		c.start(n)
		c.logf("restart %s (term %d, %d entries)", id, n.r.currentTerm, n.r.log.lastIndex())
		c.ready(n)
	}
}

// partition splits the nodes into groups that cannot talk to each other; nodes not
// named form one more group.
func (c *simCluster) partition(groups ...[]string) {
	clear(c.group)
	for g, ids := range groups {
		for _, id := range ids {
			c.group[id] = g + 1
		}
	}
	c.logf("partition %v", groups)
}

func (c *simCluster) heal() {
	clear(c.group)
	clear(c.deaf)
	clear(c.slow)
	c.lose = nil
	c.logf("heal")
}

func (c *simCluster) live() []*simNode {
	var l []*simNode
	for _, id := range c.ids {
		if n := c.nodes[id]; n.r != nil {
			l = append(l, n)
		}
	}
	return l
}

// leader is the live leader with the highest term, or nil.
func (c *simCluster) leader() *simNode {
	var best *simNode
	for _, n := range c.live() {
		if n.r.role == leader && (best == nil || n.r.currentTerm > best.r.currentTerm) {
			best = n
		}
	}
	return best
}

// step advances the world by one tick: deliver what is due, then tick every live node.
func (c *simCluster) step() {
	c.now++
	var due []simMsg
	rest := c.net[:0]
	for _, sm := range c.net {
		if sm.at <= c.now {
			due = append(due, sm)
		} else {
			rest = append(rest, sm)
		}
	}
	c.net = rest
	// Links interleave at random, but each link stays first-in first-out like a TCP
	// connection: only delays (faults.maxDelay) and duplicates reorder a link.
	c.rng.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
	slots := map[[2]string][]int{}
	for i, sm := range due {
		link := [2]string{sm.m.From, sm.m.To}
		slots[link] = append(slots[link], i)
	}
	for _, idx := range slots {
		msgs := make([]simMsg, len(idx))
		for k, i := range idx {
			msgs[k] = due[i]
		}
		slices.SortFunc(msgs, func(a, b simMsg) int { return a.seq - b.seq })
		for k, i := range idx {
			due[i] = msgs[k]
		}
	}
	for _, sm := range due {
		n := c.nodes[sm.m.To]
		if n == nil || n.r == nil || (!sm.local && (c.group[sm.m.From] != c.group[sm.m.To] || c.deaf[sm.m.To] || (c.lose != nil && c.lose(sm.m)))) {
			if sm.m.Type == MsgSnap {
				c.reportSnapshotFailed(sm.m)
			}
			continue
		}
		if sm.m.Type == MsgSnap {
			n.recv[logPosition{sm.m.Snapshot.Index, sm.m.Snapshot.Term}] = sm.snap
		}
		if c.old[sm.m.To] {
			sm.m.ToIncarnation = 0 // a field its binary does not know
		}
		n.r.Step(sm.m)
		c.ready(n)
	}
	for _, n := range c.live() {
		if len(n.writes) > 0 && (c.faults.asyncWrites == 0 || c.rng.Float64() < c.faults.asyncWrites) {
			c.completeWrites(n, 1+c.rng.Intn(len(n.writes)))
			if n.r == nil {
				continue
			}
		}
		c.tick(n)
		c.ready(n)
		if c.faults.compact > 0 && c.rng.Float64() < c.faults.compact && n.r != nil {
			c.compact(n)
			c.ready(n)
		}
	}
}

// tick ticks n's core, checking what the loop's lazy clock relies on (server.go
// advanceClock): a tick that TicksToNext says is not the next that matters only counts.
// It sends nothing and changes no role, term, leader, transfer or catch-up.
func (c *simCluster) tick(n *simNode) {
	r := n.r
	next, quiet := r.TicksToNext(), !r.hasReady()
	before := r.status()
	catchingUp := r.catchUp != nil
	r.Tick()
	if next <= 1 {
		return
	}
	after := r.status()
	if (quiet && r.hasReady()) || after.Role != before.Role || after.Term != before.Term || after.Leader != before.Leader ||
		after.Transferee != before.Transferee || (r.catchUp != nil) != catchingUp {
		c.fail("%s: a tick with %d to go until the next that matters did more than count: %v term %d leader %q -> %v term %d leader %q, ready %v",
			r.id, next, before.Role, before.Term, before.Leader, after.Role, after.Term, after.Leader, r.hasReady())
	}
}

func (c *simCluster) run(ticks int) {
	for range ticks {
		c.step()
	}
}

// runUntil steps until cond holds, for at most ticks; it reports whether cond held.
func (c *simCluster) runUntil(ticks int, cond func() bool) bool {
	for range ticks {
		if cond() {
			return true
		}
		c.step()
	}
	return cond()
}

func (c *simCluster) waitLeader() *simNode {
	c.t.Helper()
	if !c.runUntil(50*simElectionTicks, func() bool { return c.leader() != nil }) {
		c.fail("no leader elected")
	}
	return c.leader()
}

func (c *simCluster) send(m Message) {
	c.sent[m.Type]++
	// What a message promises is on its sender's disk when it leaves: its term (a
	// pre-vote's is only proposed), and a granted vote.
	if hs := c.nodes[m.From].disk.HardState; m.Type != MsgPreVote && m.Type != MsgPreVoteResp && m.Term > hs.Term {
		c.fail("%s sent %v in term %d while its disk holds term %d", m.From, m.Type, m.Term, hs.Term)
	} else if (m.Type == MsgVoteResp && m.Success || m.Type == MsgVote) && (hs.Term != m.Term || hs.Vote != map[bool]string{true: m.To, false: m.From}[m.Type == MsgVoteResp]) {
		c.fail("%s sent %v (term %d) while its disk holds term %d, vote %q", m.From, m.Type, m.Term, hs.Term, hs.Vote)
	}
	// A server that lost its data dir is not the member its address was: it asks for no
	// votes and grants none until it is added back with its new one.
	if o := c.nodes[m.From]; o.r != nil && !c.old[m.From] && (m.Type == MsgVote || m.Type == MsgPreVote || (m.Type == MsgVoteResp || m.Type == MsgPreVoteResp) && m.Success) {
		if inc := o.r.config().incarnation(o.id); inc != 0 && inc != o.inc {
			c.fail("%s sent %v to %s with data dir %x, but its configuration knows %s by %x", m.From, m.Type, m.To, o.inc, o.id, inc)
		}
	}
	if m.Type == MsgAppResp && !m.Success {
		c.refusals[m.From]++
	}
	for _, e := range m.Entries {
		c.entryData[m.To] += len(e.Data)
	}
	var snap uint64
	if m.Type == MsgSnap {
		snap = c.nodes[m.From].snap
	}
	if c.rng.Float64() < c.faults.drop {
		if m.Type == MsgSnap {
			c.reportSnapshotFailed(m)
		}
		return
	}
	copies := 1
	if c.rng.Float64() < c.faults.duplicate {
		copies = 2
	}
	for range copies {
		delay := 1 + c.slow[m.From] + c.slow[m.To]
		if c.faults.maxDelay > 0 {
			delay += c.rng.Intn(c.faults.maxDelay + 1)
		}
		c.seq++
		c.net = append(c.net, simMsg{at: c.now + delay, seq: c.seq, m: m, snap: snap})
	}
}

// reportSnapshotFailed tells the sender of a snapshot that it did not arrive, as its
// transport would.
func (c *simCluster) reportSnapshotFailed(m Message) {
	c.seq++
	c.net = append(c.net, simMsg{at: c.now + 1, seq: c.seq, local: true,
		m: Message{Type: MsgSnapStatus, From: m.To, To: m.From, Term: m.Term}})
}

// ready does what server.go does with a Ready: a leader's requests leave at once,
// committed entries are applied, and the write goes to the disk, which completes it
// (fsync) now or, with faults.asyncWrites, a few ticks later, while the node goes on.
// Replies wait for their write. Crashes strike before and after an fsync.
func (c *simCluster) ready(n *simNode) {
	for n.r != nil && n.r.hasReady() {
		rd := n.r.Ready()
		early, late := splitMessages(rd.Messages)
		for _, m := range early {
			c.send(m)
		}
		if rd.Snapshot != nil {
			c.installSnapshot(n, *rd.Snapshot)
			if n.r == nil {
				return
			}
		}
		if len(rd.Entries) > 0 {
			n.rehash(rd.Entries[0].Index) // the log in memory changed
		}
		n.readStates = append(n.readStates, rd.ReadStates...)
		n.warnings = append(n.warnings, rd.Warnings...)
		for _, cu := range rd.CatchUps {
			c.logf("%s: catch-up of %s ended: entry %d, err %v", n.id, cu.Server, cu.Index, cu.Err)
			c.catchUps = append(c.catchUps, cu)
		}
		// Committed entries are durable on a majority, and on the leader: they are
		// applied (and clients answered) while the write goes on.
		c.recordCommits(n)
		for _, e := range rd.Committed {
			c.apply(n, e)
		}
		if rd.HardState == nil && len(rd.Entries) == 0 && len(n.writes) == 0 {
			// As server.go: nothing to write and no write on its way for the replies
			// to wait for.
			for _, m := range late {
				c.send(m)
			}
			n.r.Advance(rd)
			continue
		}
		n.writes = append(n.writes, simWrite{rd: rd, late: late})
		if c.faults.asyncWrites == 0 {
			c.completeWrites(n, len(n.writes))
		}
	}
	if n.r != nil {
		c.recordCommits(n)
		c.check(n)
	}
}

// simWrite is a Ready's write on its way to the disk, and the replies waiting for it.
type simWrite struct {
	rd   Ready
	late []Message
}

// completeWrites makes the k oldest writes of n durable, in order, and sends what
// waited for them. The simulated disk keeps only what was fsynced: a crash before an
// fsync returns loses that write and every later one.
func (c *simCluster) completeWrites(n *simNode, k int) {
	for ; k > 0 && n.r != nil && len(n.writes) > 0; k-- {
		w := n.writes[0]
		if c.faults.crashReady > 0 && c.rng.Float64() < c.faults.crashReady {
			c.lostWrites++
			c.crash(n.id)
			return
		}
		if err := n.disk.apply(walRecord{HardState: w.rd.HardState, Entries: w.rd.Entries}); err != nil {
			c.fail("%s: Ready does not fit its log: %v", n.id, err)
		}
		if c.faults.crashReady > 0 && c.rng.Float64() < c.faults.crashReady {
			c.crash(n.id) // after the fsync, before the replies left
			return
		}
		n.writes = n.writes[1:]
		for _, m := range w.late {
			c.send(m)
		}
		n.r.Advance(w.rd)
	}
}

// flush completes every write of n, as server.go does before it writes a snapshot.
func (c *simCluster) flush(n *simNode) {
	c.completeWrites(n, len(n.writes))
}

// installSnapshot does what server.go does with a snapshot from the leader: the log
// starts after it, durably, and the state machine is replaced by it, which must be the
// committed log up to its index (state machine safety).
func (c *simCluster) installSnapshot(n *simNode, meta SnapshotMeta) {
	c.flush(n)
	if n.r == nil {
		return
	}
	data, ok := n.recv[logPosition{meta.Index, meta.Term}]
	if !ok {
		c.fail("%s installs snapshot %d (term %d), which it never received", n.id, meta.Index, meta.Term)
	}
	if meta.Index > uint64(len(c.committed)) || data != c.chash[meta.Index] {
		c.fail("state machine safety: %s installs a snapshot at %d that is not the committed log (committed up to %d)", n.id, meta.Index, len(c.committed))
	}
	if err := n.disk.apply(walRecord{Snapshot: &meta, ReplaceLog: true}); err != nil {
		c.fail("%s: snapshot %d does not fit its log: %v", n.id, meta.Index, err)
	}
	n.snap = data
	n.applied, n.checked = meta.Index, max(n.checked, meta.Index)
	c.installs[n.id]++
	n.rebase()
	c.logf("%s installs snapshot %d (term %d)", n.id, meta.Index, meta.Term)
}

func (c *simCluster) apply(n *simNode, e Entry) {
	if e.Index != n.applied+1 {
		c.fail("%s applied index %d after %d", n.id, e.Index, n.applied)
	}
	if e.Index > uint64(len(c.committed)) {
		c.fail("%s applied index %d, which no node has committed (committed up to %d)", n.id, e.Index, len(c.committed))
	}
	if want := c.committed[e.Index-1]; !sameEntry(e, want) {
		c.fail("state machine safety: %s applied %s at index %d, but %s was committed there", n.id, fmtEntry(e), e.Index, fmtEntry(want))
	}
	n.applied = e.Index
	if p, ok := n.pending[e.Index]; ok {
		delete(n.pending, e.Index)
		if p.term == e.Term {
			if string(e.Data) != p.data {
				c.fail("%s acknowledged %q at index %d, which holds %s", n.id, p.data, e.Index, fmtEntry(e))
			}
			c.acked[p.data] = e.Index
		}
	}
}

// recordCommits adds what n has newly committed to the committed log. The committed
// log only grows, and no node commits anything else at its indices.
func (c *simCluster) recordCommits(n *simNode) {
	for index := max(n.checked, n.hashBase) + 1; index <= n.r.commitIndex; index++ {
		e := n.r.log.entries[index-n.hashBase]
		if index <= uint64(len(c.committed)) {
			if !sameEntry(e, c.committed[index-1]) {
				c.fail("%s committed %s at index %d, but %s was committed there before", n.id, fmtEntry(e), index, fmtEntry(c.committed[index-1]))
			}
			continue
		}
		c.committed = append(c.committed, e)
		c.chash = append(c.chash, chainHash(c.chash[index-1], e))
		// Durability: an entry commits only once it is on the disks of a majority (of a
		// configuration n knows: the one it committed under may have changed since).
		durable := false
		var on []string
		for _, ca := range n.r.configs {
			on = on[:0]
			for _, id := range ca.config.Members {
				// Only the data dir the configuration knows at that address counts: the
				// one there now, or the one lost since it acknowledged the entry (a
				// majority still holds what a minority of disks lost).
				if o := c.nodes[id]; o != nil && o.dataDirHolds(ca.config.incarnation(id), e.Index, e.Term) {
					on = append(on, id)
				}
			}
			durable = durable || len(on) >= ca.config.quorum()
		}
		if !durable {
			c.fail("durability: %s committed %s, which is on the disks of only %v of %v", n.id, fmtEntry(e), on, n.r.config().Members)
		}
	}
	n.checked = max(n.checked, n.r.commitIndex)
}

// diskHolds reports whether n's disk holds the entry at index with term (a snapshot
// covers committed entries).
func (n *simNode) diskHolds(index, term uint64) bool { return diskHolds(&n.disk, index, term) }

// dataDirHolds reports whether n's data dir inc (0: the one it has) held the entry at
// index with term: the one it has holds it now, one it lost did when it was lost.
func (n *simNode) dataDirHolds(inc, index, term uint64) bool {
	if inc == 0 || inc == n.inc {
		return n.diskHolds(index, term)
	}
	d, ok := n.lost[inc]
	return ok && diskHolds(&d, index, term)
}

func diskHolds(d *logState, index, term uint64) bool {
	if index <= d.Snapshot.Index || index <= d.base.Index {
		return index <= d.Snapshot.Index
	}
	if index > d.lastIndex() {
		return false
	}
	return d.Entries[index-d.base.Index-1].Term == term
}

// check verifies the invariants that involve node n after its state changed.
func (c *simCluster) check(n *simNode) {
	r := n.r
	if t, ok := r.log.term(r.log.stable); r.log.stable > r.snapshot.Index && (!ok || !n.diskHolds(r.log.stable, t)) {
		c.fail("%s: its log counts entry %d as on its disk, which does not hold it", n.id, r.log.stable)
	}
	if n.hashBase+uint64(len(n.hashes)) != r.log.lastIndex()+1 {
		c.fail("%s: log changed (last %d) without handing the change out in Ready (hashed %d)", n.id, r.log.lastIndex(), n.hashBase+uint64(len(n.hashes))-1)
	}
	// What readiness waits for is a commit index some node reached: a heartbeat's
	// ClusterCommit is never more than its leader committed.
	if lc := r.status().LeaderCommit; lc > uint64(len(c.committed)) {
		c.fail("%s: status says a leader committed %d, though no node committed past %d", n.id, lc, len(c.committed))
	}
	// Election safety: at most one leader per term.
	if r.role == leader {
		if l, ok := c.leaders[r.currentTerm]; !ok {
			c.leaders[r.currentTerm] = n.id
			c.logf("%s leads term %d (log %d, commit %d)", n.id, r.currentTerm, r.log.lastIndex(), r.commitIndex)
			// Leader completeness: a new leader holds every committed entry.
			k := uint64(len(c.committed))
			if k > r.log.lastIndex() || c.hashAt(n, k) != c.chash[k] {
				c.fail("leader completeness: %s leads term %d without every committed entry (committed %d, its log %d)", n.id, r.currentTerm, k, r.log.lastIndex())
			}
		} else if l != n.id {
			c.fail("election safety: %s and %s both lead term %d", l, n.id, r.currentTerm)
		}
	}
	// Log matching: where two logs hold an entry of the same term at an index, they hold
	// the same prefix up to it. Checking the highest such index covers every lower one.
	for _, o := range c.live() {
		if o == n {
			continue
		}
		// Below either log's start, both are committed and so the same.
		floor := max(n.hashBase, o.hashBase)
		sameTerm := func(index uint64) bool { t, ok := r.log.term(index); return ok && o.r.log.matches(index, t) }
		index := min(r.log.lastIndex(), o.r.log.lastIndex())
		for index > floor && !sameTerm(index) {
			index--
		}
		if index >= floor && sameTerm(index) && c.hashAt(n, index) != c.hashAt(o, index) {
			t, _ := r.log.term(index)
			c.fail("log matching: %s and %s both hold term %d at index %d but their logs differ before it:\n%s",
				n.id, o.id, t, index, c.describe())
		}
	}
}

func sameEntry(a, b Entry) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type && bytes.Equal(a.Data, b.Data)
}

func fmtEntry(e Entry) string {
	switch e.Type {
	case EntryNoop:
		return fmt.Sprintf("%d/t%d noop", e.Index, e.Term)
	case EntryConfig:
		cc, _ := decodeConfChange(e.Data)
		return fmt.Sprintf("%d/t%d config %v", e.Index, e.Term, cc.Config.Members)
	}
	return fmt.Sprintf("%d/t%d %q", e.Index, e.Term, e.Data)
}

// propose offers a unique client message to the current leader, if there is one, and
// returns the index it was appended at (0: no leader).
func (c *simCluster) propose() uint64 {
	l := c.leader()
	if l == nil {
		return 0
	}
	c.proposed++
	data := fmt.Sprintf("m%d", c.proposed)
	index, term, err := l.r.Propose(EntryNormal, []byte(data))
	if err == errTransferring {
		return 0
	}
	if err != nil {
		c.fail("leader %s refused a proposal: %v", l.id, err)
	}
	l.pending[index] = simProposal{term: term, data: data}
	c.ready(l)
	return index
}

// changeMembership asks the leader to add or remove a server; it reports whether the
// leader took the change.
func (c *simCluster) changeMembership(op ConfOp, id string) bool {
	l := c.leader()
	if l == nil {
		return false
	}
	var err error
	if op == confAdd {
		err = l.r.AddServer(id)
	} else {
		_, _, err = l.r.RemoveServer(id)
	}
	if err != nil {
		return false
	}
	c.logf("%s proposes %s %s", l.id, map[ConfOp]string{confAdd: "add", confRemove: "remove"}[op], id)
	c.ready(l)
	return true
}

// members is the configuration in effect on the leader, or the bootstrap one.
func (c *simCluster) members() []string {
	if l := c.leader(); l != nil {
		return l.r.config().Members
	}
	return c.nodes[c.ids[0]].disk.Bootstrap.Members
}

// converge heals the world, restarts every node, and runs until every member holds the
// same log, has committed and applied all of it, and a leader leads. Then it checks that
// every acknowledged proposal is in the log exactly once.
func (c *simCluster) converge() {
	c.t.Helper()
	c.heal()
	c.faults = faults{}
	for _, id := range c.ids {
		c.restart(id)
	}
	done := func() bool {
		l := c.leader()
		if l == nil || l.r.commitIndex != l.r.log.lastIndex() {
			return false
		}
		if t, _ := l.r.log.term(l.r.commitIndex); t != l.r.currentTerm {
			return false
		}
		for _, id := range l.r.config().Members {
			n := c.nodes[id]
			if n.applied != l.r.log.lastIndex() || n.r.log.lastIndex() != l.r.log.lastIndex() {
				return false
			}
		}
		return true
	}
	if !c.runUntil(2000, done) {
		c.fail("the cluster did not converge after healing:\n%s", c.describe())
	}
	seen := map[string]int{}
	for _, e := range c.committed {
		if e.Type == EntryNormal {
			seen[string(e.Data)]++
		}
	}
	for data, index := range c.acked {
		if seen[data] != 1 {
			c.fail("acknowledged %q (index %d) is in the final log %d times", data, index, seen[data])
		}
	}
}

func (c *simCluster) describe() string {
	var b strings.Builder
	for _, id := range c.ids {
		n := c.nodes[id]
		if n.r == nil {
			fmt.Fprintf(&b, "  %s: down\n", id)
			continue
		}
		s := n.r.status()
		fmt.Fprintf(&b, "  %s: %v term %d leader %q last %d commit %d applied %d members %v\n",
			id, s.Role, s.Term, s.Leader, s.LastLog, s.Commit, n.applied, s.Config.Members)
	}
	return b.String()
}
