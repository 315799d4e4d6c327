// client.go: the command-line client. It sends commands to the members named by -S
// (trying them in turn, and going straight to a leader one of them names), retries
// while that is safe, and reports one of three outcomes: committed, not committed, or
// unknown.
//
// Each run of the client is a session (dissertation §6.3): its messages carry a random
// session id and a sequence number, so a message sent again after a lost answer or a
// leader change is applied once, and the retry gets the first answer. That is what lets
// the client retry through failures until -timeout instead of giving up with "unknown".
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/rpc"
	"strings"
	"text/tabwriter"
	"time"
)

const (
	minRetryWait = 10 * time.Millisecond
	maxRetryWait = 50 * time.Millisecond
	answerGrace  = time.Second // how much longer than its own wait the server may take to answer
)

// client talks to a cluster on behalf of one run of the binary.
type client struct {
	cfg     clientConfig
	stderr  io.Writer
	session uint64
	seq     uint64
	next    int                    // the member in cfg.Servers to try next
	leader  string                 // a leader a member named, tried first
	known   string                 // the leader the last answer named (leaderwatch.go)
	conns   map[string]*rpc.Client // one connection per member, kept across commands
	batch   *batcher               // if set, commands go through it instead (bench -mux)
	said    map[string]bool        // notes already written to stderr
}

// outcome is how one command ended.
type outcome struct {
	code int // exitOK, exitFailed or exitUnknown
	resp CommandResponse
	why  string // for exitFailed and exitUnknown
}

// runClient runs the client command and returns the exit status.
func runClient(cfg clientConfig, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &client{cfg: cfg, stderr: stderr, session: newSessionID(), conns: map[string]*rpc.Client{}, said: map[string]bool{}}
	defer c.close()
	switch {
	case cfg.Command == cmdStatus:
		return c.status(stdout)
	case cfg.Command == cmdBench:
		return runBench(benchConfig{Servers: cfg.Servers, N: int(cfg.N), Conc: cfg.Conc, Size: cfg.Size, Mux: cfg.Mux, Timeout: cfg.Timeout, TLS: cfg.TLS}, stdout, stderr)
	case cfg.Command == cmdGencerts:
		return runGencerts(cfg, stdout, stderr)
	case cfg.Stdin:
		return c.lines(stdin, stdout)
	}
	o := c.do(cfg.Message, time.Now().Add(cfg.Timeout))
	c.report(stdout, cfg.Message, o, false)
	return o.code
}

func newSessionID() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err) // crypto/rand does not fail on supported systems
		}
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

