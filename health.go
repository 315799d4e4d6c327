// health.go: whether a cluster and its members are well, in two forms.
//
// raft -C health asks the members of -S at once, takes the membership from the first to
// answer, then asks every member at once, all within -timeout, and prints one row per
// member (role, term, indices, lag behind the leader, version, or why it did not
// answer); it exits 0 only when exactly one member leads and every member answered and
// follows it, so scripts and checks can use it.
//
// On the -metrics port, /health says the node is live (its event loop answers) and
// /ready that it is fit to serve: a member of a cluster with a leader it heard from
// within an election timeout, that has applied everything that leader told it was
// committed. Both answer 200 or 503 with a one-line reason.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/rpc"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

// probeWait bounds how long /health and /ready wait for the event loop.
const probeWait = time.Second

// coreStatus is the core's status, from the loop, if the loop takes the question within wait.
func (n *node) coreStatus(wait time.Duration) (status, error) {
	reply := make(chan status, 1)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case n.statusc <- reply:
		return <-reply, nil // the loop answers as it takes it
	case <-timer.C:
		return status{}, fmt.Errorf("its event loop did not answer within %v", wait)
	case <-n.donec:
		return status{}, fmt.Errorf("%s is shutting down", n.id)
	}
}

// serveHealth answers /health: 200 while the node's loop answers.
func (n *node) serveHealth(w http.ResponseWriter, _ *http.Request) {
	if _, err := n.coreStatus(probeWait); err != nil {
		probeAnswer(w, http.StatusServiceUnavailable, "not live: "+err.Error())
		return
	}
	probeAnswer(w, http.StatusOK, "live")
}

// serveReady answers /ready: 200 if the node is a member, hears from a leader, and has
// applied what that leader told it was committed.
func (n *node) serveReady(w http.ResponseWriter, _ *http.Request) {
	s, err := n.coreStatus(probeWait)
	if err == nil {
		err = readiness(s)
	}
	if err != nil {
		probeAnswer(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
		return
	}
	probeAnswer(w, http.StatusOK, fmt.Sprintf("ready: leader %s, term %d, applied %d", s.Leader, s.Term, s.Applied))
}

// readiness says why a node in state s is not ready to serve, or nil.
func readiness(s status) error {
	switch {
	case !s.Config.contains(s.ID):
		return fmt.Errorf("%s is not a member of the cluster (a spare waiting to be added, or removed)", s.ID)
	case !s.LeaderHeard:
		return errors.New("no leader heard from within an election timeout")
	case s.Applied < s.LeaderCommit:
		return fmt.Errorf("catching up: applied %d of the %d entries the leader %s has committed", s.Applied, s.LeaderCommit, s.Leader)
	}
	return nil
}

func probeAnswer(w http.ResponseWriter, code int, line string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, line)
}

// --- raft -C health ---

// healthReport is the cluster as health saw it; -json prints it as it is.
type healthReport struct {
	Healthy  bool           `json:"healthy"`
	Leader   string         `json:"leader,omitempty"` // the member that leads, if exactly one does
	Term     uint64         `json:"term,omitempty"`   // its term
	Cluster  string         `json:"cluster_id,omitempty"`
	Members  []memberHealth `json:"members"`
	Problems []string       `json:"problems,omitempty"` // why it is not healthy
}

// memberHealth is one row: a member's own status, or why it did not answer.
type memberHealth struct {
	ID        string  `json:"id"`
	Voter     bool    `json:"voter"`
	Answered  bool    `json:"answered"`
	Error     string  `json:"error,omitempty"` // why it did not answer
	Role      string  `json:"role,omitempty"`
	Term      uint64  `json:"term"`
	Leader    string  `json:"leader,omitempty"` // the leader it follows
	Commit    uint64  `json:"commit_index"`
	Applied   uint64  `json:"applied_index"`
	LastIndex uint64  `json:"last_log_index"`
	Lag       *uint64 `json:"lag,omitempty"` // entries of the leader's log it has not acknowledged, as the leader knows
	Version   string  `json:"version,omitempty"`
}

// health runs -C health and returns the exit status. Its whole wait is -timeout: the
// members of -S are asked at once, then the members the first to answer knows of, with
// what is left.
func (c *client) health(stdout io.Writer) int {
	deadline := time.Now().Add(c.cfg.Timeout)
	first, err := c.firstStatus(deadline)
	if err != nil {
		if c.cfg.JSON {
			out, _ := json.Marshal(healthReport{Members: []memberHealth{}, Problems: []string{err.Error()}})
			fmt.Fprintf(stdout, "%s\n", out)
		}
		fmt.Fprintf(c.stderr, "raft: health: %v\n", err)
		return exitFailed
	}
	rep := c.survey(first, deadline)
	if c.cfg.JSON {
		out, _ := json.Marshal(rep)
		fmt.Fprintf(stdout, "%s\n", out)
	} else {
		printHealth(stdout, rep)
	}
	if !rep.Healthy {
		fmt.Fprintf(c.stderr, "raft: health: %s\n", strings.Join(rep.Problems, "; "))
		return exitFailed
	}
	return exitOK
}

