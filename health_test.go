// health_test.go: tests of raft -C health and of /health and /ready.
package main

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// /ready asks a node what a load balancer needs to know: is it a member, does it hear
// from a leader, and has it applied what that leader committed, even while its own
// commit index is held back by a log that lags.
func TestReadiness(t *testing.T) {
	r := newRaft(coreConfig{ID: "b", ElectionTicks: 10, HeartbeatTicks: 1, MaxInflight: 1, Rand: rand.New(rand.NewSource(1))},
		persistentState{Bootstrap: Config{Members: []string{"a", "b", "c"}}})
	if err := readiness(r.status()); err == nil || !strings.Contains(err.Error(), "no leader heard from") {
		t.Fatalf("a new server: %v", err)
	}
	// The leader has committed 4 entries and sends the first two.
	r.Step(Message{Type: MsgApp, From: "a", To: "b", Term: 1, Entries: []Entry{{Index: 1, Term: 1}, {Index: 2, Term: 1}}, LeaderCommit: 4})
	r.Advance(r.Ready())
	if err := readiness(r.status()); err == nil || !strings.Contains(err.Error(), "catching up: applied 2 of the 4 entries the leader a has committed") {
		t.Fatalf("behind the leader's commit: %v", err)
	}
	r.Step(Message{Type: MsgApp, From: "a", To: "b", Term: 1, PrevLogIndex: 2, PrevLogTerm: 1, Entries: []Entry{{Index: 3, Term: 1}, {Index: 4, Term: 1}}, LeaderCommit: 4})
	r.Advance(r.Ready())
	if err := readiness(r.status()); err != nil {
		t.Fatalf("caught up: %v", err)
	}
	// A heartbeat says min(commit, match): it never lowers what the leader said before.
	r.Step(Message{Type: MsgHeartbeat, From: "a", To: "b", Term: 1, LeaderCommit: 1})
	if s := r.status(); s.LeaderCommit != 4 || readiness(s) != nil {
		t.Fatalf("after a heartbeat: leader commit %d, %v", s.LeaderCommit, readiness(s))
	}
	for range 10 {
		r.Tick()
	}
	if err := readiness(r.status()); err == nil || !strings.Contains(err.Error(), "no leader heard from within an election timeout") {
		t.Fatalf("an election timeout without the leader: %v", err)
	}
	spare := newRaft(coreConfig{ID: "d", ElectionTicks: 10, HeartbeatTicks: 1, MaxInflight: 1, Rand: rand.New(rand.NewSource(1))},
		persistentState{Bootstrap: Config{Members: []string{"a", "b", "c"}}})
	spare.Step(Message{Type: MsgHeartbeat, From: "a", To: "d", Term: 1})
	if err := readiness(spare.status()); err == nil || !strings.Contains(err.Error(), "d is not a member") {
		t.Fatalf("a spare: %v", err)
	}
	if err := readiness(leaderOfThree().status()); err != nil {
		t.Fatalf("a leader: %v", err)
	}
}

// A follower that hears only heartbeats (a snapshot is on its way to it, or the leader
// has not probed it since it restarted behind) is not ready while the leader has
// committed entries it lacks: a heartbeat carries the leader's whole commit index for
// readiness, though the follower commits only min(its match, that) by it. (Seen through
// the binary before: a follower restarted 30,000 entries behind answered "ready ...
// applied 140007" while the leader's commit was 170007.)
func TestReadyNotCaughtUpFromHeartbeats(t *testing.T) {
	lead := leaderOfThree()
	lead.Step(Message{Type: MsgAppResp, From: "c", To: "a", Term: 1, Success: true, MatchIndex: 1})
	lead.Advance(lead.Ready())
	if lead.commitIndex < 1 {
		t.Fatalf("leader commit %d", lead.commitIndex)
	}
	var hb *Message
	for range 3 {
		lead.Tick()
		rd := lead.Ready()
		for _, m := range rd.Messages {
			if m.Type == MsgHeartbeat && m.To == "b" {
				hb = &m
			}
		}
		lead.Advance(rd)
	}
	if hb == nil {
		t.Fatal("no heartbeat to b")
	}
	// b holds an entry at index 1 the leader has not checked (it never acknowledged
	// it): it must not commit it by the leader's commit index.
	b := newRaft(coreConfig{ID: "b", ElectionTicks: 10, HeartbeatTicks: 1, MaxInflight: 1, Rand: rand.New(rand.NewSource(2))},
		persistentState{Entries: []Entry{{Index: 1, Term: 1, Type: EntryNormal}}, Bootstrap: Config{Members: []string{"a", "b", "c"}}})
	b.Step(*hb)
	b.Advance(b.Ready())
	s := b.status()
	if err := readiness(s); err == nil || !strings.Contains(err.Error(), "catching up: applied 0 of the 1 entries") {
		t.Fatalf("b has applied %d, the leader committed %d, and /ready says %v (leaderCommit %d, from a heartbeat carrying %d)",
			s.Applied, lead.commitIndex, err, s.LeaderCommit, hb.LeaderCommit)
	}
	if b.commitIndex != 0 {
		t.Fatalf("b committed %d by a heartbeat from a leader that never checked its log", b.commitIndex)
	}
}

