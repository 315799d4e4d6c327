// binbody.go: the bodies of the hot path, encoded by hand for the binary codec
// (codec.go): Raft.Deliver's Batch and Ack, Raft.Exchange's Replies, Raft.Command's CommandRequest and
// CommandResponse, Raft.Commands' CommandBatch and CommandBatchResponse. Integers are
// uvarints, strings and bytes a uvarint length and the bytes, bools bits of a flags
// byte; a field is never left out, so a decoded value equals the one encoded
// (TestBinBodiesRoundTrip checks every field, and fails on a field added to a type and
// not here). A change of layout is a new version of codecPreface.
package main

import (
	"encoding/binary"
	"errors"
	"time"
)

// binBody is a body the binary codec encodes by hand.
type binBody interface {
	appendBin(b []byte) []byte
	readBin(r *binReader) // on malformed input: r.err, and the value is not to be used
}

var errMalformedBody = errors.New("malformed body: cut short or a length past its end")

// binReader decodes a body. After the first error every read returns a zero value.
type binReader struct {
	b     []byte
	err   error
	names map[string]string // strings that repeat (server ids, commands), kept once per connection
}

func (r *binReader) fail() {
	if r.err == nil {
		r.err = errMalformedBody
	}
	r.b = nil
}

func (r *binReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *binReader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// count reads a number of items, each at least min bytes long: a count the rest of
// the body cannot hold is refused before anything is allocated for it.
func (r *binReader) count(min int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/min) {
		r.fail()
		return 0
	}
	return int(n)
}

