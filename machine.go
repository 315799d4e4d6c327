// machine.go: the replicated state machine. It holds every client message applied so
// far, in log order; "print" and "count" are messages too, and produce output when
// applied. Every server applies the same entries in the same order, so every server
// prints the same lines.
//
// It also remembers, per client session, the last command it applied and what that
// printed (dissertation §6.3): a command retried after a lost answer or a leader change
// carries the same session and sequence number, and is answered from memory instead of
// being applied twice. Sessions expire by the time in the log (stamped by the leader
// that appended each command), so every server expires the same ones at the same entry.
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// sessionTTL is how long (in log time) a session is remembered after its last command.
// A client retrying later than this may have its command applied twice.
const sessionTTL = time.Hour

type machine struct {
	messages []string
	sessions map[uint64]*session
	clock    int64 // the latest leader time seen in the log, in Unix nanoseconds
	swept    int64 // the clock when expired sessions were last removed
}

// session is what the machine remembers of one client's last command.
type session struct {
	seq      uint64 // its sequence number
	index    uint64 // the log index it was applied at
	printed  uint64 // its output: 0 none, else the number of messages it printed or counted, plus one
	count    bool   // the output was "Count", not "Logs"
	lastSeen int64  // log time of the session's latest command
}

// command is a client message with the session it belongs to (an EntrySession entry).
type command struct {
	Session, Seq uint64
	Time         int64 // the leader's clock when it appended the command
	Message      string
}

func encodeCommand(c command) []byte {
	b := binary.AppendUvarint(nil, c.Session)
	b = binary.AppendUvarint(b, c.Seq)
	b = binary.AppendVarint(b, c.Time)
	return append(b, c.Message...)
}

func decodeCommand(data []byte) (command, error) {
	var c command
	var n int
	if c.Session, n = binary.Uvarint(data); n <= 0 {
		return c, errors.New("session entry: bad session id")
	}
	data = data[n:]
	if c.Seq, n = binary.Uvarint(data); n <= 0 {
		return c, errors.New("session entry: bad sequence number")
	}
	data = data[n:]
	if c.Time, n = binary.Varint(data); n <= 0 {
		return c, errors.New("session entry: bad time")
	}
	c.Message = string(data[n:])
	return c, nil
}

// apply applies one committed client message without a session and returns what it
// prints, if anything: "Count N" (the number of messages before it) or "Logs [...]" (all
// of them, itself included).
func (m *machine) apply(data []byte) string {
	msg := string(data)
	m.messages = append(m.messages, msg)
	return m.output(msg, uint64(len(m.messages)))
}

// output is what applying msg, the pos-th message, prints.
func (m *machine) output(msg string, pos uint64) string {
	switch msg {
	case "count":
		return fmt.Sprintf("Count %d", pos-1)
	case "print":
		return m.logs(pos)
	}
	return ""
}

// logs is the "Logs [...]" line of the first n messages.
func (m *machine) logs(n uint64) string {
	return "Logs [" + strings.Join(m.messages[:n], " ") + "]"
}

// applyCommand applies a client command of a session at index. If the session's last
// command is this one, it is not applied again: the answer is the original's, with the
// index it was applied at. An older command than the session's last is refused.
func (m *machine) applyCommand(index uint64, c command) (result string, appliedAt uint64, err error) {
	m.clock = max(m.clock, c.Time)
	m.expire()
	if m.sessions == nil {
		m.sessions = map[uint64]*session{}
	}
	s := m.sessions[c.Session]
	switch {
	case s != nil && c.Seq == s.seq:
		s.lastSeen = m.clock
		return m.remembered(s), s.index, nil
	case s != nil && c.Seq < s.seq:
		return "", 0, fmt.Errorf("command %d of this session is older than its last (%d): the client has moved on", c.Seq, s.seq)
	}
	m.messages = append(m.messages, c.Message)
	pos := uint64(len(m.messages))
	s = &session{seq: c.Seq, index: index, lastSeen: m.clock}
	switch c.Message {
	case "count":
		s.printed, s.count = pos, true
	case "print":
		s.printed = pos + 1
	}
	m.sessions[c.Session] = s
	return m.output(c.Message, pos), index, nil
}

// remembered rebuilds what a session's last command printed. Messages are only ever
// appended, so "Logs" of the first n is the same text now as then.
func (m *machine) remembered(s *session) string {
	switch {
	case s.printed == 0:
		return ""
	case s.count:
		return fmt.Sprintf("Count %d", s.printed-1)
	}
	return m.logs(s.printed - 1)
}

