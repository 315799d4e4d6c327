// watch.go: following the committed log (-C watch). A client asks any member for the
// messages from number N on (Raft.Watch, a long poll); the member answers with those it
// has applied, at most maxWatchBytes of them, or waits for the next one to be applied.
// The client asks again from the message after the last it printed, of whichever member
// answers, so leader changes and restarts cost neither a gap nor a repeat: every member
// numbers the messages alike, since every member applies the same log.
//
// By default each poll is linearizable, the way read is: the member first learns from
// the leader how far the log is committed (a read, forwarded by a follower) and applies
// at least that far before it answers, so an answer with nothing new is never stale. A
// member cut off from the leader fails the poll, and the client moves on to another.
// With -serializable a member serves what it has applied without asking the leader: no
// round trip, and it works with no leader at all, but a member cut off from the others
// quietly stops delivering new messages (what it delivers is still committed, in order).
//
// The server keeps no buffer per watcher: a poll is a small record in the loop, and its
// answer is read from the state machine when it is sent, outside the loop, from a view
// of its messages (those in the snapshot file through a descriptor of its own). A
// watcher that falls behind a snapshot loses nothing: the machine keeps every message,
// those up to the snapshot in its file, and the poll reads them from there.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/rpc"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

const (
	maxWatchBytes   = 1 << 20          // bytes in one answer, messages and their fields (at least one message)
	watchItemBytes  = 32               // what a message's fields add to an answer, about
	maxWatchers     = 1024             // polls waiting on one member at once
	maxWatchWait    = 30 * time.Second // the longest a poll waits
	watchPollWait   = time.Second      // how long the client's polls wait for a new message
	watchBarrierMax = time.Second      // how long a poll waits to hear from the leader
	watchGrace      = time.Second      // how much longer than that the client waits for an answer
)

// WatchRequest is the argument of Raft.Watch.
type WatchRequest struct {
	From uint64        // the first message wanted (1-based); 0: the next one committed
	Wait time.Duration // how long to wait for it if it is not there yet
	// Serve what this member has applied, without asking the leader how far the log is
	// committed.
	Serializable bool
}

// WatchResponse is the reply of Raft.Watch.
type WatchResponse struct {
	Status   CommandStatus // StatusOK (Messages may be empty: none came within Wait) or StatusRetry
	Messages []WatchedMessage
	Next     uint64 // the number of the message after these: where to ask from next
	Leader   string // the leader, if known
	Error    string // StatusRetry: why
}

// WatchedMessage is one committed message and where it is in the log. Messages applied
// from a snapshot written by a binary older than this one have no Index and Term (0).
type WatchedMessage struct {
	N           uint64 // its number: the first message is 1
	Index, Term uint64 // the log entry it was appended in
	Data        string // its bytes, as the client sent them
}

// watcher is a poll waiting in the loop.
type watcher struct {
	from     uint64 // 0: the next message, from when the poll is taken
	barrier  uint64 // answer only once this log index is applied (the leader's, when asked)
	deadline time.Time
	done     chan WatchResponse // buffered, so the loop never waits on it
}

// Watch answers a poll for committed messages.
func (s *rpcService) Watch(req *WatchRequest, resp *WatchResponse) error {
	n, err := s.node()
	if err != nil {
		*resp = WatchResponse{Status: StatusRetry, Error: err.Error()}
		return nil
	}
	*resp = n.watch(req)
	return nil
}

// watch learns how far the log is committed (unless the poll is serializable), then
// hands the poll to the loop and waits for its answer.
func (n *node) watch(req *WatchRequest) WatchResponse {
	wait := min(max(req.Wait, 0), maxWatchWait)
	start := time.Now()
	w := &watcher{from: req.From, deadline: start.Add(wait), done: make(chan WatchResponse, 1)}
	if !req.Serializable {
		// A read through the leader: its answer's index is the leader's applied index,
		// which covers everything committed before the poll came.
		r := n.command(&CommandRequest{Command: cmdRead, Message: "count", Wait: min(wait, watchBarrierMax)})
		if r.Status != StatusOK {
			return WatchResponse{Status: StatusRetry, Leader: r.Leader, Error: r.Error}
		}
		w.barrier = r.Index
		if t := time.Now().Add(watchBarrierMax); t.After(w.deadline) {
			w.deadline = t // time to apply that far
		}
	}
	if err := n.inLoop(func() { n.takeWatcher(w) }); err != nil {
		return WatchResponse{Status: StatusRetry, Error: err.Error()}
	}
	select {
	case resp := <-w.done:
		return resp
	case <-n.donec:
		return WatchResponse{Status: StatusRetry, Error: fmt.Sprintf("%s is shutting down", n.id)}
	}
}