// bytes is the next length-prefixed bytes, not copied: they stay part of the frame.
// Empty reads as nil, as gob decodes it.
func (r *binReader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	if n == 0 {
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *binReader) str() string { return string(r.bytes()) }

// name is a string likely to repeat on the connection: one copy is kept of each.
func (r *binReader) name() string {
	p := r.bytes()
	if s, ok := r.names[string(p)]; ok {
		return s
	}
	s := string(p)
	if len(s) <= 64 && len(r.names) < 256 {
		r.names[s] = s
	}
	return s
}

func appendStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendUvarints(b []byte, vs ...uint64) []byte {
	for _, v := range vs {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

func bit(v bool, bit byte) byte {
	if v {
		return bit
	}
	return 0
}

// minMessageBytes: the least a Message takes encoded (flags, type, two names, 14
// integers and an entry count), which bounds the count a batch may claim.
const minMessageBytes = 19

func (b *Batch) appendBin(p []byte) []byte {
	return appendMessages(binary.AppendUvarint(p, b.Cluster), b.Messages)
}

func (b *Batch) readBin(r *binReader) {
	b.Cluster = r.uvarint()
	b.Messages = readMessages(r)
}

// appendMessages appends a count and the messages; readMessages reads them back.
func appendMessages(p []byte, ms []Message) []byte {
	p = binary.AppendUvarint(p, uint64(len(ms)))
	for i := range ms {
		p = appendMessage(p, &ms[i])
	}
	return p
}

func readMessages(r *binReader) []Message {
	n := r.count(minMessageBytes)
	if n == 0 {
		return nil
	}
	ms := make([]Message, n)
	for i := range ms {
		readMessage(r, &ms[i])
	}
	return ms
}

const (
	msgTransfer = 1 << iota
	msgSuccess
	msgSnapshot
)

func appendMessage(p []byte, m *Message) []byte {
	p = append(p, bit(m.Transfer, msgTransfer)|bit(m.Success, msgSuccess)|bit(m.Snapshot != nil, msgSnapshot), byte(m.Type))
	p = appendStr(appendStr(p, m.From), m.To)
	p = appendUvarints(p, m.Term, m.FromIncarnation, m.ToIncarnation, m.LastLogIndex, m.LastLogTerm, m.Context,
		m.PrevLogIndex, m.PrevLogTerm, m.LeaderCommit, m.MatchIndex, m.RejectIndex, m.ConflictTerm, m.ConflictIndex, m.Commit, m.ClusterCommit)
	p = binary.AppendUvarint(p, uint64(len(m.Entries)))
	for _, e := range m.Entries {
		p = append(appendUvarints(p, e.Index, e.Term), byte(e.Type))
		p = append(binary.AppendUvarint(p, uint64(len(e.Data))), e.Data...)
	}
	if m.Snapshot != nil {
		p = appendSnapshotMeta(p, m.Snapshot)
	}
	return p
}

func readMessage(r *binReader, m *Message) {
	flags := r.byte()
	m.Type = MsgType(r.byte())
	m.From, m.To = r.name(), r.name()
	for _, f := range []*uint64{&m.Term, &m.FromIncarnation, &m.ToIncarnation, &m.LastLogIndex, &m.LastLogTerm, &m.Context,
		&m.PrevLogIndex, &m.PrevLogTerm, &m.LeaderCommit, &m.MatchIndex, &m.RejectIndex, &m.ConflictTerm, &m.ConflictIndex, &m.Commit, &m.ClusterCommit} {
		*f = r.uvarint()
	}
	m.Transfer, m.Success = flags&msgTransfer != 0, flags&msgSuccess != 0
	if n := r.count(4); n > 0 { // index, term, type and length: 4 bytes at least
		m.Entries = make([]Entry, n)
		for i := range m.Entries {
			e := &m.Entries[i]
			e.Index, e.Term = r.uvarint(), r.uvarint()
			e.Type = EntryType(r.byte())
			e.Data = r.bytes()
		}
	}
	if flags&msgSnapshot != 0 {
		m.Snapshot = new(SnapshotMeta)
		readSnapshotMeta(r, m.Snapshot)
	}
}

func appendSnapshotMeta(p []byte, s *SnapshotMeta) []byte {
	p = appendUvarints(p, s.Index, s.Term, s.ConfigIndex, uint64(s.Machine), uint64(len(s.Config.Members)))
	for _, id := range s.Config.Members {
		p = appendStr(p, id)
	}
	p = binary.AppendUvarint(p, uint64(len(s.Config.Incarnations)))
	for id, inc := range s.Config.Incarnations {
		p = binary.AppendUvarint(appendStr(p, id), inc)
	}
	return p
}

func readSnapshotMeta(r *binReader, s *SnapshotMeta) {
	s.Index, s.Term, s.ConfigIndex, s.Machine = r.uvarint(), r.uvarint(), r.uvarint(), int(r.uvarint())
	if n := r.count(1); n > 0 {
		s.Config.Members = make([]string, n)
		for i := range s.Config.Members {
			s.Config.Members[i] = r.name()
		}
	}
	if n := r.count(2); n > 0 {
		s.Config.Incarnations = make(map[string]uint64, n)
		for range n {
			id := r.name()
			s.Config.Incarnations[id] = r.uvarint()
		}
	}
}

func (b *Replies) appendBin(p []byte) []byte { return appendMessages(p, b.Messages) }
func (b *Replies) readBin(r *binReader)      { b.Messages = readMessages(r) }

func (*Ack) appendBin(p []byte) []byte { return p }
func (*Ack) readBin(*binReader)        {}

const (
	cmdForwarded = 1 << iota
	cmdAsList
)

// minCommandBytes: the least a CommandRequest takes encoded (two strings, the wait,
// flags and five integers), which bounds the count a CommandBatch may claim.
const minCommandBytes = 9

func (c *CommandRequest) appendBin(p []byte) []byte {
	p = appendStr(appendStr(p, c.Command), c.Message)
	p = binary.AppendVarint(p, int64(c.Wait))
	p = append(p, bit(c.Forwarded, cmdForwarded)|bit(c.AsList, cmdAsList))
	return appendUvarints(p, c.Cluster, c.Session, c.Seq, c.From, c.N)
}

func (c *CommandRequest) readBin(r *binReader) {
	c.Command, c.Message = r.name(), r.str()
	wait, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return
	}
	r.b = r.b[n:]
	c.Wait = time.Duration(wait)
	flags := r.byte()
	c.Forwarded, c.AsList = flags&cmdForwarded != 0, flags&cmdAsList != 0
	c.Cluster, c.Session, c.Seq, c.From, c.N = r.uvarint(), r.uvarint(), r.uvarint(), r.uvarint(), r.uvarint()
}

// minResponseBytes: the least a CommandResponse takes encoded (status, two integers,
// four strings, a count and flags).
const minResponseBytes = 9

func (c *CommandResponse) appendBin(p []byte) []byte {
	p = append(p, byte(c.Status), bit(c.NotLeader, 1))
	p = appendStr(appendUvarints(p, c.Index, c.Term), c.Result)
	p = binary.AppendUvarint(p, uint64(len(c.Messages)))
	for _, m := range c.Messages {
		p = appendStr(p, m)
	}
	return appendStr(appendStr(appendStr(p, c.Leader), c.ForwardedTo), c.Error)
}

func (c *CommandResponse) readBin(r *binReader) {
	c.Status = CommandStatus(r.byte())
	c.NotLeader = r.byte()&1 != 0
	c.Index, c.Term, c.Result = r.uvarint(), r.uvarint(), r.str()
	if n := r.count(1); n > 0 {
		c.Messages = make([]string, n)
		for i := range c.Messages {
			c.Messages[i] = r.str()
		}
	}
	c.Leader, c.ForwardedTo, c.Error = r.name(), r.name(), r.str()
}

func (b *CommandBatch) appendBin(p []byte) []byte {
	p = binary.AppendUvarint(p, uint64(len(b.Requests)))
	for i := range b.Requests {
		p = b.Requests[i].appendBin(p)
	}
	return p
}

func (b *CommandBatch) readBin(r *binReader) {
	if n := r.count(minCommandBytes); n > 0 {
		b.Requests = make([]CommandRequest, n)
		for i := range b.Requests {
			b.Requests[i].readBin(r)
		}
	}
}

func (b *CommandBatchResponse) appendBin(p []byte) []byte {
	p = binary.AppendUvarint(p, uint64(len(b.Responses)))
	for i := range b.Responses {
		p = b.Responses[i].appendBin(p)
	}
	return p
}

func (b *CommandBatchResponse) readBin(r *binReader) {
	if n := r.count(minResponseBytes); n > 0 {
		b.Responses = make([]CommandResponse, n)
		for i := range b.Responses {
			b.Responses[i].readBin(r)
		}
	}
}
