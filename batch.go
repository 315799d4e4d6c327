// batch.go: commands to one server, batched. A follower forwarding its clients' commands
// to the leader, and a load generator with many commands in flight on few connections
// (bench -mux), hand each command to a batcher, which sends whatever has queued for a
// server as one Raft.Commands call: under load one RPC (one request to decode, one
// goroutine, one response to write on each side) carries many commands, and with a
// single caller nothing waits.
package main

import (
	"errors"
	"fmt"
	"net/rpc"
	"sync"
	"time"
)

// CommandBatch is the argument of Raft.Commands: commands run as if each had come in
// its own Raft.Command call.
type CommandBatch struct {
	Requests []CommandRequest
}

// CommandBatchResponse is the reply of Raft.Commands: one response per request, in order.
type CommandBatchResponse struct {
	Responses []CommandResponse
}

const (
	maxBatchCommands     = 256     // commands in one Raft.Commands call
	maxBatchCommandBytes = 4 << 20 // their messages' bytes (a server reads at most maxRPCBytes)
	batchesInFlight      = 4       // Raft.Commands calls out to one server at a time
)

// batcher batches commands by server. Its zero value is not usable: see newBatcher.
type batcher struct {
	dial  func(addr string) (*rpc.Client, error)
	grace time.Duration // how much longer than a command's own wait an answer may take
	stopc chan struct{}

	mu     sync.Mutex
	queues map[string]*batchQueue
}

// batchQueue holds the commands waiting for one server, and its connection.
type batchQueue struct {
	addr  string
	items chan *batchItem
	slots chan struct{} // one per call in flight

	mu     sync.Mutex
	client *rpc.Client
}

// batchItem is one caller's command, and where its outcome goes.
type batchItem struct {
	req  *CommandRequest
	done chan batchResult // buffered: the sender never waits on a caller that gave up
}

type batchResult struct {
	resp CommandResponse
	err  error
}

func newBatcher(dial func(addr string) (*rpc.Client, error), grace time.Duration) *batcher {
	return &batcher{dial: dial, grace: grace, stopc: make(chan struct{}), queues: map[string]*batchQueue{}}
}

// errCanceled: the caller stopped waiting for an answer (its cancel channel closed).
var errCanceled = errors.New("stopped waiting for the answer")

// call sends req to addr in the next batch and waits for its answer, for req.Wait plus
// the grace at most, whatever else is in its batch, or until cancel is closed (nil:
// never), which it reports with errCanceled. An error wrapping errNotSent means the
// command certainly never left.
func (b *batcher) call(addr string, req *CommandRequest, cancel <-chan struct{}) (CommandResponse, error) {
	select {
	case <-cancel:
		return CommandResponse{}, fmt.Errorf("%w: %w", errNotSent, errCanceled)
	default:
	}
	it := &batchItem{req: req, done: make(chan batchResult, 1)}
	q := b.queue(addr)
	timer := time.NewTimer(req.Wait + b.grace)
	defer timer.Stop()
	select {
	case q.items <- it:
	case <-timer.C:
		return CommandResponse{}, fmt.Errorf("%w: %s had %d commands queued for %v", errNotSent, addr, cap(q.items), roundDuration(req.Wait+b.grace))
	case <-cancel:
		return CommandResponse{}, fmt.Errorf("%w: %w", errNotSent, errCanceled)
	case <-b.stopc:
		return CommandResponse{}, fmt.Errorf("%w: %w", errNotSent, errStopping)
	}
	// From here on its batch may be answered later: a caller that stops waiting just
	// does not hear it.
	select {
	case r := <-it.done:
		return r.resp, r.err
	case <-timer.C:
		// Its batch may still be answered: this caller just stops waiting.
		return CommandResponse{}, fmt.Errorf("no answer from %s within %v", addr, roundDuration(req.Wait+b.grace))
	case <-cancel:
		return CommandResponse{}, errCanceled
	case <-b.stopc:
		return CommandResponse{}, errStopping
	}
}

func (b *batcher) queue(addr string) *batchQueue {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[addr]
	if q == nil {
		q = &batchQueue{addr: addr, items: make(chan *batchItem, maxBatchCommands), slots: make(chan struct{}, batchesInFlight)}
		b.queues[addr] = q
		go b.run(q)
	}
	return q
}