// takeWatcher takes a poll into the loop, or refuses it when too many wait already.
func (n *node) takeWatcher(w *watcher) {
	if len(n.watchers) >= maxWatchers {
		w.done <- WatchResponse{Status: StatusRetry, Leader: n.core.leader,
			Error: fmt.Sprintf("%s already has %d watches waiting; ask another member", n.id, maxWatchers)}
		return
	}
	n.watchers = append(n.watchers, w)
}

// answerWatches answers the polls that can be answered: those whose first message has
// been applied, and those whose wait is over.
func (n *node) answerWatches() {
	if len(n.watchers) == 0 {
		return
	}
	now := time.Now()
	keep := n.watchers[:0]
	for _, w := range n.watchers {
		applied := n.core.lastApplied >= w.barrier
		if applied && w.from == 0 {
			w.from = n.sm.total() + 1
		}
		switch {
		case applied && n.sm.total() >= w.from:
			// Read outside the loop: the messages may be in the snapshot file.
			v, err := n.sm.messagesFrom(w.from - 1)
			if err != nil {
				w.done <- WatchResponse{Status: StatusRetry, Leader: n.core.leader, Error: fmt.Sprintf("%s cannot read its messages: %v", n.id, err)}
				break
			}
			go func(from uint64, leader string) {
				defer v.close()
				w.done <- watchAnswer(v, from, leader, n.id)
			}(w.from, n.core.leader)
		case !now.Before(w.deadline) && applied:
			w.done <- WatchResponse{Status: StatusOK, Next: max(w.from, 1), Leader: n.core.leader}
		case !now.Before(w.deadline):
			w.done <- WatchResponse{Status: StatusRetry, Leader: n.core.leader,
				Error: fmt.Sprintf("%s has applied the log to index %d, short of the leader's %d", n.id, n.core.lastApplied, w.barrier)}
		default:
			keep = append(keep, w)
		}
	}
	clear(n.watchers[len(keep):])
	n.watchers = keep
}

// watchAnswer is the answer to a poll from message from, which v holds, as the member
// id sees it now, with leader its leader.
func watchAnswer(v machineView, from uint64, leader, id string) WatchResponse {
	resp := WatchResponse{Status: StatusOK, Leader: leader}
	size, i := 0, from
	err := v.each(from-1, v.stored.count+uint64(len(v.messages)), func(at entryAt, msg string) bool {
		if size > 0 && size+watchItemBytes+len(msg) > maxWatchBytes {
			return false
		}
		size += watchItemBytes + len(msg)
		resp.Messages = append(resp.Messages, WatchedMessage{N: i, Index: at.index, Term: at.term, Data: msg})
		i++
		return true
	})
	if err != nil {
		return WatchResponse{Status: StatusRetry, Leader: leader, Error: fmt.Sprintf("%s cannot read its messages: %v", id, err)}
	}
	resp.Next = i
	return resp
}

// watchClient follows the committed log for -C watch.
type watchClient struct {
	cfg    clientConfig
	out    *bufio.Writer
	stderr io.Writer
	conns  map[string]*rpc.Client
	said   map[string]bool
}

