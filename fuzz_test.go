// fuzz_test.go: what a peer sends cannot crash a node. Arbitrary messages, passed
// through the transport's check (checkMessage) as the server does, are stepped into a
// follower and a leader with logs; nothing may panic.
//
//	go test -run '^$' -fuzz FuzzStepMessage -fuzztime 1m .
package main

import (
	"math/rand"
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
				LeaderCommit: commit % 16, MatchIndex: index % 16, RejectIndex: prevIndex % 16, ConflictTerm: prevTerm % 8,
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
