// jepsen_wipe_test.go: TestJepsen's wipes. The nemesis SIGKILLs a member (any original
// member, or the spare while it is one), deletes its data dir and starts it again with
// its old command line, as an operator wrongly would; the node must see that its data
// dir is new but the cluster is not, and wait as a spare. Some seconds later the operator
// notices and brings it back as the README says: removeserver, then addserver, through
// the real client and a member, until both are taken. At the end every wiped member is
// a member again and prints the same log, and nothing it acknowledged is lost.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

// wipedMember is a member whose data dir the nemesis deleted, on its way back.
type wipedMember struct {
	id       string
	at       time.Time // when its data dir was deleted
	noticeAt time.Time // when the operator notices and starts removing and adding it back
	next     time.Time // the operator's next attempt, after one that was not taken
	checked  bool      // its wrong start was checked (checkWrongStart)
	removed  bool      // it is out of the configuration, as far as the operator knows: add it back
	sure     bool      // removed, as a leader said (not only as a status seemed to show)
	attempts int
}

// What a node says when it starts on a new data dir: a member of -c, that the cluster is
// not new; the spare, which is not in -c and forms nothing, that it is not a member.
const (
	wrongStartWarning = "this data dir is new, but the cluster is not"
	spareStartNote    = "not a member, so it will not campaign"
)

func (r *jepsenRun) isWiped(id string) bool { return r.wiped != nil && id != "" && r.wiped.id == id }

// canWipe says whether id's data dir may be lost now: no other member is wiped and not
// yet back, id is a member (the spare only once its addition committed), and losing it
// leaves a majority of intact data dirs up, as canFault says of a kill.
func (r *jepsenRun) canWipe(id string) bool {
	if r.wiped != nil || (id == r.spare && r.spareState != spareIn) {
		return false
	}
	return r.canFault(id)
}

// forceWipe wipes an original member once forceWipeAt has come, if no original member
// has been wiped yet: every run must test a wipe. Until the wipe is allowed it holds
// back every other action, so the faults in the way heal. It reports whether it acted.
func (r *jepsenRun) forceWipe() bool {
	if r.memberWipes > 0 || time.Now().Before(r.forceWipeAt) {
		return false
	}
	var cands []string
	for _, id := range r.members {
		if r.canWipe(id) {
			cands = append(cands, id)
		}
	}
	if len(cands) == 0 {
		r.actions["held for the first wipe"]++
		return true
	}
	r.wipe(r.pickTarget(cands, "wipe"))
	return true
}

// wipeAny wipes a random member, half the time the leader.
func (r *jepsenRun) wipeAny() {
	var cands []string
	for _, id := range r.all {
		if r.canWipe(id) {
			cands = append(cands, id)
		}
	}
	if len(cands) == 0 {
		r.actions["skipped wipe"]++
		return
	}
	r.wipe(r.pickTarget(cands, "wipe"))
}

// pickTarget picks one of cands, half the time the leader if it is one, and counts the
// action.
func (r *jepsenRun) pickTarget(cands []string, kind string) string {
	target, label := cands[r.rng.Intn(len(cands))], kind
	if r.rng.Intn(2) == 0 {
		if l := r.leader(); slices.Contains(cands, l) {
			target, label = l, kind+" leader"
		}
	}
	if target == r.spare {
		label += " (spare)"
	}
	r.actions[label]++
	return target
}

// wipe SIGKILLs id, deletes its data dir and starts it again with the same command line
// (the same -d, now empty).
func (r *jepsenRun) wipe(id string) {
	p := r.c.procs[id]
	r.c.stop(id, syscall.SIGKILL)
	if err := os.RemoveAll(p.dir); err != nil {
		r.t.Fatalf("wipe %s: %v", id, err)
	}
	now := time.Now()
	r.wrongStarts = nil
	r.wiped = &wipedMember{id: id, at: now, noticeAt: now.Add(r.between(time.Second, 4*time.Second))}
	if id == r.spare {
		r.spareWipes++
	} else {
		r.memberWipes++
	}
	r.restart(id)
	r.logf("wiped %s's data dir and started it again with its old command line; the operator notices at +%v",
		r.name(id), time.Until(r.wiped.noticeAt).Round(time.Millisecond))
}

