// availability_test.go: core tests for what keeps a cluster serving: pre-vote,
// check-quorum, servers that must not disrupt (§4.2.3), catch-up of new servers before
// they vote (§4.2.1) and leadership transfer (§3.10).
package main

import (
	"math/rand"
	"strings"
	"testing"
)

// otherThan returns the first server id that is not one of ids.
func (c *simCluster) otherThan(ids ...string) string {
	for _, id := range c.ids {
		if !contains(ids, id) {
			return id
		}
	}
	return ""
}

// A follower cut off for many election timeouts does not raise its term (it only asks,
// by pre-vote, and nobody answers), so when it comes back the leader is not deposed.
func TestPreVoteIsolatedFollowerDoesNotDisrupt(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 3, 0, faults{})
		l := c.waitLeader()
		f := c.nodes[c.otherThan(l.id)]
		term := l.r.currentTerm
		c.partition([]string{f.id})
		for i := 0; i < 20; i++ {
			c.propose()
			c.run(simElectionTicks)
		}
		if f.r.currentTerm != term {
			c.fail("isolated %s went from term %d to %d", f.id, term, f.r.currentTerm)
		}
		if f.r.role != preCandidate {
			c.fail("isolated %s is %v; want a pre-candidate", f.id, f.r.role)
		}
		c.heal()
		if !c.runUntil(20*simElectionTicks, func() bool { return f.r.log.lastIndex() == l.r.log.lastIndex() }) {
			c.fail("%s did not catch up after healing:\n%s", f.id, c.describe())
		}
		if l.r.role != leader || l.r.currentTerm != term {
			c.fail("leader %s was deposed (role %v, term %d -> %d) by a returning follower", l.id, l.r.role, term, l.r.currentTerm)
		}
		c.converge()
	}
}

// A pre-vote is refused to a candidate whose log is behind, and granted (without
// changing the voter's term or vote) once no leader is heard from.
func TestPreVoteChangesNothing(t *testing.T) {
	r := newRaft(coreConfig{ID: "a", ElectionTicks: 10, HeartbeatTicks: 1, MaxInflight: 1, Rand: rand.New(rand.NewSource(1))},
		persistentState{HardState: HardState{Term: 3, Vote: "c"}, Entries: []Entry{{Index: 1, Term: 2}, {Index: 2, Term: 3}},
			Bootstrap: Config{Members: []string{"a", "b", "c"}}})
	ask := func(lastIndex, lastTerm uint64) Message {
		r.Step(Message{Type: MsgPreVote, From: "b", To: "a", Term: 4, LastLogIndex: lastIndex, LastLogTerm: lastTerm})
		rd := r.Ready()
		if len(rd.Messages) != 1 || rd.Messages[0].Type != MsgPreVoteResp {
			t.Fatalf("want one PreVoteReply, got %+v", rd.Messages)
		}
		if rd.HardState != nil || r.currentTerm != 3 || r.votedFor != "c" {
			t.Fatalf("a pre-vote changed term or vote: term %d vote %q, hard state %+v", r.currentTerm, r.votedFor, rd.HardState)
		}
		r.Advance(rd)
		return rd.Messages[0]
	}
	if m := ask(1, 3); m.Success {
		t.Fatal("pre-vote granted to a log shorter than ours")
	}
	if m := ask(2, 3); !m.Success || m.Term != 4 {
		t.Fatalf("pre-vote for an up-to-date log: %+v; want granted with term 4", m)
	}
}

