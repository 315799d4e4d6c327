// wipe_test.go: members that lose their data dir at random moments, under every fault
// the simulated cluster has, brought back the ways an operator brings them back: as the
// README says (removeserver, then addserver), or first wrongly, started again with the
// old command line on the empty data dir.
package main

import (
	"errors"
	"fmt"
	"math/rand"
	"testing"
)

// wipeOperator is the operator of a simulated cluster whose servers lose their data
// dir. It brings back one wiped server at a time: a cluster survives the loss of a
// minority, and only while a majority of its members still has the data dir the
// configuration knows them by.
type wipeOperator struct {
	c         *simCluster
	wiped     string // the server whose data dir was lost and that is not yet back ("": none)
	restarted bool   // the operator started it again on its new, empty data dir
	restartAt int    // the tick the operator starts it again
	noticeAt  int    // the tick the operator notices and starts removing and adding it back
	removedAt int    // the tick the operator saw it removed (-1: not yet)

	// The last change the operator asked for, and since when every one it asked for was
	// refused because another change is in progress (-1: the last was not).
	lastErr      error
	refusedSince int

	wipes, wrongStarts, readds int
}

func newWipeOperator(c *simCluster) *wipeOperator {
	return &wipeOperator{c: c, refusedSince: -1, removedAt: -1}
}

// mayWipe reports whether losing id's data dir leaves a majority of every configuration
// with the data dir it knows: no other server is wiped and not yet back.
func (o *wipeOperator) mayWipe(id string) bool {
	return o.wiped == "" || o.wiped == id
}

// knownIncarnation is the data dir n knows server by: as its core does, or, while it is
// down, as its disk says.
func knownIncarnation(n *simNode, server string) uint64 {
	if n.r != nil {
		return n.r.incarnationOf(server)
	}
	for i := len(n.disk.Entries) - 1; i >= 0; i-- {
		if e := n.disk.Entries[i]; e.Type == EntryConfig {
			if cc, err := decodeConfChange(e.Data); err == nil && cc.Config.incarnation(server) != 0 {
				return cc.Config.incarnation(server)
			}
		}
	}
	if inc := n.disk.Snapshot.Config.incarnation(server); inc != 0 {
		return inc
	}
	return n.disk.Bootstrap.incarnation(server)
}

// wipe loses id's data dir (a second time, if it is the one not yet back) and picks how
// the operator brings it back: as the README says, removed and added back, the server
// down meanwhile or started again first; or wrongly, started again at once with its old
// command line, and noticed only later.
func (o *wipeOperator) wipe(id string, rng *rand.Rand) {
	c := o.c
	c.wipe(id)
	o.wipes++
	o.wiped, o.restarted, o.refusedSince, o.removedAt = id, false, -1, -1
	if rng.Intn(2) == 0 {
		o.noticeAt, o.restartAt = c.now+rng.Intn(100), c.now+rng.Intn(300)
		c.logf("operator: will remove %s at %d, start it at %d", id, o.noticeAt, o.restartAt)
		return
	}
	o.wrongStarts++
	o.noticeAt, o.restartAt = c.now+50+rng.Intn(450), c.now
	c.logf("operator: starts the wiped %s with its old command line, notices at %d", id, o.noticeAt)
	o.act()
}

