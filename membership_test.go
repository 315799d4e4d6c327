// membership_test.go: members that lose their disk, and servers removed and added back.
package main

import (
	"strings"
	"testing"
)

// hasWarning reports whether n was handed a warning that contains text.
func (n *simNode) hasWarning(text string) bool {
	for _, w := range n.warnings {
		if strings.Contains(w, text) {
			return true
		}
	}
	return false
}

// lastCopyWiped commits an entry on the leader and one follower only (the other is
// deaf), crashes the leader and wipes that follower, which comes back (on a binary from
// before incarnations, with old) while the third hears again: the one data dir left
// with the entry is down. It returns the leader, the wiped follower, the third and the
// entry's index.
func (c *simCluster) lastCopyWiped(old bool) (l *simNode, wiped, lags string, index uint64) {
	c.t.Helper()
	l = c.waitLeader()
	wiped = c.otherThan(l.id)
	lags = c.otherThan(l.id, wiped)
	c.deaf[lags] = true
	index = c.propose()
	if !c.runUntil(20*simElectionTicks, func() bool { return c.nodes[wiped].r.commitIndex >= index }) {
		c.fail("entry %d did not commit on %s and %s", index, l.id, wiped)
	}
	c.crash(l.id)
	c.wipe(wiped)
	if old {
		c.old = map[string]bool{wiped: true}
	}
	c.restart(wiped)
	delete(c.deaf, lags)
	return l, wiped, lags, index
}

// A member that comes back with an empty disk must not vote as the member it was: an
// entry committed on the old leader and on that member's lost disk would be lost to a
// candidate that lacks it, elected with the wiped member's vote.
func TestWipedMemberCannotVote(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 3, 0, faults{})
		l, keeps, lags, index := c.lastCopyWiped(false)
		// Only the old leader has the entry: until it is back, no leader may be elected.
		c.run(50 * simElectionTicks)
		if ld := c.leader(); ld != nil {
			c.fail("%s was elected while the only data dir with entry %d was down", ld.id, index)
		}
		if !c.nodes[keeps].hasWarning("lost its data") {
			c.fail("the wiped %s did not say that it lost its data: %q", keeps, c.nodes[keeps].warnings)
		}
		if !c.nodes[lags].hasWarning("refused") {
			c.fail("%s did not say that it refused the wiped %s: %q", lags, keeps, c.nodes[lags].warnings)
		}
		c.restart(l.id)
		c.readdWiped(keeps)
		c.converge()
	}
}

// readdWhileOneIsDown wipes a follower and adds it back, as the README says, while
// another follower is down (it knows the wiped one by the data dir it lost). It returns
// the two.
func (c *simCluster) readdWhileOneIsDown() (wiped, down string) {
	c.t.Helper()
	l := c.waitLeader()
	wiped = c.otherThan(l.id)
	down = c.otherThan(l.id, wiped)
	c.crash(down)
	c.wipe(wiped)
	c.restart(wiped)
	c.readdWiped(wiped)
	return wiped, down
}

// readdWiped removes the wiped member id and adds it back, as the README says to.
func (c *simCluster) readdWiped(id string) {
	c.t.Helper()
	if !c.runUntil(100*simElectionTicks, func() bool { return c.changeMembership(confRemove, id) }) {
		c.fail("the leader did not take the removal of the wiped %s", id)
	}
	if !c.runUntil(100*simElectionTicks, func() bool { return c.changeMembership(confAdd, id) }) {
		c.fail("the leader did not take the addition of %s", id)
	}
	n := len(c.catchUps)
	if !c.runUntil(2*catchUpIdleTimeout*simElectionTicks, func() bool { return len(c.catchUps) > n }) || c.catchUps[n].Err != nil {
		c.fail("adding back the wiped %s ended with %+v", id, c.catchUps[n:])
	}
	if !c.runUntil(50*simElectionTicks, func() bool { l := c.leader(); return l != nil && l.r.commitIndex >= c.catchUps[n].Index }) {
		c.fail("the entry adding back %s did not commit", id)
	}
}

