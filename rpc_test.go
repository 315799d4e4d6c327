// rpc_test.go: tests of the transport, over real connections on 127.0.0.1.
package main

import (
	"log/slog"
	"net"
	"net/rpc"
	"sync/atomic"
	"testing"
	"time"
)

// sink is a Raft service that records the messages delivered to it.
type sink struct{ got chan Message }

func (s *sink) Deliver(b *Batch, _ *Ack) error {
	for _, m := range b.Messages {
		s.got <- m
	}
	return nil
}

func serveSink(t *testing.T) (addr string, s *sink) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s = &sink{got: make(chan Message, 100)}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Raft", s); err != nil {
		t.Fatal(err)
	}
	go srv.Accept(ln)
	return ln.Addr().String(), s
}

// A connection found dead when first used (its peer restarted while it sat idle) fails
// before sending anything; the batch must go out on a new connection, not be lost.
// Losing it cost elections their RequestVote and doubled failover time.
func TestPeerResendsOverDeadIdleConnection(t *testing.T) {
	addr, s := serveSink(t)
	tr := newTransport("a", "", nil, slog.New(slog.DiscardHandler))
	defer tr.stop()
	var dials atomic.Int32
	tr.dial = func(addr string) (*rpc.Client, error) {
		n := dials.Add(1)
		c, err := dialRPC(addr)
		if err == nil && n == 1 {
			c.Close() // the first connection is already dead when used
		}
		return c, err
	}
	tr.send([]Message{{Type: MsgVote, From: "a", To: addr, Term: 7}})
	select {
	case m := <-s.got:
		if m.Type != MsgVote || m.Term != 7 {
			t.Fatalf("delivered %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the message was lost with the dead connection")
	}
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d dials, want 2 (the dead connection, then one redial)", n)
	}
}

// Messages to one peer arrive in the order they were sent.
func TestPeerKeepsOrder(t *testing.T) {
	addr, s := serveSink(t)
	tr := newTransport("a", "", nil, slog.New(slog.DiscardHandler))
	defer tr.stop()
	for i := 1; i <= 100; i++ {
		tr.send([]Message{{Type: MsgApp, From: "a", To: addr, Term: uint64(i)}})
	}
	for i := 1; i <= 100; i++ {
		select {
		case m := <-s.got:
			if m.Term != uint64(i) {
				t.Fatalf("message %d arrived in place %d", m.Term, i)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d never arrived", i)
		}
	}
}
