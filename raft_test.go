// raft_test.go: tests of the core, on the simulated cluster of sim_test.go. Scenario
// tests script one situation; randomized tests run many seeded schedules of faults.
// Every test checks the invariants after every step (sim_test.go: check).
package main

import (
	"fmt"
	"math/rand"
	"testing"
)

// --- Elections ---

func TestInitialElection(t *testing.T) {
	for _, size := range []int{1, 3, 5, 7} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			for _, seed := range seeds(20) {
				c := newSimCluster(t, seed, size, 0, faults{})
				l := c.waitLeader()
				term := l.r.currentTerm
				// With nothing failing, the term stays put and the leader stays leader.
				c.run(50 * simElectionTicks)
				if now := c.leader(); now != l || now.r.currentTerm != term {
					c.fail("leader %s term %d changed to %v without any failure", l.id, term, c.describe())
				}
				for _, n := range c.live() {
					if n.r.currentTerm != term || n.r.leader != l.id {
						c.fail("%s is at term %d following %q, want term %d following %s", n.id, n.r.currentTerm, n.r.leader, term, l.id)
					}
				}
			}
		})
	}
}

func TestReElection(t *testing.T) {
	for _, seed := range seeds(30) {
		c := newSimCluster(t, seed, 3, 0, faults{})
		old := c.waitLeader()
		c.propose()

		// The leader is cut off: the others elect a new one.
		c.partition([]string{old.id})
		if !c.runUntil(50*simElectionTicks, func() bool { l := c.leader(); return l != nil && l != old }) {
			c.fail("no new leader after the leader was cut off:\n%s", c.describe())
		}
		newer := c.leader()
		term := newer.r.currentTerm

		// The old leader rejoins without disturbing the new one.
		c.heal()
		c.run(20 * simElectionTicks)
		if l := c.leader(); l != newer || l.r.currentTerm != term {
			c.fail("rejoining old leader %s disturbed leader %s of term %d:\n%s", old.id, newer.id, term, c.describe())
		}

		// With no majority, nobody becomes leader.
		c.partition([]string{"n1"}, []string{"n2"}, []string{"n3"})
		c.run(5 * simElectionTicks) // long enough for the leader's followers to time out
		for _, n := range c.live() {
			if n.r.role == leader && n.r.currentTerm > term {
				c.fail("%s became leader of term %d without a majority", n.id, n.r.currentTerm)
			}
		}

		// A majority returns: somebody leads again.
		c.partition([]string{"n1", "n2"}, []string{"n3"})
		if !c.runUntil(50*simElectionTicks, func() bool { l := c.leader(); return l != nil && l.id != "n3" && l.r.currentTerm > term }) {
			c.fail("no leader once a majority could talk:\n%s", c.describe())
		}
		c.converge()
	}
}

func TestMinorityCutsAlwaysHaveLeader(t *testing.T) {
	for _, seed := range seeds(10) {
		c := newSimCluster(t, seed, 7, 0, faults{})
		c.waitLeader()
		rng := rand.New(rand.NewSource(seed))
		for round := 0; round < 10; round++ {
			cut := rng.Perm(7)[:3] // a random minority
			var minority []string
			for _, i := range cut {
				minority = append(minority, c.ids[i])
			}
			c.partition(minority)
			if !c.runUntil(50*simElectionTicks, func() bool {
				l := c.leader()
				return l != nil && c.group[l.id] == 0 && l.r.commitIndex == l.r.log.lastIndex()
			}) {
				c.fail("round %d: no leader in the majority with %v cut off:\n%s", round, minority, c.describe())
			}
			c.propose()
		}
		c.converge()
	}
}

// --- Replication ---

func TestCommitsOnEveryNode(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 5, 0, faults{})
		c.waitLeader()
		for i := 0; i < 50; i++ {
			c.propose()
			c.step()
		}
		c.converge()
		if len(c.acked) != 50 {
			c.fail("%d of 50 proposals acknowledged on a healthy cluster", len(c.acked))
		}
	}
}

// Agreement despite a network that drops, delays, duplicates and reorders messages:
// every acknowledged proposal ends up in every log, once, at the same index.
func TestAgreementUnreliableNetwork(t *testing.T) {
	for _, seed := range seeds(50) {
		c := newSimCluster(t, seed, 5, 0, faults{drop: 0.2, duplicate: 0.1, maxDelay: 6})
		rng := rand.New(rand.NewSource(seed))
		for tick := 0; tick < 1000; tick++ {
			if rng.Intn(4) == 0 {
				c.propose()
			}
			c.step()
		}
		c.converge()
		if len(c.acked) < c.proposed/4 {
			c.fail("only %d of %d proposals acknowledged: the cluster made little progress", len(c.acked), c.proposed)
		}
	}
}

// A malformed reply claiming indices the leader never sent is ignored, not trusted.
func TestLeaderIgnoresImpossibleReplies(t *testing.T) {
	c := newSimCluster(t, 1, 3, 0, faults{})
	l := c.waitLeader()
	c.run(10)
	other := c.ids[0]
	if other == l.id {
		other = c.ids[1]
	}
	last := l.r.log.lastIndex()
	l.r.Step(Message{Type: MsgAppResp, From: other, To: l.id, Term: l.r.currentTerm, Success: true, MatchIndex: last + 100})
	l.r.Step(Message{Type: MsgAppResp, From: other, To: l.id, Term: l.r.currentTerm, RejectIndex: last + 50, ConflictIndex: last + 60})
	if pr := l.r.progress[other]; pr.match > last || pr.next > last+1 {
		t.Fatalf("progress moved outside the log: match %d next %d, log ends at %d", pr.match, pr.next, last)
	}
	c.ready(l)
	c.converge()
}