// A member whose disk died is down and never hears that it was removed; given a new
// disk and added back, its catch-up starts from scratch and ends, and the changes and
// transfers after it go ahead. (The leader used to keep its old progress, ignore every
// refusal at or below the old match index, and never end the catch-up.)
func TestReAddAfterDiskLossCompletes(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 3, 0, faults{})
		l := c.waitLeader()
		dead := c.otherThan(l.id)
		for range 20 {
			c.propose()
			c.step()
		}
		c.run(5)
		c.crash(dead)
		if !c.runUntil(100, func() bool { return c.changeMembership(confRemove, dead) }) {
			c.fail("the leader did not take the removal of %s", dead)
		}
		if !c.runUntil(50*simElectionTicks, func() bool { return l.r.commitIndex >= l.r.configIndex() }) {
			c.fail("the removal of %s did not commit", dead)
		}
		c.wipe(dead)
		c.restart(dead)
		if !c.runUntil(100, func() bool { return c.changeMembership(confAdd, dead) }) {
			c.fail("the leader did not take the addition of %s", dead)
		}
		n := len(c.catchUps)
		if !c.runUntil(2*catchUpIdleTimeout*simElectionTicks, func() bool { return len(c.catchUps) > n }) || c.catchUps[n].Err != nil {
			c.fail("adding back %s with a new disk ended with %+v:\n%s", dead, c.catchUps[n:], c.describe())
		}
		c.run(10 * simElectionTicks)
		if _, err := c.leader().r.TransferLeadership(""); err != nil {
			c.fail("a transfer after adding back %s: %v", dead, err)
		}
		c.converge()
	}
}

// Two members and a spare: the spare is added, then removed (entry R); it receives the
// entries after R before R commits and never hears that R did, while the other member
// acknowledges only R. Wiped and added back, it starts from nothing: the leader must not
// count the entries the old disk acknowledged, or it commits them on its own disk alone.
func TestReAddedServerStartsFromScratch(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 2, 1, faults{})
		l := c.waitLeader()
		other := c.otherThan(l.id, "n3")
		c.run(5)
		if !c.changeMembership(confAdd, "n3") || !c.runUntil(50*simElectionTicks, func() bool {
			return l.r.config().contains("n3") && l.r.commitIndex >= l.r.configIndex()
		}) {
			c.fail("n3 was not added:\n%s", c.describe())
		}
		c.run(5)
		removal, _, err := l.r.RemoveServer("n3")
		if err != nil {
			c.fail("remove n3: %v", err)
		}
		// The other member takes nothing after R; n3 takes everything until R commits,
		// then nothing, so it never learns that its removal committed.
		c.lose = func(m Message) bool {
			if m.To == other && m.Type == MsgApp && len(m.Entries) > 0 && m.Entries[len(m.Entries)-1].Index > removal {
				return true
			}
			return m.To == "n3" && l.r.commitIndex >= removal
		}
		c.ready(l)
		for range 5 {
			c.propose()
		}
		if !c.runUntil(20*simElectionTicks, func() bool { return l.r.commitIndex >= removal }) {
			c.fail("the removal of n3 did not commit")
		}
		c.run(5)
		c.wipe("n3")
		c.restart("n3")
		c.lose = func(m Message) bool { // the other member still takes nothing after R
			return m.To == other && m.Type == MsgApp && len(m.Entries) > 0 && m.Entries[len(m.Entries)-1].Index > removal
		}
		if !c.changeMembership(confAdd, "n3") {
			c.fail("the leader refused to add n3 back")
		}
		c.run(3 * simElectionTicks) // durability is checked at every step
		c.heal()
		c.converge()
	}
}