// runWatch prints committed messages from cfg.From (0: the next one) as they commit,
// until stop is closed, or until no member has answered for cfg.Timeout.
func runWatch(cfg clientConfig, stdout, stderr io.Writer, stop <-chan struct{}) int {
	w := &watchClient{cfg: cfg, out: bufio.NewWriter(stdout), stderr: stderr, conns: map[string]*rpc.Client{}, said: map[string]bool{}}
	defer w.close()
	next, server := cfg.From, 0
	answered := time.Now()
	why := map[string]string{} // each member's last failure, since the last answer
	for {
		addr := cfg.Servers[server%len(cfg.Servers)]
		resp, err := w.poll(addr, &WatchRequest{From: next, Wait: watchPollWait, Serializable: cfg.Serializable}, stop)
		switch {
		case errors.Is(err, errStopped):
			return exitOK
		case err == nil && resp.Status == StatusOK:
			if err := w.print(next, resp); err != nil {
				fmt.Fprintf(stderr, "raft: watch: %v\n", err)
				return exitFailed
			}
			next, answered = resp.Next, time.Now()
			clear(why)
			continue
		case err == nil:
			why[addr] = resp.Error
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, rpc.ErrShutdown):
			why[addr] = fmt.Sprintf("lost the connection (%v)", err)
		default:
			why[addr] = err.Error() // the dial's error, or no answer in time
		}
		if time.Since(answered) >= cfg.Timeout {
			var all []string
			for _, s := range cfg.Servers {
				if why[s] != "" {
					all = append(all, s+": "+why[s])
				}
			}
			fmt.Fprintf(stderr, "raft: watch: no member answered for %v: %s\n", cfg.Timeout.Round(time.Millisecond), strings.Join(all, "; "))
			return exitFailed
		}
		// Another member, if there is one. A lone member is asked again after a pause.
		server++
		if len(cfg.Servers) > 1 {
			w.note(fmt.Sprintf("raft: watch: %s: %s; asking %s", addr, why[addr], cfg.Servers[server%len(cfg.Servers)]))
		}
		select {
		case <-stop:
			return exitOK
		case <-time.After(maxRetryWait):
		}
	}
}

// errStopped: the user stopped the watch (Ctrl-C).
var errStopped = errors.New("stopped")

// poll sends one Raft.Watch to addr and waits for its answer, or for stop.
func (w *watchClient) poll(addr string, req *WatchRequest, stop <-chan struct{}) (WatchResponse, error) {
	var resp WatchResponse
	err := invoke(w.conns, addr, "Raft.Watch", req, &resp, req.Wait+watchBarrierMax+watchGrace, w.cfg.TLS, stop)
	return resp, err
}

// print writes the messages of an answer to a poll from message from.
func (w *watchClient) print(from uint64, resp WatchResponse) error {
	want := from
	for _, m := range resp.Messages {
		if want != 0 && m.N != want {
			// Cannot happen: every member numbers messages alike. Stop rather than print
			// a gap or a repeat.
			return fmt.Errorf("asked for message %d, got %d", want, m.N)
		}
		want = m.N + 1
		if w.cfg.JSON {
			w.out.Write(watchJSON(m))
		} else {
			w.out.WriteString(watchText(m.Data))
		}
		w.out.WriteByte('\n')
	}
	if len(resp.Messages) > 0 && resp.Next != want {
		return fmt.Errorf("an answer ends at message %d but says the next is %d", want-1, resp.Next)
	}
	return w.out.Flush()
}

// watchText is how -C watch shows a message to people: as it is, unless it holds a line
// break or bytes that are not UTF-8 (or starts with a quote); then quoted, with Go's
// escapes, so that one message is always one line.
func watchText(msg string) string {
	if strings.ContainsAny(msg, "\n\r") || !utf8.ValidString(msg) || strings.HasPrefix(msg, `"`) {
		return strconv.Quote(msg)
	}
	return msg
}

// watchedJSON is what -C watch -json prints for a message. A message that is not UTF-8
// comes as MessageBase64 instead of Message, so that every byte survives.
type watchedJSON struct {
	N             uint64 `json:"n"`
	Index         uint64 `json:"index,omitempty"`
	Term          uint64 `json:"term,omitempty"`
	Message       string `json:"message,omitempty"`
	MessageBase64 string `json:"message_base64,omitempty"`
}

func watchJSON(m WatchedMessage) []byte {
	j := watchedJSON{N: m.N, Index: m.Index, Term: m.Term}
	if utf8.ValidString(m.Data) {
		j.Message = m.Data
	} else {
		j.MessageBase64 = base64.StdEncoding.EncodeToString([]byte(m.Data))
	}
	out, _ := json.Marshal(j)
	return out
}

func (w *watchClient) note(s string) {
	if !w.said[s] {
		w.said[s] = true
		fmt.Fprintln(w.stderr, s)
	}
}

func (w *watchClient) close() {
	for _, c := range w.conns {
		c.Close()
	}
}

// interrupted is closed on the first SIGINT or SIGTERM (Ctrl-C ends a watch cleanly).
func interrupted() <-chan struct{} {
	stop := make(chan struct{})
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-signals
		close(stop)
	}()
	return stop
}