// Each entry should cross the wire to each follower about once on a healthy network:
// no resending the whole log on every heartbeat.
func TestEachEntrySentAboutOnce(t *testing.T) {
	c := newSimCluster(t, 1, 3, 0, faults{})
	c.waitLeader()
	for i := 0; i < 200; i++ {
		c.propose()
		if i%3 == 0 {
			c.step()
		}
	}
	c.converge()
	l := c.leader()
	var data int
	for _, e := range l.r.log.entries[1:] {
		data += len(e.Data)
	}
	for _, id := range c.ids {
		if id == l.id {
			continue
		}
		if got := c.entryData[id]; got < data || got > data*11/10 {
			c.fail("%s was sent %d bytes of entries for a log of %d bytes; want each entry about once", id, got, data)
		}
	}
	if apps := c.sent[MsgApp]; apps > 2*(200+c.now) {
		c.fail("%d AppendEntries for 200 proposals in %d ticks", apps, c.now)
	}
}

func TestFollowersFailOneByOne(t *testing.T) {
	for _, seed := range seeds(10) {
		c := newSimCluster(t, seed, 5, 0, faults{})
		l := c.waitLeader()
		var down []string
		for _, id := range c.ids {
			if id == l.id {
				continue
			}
			c.crash(id)
			down = append(down, id)
			// Without a majority the leader steps down (check-quorum), and nothing commits.
			index := c.propose()
			committed := index > 0 && c.runUntil(20*simElectionTicks, func() bool { return l.r.commitIndex >= index })
			if majority := len(down) <= 2; committed != majority {
				c.fail("with %v down: committed=%v, want %v", down, committed, majority)
			}
		}
		c.converge()
	}
}

// A leader cut off in a minority accepts entries that never commit; after healing
// they are replaced by what the majority committed.
func TestPartitionedLeaderEntriesReplaced(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 5, 0, faults{})
		old := c.waitLeader()
		c.propose()
		c.run(5)
		follower := c.ids[0]
		if follower == old.id {
			follower = c.ids[1]
		}
		c.partition([]string{old.id, follower})
		commit := old.r.commitIndex
		var orphans []uint64
		for i := 0; i < 5; i++ {
			index, _, err := old.r.Propose(EntryNormal, []byte(fmt.Sprintf("orphan%d", i)))
			if err != nil {
				c.fail("old leader refused: %v", err)
			}
			orphans = append(orphans, index)
			c.ready(old)
		}
		if !c.runUntil(50*simElectionTicks, func() bool { l := c.leader(); return l != nil && l != old }) {
			c.fail("majority elected no leader:\n%s", c.describe())
		}
		for i := 0; i < 5; i++ {
			c.propose()
		}
		c.run(10 * simElectionTicks)
		if old.r.commitIndex != commit {
			c.fail("the minority leader committed %d (was %d) without a majority", old.r.commitIndex, commit)
		}
		c.converge()
		for _, e := range c.leader().r.log.entries[1:] {
			if len(e.Data) > 6 && string(e.Data[:6]) == "orphan" {
				c.fail("entry %s from the minority leader survived", fmtEntry(e))
			}
		}
	}
}

// A follower far behind with many conflicting entries is brought back in a few round
// trips: the leader skips a term per refusal, not an entry.
func TestFastBackUp(t *testing.T) {
	c := newSimCluster(t, 3, 3, 0, faults{})
	old := c.waitLeader()
	var other []string
	for _, id := range c.ids {
		if id != old.id {
			other = append(other, id)
		}
	}
	// The old leader, alone, piles up 100 entries of its term that will never commit.
	c.partition([]string{old.id})
	for i := 0; i < 100; i++ {
		if _, _, err := old.r.Propose(EntryNormal, []byte(fmt.Sprintf("stale%d", i))); err != nil {
			t.Fatal(err)
		}
		c.ready(old)
	}
	// The other two go through several terms, each with entries.
	for term := 0; term < 4; term++ {
		c.partition([]string{old.id})
		if !c.runUntil(50*simElectionTicks, func() bool {
			l := c.leader()
			return l != nil && l != old && l.r.currentTerm > old.r.currentTerm+uint64(term)
		}) {
			c.fail("no leader among %v", other)
		}
		for i := 0; i < 30; i++ {
			c.propose()
		}
		c.run(5)
		if c.leader() == nil {
			c.fail("no leader after proposing:\n%s", c.describe())
		}
		c.crash(c.leader().id) // force a new term next round
		for _, id := range other {
			c.restart(id)
		}
	}
	c.heal()
	refused := c.refusals[old.id]
	caughtUp := func() bool {
		l := c.leader()
		return l != nil && l != old && old.r.log.lastIndex() == l.r.log.lastIndex() &&
			c.hashAt(old, old.r.log.lastIndex()) == c.hashAt(l, l.r.log.lastIndex())
	}
	if !c.runUntil(200*simElectionTicks, caughtUp) {
		c.fail("the stale follower did not catch up:\n%s", c.describe())
	}
	// 100 conflicting entries of one term: one refusal skips them all. Backing up an
	// entry per refusal would take about 100.
	if n := c.refusals[old.id] - refused; n > 5 {
		c.fail("the stale follower refused %d AppendEntries before catching up; want a handful", n)
	}
	c.converge()
}

