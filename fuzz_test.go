// fuzz_test.go: what a peer sends cannot crash a node. Arbitrary messages, passed
// through the transport's check (checkMessage) as the server does, are stepped into a
// follower and a leader with logs; nothing may panic.
//
//	go test -run '^$' -fuzz FuzzStepMessage -fuzztime 1m .
package main

import (
	"bufio"
	"bytes"
	"encoding/gob"
	"io"
	"log/slog"
	"math/rand"
	"net/rpc"
	"testing"
)

func FuzzStepMessage(f *testing.F) {
	f.Add(uint8(MsgApp), uint64(2), uint64(3), uint64(1), uint64(5), uint64(4), uint8(2), uint8(0), []byte("x"))
	f.Add(uint8(MsgAppResp), uint64(2), uint64(9), uint64(0), uint64(7), uint64(3), uint8(0), uint8(1), []byte{})
	f.Add(uint8(MsgSnap), uint64(3), uint64(2), uint64(2), uint64(9), uint64(9), uint8(0), uint8(0), []byte{})
	f.Add(uint8(MsgHeartbeat), uint64(2), uint64(0), uint64(0), uint64(100), uint64(0), uint8(0), uint8(0), []byte{})
	f.Fuzz(func(t *testing.T, typ uint8, term, prevIndex, prevTerm, commit, index uint64, n, flags uint8, data []byte) {
		for _, asLeader := range []bool{false, true} {
			r := fuzzCore(asLeader)
			m := Message{Type: MsgType(typ), From: "b", To: "a", Term: term % 8, PrevLogIndex: prevIndex % 16, PrevLogTerm: prevTerm % 8,
				LeaderCommit: commit % 16, ClusterCommit: commit % 32, MatchIndex: index % 16, RejectIndex: prevIndex % 16, ConflictTerm: prevTerm % 8,
				ConflictIndex: commit % 16, Commit: commit % 16, Success: flags&1 != 0, Transfer: flags&2 != 0, Context: index % 4}
			for i := range n % 8 {
				e := Entry{Index: m.PrevLogIndex + 1 + uint64(i), Term: (term + uint64(i)*uint64(flags>>2)) % 8, Type: EntryType(flags>>4) % 4, Data: data}
				if flags&4 != 0 {
					e.Index = index%16 + uint64(i) // not necessarily following on
				}
				m.Entries = append(m.Entries, e)
			}
			if m.Type == MsgSnap {
				m.Snapshot = &SnapshotMeta{Index: index % 16, Term: prevTerm % 8, Config: Config{Members: []string{"a", "b", "c"}}}
			}
			if checkMessage(m) != nil {
				continue // refused by the transport before the core sees it
			}
			r.Step(m)
			for r.hasReady() {
				r.Advance(r.Ready())
			}
		}
	})
}

// fuzzCore is a core of a three-member cluster whose log holds 10 entries, 5 committed:
// a follower in term 3, or the leader of term 3.
func fuzzCore(asLeader bool) *raft {
	var log []Entry
	for i := uint64(1); i <= 10; i++ {
		log = append(log, Entry{Index: i, Term: 1 + i/4, Type: EntryNormal, Data: []byte("m")})
	}
	r := newRaft(coreConfig{ID: "a", ElectionTicks: 10, HeartbeatTicks: 1, MaxMsgBytes: 64, MaxInflight: 4, Rand: rand.New(rand.NewSource(1))},
		persistentState{HardState: HardState{Term: 3, Commit: 5}, Entries: log, Bootstrap: Config{Members: []string{"a", "b", "c"}}})
	if asLeader {
		r.campaign(false)
		r.Step(Message{Type: MsgVoteResp, From: "b", To: "a", Term: r.currentTerm, Success: true})
		for r.hasReady() {
			r.Advance(r.Ready())
		}
	}
	return r
}

