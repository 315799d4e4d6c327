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
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/rpc"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

const (
	minRetryWait = 10 * time.Millisecond
	maxRetryWait = 50 * time.Millisecond
	// The most of its remaining time the client keeps for itself when it tells a member
	// how long it may take: the answer must still reach the client (through a
	// forwarding follower, two hops) before -timeout is up.
	maxAnswerReserve = 250 * time.Millisecond
)

// serverWait is how long a member may take to answer when the client has remaining
// left of its -timeout: a tenth less, and at most maxAnswerReserve less. The client
// itself waits no longer than remaining: its whole wait is -timeout.
func serverWait(remaining time.Duration) time.Duration {
	return remaining - min(remaining/10, maxAnswerReserve)
}

// membershipHint is what to do after an addserver or removeserver whose outcome is unknown.
const membershipHint = "look before retrying: -C status shows the members"

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
	case cfg.Command == cmdHealth:
		return c.health(stdout)
	case cfg.Command == cmdBackup:
		return c.backup(stdout)
	case cfg.Command == cmdBench:
		return runBench(benchConfig{Servers: cfg.Servers, N: int(cfg.N), Conc: cfg.Conc, Size: cfg.Size, Mux: cfg.Mux, Timeout: cfg.Timeout, TLS: cfg.TLS, JSON: cfg.JSON}, stdout, stderr)
	case cfg.Command == cmdGencerts:
		return runGencerts(cfg, stdout, stderr)
	case cfg.Command == cmdWatch:
		return runWatch(cfg, stdout, stderr, interrupted())
	case cfg.Stdin:
		return c.lines(stdin, stdout)
	}
	o := c.do(cfg.Message, time.Now().Add(cfg.Timeout))
	c.report(stdout, cfg.Message, o, 0)
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
// result per line. It stops at the first message that does not commit. An empty line
// cannot be a message: it is skipped, and said so on stderr.
func (c *client) lines(stdin io.Reader, stdout io.Writer) int {
	in := bufio.NewScanner(stdin)
	in.Buffer(make([]byte, 64<<10), 16<<20)
	line := 0
	for in.Scan() {
		line++
		msg := in.Text()
		if msg == "" {
			fmt.Fprintf(c.stderr, "raft: line %d is empty: skipped (an empty message cannot be sent)\n", line)
			continue
		}
		o := c.do(msg, time.Now().Add(c.cfg.Timeout))
		c.report(stdout, msg, o, line)
		if o.code != exitOK {
			return o.code
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(c.stderr, "raft: reading stdin, line %d: %v (a line is at most 16 MiB)\n", line+1, err)
		return exitFailed
	}
	return exitOK
}

// do runs one command until it succeeds, certainly fails, or the deadline passes.
func (c *client) do(message string, deadline time.Time) outcome {
	req := &CommandRequest{Command: c.cfg.Command, Message: message, From: c.cfg.From, N: c.cfg.N, AsList: c.cfg.JSON}
	// Retrying is safe when a second copy changes nothing: messages (the session
	// dedupes them), reads, and transfers (to the leader, a no-op).
	retrySafe := c.cfg.Command == cmdClient || c.cfg.Command == cmdRead || c.cfg.Command == cmdTransfer
	// A read changes nothing: one that got no answer did not happen, and never ends
	// "unknown".
	changes := c.cfg.Command != cmdRead
	if c.cfg.Command == cmdClient {
		c.seq++
		req.Session, req.Seq = c.session, c.seq
	}
	wait := minRetryWait
	tries, unknown := newAttempts(), false
	for {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			if unknown {
				return outcome{code: exitUnknown, why: fmt.Sprintf("no answer within %v: %v; it may have committed", roundDuration(c.cfg.Timeout), tries)}
			}
			if !changes {
				return outcome{code: exitFailed, why: fmt.Sprintf("not read within %v: %v", roundDuration(c.cfg.Timeout), tries)}
			}
			return outcome{code: exitFailed, why: fmt.Sprintf("not committed after %v: %v", roundDuration(c.cfg.Timeout), tries)}
		}
		// A command that may be sent twice can go on to another member, so a member that
		// never answers gets only a share of the time left; the others wait it all.
		until := deadline
		if retrySafe {
			until = time.Now().Add(share(remaining, len(c.cfg.Servers)))
		}
		req.Wait = serverWait(time.Until(until))
		server := c.target()
		var w *leaderWatch
		if retrySafe {
			w = c.watch(server)
		}
		resp, err := c.call(server, req, until, w.cancel())
		w.end()
		switch {
		case errors.Is(err, errCanceled):
			// The member waited on led, and another leads now: it may have been cut off,
			// and its answer may never come. Go to the new leader.
			tries.failed(server, fmt.Sprintf("%s did not answer, and %s names %s as the leader now", server, w.by, w.leader), nil)
			unknown = unknown || (changes && !errors.Is(err, errNotSent))
			c.leader = w.leader
		case errors.As(err, new(certError)):
			return outcome{code: exitFailed, why: err.Error()} // no retry makes a certificate trusted
		case errors.As(err, new(rpc.ServerError)):
			// The member answered without running the command (Raft.Command itself never
			// fails), e.g. one that takes only TLS: retrying will not change that.
			return outcome{code: exitFailed, why: fmt.Sprintf("%s refused it: %v", server, err)}
		case errors.Is(err, errNotSent):
			tries.failed(server, fmt.Sprintf("cannot reach %s (%s)", server, strings.TrimPrefix(err.Error(), errNotSent.Error()+": ")), err)
			c.noteRefusals(tries)
			c.moveOn(server)
		case err != nil:
			// It may have arrived and committed; only a retry can tell.
			why := fmt.Sprintf("lost %s after sending (%v)", server, err)
			if !retrySafe {
				return outcome{code: exitUnknown, why: why + "; it may have taken effect: " + membershipHint}
			}
			tries.failed(server, why, err)
			unknown = unknown || changes
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
					return outcome{code: exitUnknown, resp: resp, why: resp.Error + "; " + membershipHint}
				}
				unknown = unknown || changes
				tries.failed(server, resp.Error, nil)
			case StatusRetry:
				tries.failed(server, resp.Error, nil)
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

// call sends one command and waits for the answer until deadline at the latest, or
// until cancel is closed (errCanceled). An error wrapping errNotSent means the command
// certainly never reached the server.
func (c *client) call(server string, req *CommandRequest, deadline time.Time, cancel <-chan struct{}) (CommandResponse, error) {
	if c.batch != nil {
		return c.batch.call(server, req, cancel)
	}
	var resp CommandResponse
	wait := time.Until(deadline)
	conn, err := c.conn(server, wait)
	if err != nil {
		return resp, fmt.Errorf("%w: %w", errNotSent, err)
	}
	err = callWithin(conn, "Raft.Command", req, &resp, wait, cancel, errCanceled)
	if err != nil {
		c.drop(server) // an answer that comes later has no one to go to
	}
	if errors.Is(err, rpc.ErrShutdown) {
		// The connection was already closed by the other end: nothing was sent.
		return resp, fmt.Errorf("%w: %w", errNotSent, err)
	}
	return resp, err
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
	conn, err := dialRPCClient(server, min(wait, dialTimeout), keys)
	if err != nil {
		return nil, err
	}
	conns[server] = conn
	return conn, nil
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

// report writes how a command ended: the result and where it committed on stdout, the
// reason for a failure on stderr; or one JSON object on stdout. line is the message's
// line of stdin in stdin mode (0: not in stdin mode), where one line is written for
// each message.
func (c *client) report(stdout io.Writer, message string, o outcome, line int) {
	at := ""
	if line > 0 {
		at = fmt.Sprintf("line %d: ", line)
	}
	if c.cfg.JSON {
		out, _ := json.Marshal(c.jsonResult(message, o, line))
		fmt.Fprintf(stdout, "%s\n", out)
		if o.code != exitOK {
			fmt.Fprintf(c.stderr, "raft: %s%s: %s\n", at, c.describe(message), o.why)
		}
		return
	}
	if o.code != exitOK {
		prefix := ""
		if o.code == exitUnknown {
			prefix = "outcome unknown: "
		}
		fmt.Fprintf(c.stderr, "raft: %s%s%s: %s\n", at, prefix, c.describe(message), o.why)
		return
	}
	r := o.resp
	where := fmt.Sprintf("committed at index %d (term %d, leader %s)", r.Index, r.Term, r.Leader)
	if c.cfg.Command == cmdRead {
		where = fmt.Sprintf("read at index %d (term %d, leader %s)", r.Index, r.Term, r.Leader)
	}
	switch {
	case line > 0 && r.Result != "":
		fmt.Fprintln(stdout, r.Result)
	case line > 0:
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
	Line    int    `json:"line,omitempty"` // stdin mode: the message's line
	// The message, cut to its first 40 bytes and "..." if it is longer; then
	// MessageBytes is its size.
	Message      string `json:"message,omitempty"`
	MessageBytes int    `json:"message_bytes,omitempty"`
	Outcome      string `json:"outcome"` // ok, failed, unknown
	Index        uint64 `json:"index,omitempty"`
	Term         uint64 `json:"term,omitempty"`
	Leader       string `json:"leader,omitempty"`
	Result       string `json:"result,omitempty"` // read print: in Messages instead
	// read print: the messages, one string each; if one of them is not valid UTF-8,
	// every one is base64 (standard, padded) and Encoding says "base64".
	Messages []string `json:"messages,omitzero"`
	Encoding string   `json:"encoding,omitempty"`
	Error    string   `json:"error,omitempty"`
}

func (c *client) jsonResult(message string, o outcome, line int) jsonResult {
	j := jsonResult{Command: c.cfg.Command, Line: line, Outcome: [...]string{exitOK: "ok", exitFailed: "failed", exitUnknown: "unknown"}[o.code],
		Index: o.resp.Index, Term: o.resp.Term, Leader: o.resp.Leader, Result: o.resp.Result, Error: o.why}
	j.Message, j.MessageBytes = clip(message)
	if c.cfg.Command == cmdRead && message == "print" && o.code == exitOK {
		j.Result, j.Messages = "", o.resp.Messages
		if j.Messages == nil {
			j.Messages = []string{}
		}
		if !slices.ContainsFunc(j.Messages, func(m string) bool { return !utf8.ValidString(m) }) {
			return j
		}
		// JSON strings hold only UTF-8: the others would come out with U+FFFD in them.
		j.Encoding = "base64"
		j.Messages = make([]string, len(o.resp.Messages))
		for i, m := range o.resp.Messages {
			j.Messages[i] = base64.StdEncoding.EncodeToString([]byte(m))
		}
	}
	return j
}

func (c *client) describe(message string) string {
	switch c.cfg.Command {
	case cmdClient:
		return "message " + quote(message)
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

// status asks the first member that answers for its view of the cluster, in the order
// of -S. All of them together get -timeout, each a share of what is left.
func (c *client) status(stdout io.Writer) int {
	var why []string
	deadline := time.Now().Add(c.cfg.Timeout)
	for i, server := range c.cfg.Servers {
		wait := share(time.Until(deadline), len(c.cfg.Servers)-i)
		if wait <= 0 {
			why = append(why, fmt.Sprintf("%s: not asked: -timeout (%v) was up", server, roundDuration(c.cfg.Timeout)))
			continue
		}
		st, err := c.nodeStatus(server, wait)
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
	err := invoke(conns, server, "Raft.Status", &StatusRequest{}, &st, wait, keys, nil)
	return st, err
}

// invoke makes one call to server and waits for its answer, at most wait.
func (c *client) invoke(server, method string, args, reply any, wait time.Duration) error {
	return invoke(c.conns, server, method, args, reply, wait, c.cfg.TLS, nil)
}

// invoke makes one call to server, on its connection in conns (dialed if there is
// none), and waits for its answer: at most wait, and not once stop is closed (nil:
// never), which returns errStopped. A connection whose call failed is dropped.
func invoke(conns map[string]*rpc.Client, server, method string, args, reply any, wait time.Duration, keys *tlsKeys, stop <-chan struct{}) error {
	conn, err := connTo(conns, server, wait, keys)
	if err != nil {
		return err
	}
	if err = callWithin(conn, method, args, reply, wait, stop, errStopped); err != nil {
		dropConn(conns, server)
	}
	return err
}

// printStatus writes a node's status as a small table for people.
func printStatus(w io.Writer, st NodeStatus) {
	fmt.Fprintf(w, "%s: %s, term %d, leader %s\n", st.ID, st.Role, st.Term, orDash(st.Leader))
	if st.RemovedAt > 0 {
		fmt.Fprintf(w, "removed from the cluster by the configuration entry at index %d: it takes no part; add it back with raft -C addserver -m %s -S <member>, or stop it\n", st.RemovedAt, st.ID)
	}
	fmt.Fprintf(w, "commit %d, applied %d, last log index %d, snapshot at %d, cluster %s\n", st.Commit, st.Applied, st.LastIndex, st.SnapshotIndex, st.Cluster)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tVOTER\tMATCH\tLAG\tLAST CONTACT")
	for _, m := range st.Members {
		match, lag, contact := "-", "-", "-"
		if behind, ok := st.lag(m); ok {
			match, lag = fmt.Sprint(m.Match), fmt.Sprint(behind)
		}
		switch {
		case m.ID == st.ID:
			contact = "(this node)"
		case m.Tracked:
			contact = fmt.Sprintf("%dms ago", m.LastContactMs)
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\n", m.ID, m.Voter, match, lag, contact)
	}
	tw.Flush()
}

// lag is how many entries of st's log member m has not acknowledged, as st (a leader)
// knows; ok is false if st does not know.
func (st NodeStatus) lag(m MemberStatus) (entries uint64, ok bool) {
	if !m.Tracked {
		return 0, false
	}
	return st.LastIndex - min(m.Match, st.LastIndex), true
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