// A leader that cannot hear from a majority steps down within two election timeouts,
// so clients are told to look elsewhere instead of waiting on it.
func TestCheckQuorumLeaderStepsDown(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 5, 0, faults{})
		l := c.waitLeader()
		c.partition([]string{l.id, c.otherThan(l.id)})
		if !c.runUntil(2*simElectionTicks, func() bool { return l.r.role != leader }) {
			c.fail("leader %s cut off from the majority still leads after two election timeouts", l.id)
		}
		if _, _, err := l.r.Propose(EntryNormal, []byte("x")); err != errNotLeader {
			c.fail("deposed leader took a proposal: %v", err)
		}
		// It says why, naming the members it did not hear from.
		why := l.r.status().QuorumLost
		if !strings.Contains(why, "no majority heard from within an election timeout") || !strings.Contains(why, "in contact with 2 of 5 members") {
			c.fail("the deposed leader says it stepped down because %q", why)
		}
		for _, id := range c.ids {
			if unheard := id != l.id && id != c.otherThan(l.id); unheard != strings.Contains(why, id) {
				c.fail("the deposed leader's reason %q names %s: %v, want %v", why, id, !unheard, unheard)
			}
		}
		c.waitLeaderOtherThan(l)
		c.converge()
	}
}

// Within an election timeout of hearing from its leader, a server ignores a RequestVote
// of a later term (§4.2.3): it neither adopts the term nor answers. A vote asked for by
// a leadership transfer is the exception.
func TestVoteIgnoredWhileLeaderKnown(t *testing.T) {
	r := newRaft(coreConfig{ID: "a", ElectionTicks: 10, HeartbeatTicks: 1, MaxInflight: 1, Rand: rand.New(rand.NewSource(1))},
		persistentState{HardState: HardState{Term: 3}, Bootstrap: Config{Members: []string{"a", "b", "c"}}})
	r.Step(Message{Type: MsgHeartbeat, From: "b", To: "a", Term: 3})
	r.Advance(r.Ready())
	r.Step(Message{Type: MsgVote, From: "c", To: "a", Term: 9})
	if rd := r.Ready(); r.currentTerm != 3 || len(rd.Messages) != 0 {
		t.Fatalf("a follower in contact with its leader took up term %d / answered %+v", r.currentTerm, rd.Messages)
	}
	r.Step(Message{Type: MsgVote, From: "c", To: "a", Term: 9, Transfer: true})
	if rd := r.Ready(); r.currentTerm != 9 || len(rd.Messages) != 1 || !rd.Messages[0].Success {
		t.Fatalf("a transfer vote was not granted: term %d, %+v", r.currentTerm, rd.Messages)
	}
	// Once the leader has been silent for an election timeout, votes count again.
	r2 := newRaft(coreConfig{ID: "a", ElectionTicks: 10, HeartbeatTicks: 1, MaxInflight: 1, Rand: rand.New(rand.NewSource(1))},
		persistentState{HardState: HardState{Term: 3}, Bootstrap: Config{Members: []string{"a", "b", "c"}}})
	r2.Step(Message{Type: MsgHeartbeat, From: "b", To: "a", Term: 3})
	r2.Advance(r2.Ready())
	for i := 0; i < 10; i++ {
		r2.electionElapsed++ // as Tick would, without starting an election
	}
	r2.Step(Message{Type: MsgVote, From: "c", To: "a", Term: 9})
	if rd := r2.Ready(); r2.currentTerm != 9 || len(rd.Messages) != 1 || !rd.Messages[0].Success {
		t.Fatalf("after the leader fell silent, the vote was not granted: term %d, %+v", r2.currentTerm, rd.Messages)
	}
}