// Two of three members are removed and wiped before either is added back. They are a
// majority of the first configuration, with empty logs; started again with their old
// command line they must not elect one of themselves (which would depose the real
// leader, or take writes of its own), and once added back they catch up.
func TestWipedMajorityOfFirstConfigDoesNotElect(t *testing.T) {
	for _, seed := range seeds(20) {
		c := newSimCluster(t, seed, 3, 0, faults{})
		l := c.waitLeader()
		for range 10 {
			c.propose()
			c.step()
		}
		term := l.r.currentTerm
		for _, id := range []string{c.otherThan(l.id), c.otherThan(l.id, c.otherThan(l.id))} {
			if !c.runUntil(100*simElectionTicks, func() bool { return c.changeMembership(confRemove, id) }) ||
				!c.runUntil(50*simElectionTicks, func() bool { return l.r.commitIndex >= l.r.configIndex() }) {
				c.fail("removing %s did not commit", id)
			}
		}
		wiped := c.otherThan(l.id)
		both := []string{wiped, c.otherThan(l.id, wiped)}
		for _, id := range both {
			c.wipe(id)
			c.restart(id)
		}
		for range 50 * simElectionTicks {
			c.propose()
			c.step()
			for _, id := range both {
				if r := c.nodes[id].r; r.role != follower || r.currentTerm != 0 {
					c.fail("the wiped %s is a %v in term %d", id, r.role, r.currentTerm)
				}
			}
		}
		if c.leader() != l || l.r.currentTerm != term {
			c.fail("the leader changed while two wiped servers ran:\n%s", c.describe())
		}
		for _, id := range both {
			if !c.runUntil(100*simElectionTicks, func() bool { return c.changeMembership(confAdd, id) }) {
				c.fail("the leader did not take the addition of %s", id)
			}
			n := len(c.catchUps)
			if !c.runUntil(2*catchUpIdleTimeout*simElectionTicks, func() bool { return len(c.catchUps) > n }) || c.catchUps[n].Err != nil {
				c.fail("adding back %s ended with %+v", id, c.catchUps[n:])
			}
			c.runUntil(50*simElectionTicks, func() bool { return l.r.commitIndex >= l.r.configIndex() })
		}
		c.converge()
	}
}

// A member whose data dir the configuration records, wiped and started again with a
// binary from before incarnations (a rollback), answers without an incarnation: that is
// not the member either. (Found in review: answers without one were taken by address.)
func TestWipedMemberOnOldBinaryCannotVote(t *testing.T) {
	for _, seed := range seeds(10) {
		c := newSimCluster(t, seed, 3, 0, faults{})
		_, _, _, index := c.lastCopyWiped(true)
		c.run(50 * simElectionTicks)
		if ld := c.leader(); ld != nil {
			c.fail("%s was elected while the only data dir with entry %d was down", ld.id, index)
		}
	}
}

// A leader that hands over leadership without a target (as on SIGTERM) picks a member
// it hears from, not a wiped one whose old data dir's match index stands highest.
// (Found in review: in an idle cluster the wiped member won the tie, refused the
// hand-off, and the leader stopped without one.)
func TestTransferSkipsMemberNotHeardFrom(t *testing.T) {
	for _, seed := range seeds(10) {
		c := newSimCluster(t, seed, 3, 0, faults{})
		l := c.waitLeader()
		for range 3 {
			c.propose()
		}
		c.run(5 * simElectionTicks)
		wiped := l.r.progressOrder()[0] // the one an idle tie picks
		c.wipe(wiped)
		c.restart(wiped)
		c.run(5 * simElectionTicks)
		target, err := l.r.TransferLeadership("")
		if err != nil || target == wiped {
			c.fail("the leader handed over to %q (%v), and %s lost its data", target, err, wiped)
		}
		c.ready(l)
		if !c.runUntil(5*simElectionTicks, func() bool { ld := c.leader(); return ld != nil && ld.id == target }) {
			c.fail("%s did not take over", target)
		}
	}
}

// A member added back with its new data dir hears from one that was down meanwhile and
// knows it by the old one: it must not tell the operator that it lost its data and must
// be added back (it was). (Found in review.)
func TestReAddedMemberNotToldToReAdd(t *testing.T) {
	for _, seed := range seeds(5) {
		c := newSimCluster(t, seed, 5, 0, faults{})
		wiped, lagging := c.readdWhileOneIsDown()
		c.run(5 * simElectionTicks)
		w := c.nodes[wiped]
		before := len(w.warnings)
		c.partition([]string{lagging, wiped})
		c.restart(lagging)
		c.run(10 * simElectionTicks)
		for _, s := range w.warnings[before:] {
			if strings.Contains(s, "lost its data") {
				c.fail("the re-added %s says: %s", wiped, s)
			}
		}
		if len(w.warnings) == before {
			c.fail("the re-added %s did not say that %s is behind", wiped, lagging)
		}
		c.heal()
		c.converge()
	}
}
