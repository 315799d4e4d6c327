// writer.go: the node's disk writer. The event loop hands it each Ready's write and the
// replies that must wait for it, and goes on: stepping messages, committing, applying
// and answering clients while the disk is busy. The writer takes every write queued by
// the time it is free and makes them durable with one write and one fsync (group
// commit), then hands them back, in order, for the loop to send their replies and
// Advance the core.
package main

// writeReq is one Ready's write, and the messages that wait for it.
type writeReq struct {
	rd   Ready
	late []Message
}

// writeDone is a batch of writes made durable (or the error that stops the node).
type writeDone struct {
	reqs []writeReq
	err  error
}

const maxWriteBatch = 256 // Readys written by one fsync

// writer runs until writec is closed. After a failed write it writes nothing more: the
// writes queued behind it come back with its error, unwritten. (After a failed fsync
// the failed write's pages may be gone; a later write that succeeded would leave a gap
// in the log, which at restart reads as damage, not as a torn tail to cut off.)
func (n *node) writer() {
	defer close(n.writerDone)
	var failed error
	for req := range n.writec {
		reqs := []writeReq{req}
	more:
		for len(reqs) < maxWriteBatch {
			select {
			case r, ok := <-n.writec:
				if !ok {
					break more
				}
				reqs = append(reqs, r)
			default:
				break more
			}
		}
		recs := make([]walRecord, 0, len(reqs))
		for _, r := range reqs {
			if r.rd.HardState != nil || len(r.rd.Entries) > 0 {
				recs = append(recs, walRecord{HardState: r.rd.HardState, Entries: r.rd.Entries})
			}
		}
		if failed == nil {
			saving := n.metrics.saveStarts(len(recs))
			failed = n.store.SaveAll(recs)
			n.metrics.saved(saving)
		}
		n.writtenc <- writeDone{reqs: reqs, err: failed}
	}
}

// write hands a Ready's write to the writer, taking finished writes meanwhile if the
// writer's queue is full.
func (n *node) write(req writeReq) error {
	for {
		select {
		case n.writec <- req:
			n.writesIssued++
			return nil
		case done := <-n.writtenc:
			if err := n.written(done); err != nil {
				return err
			}
		}
	}
}

// writesOut is how many writes are with the writer.
func (n *node) writesOut() uint64 { return n.writesIssued - n.writesDone }

// written sends the replies that waited for a batch of writes and tells the core they
// are durable.
func (n *node) written(done writeDone) error {
	if done.err != nil {
		return done.err
	}
	for _, r := range done.reqs {
		n.trans.send(r.late)
		n.core.Advance(r.rd)
	}
	n.writesDone += uint64(len(done.reqs))
	return nil
}

// stopWriter closes the writer's queue and waits for it to end, taking (and dropping)
// what it still hands back: after a failed write, the writes that were on their way.
func (n *node) stopWriter() {
	close(n.writec)
	for {
		select {
		case <-n.writtenc:
		case <-n.writerDone:
			return
		}
	}
}

// flushWrites waits until every write handed out is durable: before the loop touches
// the storage itself (snapshots), and before it stops.
func (n *node) flushWrites() error {
	for n.writesOut() > 0 {
		if err := n.written(<-n.writtenc); err != nil {
			return err
		}
	}
	return nil
}