// expire forgets sessions idle for sessionTTL of log time, at most once a tenth of it.
func (m *machine) expire() {
	if m.clock-m.swept < int64(sessionTTL/10) {
		return
	}
	m.swept = m.clock
	for id, s := range m.sessions {
		if m.clock-s.lastSeen > int64(sessionTTL) {
			delete(m.sessions, id)
		}
	}
}

// machineView is a consistent copy of the machine for a snapshot written in the
// background: later applies only append messages past its end, and sessions are copied.
type machineView struct {
	messages     []string
	sessions     map[uint64]session
	clock, swept int64
}

func (m *machine) view() machineView {
	v := machineView{messages: m.messages[:len(m.messages):len(m.messages)], sessions: map[uint64]session{},
		clock: m.clock, swept: m.swept}
	for id, s := range m.sessions {
		v.sessions[id] = *s
	}
	return v
}

// encodeMachine lays out a snapshot of the machine (uvarints unless said otherwise):
//
//	message count, then each message as a length and its bytes;
//	clock, swept (varints); session count, then per session in id order:
//	id, seq, index, printed, count (0 or 1), lastSeen (varint)
//
// Format 0 (snapshots written before sessions existed) has only the messages.
func encodeMachine(v machineView) []byte {
	size := binary.MaxVarintLen64 * (3 + 6*len(v.sessions))
	for _, msg := range v.messages {
		size += binary.MaxVarintLen64 + len(msg)
	}
	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, uint64(len(v.messages)))
	for _, msg := range v.messages {
		b = binary.AppendUvarint(b, uint64(len(msg)))
		b = append(b, msg...)
	}
	b = binary.AppendVarint(b, v.clock)
	b = binary.AppendVarint(b, v.swept)
	b = binary.AppendUvarint(b, uint64(len(v.sessions)))
	ids := make([]uint64, 0, len(v.sessions))
	for id := range v.sessions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		s := v.sessions[id]
		count := uint64(0)
		if s.count {
			count = 1
		}
		for _, x := range []uint64{id, s.seq, s.index, s.printed, count} {
			b = binary.AppendUvarint(b, x)
		}
		b = binary.AppendVarint(b, s.lastSeen)
	}
	return b
}

// machineFormat is the layout encodeMachine writes, recorded in SnapshotMeta.Machine.
const machineFormat = 1

// restore replaces the machine's state with a snapshot's, laid out in format.
func (m *machine) restore(data []byte, format int) error {
	if format > machineFormat {
		return fmt.Errorf("snapshot data: format %d; this binary reads up to %d: run a newer raft", format, machineFormat)
	}
	r := snapReader{data: data}
	count := r.uvarint()
	if r.err != nil || count > uint64(len(data)) {
		return errors.New("snapshot data: bad message count")
	}
	// One string holds the message bytes; each message is a slice of it.
	all := string(data)
	messages := make([]string, 0, count)
	for range count {
		size := r.uvarint()
		if r.err != nil || size > uint64(len(data)-r.off) {
			return fmt.Errorf("snapshot data: message %d is cut short", len(messages)+1)
		}
		messages = append(messages, all[r.off:r.off+int(size)])
		r.off += int(size)
	}
	sessions := map[uint64]*session{}
	var clock, swept int64
	if format >= 1 {
		clock, swept = r.varint(), r.varint()
		n := r.uvarint()
		if r.err == nil && n > uint64(len(data)) {
			r.err = errors.New("bad session count")
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			id := r.uvarint()
			s := &session{seq: r.uvarint(), index: r.uvarint(), printed: r.uvarint(), count: r.uvarint() == 1, lastSeen: r.varint()}
			sessions[id] = s
		}
		if r.err != nil {
			return fmt.Errorf("snapshot data: sessions: %v", r.err)
		}
	}
	if r.off != len(data) {
		return fmt.Errorf("snapshot data: %d bytes after the end", len(data)-r.off)
	}
	m.messages, m.sessions, m.clock, m.swept = messages, sessions, clock, swept
	return nil
}

// snapReader reads varints from a snapshot, remembering the first error.
type snapReader struct {
	data []byte
	off  int
	err  error
}

func (r *snapReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	x, n := binary.Uvarint(r.data[r.off:])
	if n <= 0 {
		r.err = fmt.Errorf("bad number at offset %d", r.off)
		return 0
	}
	r.off += n
	return x
}

func (r *snapReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	x, n := binary.Varint(r.data[r.off:])
	if n <= 0 {
		r.err = fmt.Errorf("bad number at offset %d", r.off)
		return 0
	}
	r.off += n
	return x
}