// act is what the operator does in a tick: start the wiped server when it means to, and
// once it noticed, ask the leader to remove it (while the configuration knows its
// address by the lost data dir) and to add it back, until the configuration that knows
// it by its new data dir commits.
func (o *wipeOperator) act() {
	c := o.c
	if o.wiped == "" {
		return
	}
	n := c.nodes[o.wiped]
	if !o.restarted && c.now >= o.restartAt {
		c.restart(o.wiped)
		o.restarted = true
	}
	l := c.leader()
	if c.now < o.noticeAt || l == nil {
		return
	}
	cfg := l.r.config()
	for _, id := range cfg.Members {
		if cfg.incarnation(id) == 0 {
			c.fail("%s's configuration %v knows %s by its address alone, not by its data dir", l.id, cfg.Members, id)
		}
	}
	var err error
	switch {
	case cfg.contains(o.wiped) && cfg.incarnation(o.wiped) != n.inc:
		if _, _, err = l.r.RemoveServer(o.wiped); err == nil {
			c.logf("operator: %s removes the wiped %s", l.id, o.wiped)
			o.removedAt = -1
		}
	case !cfg.contains(o.wiped):
		if o.removedAt < 0 {
			o.removedAt = c.now
		}
		if !o.restarted {
			return // it is added back once it runs
		}
		c.restart(o.wiped) // if it crashed meanwhile: the operator adding a server runs it
		if err = l.r.AddServer(o.wiped); err == nil {
			c.logf("operator: %s adds %s back", l.id, o.wiped)
		}
	case l.r.commitIndex >= l.r.configIndex():
		c.logf("operator: %s is back, with data dir %x", o.wiped, n.inc)
		o.readds++
		o.wiped, o.refusedSince, o.removedAt = "", -1, -1
		return
	default:
		return // the entry adding it back is on its way
	}
	c.ready(l)
	o.note(err)
}

// note records the outcome of a change or transfer the operator asked for.
func (o *wipeOperator) note(err error) {
	o.lastErr = err
	switch {
	case !errors.Is(err, errChangeInProgress):
		o.refusedSince = -1
	case o.refusedSince < 0:
		o.refusedSince = o.c.now
	}
}

// stuck describes how the operator's last requests were refused.
func (o *wipeOperator) stuck() string {
	if o.refusedSince < 0 {
		return fmt.Sprintf("last answer: %v", o.lastErr)
	}
	return fmt.Sprintf("refused since tick %d: %v", o.refusedSince, o.lastErr)
}

// settle runs until the wiped server is back; on a healed cluster, that takes at most
// wipeSettleTicks after the operator noticed.
func (o *wipeOperator) settle() {
	c := o.c
	c.t.Helper()
	start := c.now
	for o.wiped != "" {
		if c.now-max(start, o.noticeAt) > wipeSettleTicks {
			var ends []catchUpResult
			for _, cu := range c.catchUps {
				if cu.Server == o.wiped {
					ends = append(ends, cu)
				}
			}
			c.fail("the wiped %s was not added back within %d ticks of the cluster healing and the operator noticing (%s; its last catch-ups: %+v):\n%s", o.wiped, wipeSettleTicks, o.stuck(), ends[max(0, len(ends)-2):], c.describe())
		}
		o.act()
		c.step()
	}
}

// A change in progress ends within this many ticks of a healed cluster: a catch-up takes
// at most catchUpRounds rounds, each short once the network is, or is abandoned after
// catchUpIdleTimeout election timeouts without an answer.
const wipeSettleTicks = 300 * simElectionTicks

