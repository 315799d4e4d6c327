// server_test.go: tests of the node's answers to clients, without a network.
package main

import (
	"bytes"
	"io"
	"log"
	"math/rand"
	"strings"
	"testing"
)

// testNode is a node with a core and a state machine but no storage or network.
func testNode(out io.Writer) *node {
	core := newRaft(coreConfig{ID: ":1", ElectionTicks: 10, HeartbeatTicks: 1, MaxInflight: 1, Rand: rand.New(rand.NewSource(1))},
		persistentState{Bootstrap: Config{Members: []string{":1", ":2", ":3"}}})
	return &node{id: ":1", core: core, out: log.New(out, "", 0), logger: log.New(io.Discard, "", 0), pending: map[uint64]*proposal{}}
}

// Checklist 6: a client is told "committed" only if the entry committed at its index
// is its own; if another leader's entry took the index, it is told it did not commit.
func TestNodeAnswersOnlyForItsOwnEntry(t *testing.T) {
	n := testNode(io.Discard)
	lost := &proposal{index: 1, term: 2, done: make(chan CommandResponse, 1)}
	mine := &proposal{index: 2, term: 3, done: make(chan CommandResponse, 1)}
	n.pending[1], n.pending[2] = lost, mine
	n.apply(Entry{Index: 1, Term: 3, Type: EntryNormal, Data: []byte("someone else's")})
	n.apply(Entry{Index: 2, Term: 3, Type: EntryNormal, Data: []byte("count")})
	if r := <-lost.done; r.Status != StatusRetry || !strings.Contains(r.Error, "not committed") {
		t.Fatalf("overwritten command answered %+v; want a retryable 'not committed'", r)
	}
	if r := <-mine.done; r.Status != StatusOK || r.Index != 2 || r.Result != "Count 1" {
		t.Fatalf("committed command answered %+v", r)
	}
	if len(n.pending) != 0 {
		t.Fatalf("%d commands still pending after their indices were applied", len(n.pending))
	}
}

// After a restart, entries the node had applied before are applied again to rebuild
// the state machine, without printing their output a second time.
func TestNodeReappliesQuietly(t *testing.T) {
	var out bytes.Buffer
	n := testNode(&out)
	n.quietTo = 2
	for i, msg := range []string{"a", "print", "print"} {
		n.apply(Entry{Index: uint64(i + 1), Term: 1, Type: EntryNormal, Data: []byte(msg)})
	}
	if got := out.String(); got != "Logs [a print print]\n" {
		t.Fatalf("printed %q; want only the entry after the restart point", got)
	}
}

func TestNodeRefusals(t *testing.T) {
	n := testNode(io.Discard)
	cases := []struct {
		err    error
		status CommandStatus
		text   string
	}{
		{errNotLeader, StatusRetry, "no majority"},
		{errChangeInProgress, StatusRetry, "in progress"},
		{errLeaderNotReady, StatusRetry, "not yet committed"},
		{errAlreadyMember, StatusRejected, "already a member"},
		{errLastMember, StatusRejected, "only member"},
	}
	for _, tc := range cases {
		r := n.refusal(tc.err)
		if r.Status != tc.status || !strings.Contains(r.Error, tc.text) {
			t.Errorf("%v: %+v", tc.err, r)
		}
	}
	n.core.leader = ":2"
	if r := n.refusal(errNotLeader); !r.NotLeader || r.Leader != ":2" {
		t.Errorf("not leader with a known leader: %+v", r)
	}
}

func TestCheckCommand(t *testing.T) {
	for _, req := range []CommandRequest{
		{Command: "drop tables", Message: "x"},
		{Command: cmdClient, Message: ""},
		{Command: cmdAddServer, Message: "nonsense"},
		{Command: cmdAddServer, Message: ":09993"}, // not canonical: would never match a member
	} {
		if err := checkCommand(&req); err == nil {
			t.Errorf("%+v accepted", req)
		}
	}
	if err := checkCommand(&CommandRequest{Command: cmdRemoveServer, Message: "127.0.0.1:9993"}); err != nil {
		t.Error(err)
	}
}