// A vote request or reply from a server this one has never had in a configuration, with
// a term far ahead of its own, changes nothing (term, vote, leader, log) and is reported;
// the same term from a member is taken up, and so is a leader's, whoever it is: a new
// server (term 0, knowing only its -c) must follow the leader of a cluster of any age.
// (Found in review: refusing leaders too kept new servers out once the term passed 1000.)
func TestFarFutureTermFromNonMemberRefused(t *testing.T) {
	newCore := func() *raft {
		return newRaft(coreConfig{ID: "a", ElectionTicks: 10, HeartbeatTicks: 1, MaxInflight: 1, Rand: rand.New(rand.NewSource(1))},
			persistentState{HardState: HardState{Term: 3, Vote: "b"}, Entries: []Entry{{Index: 1, Term: 3}}, Bootstrap: Config{Members: []string{"a", "b", "c"}}})
	}
	far := uint64(3 + maxTermLead + 1)
	for _, typ := range []MsgType{MsgVote, MsgPreVote, MsgTimeoutNow, MsgAppResp, MsgVoteResp, MsgHeartbeatResp} {
		r := newCore()
		r.Step(Message{Type: typ, From: "x", To: "a", Term: far, LastLogIndex: 9, LastLogTerm: far, Commit: 1,
			Entries: []Entry{{Index: 2, Term: far}}, Snapshot: &SnapshotMeta{Index: 5, Term: far, Config: Config{Members: []string{"x"}}}})
		rd := r.Ready()
		if r.currentTerm != 3 || r.votedFor != "b" || r.log.lastIndex() != 1 || r.leader != noLeader || rd.HardState != nil || len(rd.Messages) != 0 || rd.Snapshot != nil {
			t.Errorf("%v from non-member x with term %d: term %d vote %q last index %d leader %q, ready %+v", typ, far, r.currentTerm, r.votedFor, r.log.lastIndex(), r.leader, rd)
		}
		if len(rd.Warnings) != 1 || !strings.Contains(rd.Warnings[0], "not a member") {
			t.Errorf("%v from non-member x: warnings %q", typ, rd.Warnings)
		}
	}
	r := newCore()
	r.Step(Message{Type: MsgHeartbeat, From: "c", To: "a", Term: far})
	if r.currentTerm != far || r.leader != "c" {
		t.Errorf("a member's heartbeat of term %d: term %d leader %q", far, r.currentTerm, r.leader)
	}
	for _, typ := range []MsgType{MsgHeartbeat, MsgApp} {
		r = newCore()
		r.Step(Message{Type: typ, From: "x", To: "a", Term: far})
		if r.currentTerm != far || r.leader != "x" {
			t.Errorf("%v of a non-member leader %d terms ahead: term %d leader %q", typ, far-3, r.currentTerm, r.leader)
		}
	}
}

// A server removed while it could not hear the cluster never learns of it and keeps
// trying to get elected; its messages reach the others. It must not raise their term
// or depose their leader (§4.2.3).
func TestRemovedServerDoesNotDisrupt(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 4, 0, faults{})
		l := c.waitLeader()
		gone := c.otherThan(l.id)
		c.deaf[gone] = true
		if !c.runUntil(100, func() bool { return c.changeMembership(confRemove, gone) }) {
			c.fail("the leader did not take the removal of %s", gone)
		}
		if !c.runUntil(50*simElectionTicks, func() bool { return l.r.commitIndex >= l.r.configIndex() }) {
			c.fail("removal of %s did not commit:\n%s", gone, c.describe())
		}
		term := l.r.currentTerm
		for i := 0; i < 30; i++ {
			c.propose()
			c.run(simElectionTicks)
		}
		if !c.nodes[gone].r.promotable() {
			c.fail("%s learned of its removal; the test needs it not to", gone)
		}
		if l.r.role != leader || l.r.currentTerm != term {
			c.fail("removed %s disrupted the cluster: leader %s is %v in term %d (was term %d)", gone, l.id, l.r.role, l.r.currentTerm, term)
		}
		c.converge()
	}
}

// --- Catch-up before voting (§4.2.1) ---

// A new server joins as a voter only once it holds nearly all of the log; until then the
// configuration does not count it, so commits never wait for it.
func TestCatchUpBeforeVoting(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 3, 1, faults{})
		l := c.waitLeader()
		for i := 0; i < 2000; i++ { // many round trips' worth for n4
			c.propose()
			if i%10 == 0 {
				c.step()
			}
		}
		c.run(3)
		if !c.changeMembership(confAdd, "n4") {
			c.fail("the leader refused to add n4")
		}
		joined := false
		for tick := 0; tick < 100*simElectionTicks && len(c.catchUps) == 0; tick++ {
			c.propose()
			c.step()
			if l.r.config().contains("n4") && !joined {
				joined = true
				// At the moment n4 becomes a voter, it lacks at most what was appended
				// in less than an election timeout (one proposal a tick here).
				if lag := l.r.configIndex() - l.r.progress["n4"].match; lag > simElectionTicks+2 {
					c.fail("n4 became a voter %d entries behind the leader", lag)
				}
			}
		}
		if len(c.catchUps) != 1 || c.catchUps[0].Err != nil || !joined {
			c.fail("catch-up of n4 ended with %+v (joined %v)", c.catchUps, joined)
		}
		c.converge()
		if !contains(c.members(), "n4") {
			c.fail("n4 is not a member after catching up: %v", c.members())
		}
	}
}