// --- Safety under crashes: the Figure 8 scenario ---

// TestFigure8 follows Figure 8 of the paper. An entry of an old term that now sits on
// a majority must not be committed by counting replicas: a server with a later term in
// its log could still be elected and overwrite it. Every step checks that nothing
// committed ever changes.
func TestFigure8(t *testing.T) {
	c := newSimCluster(t, 8, 5, 0, faults{})
	s1, s5 := c.nodes["n1"], c.nodes["n5"]
	// elect makes n leader with the votes of the others named, then cuts it off before
	// anything it appends on election (its no-op) reaches anyone.
	elect := func(n *simNode, voters ...string) {
		t.Helper()
		c.partition(append([]string{n.id}, voters...))
		for attempt := 0; n.r.role != leader; attempt++ {
			if attempt == 20 {
				c.fail("%s not elected by %v:\n%s", n.id, voters, c.describe())
			}
			n.r.campaign(false) // a first try may only catch up with the voters' term
			c.ready(n)
			c.runUntil(4, func() bool { return n.r.role == leader })
		}
		c.partition([]string{n.id})
	}
	// (a) S1 leads term 2 and its entry at index 2 reaches only S2.
	elect(s1, "n2", "n3", "n4", "n5")
	c.partition([]string{"n1", "n2", "n3", "n4", "n5"})
	c.runUntil(50, func() bool { return c.nodes["n5"].r.commitIndex >= 1 })
	c.partition([]string{"n1", "n2"})
	c.propose()
	if !c.runUntil(20, func() bool { return c.nodes["n2"].r.log.lastIndex() >= 2 }) {
		c.fail("S2 did not get index 2")
	}
	oldTerm, _ := s1.r.log.term(2)
	// (b) S1 crashes; S5 is elected by S3, S4 and S5 with a later term; what it appends
	// stays on S5.
	c.crash("n1")
	elect(s5, "n3", "n4")
	c.crash("n5")
	// (c) S1 restarts and is elected by S2, S3, S4. Suppose it gets index 2 onto S3 before
	// its no-op goes anywhere: index 2 is then on a majority (S1, S2, S3), but of an old term.
	c.restart("n1")
	elect(s1, "n2", "n3", "n4")
	s1.r.progress["n2"].match = 2
	s1.r.progress["n3"].match = 2
	s1.r.maybeCommit()
	if s1.r.commitIndex >= 2 {
		c.fail("S1 (term %d) committed index 2 of term %d by counting replicas", s1.r.currentTerm, oldTerm)
	}
	s1.r.progress["n2"].match, s1.r.progress["n3"].match = 0, 0
	// (d) S1 crashes; S5 restarts and may be elected (its last term beats index 2's) and
	// overwrite index 2 everywhere. That is safe only because index 2 never committed.
	c.crash("n1")
	c.restart("n5")
	c.partition([]string{"n2", "n3", "n4", "n5"})
	c.waitLeader()
	c.run(10)
	// (e) Everyone back: they converge, and no committed entry ever changed.
	c.converge()
}

// TestFigure8Unreliable: leaders crash soon after proposing, on a lossy, reordering
// network, so entries of old terms sit on majorities without committing.
func TestFigure8Unreliable(t *testing.T) {
	for _, seed := range seeds(60) {
		c := newSimCluster(t, seed, 5, 0, faults{drop: 0.1, duplicate: 0.05, maxDelay: 4})
		rng := rand.New(rand.NewSource(seed))
		for round := 0; round < 60; round++ {
			c.propose()
			c.run(rng.Intn(2 * simElectionTicks))
			if l := c.leader(); l != nil && rng.Intn(2) == 0 {
				c.crash(l.id)
			}
			if len(c.live()) < 3 {
				down := []string{}
				for _, id := range c.ids {
					if c.nodes[id].r == nil {
						down = append(down, id)
					}
				}
				c.restart(down[rng.Intn(len(down))])
			}
		}
		c.converge()
	}
}

// --- Crashes and restarts ---

func TestCrashRestartEveryone(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 3, 0, faults{})
		c.waitLeader()
		for i := 0; i < 10; i++ {
			c.propose()
		}
		c.run(10)
		committed := len(c.committed)
		for _, id := range c.ids {
			c.crash(id)
		}
		for _, id := range c.ids {
			c.restart(id)
		}
		// Restarted nodes resume applying from their saved commit index at once.
		for _, n := range c.live() {
			if n.applied == 0 && n.disk.HardState.Commit > 0 {
				c.fail("%s restarted with commit %d saved but applied nothing", n.id, n.disk.HardState.Commit)
			}
		}
		c.waitLeader()
		c.converge()
		if len(c.committed) < committed {
			c.fail("committed log shrank from %d to %d", committed, len(c.committed))
		}
	}
}