// run takes a free slot, then everything queued (up to maxBatchCommands, and
// maxBatchCommandBytes of messages), and sends it. While every slot is busy, commands
// queue up for the next batch.
func (b *batcher) run(q *batchQueue) {
	var carry *batchItem // taken from the queue, but too big for the batch before
	for {
		select {
		case q.slots <- struct{}{}:
		case <-b.stopc:
			return
		}
		batch := []*batchItem{carry}
		if carry == nil {
			select {
			case it := <-q.items:
				batch[0] = it
			case <-b.stopc:
				return
			}
		}
		carry = nil
		size := len(batch[0].req.Message)
	drain:
		for len(batch) < maxBatchCommands {
			select {
			case it := <-q.items:
				if size += len(it.req.Message); size > maxBatchCommandBytes {
					carry = it
					break drain
				}
				batch = append(batch, it)
			default:
				break drain
			}
		}
		go func() {
			b.send(q, batch)
			<-q.slots
		}()
	}
}

// send makes one bounded Raft.Commands call for batch and hands each item its outcome.
func (b *batcher) send(q *batchQueue, batch []*batchItem) {
	finish := func(err error) {
		for _, it := range batch {
			it.done <- batchResult{err: err}
		}
	}
	args := &CommandBatch{Requests: make([]CommandRequest, len(batch))}
	var wait time.Duration
	for i, it := range batch {
		args.Requests[i] = *it.req
		wait = max(wait, it.req.Wait)
	}
	var reply CommandBatchResponse
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		reply, err = b.sendOnce(q, args, wait)
		if !errors.Is(err, rpc.ErrShutdown) {
			break // a cached connection found closed (the server restarted) is redialed once
		}
	}
	if err != nil {
		finish(err)
		return
	}
	for i, it := range batch {
		it.done <- batchResult{resp: reply.Responses[i]}
	}
}

// sendOnce makes one bounded Raft.Commands call on the queue's connection.
func (b *batcher) sendOnce(q *batchQueue, args *CommandBatch, wait time.Duration) (CommandBatchResponse, error) {
	var reply CommandBatchResponse
	client, err := b.client(q)
	if err != nil {
		return reply, fmt.Errorf("%w: %w", errNotSent, err)
	}
	call := client.Go("Raft.Commands", args, &reply, make(chan *rpc.Call, 1))
	timer := time.NewTimer(wait + b.grace)
	defer timer.Stop()
	select {
	case <-call.Done:
		err = call.Error
		var refused rpc.ServerError
		switch {
		case errors.Is(err, rpc.ErrShutdown):
			err = fmt.Errorf("%w: %w", errNotSent, err) // the connection had closed: nothing left
		case errors.As(err, &refused):
			// The server answered without running any of them (Raft.Commands itself never
			// fails): e.g. a member that takes only TLS.
			return reply, fmt.Errorf("%w: %w", errNotSent, err)
		case err == nil && len(reply.Responses) != len(args.Requests):
			err = fmt.Errorf("%s answered %d commands with %d responses", q.addr, len(args.Requests), len(reply.Responses))
		}
	case <-timer.C:
		err = fmt.Errorf("no answer from %s within %v", q.addr, roundDuration(wait+b.grace))
	case <-b.stopc:
		err = errStopping
	}
	if err != nil {
		b.drop(q, client)
	}
	return reply, err
}

// client is the queue's connection, dialed if there is none.
func (b *batcher) client(q *batchQueue) (*rpc.Client, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	select {
	case <-b.stopc:
		return nil, errStopping // stop closed the connections: open no more
	default:
	}
	if q.client == nil {
		c, err := b.dial(q.addr)
		if err != nil {
			return nil, err
		}
		q.client = c
	}
	return q.client, nil
}

// drop closes the queue's connection after a failed call; the next batch redials.
func (b *batcher) drop(q *batchQueue, c *rpc.Client) {
	q.mu.Lock()
	if q.client == c {
		q.client = nil
	}
	q.mu.Unlock()
	c.Close()
}

// stop ends every wait (with errStopping) and closes the connections. The batcher is
// not used again.
func (b *batcher) stop() {
	close(b.stopc)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range b.queues {
		q.mu.Lock()
		if q.client != nil {
			q.client.Close()
		}
		q.mu.Unlock()
	}
}