// Adding a server that does not answer fails after a while with membership unchanged,
// and another change can go ahead.
func TestCatchUpUnreachableServer(t *testing.T) {
	c := newSimCluster(t, 1, 3, 1, faults{})
	l := c.waitLeader()
	c.crash("n4")
	c.runUntil(100, func() bool { return c.changeMembership(confAdd, "n4") })
	if !c.runUntil(2*catchUpIdleTimeout*simElectionTicks, func() bool { return len(c.catchUps) > 0 }) {
		c.fail("catch-up of a dead server never ended")
	}
	if cu := c.catchUps[0]; cu.Err != errCatchUpUnreachable {
		c.fail("catch-up of a dead server: %+v; want errCatchUpUnreachable", cu)
	}
	if contains(l.r.config().Members, "n4") || l.r.progress["n4"] != nil {
		c.fail("a failed addition left n4 in the configuration %v or replicated to", l.r.config().Members)
	}
	if !c.changeMembership(confRemove, c.otherThan(l.id)) {
		c.fail("another change was refused after the failed addition")
	}
	c.converge()
}

// A server too slow to catch up (every round takes longer than an election timeout) is
// not added.
func TestCatchUpTooSlow(t *testing.T) {
	c := newSimCluster(t, 1, 3, 1, faults{})
	l := c.waitLeader()
	c.slow["n4"] = simElectionTicks // each way: a round trip takes two election timeouts
	c.runUntil(100, func() bool { return c.changeMembership(confAdd, "n4") })
	for tick := 0; tick < 100*catchUpRounds*simElectionTicks && len(c.catchUps) == 0; tick++ {
		c.propose()
		c.step()
	}
	if len(c.catchUps) != 1 || c.catchUps[0].Err != errCatchUpTooSlow {
		c.fail("catch-up of a slow server: %+v; want errCatchUpTooSlow", c.catchUps)
	}
	if contains(l.r.config().Members, "n4") {
		c.fail("a slow server was added")
	}
	c.converge()
}

// A leader that loses leadership during a catch-up says so; nothing was changed.
func TestCatchUpLeaderLost(t *testing.T) {
	c := newSimCluster(t, 1, 3, 1, faults{})
	l := c.waitLeader()
	c.crash("n4")
	c.runUntil(100, func() bool { return c.changeMembership(confAdd, "n4") })
	c.partition([]string{l.id})
	if !c.runUntil(4*simElectionTicks, func() bool { return len(c.catchUps) > 0 }) {
		c.fail("the deposed leader did not end its catch-up")
	}
	if cu := c.catchUps[0]; cu.Err != errCatchUpLeaderLost {
		c.fail("catch-up ended with %+v; want errCatchUpLeaderLost", cu)
	}
	c.converge()
	if contains(c.members(), "n4") {
		c.fail("n4 was added by a catch-up that failed")
	}
}

// --- Leadership transfer (§3.10) ---

// A transfer hands leadership to the named member in the very next term, with no
// election timeout lost; the old leader refuses proposals meanwhile.
func TestLeaderTransfer(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 3, 0, faults{})
		l := c.waitLeader()
		for i := 0; i < 20; i++ {
			c.propose()
		}
		target := c.otherThan(l.id)
		term := l.r.currentTerm
		if _, err := l.r.TransferLeadership(target); err != nil {
			c.fail("transfer to %s: %v", target, err)
		}
		if _, _, err := l.r.Propose(EntryNormal, []byte("x")); err != errTransferring {
			c.fail("proposal during a transfer: err = %v, want errTransferring", err)
		}
		c.ready(l)
		if !c.runUntil(simElectionTicks, func() bool { nl := c.leader(); return nl != nil && nl.id == target }) {
			c.fail("%s did not take over within an election timeout:\n%s", target, c.describe())
		}
		if got := c.nodes[target].r.currentTerm; got != term+1 {
			c.fail("%s took over in term %d; want %d (no failed election)", target, got, term+1)
		}
		c.converge()
	}
}