func TestCrashAtRandomMoments(t *testing.T) {
	for _, seed := range seeds(60) {
		c := newSimCluster(t, seed, 5, 0, faults{crashReady: 0.01, drop: 0.02, maxDelay: 2})
		rng := rand.New(rand.NewSource(seed))
		for tick := 0; tick < 800; tick++ {
			if rng.Intn(3) == 0 {
				c.propose()
			}
			c.step()
			if rng.Intn(40) == 0 {
				for _, id := range c.ids {
					if c.nodes[id].r == nil {
						c.restart(id)
						break
					}
				}
			}
		}
		c.converge()
	}
}

// --- Checklist regressions ---

// Checklist 1: a server votes at most once per term, across restarts; the vote is in the
// Ready's hard state, so it is on disk before the reply leaves.
func TestVoteOncePerTermAcrossRestart(t *testing.T) {
	c := newSimCluster(t, 1, 3, 0, faults{})
	n := c.nodes["n3"]
	n.r.Step(Message{Type: MsgVote, From: "n1", To: "n3", Term: 5})
	rd := n.r.Ready()
	if rd.HardState == nil || rd.HardState.Vote != "n1" || rd.HardState.Term != 5 {
		t.Fatalf("granting a vote must persist it with the reply; Ready has hard state %+v", rd.HardState)
	}
	if len(rd.Messages) != 1 || !rd.Messages[0].Success {
		t.Fatalf("vote not granted: %+v", rd.Messages)
	}
	n.disk.apply(walRecord{HardState: rd.HardState, Entries: rd.Entries})
	c.crash("n3")
	c.restart("n3")
	n.r.Step(Message{Type: MsgVote, From: "n2", To: "n3", Term: 5})
	rd = n.r.Ready()
	if len(rd.Messages) != 1 || rd.Messages[0].Success {
		t.Fatalf("after a restart, n3 voted again in term 5 (for n2): %+v", rd.Messages)
	}
	// Stepping down within a term does not clear the vote either.
	n.r.becomeFollower(5, noLeader)
	n.r.Step(Message{Type: MsgVote, From: "n2", To: "n3", Term: 5})
	if rd := n.r.Ready(); rd.Messages[0].Success {
		t.Fatal("n3 voted twice in term 5 after stepping down")
	}
}

// Checklist 2: the up-to-date check compares last log terms, then lengths; commit
// indices play no part; stale-term requests are refused.
func TestVoteUpToDateCheck(t *testing.T) {
	log := []Entry{{Index: 1, Term: 1}, {Index: 2, Term: 3}, {Index: 3, Term: 3}}
	cases := []struct {
		name                 string
		term, lastIdx, lastT uint64
		grant                bool
	}{
		{"higher last term, shorter log", 4, 1, 4, true},
		{"same last term, longer", 4, 4, 3, true},
		{"same last term, same length", 4, 3, 3, true},
		{"same last term, shorter", 4, 2, 3, false},
		{"lower last term, longer log", 4, 10, 2, false},
		{"stale term", 2, 10, 5, false},
	}
	for _, tc := range cases {
		r := newRaft(coreConfig{ID: "a", ElectionTicks: 10, HeartbeatTicks: 1, MaxInflight: 1, Rand: rand.New(rand.NewSource(1))},
			persistentState{HardState: HardState{Term: 3, Commit: 1}, Entries: log, Bootstrap: Config{Members: []string{"a", "b"}}})
		r.Step(Message{Type: MsgVote, From: "b", To: "a", Term: tc.term, LastLogIndex: tc.lastIdx, LastLogTerm: tc.lastT})
		rd := r.Ready()
		if len(rd.Messages) != 1 || rd.Messages[0].Success != tc.grant {
			t.Errorf("%s: granted=%v, want %v", tc.name, !tc.grant, tc.grant)
		}
	}
}

// Checklist 3: matchIndex comes from the request a reply answers, never moves back, and
// replies to stale requests are ignored.
func TestMatchIndexFromTheRequest(t *testing.T) {
	r := newRaft(coreConfig{ID: "a", ElectionTicks: 10, HeartbeatTicks: 1, MaxInflight: 8, Rand: rand.New(rand.NewSource(1))},
		persistentState{Bootstrap: Config{Members: []string{"a", "b", "c"}}})
	r.campaign(false)
	r.Step(Message{Type: MsgVoteResp, From: "b", To: "a", Term: 1, Success: true})
	if r.role != leader {
		t.Fatal("not leader")
	}
	for i := 0; i < 5; i++ {
		r.Propose(EntryNormal, []byte("x"))
	}
	pr := r.progress["b"]
	// The follower answers a later AppendEntries first, then an earlier one.
	r.Step(Message{Type: MsgAppResp, From: "b", To: "a", Term: 1, Success: true, MatchIndex: 4})
	r.Step(Message{Type: MsgAppResp, From: "b", To: "a", Term: 1, Success: true, MatchIndex: 2})
	if pr.match != 4 {
		t.Fatalf("matchIndex = %d after replies for 4 then 2; want 4 (never backwards)", pr.match)
	}
	// A stale refusal (of an index below match) does not move nextIndex back.
	next := pr.next
	r.Step(Message{Type: MsgAppResp, From: "b", To: "a", Term: 1, RejectIndex: 3, ConflictIndex: 1})
	if pr.next != next || pr.match != 4 {
		t.Fatalf("stale refusal moved next %d->%d, match 4->%d", next, pr.next, pr.match)
	}
	// A reply from an older term is ignored.
	r.Step(Message{Type: MsgAppResp, From: "c", To: "a", Term: 0, Success: true, MatchIndex: 6})
	if r.progress["c"].match != 0 {
		t.Fatal("a reply from an older term set matchIndex")
	}
}

