// reply_test.go: replication as request and reply (reply.go).
package main

import (
	"io"
	"log/slog"
	"net"
	"net/rpc"
	"testing"
	"time"
)

// runningNode is a follower with real storage whose event loop runs, without a network:
// the test hands it Exchange calls as the RPC handler would.
func runningNode(t *testing.T) *node {
	dir := t.TempDir()
	id := "127.0.0.1:1"
	cfg := nodeConfig{ID: id, DataDir: dir, Bootstrap: Config{Members: []string{id, "127.0.0.1:2", "127.0.0.1:3"}},
		Heartbeat: 100 * time.Millisecond, Election: 10 * time.Second}
	store, st, _, _, err := openStorage(dir, id, cfg.Bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(cfg, st, store, nil, io.Discard, slog.New(slog.DiscardHandler))
	go func() {
		n.run()
		close(n.donec)
	}()
	t.Cleanup(func() {
		close(n.stopc)
		<-n.donec
		n.trans.stop()
		store.Close()
	})
	return n
}

// The responses to an Exchange call come back in its reply, the append's once its
// entries are durable, and none goes the old way (a Deliver call of the follower's own).
func TestExchangeAnswersInTheReply(t *testing.T) {
	n := runningNode(t)
	leader := "127.0.0.1:2"
	app := Message{Type: MsgApp, From: leader, To: n.id, Term: 1,
		Entries: []Entry{{Index: 1, Term: 1, Type: EntryNoop}, {Index: 2, Term: 1, Data: []byte("x")}}}
	replies, err := n.exchange([]Message{app})
	if err != nil {
		t.Fatal(err)
	}
	if len(replies) != 1 || replies[0].Type != MsgAppResp || !replies[0].Success || replies[0].MatchIndex != 2 || replies[0].To != leader {
		t.Fatalf("the reply to an append of entries 1-2 held %+v; want one successful response matching 2", replies)
	}
	// The handler is answered after the write: what it answers is on disk.
	if last := n.store.last.Index; last != 2 {
		t.Fatalf("answered with the entries up to %d on disk; want 2", last)
	}
	replies, err = n.exchange([]Message{{Type: MsgHeartbeat, From: leader, To: n.id, Term: 1, LeaderCommit: 2, Context: 7}})
	if err != nil {
		t.Fatal(err)
	}
	if len(replies) != 1 || replies[0].Type != MsgHeartbeatResp || replies[0].Context != 7 || replies[0].Commit != 2 {
		t.Fatalf("the reply to a heartbeat held %+v; want its response, context 7, commit 2", replies)
	}
	var oldWay bool
	if err := n.inLoop(func() { oldWay = n.trans.peers[leader] != nil }); err != nil {
		t.Fatal(err)
	}
	if oldWay {
		t.Fatal("the follower also sent to the leader the old way (a peer sender was started)")
	}
}

// A call that ends before its responses are ready (the handler gave up) leaves them to
// go the old way, not into a reply no one reads.
func TestEndedCallRefusesResponses(t *testing.T) {
	tr := newTransport("a", "", nil, slog.New(slog.DiscardHandler))
	defer tr.stop()
	c := &inCall{from: "b", done: make(chan struct{})}
	tr.calls["b"] = []*inCall{c}
	resp := Message{Type: MsgAppResp, From: "a", To: "b", Term: 1}
	if !tr.inReply(resp) {
		t.Fatal("a response to the caller of an open call did not go into it")
	}
	if tr.inReply(Message{Type: MsgApp, From: "a", To: "b", Term: 1}) {
		t.Fatal("an AppendEntries (not a response) went into a reply")
	}
	if got := c.end(); len(got) != 1 {
		t.Fatalf("the call ended with %d responses, want 1", len(got))
	}
	if tr.inReply(resp) {
		t.Fatal("a response went into a call that had ended")
	}
}

// exchanger is a Raft service of this version: it answers each batch in the reply.
type exchanger struct{ got chan Message }

func (s *exchanger) Exchange(b *Batch, r *Replies) error {
	for _, m := range b.Messages {
		s.got <- m
		r.Messages = append(r.Messages, Message{Type: MsgAppResp, From: m.To, To: m.From, Term: m.Term, Success: true})
	}
	return nil
}

func (s *exchanger) Deliver(b *Batch, _ *Ack) error {
	panic("a peer that knows Exchange was sent Deliver")
}

// A peer hands the loop the responses in its calls' replies; to a server from before
// Exchange (sink: Deliver only) it falls back to Deliver, losing nothing.
func TestPeerTakesRepliesAndFallsBack(t *testing.T) {
	s := &exchanger{got: make(chan Message, 10)}
	addrs := []string{serveRaft(t, s)}
	// The old server speaks the binary codec, as the version before this one did.
	sk := &sink{got: make(chan Message, 10)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer()
	srv.RegisterName("Raft", sk)
	oldTr := newTransport("b", "", nil, slog.New(slog.DiscardHandler))
	go oldTr.serve(ln, srv)
	defer oldTr.stop()
	addrs = append(addrs, ln.Addr().String())
	tr := newTransport("a", "", nil, slog.New(slog.DiscardHandler))
	defer tr.stop()
	received := make(chan Message, 10)
	tr.receive = func(ms []Message) error {
		for _, m := range ms {
			received <- m
		}
		return nil
	}
	for term := uint64(1); term <= 3; term++ {
		tr.send([]Message{{Type: MsgApp, From: "a", To: addrs[0], Term: term}, {Type: MsgApp, From: "a", To: addrs[1], Term: term}})
	}
	for term := uint64(1); term <= 3; term++ {
		for _, got := range []chan Message{s.got, sk.got, received} {
			select {
			case m := <-got:
				if m.Term != term {
					t.Fatalf("message of term %d arrived in place %d", m.Term, term)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("message %d never arrived (or its response never came back)", term)
			}
		}
	}
}

// The client codec hands a reply's responses over as soon as it has decoded them, in
// gob or in the binary codec, before the call ends.
func TestRepliesHandedOnArrival(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer()
	srv.RegisterName("Raft", &exchanger{got: make(chan Message, 10)})
	tr := newTransport("b", "", nil, slog.New(slog.DiscardHandler))
	go tr.serve(ln, srv)
	defer tr.stop()
	for _, addr := range []string{ln.Addr().String(), serveRaft(t, &exchanger{got: make(chan Message, 10)})} {
		client, err := dialRPC(addr)
		if err != nil {
			t.Fatal(err)
		}
		var handed []Message
		r := Replies{deliver: func(ms []Message) error { handed = ms; return nil }}
		if err := client.Call("Raft.Exchange", &Batch{Messages: []Message{{Type: MsgApp, From: "a", To: "b", Term: 4}}}, &r); err != nil {
			t.Fatal(err)
		}
		client.Close()
		if !r.handed || len(handed) != 1 || handed[0].Type != MsgAppResp || handed[0].Term != 4 {
			t.Fatalf("%s: handed %v (%v); want the one response, handed on arrival", addr, handed, r.handed)
		}
	}
}

// A follower whose disk is slow answers a call by the heartbeat interval with what is
// ready, and the rest goes the old way: its leader sends it nothing else while a call
// is out, heartbeats included. (Found in review: with a 400 ms write, the handler held
// the call for 500 ms, and the follower, hearing nothing, started a pre-vote every few
// hundred ms.)
func TestExchangeWaitsAtMostAHeartbeat(t *testing.T) {
	n := storedNode(t, 0)
	if n.replyWait != 100*time.Millisecond {
		t.Fatalf("an Exchange handler waits %v with -heartbeat 100ms; want 100ms", n.replyWait)
	}
	n.replyWait = 20 * time.Millisecond
	// The loop steps the call and hands its write to the writer, whose answer it never
	// takes: the write stays unfinished, as on a disk that hangs.
	looped := make(chan struct{})
	go func() {
		defer close(looped)
		c := <-n.callc
		n.stepCall(c)
		n.handleReady()
		n.closeCalls()
	}()
	start := time.Now()
	replies, err := n.exchange([]Message{{Type: MsgApp, From: "127.0.0.1:2", To: n.id, Term: 1,
		Entries: []Entry{{Index: 1, Term: 1, Data: []byte("x")}}}})
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); len(replies) != 0 || waited >= maxReplyWait {
		t.Fatalf("answered %v after %v with the write unfinished; want nothing, after about 20ms (at most %v)", replies, waited, maxReplyWait)
	}
	<-looped // the cleanup takes the write's answer
}