// With no target named, the most up-to-date member is chosen; a target that cannot
// take over leaves the old leader in charge after an election timeout.
func TestLeaderTransferChoiceAndTimeout(t *testing.T) {
	c := newSimCluster(t, 1, 3, 0, faults{})
	l := c.waitLeader()
	behind := c.otherThan(l.id)
	ahead := c.otherThan(l.id, behind)
	c.partition([]string{behind})
	for i := 0; i < 10; i++ {
		c.propose()
	}
	c.run(5)
	if to, err := l.r.TransferLeadership(""); err != nil || to != ahead {
		c.fail("transfer with no target chose %q (err %v); want the up-to-date %s", to, err, ahead)
	}
	c.ready(l)
	c.runUntil(2*simElectionTicks, func() bool { nl := c.leader(); return nl != nil && nl.id == ahead })
	nl := c.nodes[ahead]
	if nl.r.role != leader {
		c.fail("%s did not take over:\n%s", ahead, c.describe())
	}
	// Now transfer to the server that cannot hear anyone: it never takes over, and the
	// leader resumes after an election timeout.
	c.heal()
	c.run(2 * simElectionTicks)
	c.deaf[behind] = true
	if _, err := nl.r.TransferLeadership(behind); err != nil {
		c.fail("transfer to %s: %v", behind, err)
	}
	c.ready(nl)
	c.run(simElectionTicks)
	if nl.r.role != leader || nl.r.transferee != noLeader {
		c.fail("after a failed transfer %s is %v with transferee %q; want leader, no transfer", ahead, nl.r.role, nl.r.transferee)
	}
	if _, _, err := nl.r.Propose(EntryNormal, []byte("after")); err != nil {
		c.fail("leader refused a proposal after the transfer timed out: %v", err)
	}
	c.converge()
}

// A pre-vote from a server behind in terms is refused with the current term, which
// brings the asker up to date instead of letting it start a hopeless election.
func TestStalePreVoteRefusedWithTerm(t *testing.T) {
	r := newRaft(coreConfig{ID: "a", ElectionTicks: 10, HeartbeatTicks: 1, MaxInflight: 1, Rand: rand.New(rand.NewSource(1))},
		persistentState{HardState: HardState{Term: 6}, Bootstrap: Config{Members: []string{"a", "b", "c"}}})
	r.Step(Message{Type: MsgPreVote, From: "b", To: "a", Term: 4, LastLogIndex: 5, LastLogTerm: 3})
	rd := r.Ready()
	if len(rd.Messages) != 1 || rd.Messages[0].Success || rd.Messages[0].Term != 6 {
		t.Fatalf("stale pre-vote answered %+v; want a refusal in term 6", rd.Messages)
	}
}