// firstStatus is the status of the member of -S that answers first. All are asked at
// once: one that is down or wedged costs nothing while another answers.
func (c *client) firstStatus(deadline time.Time) (NodeStatus, error) {
	type reply struct {
		server string
		answer
	}
	replies := make(chan reply, len(c.cfg.Servers)) // the slower ones finish into it unread
	for _, server := range c.cfg.Servers {
		go func() { replies <- reply{server, c.askOne(server, deadline)} }()
	}
	why := map[string]string{}
	for range c.cfg.Servers {
		r := <-replies
		if r.err == nil {
			return r.st, nil
		}
		why[r.server] = briefly(r.err, c.cfg.Timeout)
	}
	var all []string
	for _, server := range c.cfg.Servers {
		all = append(all, fmt.Sprintf("%s: %s", server, why[server]))
	}
	return NodeStatus{}, fmt.Errorf("no member answered (%s)", strings.Join(all, "; "))
}

// answer is one member's status, or why it did not give it.
type answer struct {
	st  NodeStatus
	err error
}

// survey asks every member that first knows of, and any more the leader knows of, for
// its status, all at once and by the deadline, and judges the cluster.
func (c *client) survey(first NodeStatus, deadline time.Time) healthReport {
	answers := map[string]answer{}
	ask := memberIDs(first)
	if first.Leader != noLeader && !slices.Contains(ask, first.Leader) {
		ask = append(ask, first.Leader)
	}
	for len(ask) > 0 {
		for id, a := range c.askAll(ask, deadline) {
			answers[id] = a
		}
		// The leader's membership is the one that counts: ask whoever it knows of and
		// first did not (first may be behind, or removed).
		ask = nil
		if lead, ok := soleLeader(answers); ok {
			for _, id := range memberIDs(lead) {
				if _, asked := answers[id]; !asked {
					ask = append(ask, id)
				}
			}
		}
	}
	view := first
	if lead, ok := soleLeader(answers); ok {
		view = lead
	}
	return judge(view, answers, c.cfg.Timeout)
}

// askAll asks each of ids for its status in parallel, by the deadline.
func (c *client) askAll(ids []string, deadline time.Time) map[string]answer {
	got := make([]answer, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { got[i] = c.askOne(id, deadline) })
	}
	wg.Wait()
	out := map[string]answer{}
	for i, id := range ids {
		out[id] = got[i]
	}
	return out
}

// askOne asks server for its status on a connection of its own, by the deadline.
func (c *client) askOne(server string, deadline time.Time) answer {
	wait := time.Until(deadline)
	if wait <= 0 {
		return answer{err: fmt.Errorf("not asked: -timeout (%v) was up", roundDuration(c.cfg.Timeout))}
	}
	conns := map[string]*rpc.Client{}
	defer dropConn(conns, server)
	st, err := askStatus(conns, server, wait, c.cfg.TLS)
	return answer{st, err}
}

// memberIDs lists the servers st names: the configuration's, and any being added.
func memberIDs(st NodeStatus) []string {
	var ids []string
	for _, m := range st.Members {
		ids = append(ids, m.ID)
	}
	return ids
}

// soleLeader is the status of the one member that answered as leader, if exactly one did.
func soleLeader(answers map[string]answer) (NodeStatus, bool) {
	var leaders []NodeStatus
	for _, a := range answers {
		if a.err == nil && a.st.Role == leader.String() {
			leaders = append(leaders, a.st)
		}
	}
	if len(leaders) != 1 {
		return NodeStatus{}, false
	}
	return leaders[0], true
}