// FuzzRPCRequest feeds arbitrary bytes to the server's RPC codecs, gob and binary
// (codec.go), as a connection would, and takes each request that decodes the way the
// server does: a batch's messages through checkMessage into a follower's and a leader's
// core, a command through checkCommand. Nothing may panic, and an oversized request is
// refused.
//
//	go test -run '^$' -fuzz FuzzRPCRequest -fuzztime 1m .
func FuzzRPCRequest(f *testing.F) {
	request := func(method string, body any) []byte {
		var buf bytes.Buffer
		enc := gob.NewEncoder(&buf)
		if err := enc.Encode(&rpc.Request{ServiceMethod: method, Seq: 1}); err != nil {
			f.Fatal(err)
		}
		if err := enc.Encode(body); err != nil {
			f.Fatal(err)
		}
		return buf.Bytes()
	}
	f.Add(request("Raft.Deliver", &Batch{Cluster: 7, Messages: []Message{
		{Type: MsgApp, From: "b", To: "a", Term: 3, PrevLogIndex: 10, PrevLogTerm: 3, LeaderCommit: 6, Entries: []Entry{{Index: 11, Term: 3, Data: []byte("x")}}},
		{Type: MsgAppResp, From: "b", To: "a", Term: 3, MatchIndex: 10, Success: true}}}))
	f.Add(request("Raft.Deliver", &Batch{Messages: []Message{{Type: MsgAppResp, From: "zz", To: "a", Term: 3, RejectIndex: 4}}}))
	f.Add(request("Raft.Command", &CommandRequest{Command: cmdClient, Message: "I like beer.", Session: 1, Seq: 2}))
	f.Add(request("Raft.InstallSnapshot", &SnapshotChunk{From: "b", To: "a", Term: 3, Meta: SnapshotMeta{Index: 5, Term: 1}, Data: []byte("abc")}))
	f.Add(request("Raft.Status", &StatusRequest{}))
	f.Add([]byte{0xfc, 0x40, 0, 0, 0, 1, 2, 3}) // claims a 1 GiB message
	f.Add(binRequest("Raft.Deliver", 1, &Batch{Cluster: 7, Messages: []Message{
		{Type: MsgApp, From: "b", To: "a", Term: 3, PrevLogIndex: 10, PrevLogTerm: 3, LeaderCommit: 6, Entries: []Entry{{Index: 11, Term: 3, Data: []byte("x")}}},
		{Type: MsgSnap, From: "b", To: "a", Term: 3, Snapshot: &SnapshotMeta{Index: 5, Term: 1, Config: Config{Members: []string{"a", "b"}, Incarnations: map[string]uint64{"a": 1}}}}}}))
	f.Add(binRequest("Raft.Commands", 2, &CommandBatch{Requests: []CommandRequest{{Command: cmdClient, Message: "I like beer.", Session: 1, Seq: 2}, {Command: cmdRead, Message: "print"}}}))
	f.Add(binRequest("Raft.Command", 3, &CommandRequest{Command: cmdClient, Message: "I like beer."}))
	f.Add(binRequest("Raft.InstallSnapshot", 4, &SnapshotChunk{From: "b", To: "a", Term: 3, Meta: SnapshotMeta{Index: 5, Term: 1}, Data: []byte("abc")}))
	f.Add([]byte{0, 0, 0, 0x40, 1, 2, 3}) // a binary frame that claims 1 GiB
	f.Fuzz(func(t *testing.T, data []byte) {
		discard := slog.New(slog.DiscardHandler)
		fuzzServe(t, newServerCodec(nopCloser{bytes.NewReader(data)}, "fuzz", discard))
		in := bufio.NewReader(bytes.NewReader(data))
		fuzzServe(t, newBinServerCodec(nopCloser{in}, in, "fuzz", discard))
	})
}

// fuzzServe reads requests from c as the server does, at most 8.
func fuzzServe(t *testing.T, c rpc.ServerCodec) {
	for range 8 {
		var req rpc.Request
		if c.ReadRequestHeader(&req) != nil {
			return
		}
		switch req.ServiceMethod {
		case "Raft.Deliver":
			var b Batch
			if c.ReadRequestBody(&b) != nil {
				return
			}
			for _, asLeader := range []bool{false, true} {
				r := fuzzCore(asLeader)
				for _, m := range b.Messages {
					if m.To != "a" || checkMessage(m) != nil {
						continue // refused by node.deliver
					}
					r.Step(m)
					for r.hasReady() {
						r.Advance(r.Ready())
					}
				}
			}
		case "Raft.Command", "Raft.Commands":
			var cb CommandBatch
			if req.ServiceMethod == "Raft.Command" {
				cb.Requests = make([]CommandRequest, 1)
				if c.ReadRequestBody(&cb.Requests[0]) != nil {
					return
				}
			} else if c.ReadRequestBody(&cb) != nil {
				return
			}
			for _, cr := range cb.Requests {
				if checkCommand(&cr, 1<<20) == nil && len(cr.Message) > 1<<20 {
					t.Fatalf("a %d-byte message passed the 1 MiB limit", len(cr.Message))
				}
			}
		case "Raft.InstallSnapshot":
			var sc SnapshotChunk
			if c.ReadRequestBody(&sc) != nil {
				return
			}
		default:
			if c.ReadRequestBody(nil) != nil {
				return
			}
		}
	}
}

// nopCloser is a connection that only reads.
type nopCloser struct{ io.Reader }

func (nopCloser) Write(p []byte) (int, error) { return len(p), nil }
func (nopCloser) Close() error                { return nil }