// In an idle cluster a catch-up round whose end is already reached (nothing was
// appended during the previous one) is over at once; the addition must not wait for
// traffic that never comes. (Found in review: addserver hung, and blocked every later
// membership change, when the first round took longer than an election timeout.)
func TestCatchUpFinishesInIdleCluster(t *testing.T) {
	r := newRaft(coreConfig{ID: "a", ElectionTicks: 10, HeartbeatTicks: 3, MaxInflight: 4, Rand: rand.New(rand.NewSource(1))},
		persistentState{Bootstrap: Config{Members: []string{"a", "b", "c"}}})
	// answer plays b and c: every AppendEntries and heartbeat is acknowledged. What goes
	// to d is answered below; d echoes the catch-up's Context, as every server does.
	var dContext uint64
	answer := func() {
		rd := r.Ready()
		r.Advance(rd)
		for _, m := range rd.Messages {
			switch {
			case m.To == "d":
				if m.Type == MsgApp {
					dContext = m.Context
				}
			case m.Type == MsgHeartbeat:
				r.Step(Message{Type: MsgHeartbeatResp, From: m.To, To: "a", Term: m.Term})
			case m.Type == MsgApp:
				last := m.PrevLogIndex + uint64(len(m.Entries))
				r.Step(Message{Type: MsgAppResp, From: m.To, To: "a", Term: m.Term, Success: true, MatchIndex: last})
			}
		}
	}
	r.campaign(false)
	r.Step(Message{Type: MsgVoteResp, From: "b", To: "a", Term: 1, Success: true})
	for range 3 {
		answer()
	}
	if err := r.AddServer("d"); err != nil {
		t.Fatal(err)
	}
	for range 15 { // d takes longer than an election timeout to answer
		r.Tick()
		answer()
	}
	last := r.log.lastIndex()
	r.Step(Message{Type: MsgAppResp, From: "d", To: "a", Term: 1, Success: true, MatchIndex: last, Context: dContext})
	for range 3 * 10 { // then, with nothing to send, the heartbeats get no further
		r.Tick()
		answer()
		r.Step(Message{Type: MsgHeartbeatResp, From: "d", To: "a", Term: 1})
	}
	if r.catchUp != nil || !r.config().contains("d") {
		t.Fatalf("d holds the whole log, yet its catch-up is still open (round %d) and it is not added", r.catchUp.round)
	}
}

// While a server is being caught up, leadership is not transferred: the entry adding it
// would leave the target's log behind, and the transfer would fail (§3.10).
func TestTransferRefusedDuringCatchUp(t *testing.T) {
	c := newSimCluster(t, 1, 3, 1, faults{})
	l := c.waitLeader()
	c.crash("n4")
	c.runUntil(100, func() bool { return c.changeMembership(confAdd, "n4") })
	if _, err := l.r.TransferLeadership(""); err != errChangeInProgress {
		c.fail("transfer during a catch-up: err = %v, want errChangeInProgress", err)
	}
	c.converge()
}

// A server removed before it heard that its removal committed, then added back
// unsuccessfully, is still told of its removal: it must not be left to campaign.
func TestFailedReAddStillInformsRemovedServer(t *testing.T) {
	c := newSimCluster(t, 1, 3, 0, faults{})
	l := c.waitLeader()
	gone := c.otherThan(l.id)
	c.deaf[gone] = true
	c.runUntil(100, func() bool { return c.changeMembership(confRemove, gone) })
	c.runUntil(50*simElectionTicks, func() bool { return l.r.commitIndex >= l.r.configIndex() })
	if !c.changeMembership(confAdd, gone) {
		c.fail("re-adding %s was refused", gone)
	}
	if !c.runUntil(2*catchUpIdleTimeout*simElectionTicks, func() bool { return len(c.catchUps) > 0 }) || c.catchUps[0].Err != errCatchUpUnreachable {
		c.fail("re-adding a deaf server ended with %+v", c.catchUps)
	}
	delete(c.deaf, gone)
	if !c.runUntil(20*simElectionTicks, func() bool { return !c.nodes[gone].r.promotable() }) {
		c.fail("%s never learned that it was removed", gone)
	}
	c.converge()
}