// Checklist 4: membership is typed. A client message that reads like a configuration
// change is data; a truncated configuration entry rolls the configuration back.
func TestConfigEntriesTypedAndRolledBack(t *testing.T) {
	r := newRaft(coreConfig{ID: "b", ElectionTicks: 10, HeartbeatTicks: 1, MaxInflight: 1, Rand: rand.New(rand.NewSource(1))},
		persistentState{Bootstrap: Config{Members: []string{"a", "b"}}})
	cfg := encodeConfChange(ConfChange{Op: confAdd, Server: "c", Config: Config{Members: []string{"a", "b", "c"}}})
	r.Step(Message{Type: MsgApp, From: "a", To: "b", Term: 1, Entries: []Entry{
		{Index: 1, Term: 1, Type: EntryNormal, Data: []byte("addserver c")},
		{Index: 2, Term: 1, Type: EntryNormal, Data: cfg}, // the bytes of a config, typed as a message
	}})
	if got := r.config().Members; len(got) != 2 {
		t.Fatalf("client data changed the configuration to %v", got)
	}
	r.Step(Message{Type: MsgApp, From: "a", To: "b", Term: 1, PrevLogIndex: 2, PrevLogTerm: 1, Entries: []Entry{
		{Index: 3, Term: 1, Type: EntryConfig, Data: cfg},
	}})
	if got := r.config().Members; len(got) != 3 {
		t.Fatalf("an appended configuration entry did not take effect: %v", got)
	}
	// A new leader of term 2 overwrites index 3: the configuration rolls back.
	r.Step(Message{Type: MsgApp, From: "a", To: "b", Term: 2, PrevLogIndex: 2, PrevLogTerm: 1, Entries: []Entry{
		{Index: 3, Term: 2, Type: EntryNoop},
	}})
	if got := r.config().Members; len(got) != 2 {
		t.Fatalf("configuration %v survived the truncation of its entry", got)
	}
}

// Checklist 5: a new leader appends a no-op of its term at once, commits earlier
// entries through it, and refuses a membership change until it has committed.
func TestNoopOnElectionAndChangeWaitsForIt(t *testing.T) {
	c := newSimCluster(t, 1, 3, 1, faults{})
	l := c.waitLeader()
	c.propose()
	c.run(10)
	c.partition([]string{l.id})
	nl := c.waitLeaderOtherThan(l)
	if e := nl.r.log.entries[nl.r.log.lastIndex()]; e.Type != EntryNoop || e.Term != nl.r.currentTerm {
		t.Fatalf("new leader's last entry is %s, want a no-op of term %d", fmtEntry(e), nl.r.currentTerm)
	}
	if t2, _ := nl.r.log.term(nl.r.commitIndex); t2 != nl.r.currentTerm {
		if err := nl.r.AddServer("n4"); err != errLeaderNotReady {
			t.Fatalf("membership change before the no-op committed: err = %v, want errLeaderNotReady", err)
		}
	}
	c.runUntil(100, func() bool { t2, _ := nl.r.log.term(nl.r.commitIndex); return t2 == nl.r.currentTerm })
	if err := nl.r.AddServer("n4"); err != nil {
		t.Fatalf("membership change after the no-op committed: %v", err)
	}
	if _, _, err := nl.r.RemoveServer(l.id); err != errChangeInProgress {
		t.Fatalf("second change while the first is under way: err = %v, want errChangeInProgress", err)
	}
	c.converge()
}

func (c *simCluster) waitLeaderOtherThan(old *simNode) *simNode {
	c.t.Helper()
	if !c.runUntil(50*simElectionTicks, func() bool {
		l := c.leader()
		return l != nil && l != old && l.r.currentTerm > old.r.currentTerm
	}) {
		c.fail("no new leader other than %s:\n%s", old.id, c.describe())
	}
	return c.leader()
}

// Checklist 6: a proposal is acknowledged only if the entry committed at its index is
// its own (same term). The simulated clients check this on every apply; here a leader
// loses its uncommitted proposal to a new leader and must not acknowledge it.
func TestOverwrittenProposalNotAcknowledged(t *testing.T) {
	c := newSimCluster(t, 2, 3, 0, faults{})
	old := c.waitLeader()
	c.run(5)
	c.partition([]string{old.id})
	c.propose() // goes to the old leader, which cannot commit it
	c.waitLeaderOtherThan(old)
	for i := 0; i < 3; i++ {
		c.propose()
	}
	c.converge()
	if _, ok := c.acked["m1"]; ok {
		t.Fatal("a proposal overwritten by another leader was acknowledged")
	}
	if len(c.acked) != 3 {
		t.Fatalf("%d proposals acknowledged, want the 3 made to the new leader", len(c.acked))
	}
}

