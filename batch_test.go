// batch_test.go: tests of command batching (batch.go) over real connections.
package main

import (
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"sync"
	"testing"
	"time"
)

// echoLeader answers Raft.Commands with each message as its result, once release is
// closed; it records the size of every batch and says when one arrives.
type echoLeader struct {
	release chan struct{}
	arrived chan int
	mu      sync.Mutex
	sizes   []int
}

func (e *echoLeader) Commands(b *CommandBatch, r *CommandBatchResponse) error {
	e.mu.Lock()
	e.sizes = append(e.sizes, len(b.Requests))
	e.mu.Unlock()
	e.arrived <- len(b.Requests)
	<-e.release
	for _, req := range b.Requests {
		r.Responses = append(r.Responses, CommandResponse{Status: StatusOK, Result: req.Message})
	}
	return nil
}

func serveEcho(t *testing.T) (string, *echoLeader) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	e := &echoLeader{release: make(chan struct{}), arrived: make(chan int, 1000)}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Raft", e); err != nil {
		t.Fatal(err)
	}
	go srv.Accept(ln)
	return ln.Addr().String(), e
}

// While batchesInFlight calls are out, commands queue; they go in as few calls as fit,
// and every caller gets the answer to its own command.
func TestBatcherBatchesWhileBusy(t *testing.T) {
	addr, e := serveEcho(t)
	b := newBatcher(dialRPC, time.Second)
	defer b.stop()
	const n = 200
	results := make(chan error, n)
	for i := range n {
		go func() {
			msg := fmt.Sprint("m", i)
			resp, err := b.call(addr, &CommandRequest{Command: cmdClient, Message: msg, Wait: 5 * time.Second})
			if err == nil && resp.Result != msg {
				err = fmt.Errorf("command %q answered with %q", msg, resp.Result)
			}
			results <- err
		}()
	}
	// Every command either held at the server or queued behind the busy slots.
	inFlight, q := 0, b.queue(addr)
	for deadline := time.Now().Add(5 * time.Second); inFlight+len(q.items) < n; {
		select {
		case k := <-e.arrived:
			inFlight += k
		case <-time.After(time.Millisecond): // a command may be between queue and server
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d commands in flight and %d queued, of %d", inFlight, len(q.items), n)
		}
	}
	close(e.release)
	for range n {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if want := batchesInFlight + (n-inFlight+maxBatchCommands-1)/maxBatchCommands; len(e.sizes) > want {
		t.Fatalf("%d commands took %d calls (sizes %v), want at most %d", n, len(e.sizes), e.sizes, want)
	}
}

// A command for a server nobody listens on certainly never left; after stop, a waiting
// caller returns.
func TestBatcherFailures(t *testing.T) {
	b := newBatcher(dialRPC, time.Second)
	dead := freeAddrs(t, 1)[0]
	if _, err := b.call(dead, &CommandRequest{Command: cmdClient, Message: "x", Wait: time.Second}); !errors.Is(err, errNotSent) {
		t.Fatalf("to a dead server: %v, want errNotSent", err)
	}
	addr, e := serveEcho(t) // never releases
	done := make(chan error, 1)
	go func() {
		_, err := b.call(addr, &CommandRequest{Command: cmdClient, Message: "x", Wait: time.Minute})
		done <- err
	}()
	<-e.arrived
	b.stop()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a call cut short by stop succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stop left a caller waiting")
	}
}