// The case the lease exists for (§4.2.3): a removed server whose log is as long as
// anyone's (it has the entry removing it, but never hears that it committed) can pass
// the pre-vote's log check; the others must still refuse it while they hear a leader.
func TestRemovedServerWithFullLogDoesNotDisrupt(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 4, 0, faults{})
		l := c.waitLeader()
		gone := c.otherThan(l.id)
		c.runUntil(100, func() bool { return c.changeMembership(confRemove, gone) })
		g := c.nodes[gone]
		if !c.runUntil(10*simElectionTicks, func() bool { return g.r.log.lastIndex() == l.r.configIndex() }) {
			c.fail("%s never received its removal", gone)
		}
		// From now on it hears no leader, so never learns the removal committed; it
		// still hears answers to its own (pre-)votes.
		c.lose = func(m Message) bool { return m.To == gone && (m.Type == MsgApp || m.Type == MsgHeartbeat) }
		term := l.r.currentTerm
		c.run(30 * simElectionTicks)
		if g.r.log.lastIndex() != l.r.log.lastIndex() || !g.r.promotable() {
			c.fail("the test needs %s's log to be complete and it to campaign", gone)
		}
		if l.r.role != leader || l.r.currentTerm != term {
			c.fail("removed %s disrupted the cluster: leader %s is %v in term %d (was %d)", gone, l.id, l.r.role, l.r.currentTerm, term)
		}
		c.converge()
	}
}

// --- Linearizable reads (§6.4) ---

// readStates steps the cluster until n hands out read states, for at most ticks.
func (c *simCluster) readStates(n *simNode, ticks int) []ReadState {
	var got []ReadState
	c.runUntil(ticks, func() bool {
		got = append(got, n.readStates...)
		n.readStates = nil
		return len(got) > 0
	})
	return got
}

// A read is answered at the commit index it arrived at, once a majority has confirmed
// the leader in a round of heartbeats.
func TestReadIndex(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 3, 0, faults{drop: 0.1})
		l := c.waitLeader()
		c.runUntil(100, func() bool { t, _ := l.r.log.term(l.r.commitIndex); return t == l.r.currentTerm })
		for i := 0; i < 5; i++ {
			c.propose()
		}
		c.run(20)
		commit := l.r.commitIndex
		if err := l.r.ReadIndex(1); err != nil {
			c.fail("ReadIndex: %v", err)
		}
		c.ready(l)
		got := c.readStates(l, 10*simElectionTicks)
		if len(got) != 1 || got[0].Err != nil || got[0].Ctx != 1 || got[0].Index < commit {
			c.fail("read states %+v; want ctx 1 at index >= %d", got, commit)
		}
	}
}

// A leader cut off in a minority, which does not know yet that another was elected and
// has committed more, must not answer a read: it would be stale. Its read waits for a
// quorum that never comes, and fails when it steps down.
func TestReadIndexDeposedLeaderAnswersNothing(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 5, 0, faults{})
		old := c.waitLeader()
		c.runUntil(100, func() bool { t, _ := old.r.log.term(old.r.commitIndex); return t == old.r.currentTerm })
		c.partition([]string{old.id, c.otherThan(old.id)})
		nl := c.waitLeaderOtherThan(old)
		for i := 0; i < 5; i++ {
			c.propose()
		}
		c.runUntil(100, func() bool { return nl.r.commitIndex > old.r.commitIndex })
		if old.r.role != leader {
			c.partition([]string{old.id, c.otherThan(old.id)}) // the test wants it still leading
			continue
		}
		if err := old.r.ReadIndex(7); err != nil {
			c.fail("the old leader refused the read outright: %v", err)
		}
		c.ready(old)
		got := c.readStates(old, 4*simElectionTicks)
		if len(got) != 1 || got[0].Err == nil {
			c.fail("deposed leader %s answered a read: %+v (its commit %d, the new leader's %d)", old.id, got, old.r.commitIndex, nl.r.commitIndex)
		}
		c.converge()
	}
}

// A new leader answers no read until an entry of its term has committed: only then
// does it know the commit index.
func TestReadIndexWaitsForLeaderCommit(t *testing.T) {
	r := newRaft(coreConfig{ID: "a", ElectionTicks: 10, HeartbeatTicks: 1, MaxInflight: 1, Rand: rand.New(rand.NewSource(1))},
		persistentState{Bootstrap: Config{Members: []string{"a", "b", "c"}}})
	r.campaign(false)
	r.Step(Message{Type: MsgVoteResp, From: "b", To: "a", Term: 1, Success: true})
	if err := r.ReadIndex(1); err != errLeaderNotReady {
		t.Fatalf("read before the no-op committed: err = %v, want errLeaderNotReady", err)
	}
}