// Checklist 10: AppendEntries carries a bounded batch.
func TestAppendEntriesBounded(t *testing.T) {
	c := newSimCluster(t, 1, 3, 0, faults{})
	l := c.waitLeader()
	c.partition([]string{l.id})
	for i := 0; i < 50; i++ {
		l.r.Propose(EntryNormal, []byte("0123456789abcdef0123456789abcdef")) // 32 bytes; MaxMsgBytes is 64
		c.ready(l)
	}
	c.heal()
	c.net = nil
	largest := 0
	for i := 0; i < 100; i++ {
		c.step()
		for _, sm := range c.net {
			size := 0
			for _, e := range sm.m.Entries {
				size += len(e.Data)
			}
			largest = max(largest, size)
		}
	}
	if largest > 64 {
		t.Fatalf("an AppendEntries carried %d bytes of entries; the limit is 64", largest)
	}
	c.converge()
}

// Checklist 13: a removed server learns it was removed and does not campaign; a spare
// never campaigns.
func TestRemovedAndSpareServersDoNotCampaign(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 3, 1, faults{})
		l := c.waitLeader()
		removed := "n3"
		if l.id == removed {
			removed = "n2"
		}
		c.runUntil(100, func() bool { return c.changeMembership(confRemove, removed) })
		n3, n4 := c.nodes[removed], c.nodes["n4"]
		c.runUntil(100, func() bool { return n3.r.commitIndex >= l.r.configIndex() })
		if n3.r.promotable() {
			c.fail("n3 does not know it was removed:\n%s", c.describe())
		}
		terms := [2]uint64{n3.r.currentTerm, n4.r.currentTerm}
		c.partition([]string{removed}, []string{"n4"})
		c.run(30 * simElectionTicks)
		if n3.r.currentTerm != terms[0] || n4.r.currentTerm != terms[1] {
			c.fail("removed %s (term %d->%d) or spare n4 (term %d->%d) campaigned", removed, terms[0], n3.r.currentTerm, terms[1], n4.r.currentTerm)
		}
		c.converge()
	}
}

// --- Membership ---

// Dissertation Figure 4.6: the leader of {n1, n2} removes itself, and loses leadership
// before n2 has the new configuration. n2 cannot win without n1's vote, and n1 will not
// vote for n2's shorter log: n1 must campaign again, though it is not in its latest
// configuration, and finish the change. (Found by TestMembershipChangesUnderLoad, seed 45.)
func TestRemovedLeaderStillNeededCampaigns(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 2, 0, faults{})
		l := c.waitLeader()
		other := c.ids[0]
		if other == l.id {
			other = c.ids[1]
		}
		c.run(5)
		c.partition([]string{l.id}) // the change will not reach the other server
		if !c.changeMembership(confRemove, l.id) {
			c.fail("%s refused to remove itself", l.id)
		}
		// The other server times out and campaigns; it cannot win, but its higher term
		// deposes the leader once they can talk.
		c.run(3 * simElectionTicks)
		c.heal()
		if !c.runUntil(100*simElectionTicks, func() bool {
			nl := c.leader()
			return nl != nil && nl.id == other && len(nl.r.config().Members) == 1 && nl.r.commitIndex >= nl.r.configIndex()
		}) {
			c.fail("the removal of %s never completed:\n%s", l.id, c.describe())
		}
		if c.nodes[l.id].r.promotable() {
			c.fail("%s knows its removal committed but may still campaign", l.id)
		}
		c.converge()
	}
}

func TestRemoveLeader(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 3, 0, faults{})
		l := c.waitLeader()
		c.runUntil(100, func() bool { return c.changeMembership(confRemove, l.id) })
		if !c.runUntil(100*simElectionTicks, func() bool { nl := c.leader(); return nl != nil && nl != l }) {
			c.fail("no new leader after removing leader %s:\n%s", l.id, c.describe())
		}
		if l.r.role == leader {
			c.fail("removed leader %s still leads", l.id)
		}
		for i := 0; i < 5; i++ {
			c.propose()
		}
		c.converge()
		if got := c.leader().r.config().Members; len(got) != 2 {
			c.fail("members %v after removing %s", got, l.id)
		}
	}
}