// finish heals the world, stops every fault and runs every server; the operator brings
// back the server still wiped, and then a leadership transfer and a membership change
// (the spare joins or leaves) go through. A change or transfer refused for ever (a
// catch-up that never ends) fails.
func (o *wipeOperator) finish(spare string, rng *rand.Rand) {
	c := o.c
	c.t.Helper()
	c.heal()
	c.faults = faults{}
	for _, id := range c.ids {
		c.restart(id)
	}
	if o.wiped != "" {
		o.restarted, o.noticeAt = true, c.now
	}
	o.settle()
	// Half the time, one more data dir is lost on the healed cluster (the leader's, a
	// third of those times): a leader that removes and adds back a server with nothing
	// else going on must start its replication from scratch.
	if rng.Intn(2) == 0 {
		for range 10 * simElectionTicks {
			id := c.ids[rng.Intn(len(c.ids))]
			if l := c.leader(); l != nil && rng.Intn(3) == 0 {
				id = l.id
			}
			if o.mayWipe(id) {
				o.wipe(id, rng)
				break
			}
			c.step()
		}
		o.settle()
	}
	o.lastErr, o.refusedSince = nil, -1
	try := func(what string, do func(l *simNode) error) {
		c.t.Helper()
		start := c.now
		for {
			if c.now-start > wipeSettleTicks {
				c.fail("%s was not taken within %d ticks of the operator asking (%s):\n%s", what, wipeSettleTicks, o.stuck(), c.describe())
			}
			if l := c.leader(); l != nil {
				err := do(l)
				c.ready(l)
				if o.note(err); err == nil {
					c.logf("operator: %s: %s", l.id, what)
					return
				}
			}
			c.step()
		}
	}
	try("a leadership transfer", func(l *simNode) error { _, err := l.r.TransferLeadership(""); return err })
	if contains(c.members(), spare) {
		try("the removal of "+spare, func(l *simNode) error { _, _, err := l.r.RemoveServer(spare); return err })
	} else {
		// Until it is added: a catch-up may end without, as when the transfer asked for
		// above deposes the leader after all.
		start, n := c.now, len(c.catchUps)
		for added := false; !added; added = c.catchUps[len(c.catchUps)-1].Err == nil {
			if c.now-start > wipeSettleTicks {
				c.fail("adding %s did not succeed within %d ticks: %+v:\n%s", spare, wipeSettleTicks, c.catchUps[n:], c.describe())
			}
			k := len(c.catchUps)
			try("the addition of "+spare, func(l *simNode) error { return l.r.AddServer(spare) })
			if !c.runUntil(wipeSettleTicks, func() bool { return len(c.catchUps) > k }) {
				c.fail("the catch-up of %s did not end within %d ticks:\n%s", spare, wipeSettleTicks, c.describe())
			}
		}
	}
}

// TestRandomizedWipes runs seeded schedules in which any server loses its data dir at
// any moment (a follower, the leader, the spare, one being added back), under message
// loss, duplication and reordering, partitions, crashes at Readys, late fsyncs and
// compaction, with proposals all along. The operator brings each back as the README says,
// or first starts it again wrongly on its empty data dir with its old command line, and
// lets one server at a time be wiped and not yet back. The invariants are checked after
// every step: a wiped server neither votes nor counts toward a commit as the member it
// was. At the end every wiped server is back, changes and transfers go through, and every
// acknowledged proposal is in every log once.
func TestRandomizedWipes(t *testing.T) {
	n := 40
	if testing.Short() {
		n = 10
	}
	var wipes, wrongStarts, readds, acked int
	schedules := seeds(n)
	defer func() {
		t.Logf("%d schedules: %d data dirs wiped (%d started again wrongly first), %d servers added back, %d proposals acknowledged",
			len(schedules), wipes, wrongStarts, readds, acked)
	}()
	for _, seed := range schedules {
		rng := rand.New(rand.NewSource(seed))
		f := randomFaults(rng)
		members := []int{3, 5}[rng.Intn(2)]
		c := newSimCluster(t, seed, members, 1, f)
		spare := c.ids[members]
		o := newWipeOperator(c)
		for tick := 0; tick < 1200; tick++ {
			switch x := rng.Intn(1000); {
			case x < 300:
				c.propose()
			case x < 302:
				if l := c.leader(); l != nil {
					c.crash(l.id)
				}
			case x < 307:
				c.crash(c.ids[rng.Intn(len(c.ids))])
			case x < 345:
				// A wiped server the operator keeps down stays down.
				if id := c.ids[rng.Intn(len(c.ids))]; id != o.wiped || o.restarted {
					c.restart(id)
				}
			case x < 350:
				perm := rng.Perm(len(c.ids))
				var g []string
				for _, i := range perm[:1+rng.Intn(len(c.ids)/2)] {
					g = append(g, c.ids[i])
				}
				c.partition(g)
			case x < 362:
				c.heal()
			case x < 364:
				if l := c.leader(); l != nil {
					to := []string{"", c.ids[rng.Intn(len(c.ids))]}[rng.Intn(2)]
					if _, err := l.r.TransferLeadership(to); err == nil {
						c.logf("%s transfers leadership to %q", l.id, to)
					}
					c.ready(l)
				}
			case x < 367:
				// The spare joins and leaves.
				if contains(c.members(), spare) {
					c.changeMembership(confRemove, spare)
				} else {
					c.changeMembership(confAdd, spare)
				}
			case x < 380:
				// A data dir is lost: the leader's, the spare's, or any server's.
				id := c.ids[rng.Intn(len(c.ids))]
				switch l := c.leader(); {
				case rng.Intn(3) == 0 && l != nil:
					id = l.id
				case rng.Intn(5) == 0:
					id = spare
				}
				if o.mayWipe(id) {
					o.wipe(id, rng)
				}
			}
			o.act()
			c.step()
		}
		o.finish(spare, rng)
		c.converge()
		wipes += o.wipes
		wrongStarts += o.wrongStarts
		readds += o.readds
		acked += len(c.acked)
	}
	if *seedFlag == 0 && (wipes == 0 || readds*3 < wipes) {
		t.Errorf("%d data dirs wiped and %d servers added back: the schedules hardly test wipes", wipes, readds)
	}
}