// intact is the members the operator may ask: running, not faulted, with the data dir
// the configuration knows.
func (r *jepsenRun) intact() []string {
	var out []string
	for _, id := range r.all {
		if (id == r.spare && r.spareState != spareIn) || r.down(id) {
			continue
		}
		out = append(out, id)
	}
	return out
}

// operatorAt is when the operator next acts, if a member is wiped and no change is under
// way.
func (r *jepsenRun) operatorAt() (time.Time, bool) {
	if r.wiped == nil || r.mem != nil {
		return time.Time{}, false
	}
	if r.wiped.next.After(r.wiped.noticeAt) {
		return r.wiped.next, true
	}
	return r.wiped.noticeAt, true
}

// operatorStep starts the operator's next change: removing the wiped member, or once it
// is out, adding it back (once it runs: the operator adding a server starts it first).
func (r *jepsenRun) operatorStep() {
	w := r.wiped
	if !w.checked {
		r.checkWrongStart()
		w.checked = true
	}
	retry := time.Now().Add(r.between(100*time.Millisecond, 400*time.Millisecond))
	vias := r.intact()
	if w.removed && (r.faults[w.id] != nil || !r.alive(w.id)) || len(vias) == 0 {
		w.next = retry
		return
	}
	cmd := "removeserver"
	if w.removed {
		cmd = "addserver"
	}
	timeout := jepsenOpTimeout
	if r.healed {
		timeout = jepsenHealTimeout
	}
	m := &memChange{add: w.removed, server: w.id, via: vias[r.rng.Intn(len(vias))], operator: true, res: make(chan raftRun, 1)}
	r.mem = m
	w.attempts++
	r.logf("operator: %s %s via %s (attempt %d)", cmd, r.name(w.id), r.name(m.via), w.attempts)
	bin := r.c.bin
	go func() { m.res <- runRaft(bin, "-C", cmd, "-m", m.server, "-S", m.via, "-timeout", timeout) }()
}

// checkWrongStart checks what the wiped member did when it was started on its empty
// data dir: it said that the cluster is not new and waits as a spare (the spare, that
// it is not a member), and it neither formed a cluster nor was elected.
func (r *jepsenRun) checkWrongStart() {
	w := r.wiped
	want := wrongStartWarning
	if w.id == r.spare {
		want = spareStartNote
	}
	warned := slices.ContainsFunc(r.wrongStarts, func(p *proc) bool { return strings.Contains(p.stderr.String(), want) })
	if !warned {
		if p := r.c.procs[w.id]; !p.stderr.waitLine(want) {
			r.t.Errorf("%s, started on its wiped data dir, did not say %q within %v:\n%s", r.name(w.id), want, e2eWait, p.stderr)
		}
	}
	for _, p := range r.wrongStarts {
		for _, bad := range []string{"formed a new cluster", "elected leader"} {
			if strings.Contains(p.stderr.String(), bad) {
				r.t.Errorf("%s, started on its wiped data dir, logged %q before it was added back:\n%s", r.name(w.id), bad, p.stderr)
			}
		}
	}
}