// lines sends one message per line of stdin, each with its own -timeout, and writes one
// result per line. It stops at the first message that does not commit.
func (c *client) lines(stdin io.Reader, stdout io.Writer) int {
	in := bufio.NewScanner(stdin)
	in.Buffer(make([]byte, 64<<10), 16<<20)
	for in.Scan() {
		msg := in.Text()
		if msg == "" {
			continue // an empty message cannot be sent
		}
		o := c.do(msg, time.Now().Add(c.cfg.Timeout))
		c.report(stdout, msg, o, true)
		if o.code != exitOK {
			return o.code
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(c.stderr, "raft: reading stdin: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// do runs one command until it succeeds, certainly fails, or the deadline passes.
func (c *client) do(message string, deadline time.Time) outcome {
	req := &CommandRequest{Command: c.cfg.Command, Message: message, From: c.cfg.From, N: c.cfg.N}
	// Retrying is safe when a second copy changes nothing: messages (the session
	// dedupes them), reads, and transfers (to the leader, a no-op).
	retrySafe := c.cfg.Command == cmdClient || c.cfg.Command == cmdRead || c.cfg.Command == cmdTransfer
	if c.cfg.Command == cmdClient {
		c.seq++
		req.Session, req.Seq = c.session, c.seq
	}
	wait := minRetryWait
	why, unknown := "no attempt finished", false
	for {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			if unknown {
				return outcome{code: exitUnknown, why: fmt.Sprintf("no answer within %v: %s; it may have committed", c.cfg.Timeout, why)}
			}
			return outcome{code: exitFailed, why: fmt.Sprintf("not committed after %v: %s", c.cfg.Timeout, why)}
		}
		req.Wait = remaining
		server := c.target()
		var w *leaderWatch
		if retrySafe {
			w = c.watch(server)
		}
		resp, err := c.call(server, req, w.cancel())
		w.end()
		switch {
		case errors.Is(err, errCanceled):
			// The member waited on led, and another leads now: it may have been cut off,
			// and its answer may never come. Go to the new leader.
			why = fmt.Sprintf("%s did not answer, and %s names %s as the leader now", server, w.by, w.leader)
			unknown = unknown || !errors.Is(err, errNotSent)
			c.leader = w.leader
		case errors.As(err, new(certError)):
			return outcome{code: exitFailed, why: err.Error()} // no retry makes a certificate trusted
		case errors.As(err, new(rpc.ServerError)):
			// The member answered without running the command (Raft.Command itself never
			// fails), e.g. one that takes only TLS: retrying will not change that.
			return outcome{code: exitFailed, why: fmt.Sprintf("%s refused it: %v", server, err)}
		case errors.Is(err, errNotSent):
			why = fmt.Sprintf("cannot reach %s (%v)", server, err) // err wraps two errors: errors.Unwrap gives nil
			c.moveOn(server)
		case err != nil:
			// It may have arrived and committed; only a retry can tell.
			why = fmt.Sprintf("lost %s after sending (%v)", server, err)
			if !retrySafe {
				return outcome{code: exitUnknown, why: why + "; it may have committed: look before retrying (-C read -m print)"}
			}
			unknown = true
			c.moveOn(server)
		default:
			if resp.ForwardedTo != "" {
				c.note(fmt.Sprintf("raft: %s is not the leader; it forwarded the command to the leader %s", server, resp.ForwardedTo))
			}
			if resp.Leader != noLeader {
				c.known = resp.Leader
			}
			switch resp.Status {
			case StatusOK:
				return outcome{code: exitOK, resp: resp}
			case StatusRejected:
				return outcome{code: exitFailed, resp: resp, why: "refused: " + resp.Error}
			case StatusUnknown:
				if !retrySafe {
					return outcome{code: exitUnknown, resp: resp, why: resp.Error + "; look before retrying (-C read -m print)"}
				}
				unknown, why = true, resp.Error
			case StatusRetry:
				why = resp.Error
			default:
				return outcome{code: exitUnknown, resp: resp, why: fmt.Sprintf("%s answered with status %d", server, resp.Status)}
			}
			if resp.Leader != noLeader && resp.Leader != server {
				c.leader = resp.Leader // go to it directly next time
			} else if resp.NotLeader {
				c.moveOn(server)
			}
		}
		time.Sleep(min(wait, time.Until(deadline)))
		wait = min(2*wait, maxRetryWait)
	}
}

// target is the member to send to: a leader someone named, else the next in -S.
func (c *client) target() string {
	if c.leader != noLeader {
		return c.leader
	}
	return c.cfg.Servers[c.next%len(c.cfg.Servers)]
}

// moveOn gives up on server for now: the next attempt goes to the next member.
func (c *client) moveOn(server string) {
	if server == c.leader {
		c.leader = noLeader
		return
	}
	c.next++
}

func (c *client) note(s string) {
	if !c.said[s] {
		c.said[s] = true
		fmt.Fprintln(c.stderr, s)
	}
}

// call sends one command and waits for the answer, or until cancel is closed
// (errCanceled). An error wrapping errNotSent means the command certainly never
// reached the server.
func (c *client) call(server string, req *CommandRequest, cancel <-chan struct{}) (CommandResponse, error) {
	if c.batch != nil {
		return c.batch.call(server, req, cancel)
	}
	var resp CommandResponse
	conn, err := c.conn(server, req.Wait)
	if err != nil {
		return resp, fmt.Errorf("%w: %w", errNotSent, err)
	}
	call := conn.Go("Raft.Command", req, &resp, make(chan *rpc.Call, 1))
	timer := time.NewTimer(req.Wait + answerGrace)
	defer timer.Stop()
	select {
	case <-call.Done:
		if errors.Is(call.Error, rpc.ErrShutdown) {
			// The connection was already closed by the other end: nothing was sent.
			c.drop(server)
			return resp, fmt.Errorf("%w: %w", errNotSent, call.Error)
		}
		if call.Error != nil {
			c.drop(server)
		}
		return resp, call.Error
	case <-timer.C:
		c.drop(server)
		return resp, fmt.Errorf("no answer within %v", req.Wait+answerGrace)
	case <-cancel:
		c.drop(server) // its answer, if it comes, has no one to go to
		return resp, errCanceled
	}
}

func (c *client) conn(server string, wait time.Duration) (*rpc.Client, error) {
	return connTo(c.conns, server, wait, c.cfg.TLS)
}

func (c *client) drop(server string) { dropConn(c.conns, server) }

// connTo is the connection to server in conns, dialed (for at most wait) if there is none.
func connTo(conns map[string]*rpc.Client, server string, wait time.Duration, keys *tlsKeys) (*rpc.Client, error) {
	if conn := conns[server]; conn != nil {
		return conn, nil
	}
	nc, err := dialConn(server, min(wait, dialTimeout), keys)
	if err != nil {
		return nil, err
	}
	conns[server] = rpc.NewClient(nc)
	return conns[server], nil
}

// dropConn closes and forgets the connection to server in conns.
func dropConn(conns map[string]*rpc.Client, server string) {
	if conn := conns[server]; conn != nil {
		conn.Close()
		delete(conns, server)
	}
}

func (c *client) close() {
	for server := range c.conns {
		c.drop(server)
	}
}

// report writes how a command ended: the result and where it committed on stdout (one
// line for each message in stdin mode), the reason for a failure on stderr; or one JSON
// object on stdout.
func (c *client) report(stdout io.Writer, message string, o outcome, oneLine bool) {
	if c.cfg.JSON {
		j := jsonResult{Command: c.cfg.Command, Message: message, Outcome: [...]string{exitOK: "ok", exitFailed: "failed", exitUnknown: "unknown"}[o.code],
			Index: o.resp.Index, Term: o.resp.Term, Leader: o.resp.Leader, Result: o.resp.Result, Error: o.why}
		out, _ := json.Marshal(j)
		fmt.Fprintf(stdout, "%s\n", out)
		if o.code != exitOK {
			fmt.Fprintf(c.stderr, "raft: %s: %s\n", c.describe(message), o.why)
		}
		return
	}
	if o.code != exitOK {
		prefix := ""
		if o.code == exitUnknown {
			prefix = "outcome unknown: "
		}
		fmt.Fprintf(c.stderr, "raft: %s%s: %s\n", prefix, c.describe(message), o.why)
		return
	}
	r := o.resp
	where := fmt.Sprintf("committed at index %d (term %d, leader %s)", r.Index, r.Term, r.Leader)
	if c.cfg.Command == cmdRead {
		where = fmt.Sprintf("read at index %d (term %d, leader %s)", r.Index, r.Term, r.Leader)
	}
	switch {
	case oneLine && r.Result != "":
		fmt.Fprintln(stdout, r.Result)
	case oneLine:
		fmt.Fprintln(stdout, where)
	default:
		if r.Result != "" {
			fmt.Fprintln(stdout, r.Result)
		}
		if r.Index > 0 { // a transfer appends nothing
			fmt.Fprintln(stdout, where)
		}
	}
}

// jsonResult is what -json prints for a command.
type jsonResult struct {
	Command string `json:"command"`
	Message string `json:"message,omitempty"`
	Outcome string `json:"outcome"` // ok, failed, unknown
	Index   uint64 `json:"index,omitempty"`
	Term    uint64 `json:"term,omitempty"`
	Leader  string `json:"leader,omitempty"`
	Result  string `json:"result,omitempty"`
	Error   string `json:"error,omitempty"`
}

func (c *client) describe(message string) string {
	switch c.cfg.Command {
	case cmdClient:
		return fmt.Sprintf("message %q", message)
	case cmdRead:
		return "read " + message
	case cmdAddServer:
		return "adding " + message
	case cmdRemoveServer:
		return "removing " + message
	case cmdTransfer:
		if message == "" {
			return "leadership transfer"
		}
		return "leadership transfer to " + message
	}
	return c.cfg.Command
}

// status asks the first member that answers for its view of the cluster.
func (c *client) status(stdout io.Writer) int {
	var why []string
	for _, server := range c.cfg.Servers {
		st, err := c.nodeStatus(server, c.cfg.Timeout)
		if err != nil {
			why = append(why, fmt.Sprintf("%s: %v", server, err))
			continue
		}
		if c.cfg.JSON {
			out, _ := json.Marshal(st)
			fmt.Fprintf(stdout, "%s\n", out)
		} else {
			printStatus(stdout, st)
		}
		return exitOK
	}
	fmt.Fprintf(c.stderr, "raft: status: no member answered: %s\n", strings.Join(why, "; "))
	return exitFailed
}

// nodeStatus asks one member for its status.
func (c *client) nodeStatus(server string, wait time.Duration) (NodeStatus, error) {
	return askStatus(c.conns, server, wait, c.cfg.TLS)
}

// askStatus asks server for its status, on its connection in conns, for at most wait.
func askStatus(conns map[string]*rpc.Client, server string, wait time.Duration, keys *tlsKeys) (NodeStatus, error) {
	var st NodeStatus
	conn, err := connTo(conns, server, wait, keys)
	if err != nil {
		return st, err
	}
	call := conn.Go("Raft.Status", &StatusRequest{}, &st, make(chan *rpc.Call, 1))
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-call.Done:
		err = call.Error
	case <-timer.C:
		err = fmt.Errorf("no answer within %v", wait)
	}
	if err != nil {
		dropConn(conns, server)
	}
	return st, err
}

// printStatus writes a node's status as a small table for people.
func printStatus(w io.Writer, st NodeStatus) {
	fmt.Fprintf(w, "%s: %s, term %d, leader %s\n", st.ID, st.Role, st.Term, orDash(st.Leader))
	fmt.Fprintf(w, "commit %d, applied %d, last log index %d, snapshot at %d, cluster %s\n", st.Commit, st.Applied, st.LastIndex, st.SnapshotIndex, st.Cluster)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tVOTER\tMATCH\tLAG\tLAST CONTACT")
	for _, m := range st.Members {
		match, lag, contact := "-", "-", "-"
		switch {
		case m.ID == st.ID:
			contact = "(this node)"
			if m.Tracked {
				match, lag = fmt.Sprint(m.Match), "0"
			}
		case m.Tracked:
			match, lag = fmt.Sprint(m.Match), fmt.Sprint(st.LastIndex-min(m.Match, st.LastIndex))
			contact = fmt.Sprintf("%dms ago", m.LastContactMs)
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\n", m.ID, m.Voter, match, lag, contact)
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