// leadAs makes id the leader by transferring leadership to it.
func (c *simCluster) leadAs(id string) {
	c.t.Helper()
	if !c.runUntil(100*simElectionTicks, func() bool {
		l := c.leader()
		if l != nil && l.id != id {
			l.r.TransferLeadership(id)
			c.ready(l)
		}
		return l != nil && l.id == id && l.r.commitIndex == l.r.log.lastIndex()
	}) {
		c.fail("%s did not become leader:\n%s", id, c.describe())
	}
}

// A wiped server knows the members by the first configuration's data dirs; it must
// still follow the leader, a member wiped and added back before, that adds it back.
// (Found by TestRandomizedWipes: servers refused any message from a data dir other than
// the one they knew at its address, a leader's included, and this one was never added
// back.)
func TestWipedServerTakesReAddedLeader(t *testing.T) {
	for _, seed := range seeds(10) {
		c := newSimCluster(t, seed, 3, 0, faults{})
		first := c.otherThan(c.waitLeader().id)
		c.wipe(first)
		c.restart(first)
		c.readdWiped(first)
		c.leadAs(first)
		second := c.otherThan(first)
		c.wipe(second)
		c.restart(second)
		c.readdWiped(second)
		c.converge()
	}
}

// A member down while another was wiped and added back knows that one by the data dir
// it lost; it must still follow it as leader, to learn of its new one. (Found by
// TestRandomizedWipes: it refused it, and never caught up.)
func TestLaggingMemberTakesReAddedLeader(t *testing.T) {
	for _, seed := range seeds(10) {
		c := newSimCluster(t, seed, 5, 0, faults{})
		wiped, lagging := c.readdWhileOneIsDown()
		c.leadAs(wiped)
		for range 10 {
			c.propose()
			c.step()
		}
		c.restart(lagging)
		c.converge()
	}
}

// A server removed and added back at once is still answering what the leader sent it
// as a removed server: the catch-up must not end on those answers, or the entry that
// adds it back records no data dir. (Found by TestRandomizedWipes.)
func TestReAddRecordsDataDir(t *testing.T) {
	for _, seed := range seeds(10) {
		c := newSimCluster(t, seed, 3, 1, faults{})
		l := c.waitLeader()
		if !c.runUntil(100, func() bool { return c.changeMembership(confAdd, "n4") }) ||
			!c.runUntil(50*simElectionTicks, func() bool { return l.r.config().contains("n4") && l.r.commitIndex >= l.r.configIndex() }) {
			c.fail("n4 was not added")
		}
		if !c.runUntil(100, func() bool { return c.changeMembership(confRemove, "n4") }) ||
			!c.runUntil(50*simElectionTicks, func() bool { return l.r.commitIndex >= l.r.configIndex() }) {
			c.fail("n4 was not removed")
		}
		n := len(c.catchUps)
		if !c.changeMembership(confAdd, "n4") || !c.runUntil(20*simElectionTicks, func() bool { return len(c.catchUps) > n }) || c.catchUps[n].Err != nil {
			c.fail("n4 was not added back: %+v", c.catchUps[n:])
		}
		if inc := l.r.config().incarnation("n4"); inc != c.nodes["n4"].inc {
			c.fail("the configuration that adds n4 back knows it by data dir %x, not its data dir %x", inc, c.nodes["n4"].inc)
		}
	}
}