// operatorDone takes the outcome of the operator's change. The client's refusals
// "already a member" and "not a member" come from a leader whose configuration is
// committed (canChangeConfig), so they settle where the wiped member stands; an unknown
// removal is checked with the leader's status, and an unknown addition is asked again.
func (r *jepsenRun) operatorDone(m *memChange, res raftRun) {
	w := r.wiped
	name := r.name(w.id)
	w.next = time.Now().Add(r.between(100*time.Millisecond, 400*time.Millisecond))
	already := res.code == exitFailed && strings.Contains(res.stderr, refusedAlreadyMember)
	notMember := res.code == exitFailed && strings.Contains(res.stderr, refusedNotMember)
	outcome := "not taken"
	switch {
	case m.add && (res.code == exitOK || already && w.sure):
		// Back: only an addition after its removal committed adds it, with its new data
		// dir, so "already a member" means an earlier unknown one did.
		outcome = "added back"
		r.readds++
		r.readded = append(r.readded, w.id)
		if w.id == r.spare {
			r.spareState = spareIn
		}
		r.wiped, r.wrongStarts = nil, nil
	case m.add && already:
		// A status showed it removed, but that removal did not commit: remove it first.
		outcome = "still a member: remove it again"
		w.removed = false
	case m.add && res.code == exitUnknown:
		outcome = "unknown: ask again"
		if voter, ok := r.leaderSees(w.id); ok && voter {
			outcome = "unknown, and the leader shows it as a voter: ask again to be sure"
		}
	case !m.add && (res.code == exitOK || notMember):
		outcome = "removed"
		w.removed, w.sure = true, true
		if w.id == r.spare {
			r.spareState = spareOut
		}
		// Sometimes the operator restarts it (its old command line, its new data dir)
		// before adding it back; else it is added back as it runs.
		if r.rng.Intn(3) == 0 && r.faults[w.id] == nil && r.alive(w.id) {
			if err := r.c.stop(w.id, syscall.SIGTERM); err != nil {
				r.anomaly("%s exited with %v on SIGTERM", name, err)
			}
			r.restart(w.id)
			outcome += "; restarted it"
		}
	case !m.add && res.code == exitUnknown:
		outcome = "unknown"
		if voter, ok := r.leaderSees(w.id); ok && !voter {
			outcome = "unknown, and the leader shows it out: add it back"
			w.removed = true
		}
	}
	cmd := "remove"
	if m.add {
		cmd = "add"
	}
	r.actions["operator "+cmd+": "+strings.SplitN(outcome, ":", 2)[0]]++
	r.logf("operator: %s %s: exit %d: %s", cmd, name, res.code, outcome)
	r.noteChange("the operator's "+cmd+" of the wiped "+name, outcome != "not taken", res)
}

// statusOf asks id for its status.
func (r *jepsenRun) statusOf(id string) (NodeStatus, bool) {
	res := runRaft(r.c.bin, "-C", "status", "-json", "-S", id, "-timeout", "1s")
	var st NodeStatus
	if res.code != exitOK || json.Unmarshal([]byte(res.stdout), &st) != nil {
		return st, false
	}
	return st, true
}

// leaderSees asks the leader, through the intact members, whether server is a voter in
// its configuration; ok is false if no leader answered.
func (r *jepsenRun) leaderSees(server string) (voter, ok bool) {
	for _, id := range r.intact() {
		st, ok := r.statusOf(id)
		if ok && st.Role != "leader" && st.Leader != "" {
			st, ok = r.statusOf(st.Leader)
		}
		if !ok || st.Role != "leader" {
			continue
		}
		return slices.ContainsFunc(st.Members, func(m MemberStatus) bool { return m.ID == server && m.Voter }), true
	}
	return false, false
}

// stuckChange is a change the test wants taken that has been refused or left
// unresolved, in a row.
type stuckChange struct {
	since    time.Time
	attempts int
	reported bool
}

// noteChange records whether a change (or transfer) the nemesis asked for was taken,
// and fails the test if one stays refused or unresolved for jepsenFaultChangeBound and
// jepsenStuckAttempts attempts: the faults always leave a majority up. Once healed,
// untilTaken bounds every change instead.
func (r *jepsenRun) noteChange(what string, taken bool, res raftRun) {
	if r.healed {
		return
	}
	if taken {
		delete(r.stuck, what)
		return
	}
	s := r.stuck[what]
	if s == nil {
		s = &stuckChange{since: time.Now()}
		r.stuck[what] = s
	}
	s.attempts++
	if !s.reported && time.Since(s.since) > jepsenFaultChangeBound && s.attempts >= jepsenStuckAttempts {
		s.reported = true
		r.t.Errorf("%s was refused or unresolved for %v, %d attempts in a row, under faults that leave a majority of intact data dirs up; the last: %s",
			what, time.Since(s.since).Round(time.Millisecond), s.attempts, describeRun(res))
	}
}