// judge builds the report: a row per server view names, in its order, and the problems.
// Servers being added (not voters) are shown, but do not count. A voter that answered
// is not well unless it follows the leader (a member cut off from it, or a wiped data
// dir back at a member's address, follows none) and the leader hears from it.
func judge(view NodeStatus, answers map[string]answer, timeout time.Duration) healthReport {
	rep := healthReport{Members: []memberHealth{}, Cluster: view.Cluster}
	lead, hasLeader := soleLeader(answers)
	tracked := map[string]MemberStatus{}
	if hasLeader {
		rep.Leader, rep.Term = lead.ID, lead.Term
		for _, m := range lead.Members {
			tracked[m.ID] = m
		}
	}
	var leaders, silent, astray []string
	voters := 0
	for _, m := range view.Members {
		a := answers[m.ID]
		row := memberHealth{ID: m.ID, Voter: m.Voter, Answered: a.err == nil}
		if m.Voter {
			voters++
		}
		if a.err != nil {
			row.Error = briefly(a.err, timeout)
			if m.Voter {
				silent = append(silent, fmt.Sprintf("%s did not answer (%s)", m.ID, row.Error))
			}
		} else {
			st := a.st
			row.Role, row.Term, row.Leader, row.Commit, row.Applied, row.LastIndex, row.Version =
				st.Role, st.Term, st.Leader, st.Commit, st.Applied, st.LastIndex, shortVersion(st.Version)
			if st.Role == leader.String() {
				leaders = append(leaders, fmt.Sprintf("%s (term %d)", m.ID, st.Term))
			}
			if why := notFollowing(lead, hasLeader, m, st, tracked[m.ID]); why != "" {
				astray = append(astray, why)
			}
		}
		if tm, ok := tracked[m.ID]; ok {
			if behind, ok := lead.lag(tm); ok {
				row.Lag = &behind
			}
		}
		rep.Members = append(rep.Members, row)
	}
	switch {
	case len(leaders) == 0:
		rep.Problems = append(rep.Problems, fmt.Sprintf("no member leads (%d of %d voters answered; a leader needs a majority of them running)", voters-len(silent), voters))
	case len(leaders) > 1:
		rep.Problems = append(rep.Problems, "more than one member says it leads: "+strings.Join(leaders, ", ")+" (the one of the lower term has not heard of the newer yet)")
	}
	rep.Problems = append(rep.Problems, silent...)
	rep.Problems = append(rep.Problems, astray...)
	rep.Healthy = len(rep.Problems) == 0
	return rep
}

// staleContacts is how many election timeouts a leader may go without hearing from a
// member before health calls it lost: heartbeats go out several times an election
// timeout, so a slow round trip is not enough, and a follower that has not heard from
// the leader for twice it (the longest randomized timeout) has started an election.
const staleContacts = 2

// notFollowing says why voter m, which answered st, does not follow lead (the sole
// leader, if hasLeader) as it should, or "". tm is lead's record of it.
func notFollowing(lead NodeStatus, hasLeader bool, m MemberStatus, st NodeStatus, tm MemberStatus) string {
	if !hasLeader || !m.Voter || m.ID == lead.ID {
		return "" // without one leader, that is the problem already
	}
	switch {
	case st.Leader == noLeader:
		return fmt.Sprintf("%s follows no leader (term %d, commit %d; the leader %s: term %d, commit %d)", m.ID, st.Term, st.Commit, lead.ID, lead.Term, lead.Commit)
	case st.Leader != lead.ID:
		return fmt.Sprintf("%s follows %s, not the leader %s (its term %d, the leader's %d)", m.ID, st.Leader, lead.ID, st.Term, lead.Term)
	case tm.Tracked && lead.ElectionTimeoutMs > 0 && tm.LastContactMs > staleContacts*lead.ElectionTimeoutMs:
		return fmt.Sprintf("the leader %s last heard from %s %dms ago (its election timeout is %dms)", lead.ID, m.ID, tm.LastContactMs, lead.ElectionTimeoutMs)
	}
	return ""
}

// briefly is why a member did not answer, in a few words.
func briefly(err error, timeout time.Duration) string {
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: not running?"
	case errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("no answer within %v", timeout)
	}
	s := err.Error()
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// printHealth writes the report as a table for people, and a verdict.
func printHealth(w io.Writer, rep healthReport) {
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tVOTER\tROLE\tTERM\tCOMMIT\tAPPLIED\tLAST INDEX\tLAG\tVERSION\tERROR")
	for _, m := range rep.Members {
		lag := "-"
		if m.Lag != nil {
			lag = fmt.Sprint(*m.Lag)
		}
		if !m.Answered {
			fmt.Fprintf(tw, "%s\t%v\t-\t-\t-\t-\t-\t%s\t-\t%s\n", m.ID, m.Voter, lag, m.Error)
			continue
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t\n", m.ID, m.Voter, m.Role, m.Term, m.Commit, m.Applied, m.LastIndex, lag, orDash(m.Version))
	}
	tw.Flush()
	for _, line := range strings.Split(strings.TrimSuffix(table.String(), "\n"), "\n") {
		fmt.Fprintln(w, strings.TrimRight(line, " ")) // no padding after the last column
	}
	answered := 0
	for _, m := range rep.Members {
		if m.Answered {
			answered++
		}
	}
	verdict := "unhealthy: " + strings.Join(rep.Problems, "; ")
	if rep.Healthy {
		verdict = fmt.Sprintf("healthy: %s leads (term %d), and every member answered", rep.Leader, rep.Term)
	}
	fmt.Fprintf(w, "cluster %s, %d of %d answered; %s\n", orDash(rep.Cluster), answered, len(rep.Members), verdict)
}