func TestMembershipChangesUnderLoad(t *testing.T) {
	for _, seed := range seeds(40) {
		c := newSimCluster(t, seed, 3, 3, faults{drop: 0.05, maxDelay: 2})
		rng := rand.New(rand.NewSource(seed))
		c.waitLeader()
		for tick := 0; tick < 1500; tick++ {
			if rng.Intn(2) == 0 {
				c.propose()
			}
			if rng.Intn(30) == 0 {
				id := c.ids[rng.Intn(len(c.ids))]
				members := c.members()
				op := confAdd
				if contains(members, id) {
					op = confRemove
				}
				if op == confAdd || len(members) > 1 {
					c.changeMembership(op, id)
				}
			}
			if rng.Intn(200) == 0 {
				// Partition a random node away for a while (a node being added, sometimes).
				c.partition([]string{c.ids[rng.Intn(len(c.ids))]})
			}
			if rng.Intn(100) == 0 {
				c.heal()
			}
			c.step()
		}
		c.converge()
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// --- Randomized schedules: everything at once ---

// TestRandomizedSchedules runs many seeded schedules mixing every fault: message loss,
// duplication and reordering, partitions of leaders and followers, crashes at random
// moments (including between a Ready and its fsync), restarts, membership changes and
// leadership transfers, under a steady load of proposals. The invariants are checked after every step; at the
// end the cluster heals and every acknowledged proposal must be in every log once.
func TestRandomizedSchedules(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 50
	}
	var acked, committed, terms, crashes int
	schedules := seeds(n)
	defer func() {
		t.Logf("%d schedules: %d entries committed, %d proposals acknowledged, %d terms with a leader, %d crashes",
			len(schedules), committed, acked, terms, crashes)
	}()
	for _, seed := range schedules {
		rng := rand.New(rand.NewSource(seed))
		f := randomFaults(rng)
		members := []int{3, 5}[rng.Intn(2)]
		c := newSimCluster(t, seed, members, 1, f)
		for tick := 0; tick < 600; tick++ {
			switch x := rng.Intn(1000); {
			case x < 300:
				c.propose()
			case x < 310:
				if l := c.leader(); l != nil {
					c.crash(l.id)
				}
			case x < 320:
				c.crash(c.ids[rng.Intn(len(c.ids))])
			case x < 350:
				c.restart(c.ids[rng.Intn(len(c.ids))])
			case x < 358:
				perm := rng.Perm(len(c.ids))
				cut := 1 + rng.Intn(len(c.ids)/2)
				var g []string
				for _, i := range perm[:cut] {
					g = append(g, c.ids[i])
				}
				c.partition(g)
			case x < 370:
				c.heal()
			case x < 372:
				// Leadership transfer, to a random server or (with "") the best one.
				if l := c.leader(); l != nil {
					to := []string{"", c.ids[rng.Intn(len(c.ids))]}[rng.Intn(2)]
					if _, err := l.r.TransferLeadership(to); err == nil {
						c.logf("%s transfers leadership to %q", l.id, to)
					}
					c.ready(l)
				}
			case x < 375:
				id := c.ids[rng.Intn(len(c.ids))]
				if contains(c.members(), id) {
					if len(c.members()) > 2 {
						c.changeMembership(confRemove, id)
					}
				} else {
					c.changeMembership(confAdd, id)
				}
			}
			c.step()
		}
		c.converge()
		acked += len(c.acked)
		committed += len(c.committed)
		terms += len(c.leaders)
		crashes += c.crashes
	}
}

// Figure 2, AppendEntries rule 5: a follower commits at most up to the last entry the
// request proved to match, not to the end of its own log, which may hold stale entries
// of an old term beyond it.
func TestFollowerCommitBoundedByLastNewEntry(t *testing.T) {
	r := newRaft(coreConfig{ID: "b", ElectionTicks: 10, HeartbeatTicks: 1, MaxInflight: 1, Rand: rand.New(rand.NewSource(1))},
		persistentState{
			HardState: HardState{Term: 2},
			Entries:   []Entry{{Index: 1, Term: 1}, {Index: 2, Term: 1}, {Index: 3, Term: 2}, {Index: 4, Term: 2}},
			Bootstrap: Config{Members: []string{"a", "b", "c"}},
		})
	// The leader of term 3 has committed 4 entries of its own; it sends a short batch
	// that matches our prefix but stops before our stale entries 3 and 4.
	r.Step(Message{Type: MsgApp, From: "a", To: "b", Term: 3, PrevLogIndex: 1, PrevLogTerm: 1,
		Entries: []Entry{{Index: 2, Term: 1}}, LeaderCommit: 4})
	if r.commitIndex != 2 {
		t.Fatalf("commitIndex = %d; want 2 (entries 3 and 4 are stale and not proven to match)", r.commitIndex)
	}
}

// leaderOfThree is core "a" of a, b and c, elected in term 1 with b's vote, its no-op
// handed out and durable (not yet acknowledged).
func leaderOfThree() *raft {
	r := newRaft(coreConfig{ID: "a", ElectionTicks: 10, HeartbeatTicks: 1, MaxInflight: 8, Rand: rand.New(rand.NewSource(1))},
		persistentState{Bootstrap: Config{Members: []string{"a", "b", "c"}}})
	r.campaign(false)
	r.Advance(r.Ready())
	r.Step(Message{Type: MsgVoteResp, From: "b", To: "a", Term: 1, Success: true})
	r.Advance(r.Ready())
	return r
}

// The proposals and acknowledgements of one loop turn travel together: however many
// entries were proposed, each follower gets one AppendEntries with all of them, and
// however many acknowledgements moved the commit index, one that carries it: with the
// next entries, or alone at the next tick.
func TestOneAppendEntriesPerReady(t *testing.T) {
	r := leaderOfThree()
	followers := []string{"b", "c"}
	for _, f := range followers {
		r.Step(Message{Type: MsgAppResp, From: f, To: "a", Term: 1, Success: true, MatchIndex: 1})
	}
	r.Advance(r.Ready())
	appends := func(rd Ready) map[string][]Message {
		out := map[string][]Message{}
		for _, m := range rd.Messages {
			if m.Type == MsgApp {
				out[m.To] = append(out[m.To], m)
			}
		}
		return out
	}
	for i := range 10 {
		r.Propose(EntryNormal, []byte{byte(i)})
	}
	rd := r.Ready()
	for f, apps := range appends(rd) {
		if len(apps) != 1 || len(apps[0].Entries) != 10 {
			t.Fatalf("%s got %d AppendEntries for 10 proposals of one turn; want one with all 10", f, len(apps))
		}
	}
	r.Advance(rd)
	for index := uint64(2); index <= 11; index++ {
		for _, f := range followers {
			r.Step(Message{Type: MsgAppResp, From: f, To: "a", Term: 1, Success: true, MatchIndex: index})
		}
	}
	if r.commitIndex != 11 {
		t.Fatalf("commit %d after every entry was acknowledged; want 11", r.commitIndex)
	}
	// The news alone waits for the next tick; entries proposed meanwhile carry it.
	if got := appends(r.Ready()); len(got) != 0 {
		t.Fatalf("AppendEntries %v with only the commit index to tell, before the next tick; want none", got)
	}
	if r.TicksToNext() != 1 {
		t.Fatalf("TicksToNext %d with the commit index untold; want 1", r.TicksToNext())
	}
	r.heartbeatTicks, r.heartbeatElapsed = 5, 0 // this tick sends no heartbeat
	r.Tick()
	told := map[string][]uint64{}
	for _, m := range r.Ready().Messages {
		if m.Type == MsgApp && len(m.Entries) == 0 {
			told[m.To] = append(told[m.To], m.LeaderCommit)
		} else {
			t.Fatalf("%v at the tick after the commit index moved; want only AppendEntries without entries", m)
		}
	}
	for _, f := range followers {
		if len(told[f]) != 1 || told[f][0] != 11 {
			t.Fatalf("%s was sent commit indexes %v at the tick after the commit index moved 10 times; want one AppendEntries with 11", f, told[f])
		}
	}
	r.Tick()
	if got := appends(r.Ready()); len(got) != 0 {
		t.Fatalf("AppendEntries %v at the next tick, every follower told; want none", got)
	}
	r.Step(Message{Type: MsgAppResp, From: "b", To: "a", Term: 1, Success: true, MatchIndex: 11})
	index, _, _ := r.Propose(EntryNormal, []byte("y"))
	for _, f := range followers {
		r.Step(Message{Type: MsgAppResp, From: f, To: "a", Term: 1, Success: true, MatchIndex: index})
	}
	r.Advance(r.Ready())
	index, _, _ = r.Propose(EntryNormal, []byte("z"))
	got := appends(r.Ready())
	for _, f := range followers {
		if apps := got[f]; len(apps) != 1 || apps[0].LeaderCommit != index-1 || len(apps[0].Entries) != 1 {
			t.Fatalf("%s got %v for entry %d proposed after %d committed; want one AppendEntries with it and commit %d", f, apps, index, index-1, index-1)
		}
	}
}

// The leader counts itself toward a quorum only for entries on its own disk: a
// follower's acknowledgement may arrive before the leader's own write returns.
func TestLeaderCountsItselfOnlyWhenDurable(t *testing.T) {
	r := leaderOfThree()
	r.Step(Message{Type: MsgAppResp, From: "b", To: "a", Term: 1, Success: true, MatchIndex: 1})
	if r.commitIndex != 1 {
		t.Fatalf("no-op not committed: commit %d", r.commitIndex)
	}
	index, _, _ := r.Propose(EntryNormal, []byte("x"))
	rd := r.Ready() // the entry is being written, not yet durable
	r.Step(Message{Type: MsgAppResp, From: "b", To: "a", Term: 1, Success: true, MatchIndex: index})
	if r.commitIndex >= index {
		t.Fatalf("committed index %d with only one durable copy (b's); the leader's own write had not returned", index)
	}
	r.Advance(rd)
	if r.commitIndex != index {
		t.Fatalf("commit = %d after the leader's write returned; want %d", r.commitIndex, index)
	}
}

// A leader that a change removes steps down once the change commits (§4.2.2), and tells
// the others that it did before it lets go: with appends sent at the next Ready, it
// must send them before it becomes a follower, or they learn of the commit only from
// the next leader.
func TestRemovedLeaderSendsCommitBeforeSteppingDown(t *testing.T) {
	r := leaderOfThree()
	r.Step(Message{Type: MsgAppResp, From: "b", To: "a", Term: 1, Success: true, MatchIndex: 1})
	r.Advance(r.Ready())
	index, _, err := r.RemoveServer("a")
	if err != nil {
		t.Fatal(err)
	}
	r.Advance(r.Ready()) // the change is on a's disk and on its way to b and c
	for _, f := range []string{"b", "c"} {
		r.Step(Message{Type: MsgAppResp, From: f, To: "a", Term: 1, Success: true, MatchIndex: index})
	}
	if r.commitIndex != index || r.role != follower {
		t.Fatalf("commit %d, %v after b and c hold the change at %d; want it committed and a stepped down", r.commitIndex, r.role, index)
	}
	told := map[string]bool{}
	for _, m := range r.Ready().Messages {
		if m.Type == MsgApp && m.Term == 1 && m.LeaderCommit >= index {
			told[m.To] = true
		}
	}
	if !told["b"] || !told["c"] {
		t.Fatalf("the removed leader stepped down telling only %v that its removal (entry %d) committed; want b and c", told, index)
	}
}