func describeRun(res raftRun) string {
	return fmt.Sprintf("exit %d: %s", res.code, strings.TrimSpace(res.stdout+" "+res.stderr))
}

// untilTaken tries a change on the healed cluster until it is taken, and fails the test
// if it is not within jepsenChangeBound.
func (r *jepsenRun) untilTaken(what string, try func() (taken bool, last string)) bool {
	r.t.Helper()
	start := time.Now()
	for attempt := 1; ; attempt++ {
		taken, last := try()
		if taken {
			r.logf("%s: taken after %v (attempt %d)", what, time.Since(start).Round(time.Millisecond), attempt)
			return true
		}
		if time.Since(start) > jepsenChangeBound {
			r.t.Errorf("%s was not taken within %v of a healed cluster (%d attempts; the last: %s)", what, jepsenChangeBound, attempt, last)
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// settleWiped brings the wiped member back on the healed cluster: the operator notices
// now, if not yet.
func (r *jepsenRun) settleWiped() {
	if r.wiped == nil {
		return
	}
	w := r.wiped
	if w.noticeAt.After(time.Now()) {
		w.noticeAt = time.Now()
	}
	w.next = time.Time{}
	r.untilTaken("adding back the wiped "+r.name(w.id), func() (bool, string) {
		r.operatorStep()
		if r.mem == nil {
			return false, "no intact member to ask, or the wiped member is down"
		}
		res := <-r.mem.res
		r.memDone(res)
		return r.wiped == nil, describeRun(res)
	})
}

// flipSpare adds the spare if it is out, or removes it: on the healed cluster a change
// must be taken. (Not while a wiped member is still out: the test failed already.)
func (r *jepsenRun) flipSpare() {
	if r.wiped != nil {
		return
	}
	want, what := spareIn, "the addition of the spare"
	if r.spareState == spareIn {
		want, what = spareOut, "the removal of the spare"
	}
	r.untilTaken(what, func() (bool, string) {
		r.membership()
		if r.mem == nil {
			return false, "skipped"
		}
		res := <-r.mem.res
		r.memDone(res)
		return r.spareState == want, describeRun(res)
	})
}

// transfersTaken moves leadership on the healed cluster: to the most up-to-date member,
// then to every wiped member added back (still a member), which must win: the others
// must take it as a leader and vote for it with its new data dir.
func (r *jepsenRun) transfersTaken() {
	vias := r.intact()
	r.untilTaken("a leadership transfer", func() (bool, string) {
		via := vias[r.rng.Intn(len(vias))]
		res := runRaft(r.c.bin, "-C", "transfer", "-S", via, "-timeout", jepsenHealTimeout)
		return res.code == exitOK, describeRun(res)
	})
	seen := map[string]bool{}
	for _, w := range r.readded {
		if seen[w] || w == r.spare && r.spareState != spareIn {
			continue
		}
		seen[w] = true
		r.untilTaken("a leadership transfer to "+r.name(w)+", added back after a wipe", func() (bool, string) {
			via := vias[r.rng.Intn(len(vias))]
			res := runRaft(r.c.bin, "-C", "transfer", "-m", w, "-S", via, "-timeout", jepsenHealTimeout)
			won := strings.Contains(res.stdout, " to "+w+" (") || strings.Contains(res.stdout, w+" is already the leader")
			return res.code == exitOK && won, describeRun(res)
		})
	}
}

// checkMembers checks that every node of the final membership, the wiped ones added
// back included, knows exactly that membership, all voters.
func (r *jepsenRun) checkMembers(final []string) {
	want := slices.Clone(final)
	sort.Strings(want)
	for _, id := range final {
		st := r.c.status(id)
		var voters []string
		for _, m := range st.Members {
			if m.Voter {
				voters = append(voters, m.ID)
			}
		}
		sort.Strings(voters)
		if !slices.Equal(voters, want) {
			r.t.Errorf("%s's status shows the voters %v, want %v", r.name(id), r.names(voters), r.names(want))
		}
	}
}