// A node whose loop does not answer is not live: /health says so within probeWait,
// and so does a node that is stopping.
func TestHealthOfAStuckLoop(t *testing.T) {
	n := &node{id: ":1", statusc: make(chan chan status), donec: make(chan struct{})} // no loop reads statusc
	start := time.Now()
	rec := httptest.NewRecorder()
	n.serveHealth(rec, httptest.NewRequest("GET", "/health", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Body.String() != "not live: its event loop did not answer within 1s\n" {
		t.Fatalf("/health of a stuck loop: %d %q", rec.Code, rec.Body)
	}
	if took := time.Since(start); took > 10*probeWait {
		t.Fatalf("/health of a stuck loop took %v", took)
	}
	close(n.donec)
	rec = httptest.NewRecorder()
	n.serveReady(rec, httptest.NewRequest("GET", "/ready", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "not ready: :1 is shutting down") {
		t.Fatalf("/ready of a stopping node: %d %q", rec.Code, rec.Body)
	}
}

// health runs against the real binary: a healthy cluster (exit 0), a member killed (it
// is listed as not answering, exit 1), a majority down (no leader, exit 1).
func TestEndToEndHealth(t *testing.T) {
	c, members, dead := runningCluster(t)
	lead := c.send(members[0], "hello").leader
	var followers []string
	for _, id := range members {
		if id != lead {
			followers = append(followers, id)
		}
	}

	r := c.client("-C", "health", "-S", followers[0])
	if r.code != exitOK || !strings.Contains(r.stdout, "healthy: "+lead+" leads (term ") || !strings.HasPrefix(r.stdout, "MEMBER ") {
		t.Fatalf("health of a healthy cluster: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	for _, id := range members {
		if !strings.Contains(r.stdout, "\n"+id+" ") {
			t.Errorf("health lists no row for %s:\n%s", id, r.stdout)
		}
	}
	rep := health(t, c, dead+","+followers[1]) // a dead member of -S first: the next is asked
	if rep.code != exitOK || !rep.Healthy || rep.Leader != lead || len(rep.Members) != 3 || len(rep.Problems) != 0 {
		t.Fatalf("health -json of a healthy cluster: %+v", rep)
	}
	for _, m := range rep.Members {
		if !m.Answered || m.Lag == nil || !m.Voter || m.Term != rep.Term || m.LastIndex == 0 || m.Version == "" {
			t.Errorf("healthy member: %+v", m)
		}
	}

	// A follower killed: listed, not answering, and why; exit 1.
	c.stop(followers[0], syscall.SIGKILL)
	r = c.client("-C", "health", "-S", lead)
	if r.code != exitFailed || !strings.Contains(r.stderr, followers[0]+" did not answer (connection refused") {
		t.Fatalf("health with %s down: exit %d, %q %q", followers[0], r.code, r.stdout, r.stderr)
	}
	row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(followers[0]) + ` .*$`).FindString(r.stdout)
	if !strings.Contains(row, "connection refused") {
		t.Fatalf("the row of %s, down: %q", followers[0], row)
	}
	rep = health(t, c, followers[1])
	if rep.code != exitFailed || rep.Healthy || rep.Leader != lead || len(rep.Problems) != 1 {
		t.Fatalf("health -json with %s down: %+v", followers[0], rep)
	}
	for _, m := range rep.Members {
		if m.Answered == (m.ID == followers[0]) {
			t.Errorf("member %+v", m)
		}
	}

	// The leader too: the last member knows no leader.
	c.stop(lead, syscall.SIGKILL)
	rep = health(t, c, followers[1])
	if rep.code != exitFailed || rep.Healthy || rep.Leader != "" || !strings.Contains(strings.Join(rep.Problems, "; "), "no member leads (1 of 3 voters answered") {
		t.Fatalf("health -json with a majority down: %+v", rep)
	}
	if r = c.client("-C", "health", "-S", lead, "-timeout", "1s"); r.code != exitFailed || !strings.Contains(r.stderr, "no member answered ("+lead+": connection refused") {
		t.Fatalf("health of nothing: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r = c.client("-C", "health", "-m", "x", "-S", lead); r.code != exitUsage || !strings.Contains(r.stderr, "-C health takes no -m") {
		t.Fatalf("health -m: exit %d, %q", r.code, r.stderr)
	}
}

// health's whole wait is -timeout, as every client command's: members of -S that are
// wedged (they accept, and never answer) cost no -timeout each while a later one
// answers. (It asked them in turn, each with a -timeout of its own, then the cluster
// with another: 3 s for -timeout 1s.)
func TestEndToEndHealthWaitsTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	addr := freeAddrs(t, 1)[0]
	c := newE2ECluster(t, []string{addr})
	c.start(addr)
	c.send(addr, "hello")
	const timeout, overrun = time.Second, 900 * time.Millisecond
	start := time.Now()
	r := c.client("-C", "health", "-S", silentServer(t)+","+silentServer(t)+","+addr, "-timeout", timeout.String())
	if took := time.Since(start); took > timeout+overrun || r.code != exitOK || !strings.Contains(r.stdout, "healthy: "+addr+" leads") {
		t.Fatalf("health -timeout %v, two wedged members of -S first: exit %d after %v, %q %q", timeout, r.code, took, r.stdout, r.stderr)
	}
}

// A voter that answers but follows no leader is not well: a wiped data dir back at a
// member's address (a stranger the members refuse) was "healthy", its row showing leader
// -, a commit behind, and the leader's stale lag of 0.
func TestEndToEndHealthMemberFollowsNoLeader(t *testing.T) {
	c, members, _ := runningCluster(t)
	lead := c.send(members[0], "a").leader
	wiped := members[0]
	if wiped == lead {
		wiped = members[1]
	}
	if p := c.wipe(wiped); !p.stderr.waitLine("this data dir is new, but the cluster is not") {
		t.Fatalf("the wiped %s did not say that it lost its data:\n%s", wiped, p.stderr)
	}
	c.send(lead, "b")
	r := c.client("-C", "health", "-S", lead)
	if r.code != exitFailed || !strings.Contains(r.stderr, wiped+" follows no leader (term 0, commit 0; the leader "+lead+": term ") ||
		!strings.Contains(r.stdout, "unhealthy: "+wiped+" follows no leader") {
		t.Fatalf("health with %s wiped: exit %d, %q %q", wiped, r.code, r.stdout, r.stderr)
	}
}

// judge's verdict on members that answered: each voter must follow the one leader, and
// the leader must have heard from it within staleContacts election timeouts.
func TestHealthJudgesFollowers(t *testing.T) {
	member := func(id string, contactMs int64) MemberStatus {
		return MemberStatus{ID: id, Voter: true, Tracked: true, Match: 9, LastContactMs: contactMs}
	}
	leaderSays := func(contactB int64) NodeStatus {
		return NodeStatus{ID: "a", Role: "leader", Term: 3, Leader: "a", Commit: 9, LastIndex: 9, ElectionTimeoutMs: 500,
			Members: []MemberStatus{member("a", 0), member("b", contactB), member("c", 10)}}
	}
	follower := func(id, leads string, term uint64) NodeStatus {
		return NodeStatus{ID: id, Role: "follower", Term: term, Leader: leads, Commit: 7, LastIndex: 9}
	}
	for _, tc := range []struct {
		name     string
		lead     NodeStatus
		b        NodeStatus
		problems string // "" for healthy
	}{
		{"well", leaderSays(10), follower("b", "a", 3), ""},
		{"a slow round trip", leaderSays(1000), follower("b", "a", 3), ""},
		{"follows no leader", leaderSays(10), follower("b", "", 3), "b follows no leader (term 3, commit 7; the leader a: term 3, commit 9)"},
		{"follows another", leaderSays(10), follower("b", "c", 2), "b follows c, not the leader a (its term 2, the leader's 3)"},
		{"not heard from", leaderSays(1001), follower("b", "a", 3), "the leader a last heard from b 1001ms ago (its election timeout is 500ms)"},
		{"an old leader", func() NodeStatus { l := leaderSays(5000); l.ElectionTimeoutMs = 0; return l }(), follower("b", "a", 3), ""},
	} {
		answers := map[string]answer{"a": {st: tc.lead}, "b": {st: tc.b}, "c": {st: follower("c", "a", 3)}}
		rep := judge(tc.lead, answers, time.Second)
		if got := strings.Join(rep.Problems, "; "); got != tc.problems || rep.Healthy != (tc.problems == "") {
			t.Errorf("%s: healthy %v, problems %q; want %q", tc.name, rep.Healthy, got, tc.problems)
		}
	}
}

// healthJSON is health -json's report and the exit status.
type healthJSON struct {
	healthReport
	code int
}

// health runs -C health -json against servers.
func health(t *testing.T, c *e2eCluster, servers string) healthJSON {
	t.Helper()
	r := c.client("-C", "health", "-json", "-S", servers, "-timeout", "2s")
	var rep healthJSON
	if err := json.Unmarshal([]byte(r.stdout), &rep.healthReport); err != nil || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("health -json: exit %d, not one JSON document (%v): %q %q", r.code, err, r.stdout, r.stderr)
	}
	rep.code = r.code
	return rep
}

// /health and /ready on the -metrics port of real nodes: a member of a healthy cluster
// is ready; a spare is live but not ready until it is added; a member that lost its
// majority stays live and stops being ready.
func TestEndToEndProbes(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	addrs := freeAddrs(t, 8)
	members, spare, probes := addrs[:3], addrs[3], addrs[4:]
	c := newE2ECluster(t, members)
	for i, id := range append(members, spare) {
		_, port, _ := net.SplitHostPort(id)
		c.startWith(id, "-c", c.members, "-p", port, "-metrics", probes[i])
	}
	c.send(members[0], "hello")
	for i := range members {
		waitProbe(t, probes[i], "/ready", http.StatusOK, "ready: leader ")
		waitProbe(t, probes[i], "/health", http.StatusOK, "live")
	}
	waitProbe(t, probes[3], "/health", http.StatusOK, "live")
	waitProbe(t, probes[3], "/ready", http.StatusServiceUnavailable, "not ready: "+spare+" is not a member of the cluster")
	if r := c.client("-C", "addserver", "-m", spare, "-S", members[0]); r.code != exitOK {
		t.Fatalf("addserver: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	waitProbe(t, probes[3], "/ready", http.StatusOK, "ready: leader ")

	// Four members: two down is no majority.
	c.stop(members[1], syscall.SIGKILL)
	c.stop(members[2], syscall.SIGKILL)
	waitProbe(t, probes[0], "/ready", http.StatusServiceUnavailable, "not ready: no leader heard from within an election timeout")
	waitProbe(t, probes[0], "/health", http.StatusOK, "live")
}

// waitProbe polls url until it answers code with a body that starts with prefix.
func waitProbe(t *testing.T, addr, path string, code int, prefix string) {
	t.Helper()
	var got int
	var body string
	for deadline := time.Now().Add(e2eWait); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got, body = get(t, "http://"+addr+path); got == code && strings.HasPrefix(body, prefix) {
			if strings.Count(body, "\n") != 1 {
				t.Fatalf("GET %s%s: %q is not one line", addr, path, body)
			}
			return
		}
	}
	t.Fatalf("GET %s%s: %d %q; want %d %q...", addr, path, got, body, code, prefix)
}

// /ready of a follower restarted far behind (the leader compacted its log past it, so
// it catches up by a snapshot while it hears heartbeats) says "ready" only once it has
// applied what the leader had committed before it restarted.
func TestEndToEndReadyWhileCatchingUp(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	addrs := freeAddrs(t, 6)
	members, probes := addrs[:3], addrs[3:]
	c := newE2ECluster(t, members)
	c.extra = []string{"-snapshot-entries", "1000"}
	probeOf := map[string]string{}
	for i, id := range members {
		_, port, _ := net.SplitHostPort(id)
		c.startWith(id, "-c", c.members, "-p", port, "-metrics", probes[i])
		probeOf[id] = probes[i]
	}
	lead := c.send(members[0], "hello").leader
	behind := members[0]
	if behind == lead {
		behind = members[1]
	}
	c.stop(behind, syscall.SIGKILL)
	if r := c.client("-C", "bench", "-n", "20000", "-S", lead); r.code != exitOK {
		t.Fatalf("bench: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	committed := c.status(lead).Commit
	_, port, _ := net.SplitHostPort(behind)
	c.startWith(behind, "-c", c.members, "-p", port, "-metrics", probeOf[behind])
	readyRE := regexp.MustCompile(`^ready: leader \S+, term \d+, applied (\d+)\n$`)
	polls, notReady := 0, 0
	for deadline := time.Now().Add(e2eWait); ; polls++ {
		if polls > 0 {
			time.Sleep(5 * time.Millisecond) // a load balancer's probe, only often enough to see a short window
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready with %d applied within %v (%d polls)", behind, committed, e2eWait, polls)
		}
		code, body := get(t, "http://"+probeOf[behind]+"/ready")
		if code != http.StatusOK {
			notReady++
			continue
		}
		m := readyRE.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("/ready of %s: %q", behind, body)
		}
		var applied uint64
		fmt.Sscan(m[1], &applied)
		if applied < committed {
			t.Fatalf("/ready of %s says %q while the leader had committed %d before it restarted (poll %d, %d not ready before)",
				behind, strings.TrimSpace(body), committed, polls, notReady)
		}
		break
	}
	t.Logf("%d polls said not ready before %s was ready", notReady, behind)
}
