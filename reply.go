// reply.go: replication as request and reply. A peer sends its batches as Raft.Exchange
// calls, and the receiver answers in the call's own reply with its responses to them
// (to AppendEntries once the entries are durable, to heartbeats and votes at once),
// instead of in Raft.Deliver calls of its own: a round trip is two messages on the
// wire, not four (each one-way call has a reply of its own, empty), and the receiver's
// sender goroutine is out of it.
//
// The handler hands the batch to the event loop as an inCall and waits. The loop steps
// the messages; from then on every response it sends to the caller goes into the call
// (inReply), until the writes that those steps caused are durable and what waited for
// them is sent (closeCalls). Then the handler returns them. Whatever is not ready
// within replyWait (a heartbeat interval) goes the old way, as a Deliver call to the caller.
//
// A peer sends one call at a time, so calls reach the loop in the order they were sent.
// Responses to the caller may still overtake one another: one sent the old way (the
// call had ended, or the response was sent before the call came) against one in a
// reply. The core takes that as it takes any network's reordering: each response
// carries its term and the index it answers, and a stale one changes nothing.
//
// A server from before this knows no Raft.Exchange: its peer falls back to Deliver
// until the connection is redialed.
package main

import (
	"strings"
	"sync"
	"time"
)

// Replies is what a Raft.Exchange call returns: the receiver's responses to the batch.
type Replies struct {
	Messages []Message

	// The caller's side: the connection's reading goroutine hands the responses to
	// the event loop as soon as it has decoded them (arrived), rather than the peer
	// sender once woken by the call's end: one goroutine hand-off fewer on the path.
	deliver func([]Message) error
	handed  bool  // arrived handed them over
	err     error // what deliver said
}

// arrived is called by the client codec once it has decoded the reply.
func (r *Replies) arrived() {
	if r.deliver != nil && len(r.Messages) > 0 {
		r.err, r.handed = r.deliver(r.Messages), true
	}
}

// arrival is a reply that acts when it is decoded (Replies).
type arrival interface{ arrived() }

// maxReplyWait bounds how long an Exchange handler waits for the responses to its
// batch (the caller waits deliverTimeout in all), and so does the node's heartbeat
// interval (node.replyWait): the caller sends nothing else to this server meanwhile, so
// a slow disk here must not hold up the heartbeats that keep this server from an
// election. (Found in review: with writes of 400 ms, a follower started a pre-vote
// every few hundred ms.)
const maxReplyWait = deliverTimeout / 4

// inCall is an Exchange call whose responses go into its reply.
type inCall struct {
	from  string
	msgs  []Message
	after uint64 // closed once this many writes are durable (set by closeCalls)

	mu      sync.Mutex
	replies []Message
	ended   bool          // the loop closed it, or the handler gave up: add refuses
	done    chan struct{} // closed by the loop when it closes the call
}

// add puts a response into the call's reply, unless the call has ended.
func (c *inCall) add(m Message) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return false
	}
	c.replies = append(c.replies, m)
	return true
}

// close ends the call for the loop, and wakes its handler.
func (c *inCall) close() {
	c.end()
	close(c.done)
}

// end ends the call and returns its replies; later responses go the old way.
func (c *inCall) end() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended = true
	return c.replies
}

// isResponse says whether a message may go in the reply of a call from its receiver.
func isResponse(t MsgType) bool {
	switch t {
	case MsgAppResp, MsgHeartbeatResp, MsgVoteResp, MsgPreVoteResp:
		return true
	}
	return false
}

// exchange hands msgs to the loop as a call and returns the responses to them.
func (n *node) exchange(msgs []Message) ([]Message, error) {
	if err := n.checkDelivery(msgs); err != nil {
		return nil, err
	}
	c := &inCall{from: msgs[0].From, msgs: msgs, done: make(chan struct{})}
	timer := time.NewTimer(deliverTimeout / 2)
	defer timer.Stop()
	select {
	case n.callc <- c:
	case <-timer.C:
		return nil, errBusy(n.id)
	case <-n.donec:
		return nil, errShuttingDown(n.id)
	}
	timer.Reset(n.replyWait)
	select {
	case <-c.done:
	case <-timer.C:
	case <-n.donec:
	}
	return c.end(), nil
}

// stepCall steps a call's messages; the responses to its caller go into it from now on.
// A call of responses only (a peer answering the old way) asks nothing, and is closed at
// once.
func (n *node) stepCall(c *inCall) {
	asks := false
	for _, m := range c.msgs {
		asks = asks || !isResponse(m.Type)
		n.step(m)
	}
	c.msgs = nil
	if !asks {
		c.close()
		return
	}
	n.trans.calls[c.from] = append(n.trans.calls[c.from], c)
	n.opened = append(n.opened, c)
}

// closeCalls closes the calls whose writes are durable. Those stepped since the last
// time wait for the writes handed out meanwhile (handleReady has just run): every open
// call has its after once they are counted.
func (n *node) closeCalls() {
	for _, c := range n.opened {
		c.after = n.writesIssued
	}
	n.opened = n.opened[:0]
	for from, open := range n.trans.calls {
		k := 0
		for ; k < len(open) && open[k].after <= n.writesDone; k++ {
			open[k].close()
		}
		if k == len(open) {
			delete(n.trans.calls, from)
		} else if k > 0 {
			n.trans.calls[from] = open[k:]
		}
	}
}

// inReply puts m into the reply of an open call from its receiver, if it may go there
// (loop only).
func (t *transport) inReply(m Message) bool {
	if !isResponse(m.Type) {
		return false
	}
	for _, c := range t.calls[m.To] {
		if c.add(m) {
			return true
		}
	}
	return false
}

// oldPeer reports whether err says the peer knows no Raft.Exchange (a binary from before).
func oldPeer(err error) bool {
	return err != nil && strings.Contains(err.Error(), "can't find method Raft.Exchange")
}
