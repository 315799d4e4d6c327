// batch_test.go: tests of command batching (batch.go) over real connections.
package main

import (
	"errors"
	"fmt"
	"net/rpc"
	"strings"
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
	e := &echoLeader{release: make(chan struct{}), arrived: make(chan int, 1000)}
	return serveRaft(t, e), e
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
			resp, err := b.call(addr, &CommandRequest{Command: cmdClient, Message: msg, Wait: 5 * time.Second}, nil)
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
	if _, err := b.call(dead, &CommandRequest{Command: cmdClient, Message: "x", Wait: time.Second}, nil); !errors.Is(err, errNotSent) {
		t.Fatalf("to a dead server: %v, want errNotSent", err)
	}
	addr, e := serveEcho(t) // never releases
	done := make(chan error, 1)
	go func() {
		_, err := b.call(addr, &CommandRequest{Command: cmdClient, Message: "x", Wait: time.Minute}, nil)
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

// A batch holds at most maxBatchCommandBytes of messages, so it never reaches the size a
// server refuses to read. (Found in review: 17 queued 1 MiB messages went as one call
// the leader refused, and every caller heard "unknown".)
func TestBatcherBoundsBytes(t *testing.T) {
	addr, e := serveEcho(t)
	close(e.release)
	b := newBatcher(dialRPC, time.Second)
	defer b.stop()
	big := strings.Repeat("x", 1<<20)
	const n = 20
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := b.call(addr, &CommandRequest{Command: cmdClient, Message: big, Wait: 10 * time.Second}, nil)
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range e.sizes {
		if k*len(big) > maxBatchCommandBytes {
			t.Fatalf("a batch of %d 1 MiB messages (sizes %v)", k, e.sizes)
		}
	}
}

// A server that answers without running the batch (no Raft.Commands here) certainly
// ran none of it; a caller whose batch is held waits no longer than its own Wait.
// (Found in review: both came back as "outcome unknown", the second after the longest
// wait in its batch.)
func TestBatcherOutcomes(t *testing.T) {
	b := newBatcher(dialRPC, 100*time.Millisecond)
	defer b.stop()
	addr, _ := serveSink(t) // has Deliver only
	_, err := b.call(addr, &CommandRequest{Command: cmdClient, Message: "x", Wait: time.Second}, nil)
	if !errors.Is(err, errNotSent) || !errors.As(err, new(rpc.ServerError)) {
		t.Fatalf("from a server without Raft.Commands: %v, want errNotSent and the server's error", err)
	}
	held, e := serveEcho(t) // never releases
	go b.call(held, &CommandRequest{Command: cmdAddServer, Message: ":1", Wait: time.Minute}, nil)
	<-e.arrived
	start := time.Now()
	_, err = b.call(held, &CommandRequest{Command: cmdClient, Message: "x", Wait: 200 * time.Millisecond}, nil)
	if err == nil || errors.Is(err, errNotSent) || time.Since(start) > 5*time.Second {
		t.Fatalf("a 200 ms command behind a held one: %v after %v", err, time.Since(start))
	}
}

// A caller whose cancel channel closes stops waiting at once: before its command left
// (errNotSent), or after (it may still be answered). Forwarding relies on it to stop
// waiting on a leader that has been replaced (forward.go).
func TestBatcherCancel(t *testing.T) {
	b := newBatcher(dialRPC, time.Second)
	defer b.stop()
	held, e := serveEcho(t) // never releases
	closed := make(chan struct{})
	close(closed)
	_, err := b.call(held, &CommandRequest{Command: cmdClient, Message: "x", Wait: time.Minute}, closed)
	if !errors.Is(err, errCanceled) || !errors.Is(err, errNotSent) {
		t.Fatalf("canceled before it was sent: %v, want errCanceled and errNotSent", err)
	}
	cancel := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := b.call(held, &CommandRequest{Command: cmdClient, Message: "y", Wait: time.Minute}, cancel)
		done <- err
	}()
	<-e.arrived
	close(cancel)
	select {
	case err := <-done:
		if !errors.Is(err, errCanceled) || errors.Is(err, errNotSent) {
			t.Fatalf("canceled after it was sent: %v, want errCanceled, not errNotSent", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a canceled caller went on waiting for its held command")
	}
}
