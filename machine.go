// machine.go: the replicated state machine. It holds every client message applied so
// far, in log order; "print" and "count" are messages too, and produce output when
// applied. Every server applies the same entries in the same order, so every server
// prints the same lines.
//
// The messages up to the latest snapshot stay in the snapshot file, not in memory: the
// machine keeps the file open and the offset of every storedIndexEvery-th message, and
// reads them when a print needs them. Only the messages applied since (at most about
// -snapshot-entries) are in memory, so a node's memory does not grow with the log.
//
// It also remembers, per client session, the last command it applied and what that
// printed (dissertation §6.3): a command retried after a lost answer or a leader change
// carries the same session and sequence number, and is answered from memory instead of
// being applied twice. Sessions expire by the time in the log (stamped by the leader
// that appended each command), so every server expires the same ones at the same entry.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
)

// sessionTTL is how long (in log time) a session is remembered after its last command.
// A client retrying later than this may have its command applied twice.
const sessionTTL = time.Hour

type machine struct {
	stored   storedMessages // the first messages, in a snapshot file
	messages []string       // the messages applied after them
	at       []entryAt      // where each of messages is in the log
	sessions map[uint64]*session
	clock    int64 // the latest leader time seen in the log, in Unix nanoseconds
	swept    int64 // the clock when expired sessions were last removed
	err      error // reading stored messages failed: the node cannot go on
}

// entryAt is where a message is in the log: the index and term of its entry. Messages
// applied from a snapshot written before they were recorded (machine format 1) have none
// (zero).
type entryAt struct{ index, term uint64 }

// storedMessages are the first count messages of a machine, in a snapshot file laid out
// in format (machineFormat): each a record from index[0] up to end, with index[i] the
// offset of message i*storedIndexEvery's record.
type storedMessages struct {
	f      *os.File // nil: none
	format int
	count  uint64
	index  []int64
	end    int64
}

const storedIndexEvery = 256

// total is the number of messages applied.
func (m *machine) total() uint64 { return m.stored.count + uint64(len(m.messages)) }

// slice returns messages [from, to) (0-based), reading the stored ones from their file.
// A read error is kept in m.err (the caller stops the node) and yields what was read.
func (m *machine) slice(from, to uint64) []string {
	out := make([]string, 0, to-from)
	m.each(from, to, func(_ entryAt, msg string) bool {
		out = append(out, msg)
		return true
	})
	return out
}

// each hands messages [from, to) (0-based) and where they are in the log to fn, in
// order, until fn returns false, reading the stored ones from their file. A read error
// is kept in m.err (the caller stops the node) and ends the walk.
func (m *machine) each(from, to uint64, fn func(at entryAt, msg string) bool) {
	if from < m.stored.count {
		more, err := m.stored.read(from, min(to, m.stored.count), fn)
		if err != nil && m.err == nil {
			m.err = fmt.Errorf("read the messages stored in %s: %w", m.stored.f.Name(), err)
		}
		if !more || err != nil {
			return
		}
	}
	for i := max(from, m.stored.count); i < to; i++ {
		if !fn(m.at[i-m.stored.count], m.messages[i-m.stored.count]) {
			return
		}
	}
}

// read hands stored messages [from, to) to fn, until fn returns false (more: false).
func (s storedMessages) read(from, to uint64, fn func(at entryAt, msg string) bool) (more bool, err error) {
	k := from / storedIndexEvery
	r := bufio.NewReaderSize(io.NewSectionReader(s.f, s.index[k], s.end-s.index[k]), 64<<10)
	for i := k * storedIndexEvery; i < to; i++ {
		var at entryAt
		if s.format >= 2 {
			if at.index, err = binary.ReadUvarint(r); err == nil {
				at.term, err = binary.ReadUvarint(r)
			}
		}
		var size uint64
		if err == nil {
			size, err = binary.ReadUvarint(r)
		}
		if err != nil {
			return false, err
		}
		if i < from {
			_, err = r.Discard(int(size))
		} else {
			b := make([]byte, size)
			if _, err = io.ReadFull(r, b); err == nil && !fn(at, string(b)) {
				return false, nil
			}
		}
		if err != nil {
			return false, err
		}
	}
	return true, nil
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

// apply applies one committed client message without a session, from the log entry at,
// and returns what it prints, if anything: "Count N" (the number of messages before it)
// or "Logs [...]" (all of them, itself included).
func (m *machine) apply(at entryAt, data []byte) string {
	msg := string(data)
	m.messages, m.at = append(m.messages, msg), append(m.at, at)
	return m.output(msg, m.total())
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
	return "Logs [" + strings.Join(m.slice(0, n), " ") + "]"
}

// applyCommand applies a client command of a session, from the log entry at. If the
// session's last command is this one, it is not applied again: the answer is the
// original's, with the index it was applied at. An older command than the session's last
// is refused.
func (m *machine) applyCommand(at entryAt, c command) (result string, appliedAt uint64, err error) {
	index := at.index
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
	m.messages, m.at = append(m.messages, c.Message), append(m.at, at)
	pos := m.total()
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
// background: later applies only append messages past its end, sessions are copied, and
// it reads the stored messages through its own handle on their file (close it).
type machineView struct {
	stored       storedMessages
	messages     []string
	at           []entryAt
	sessions     map[uint64]session
	clock, swept int64
}

func (m *machine) view() (machineView, error) {
	v, err := m.messagesFrom(0)
	if err != nil {
		return v, fmt.Errorf("snapshot: %w", err)
	}
	v.sessions, v.clock, v.swept = map[uint64]session{}, m.clock, m.swept
	for id, s := range m.sessions {
		v.sessions[id] = *s
	}
	return v, nil
}

// messagesFrom is a view of the machine's messages, for reading those from from
// (0-based) on outside the loop (with its each). The stored ones it reads through its
// own descriptor of their file, opened only if it holds some of them (close it).
func (m *machine) messagesFrom(from uint64) (machineView, error) {
	v := machineView{stored: m.stored, messages: m.messages[:len(m.messages):len(m.messages)], at: m.at[:len(m.at):len(m.at)]}
	v.stored.f = nil
	if m.stored.f != nil && from < m.stored.count {
		// Its own descriptor: the loop may close the machine's while the view is read.
		fd, err := syscall.Dup(int(m.stored.f.Fd()))
		if err != nil {
			return v, err
		}
		v.stored.f = os.NewFile(uintptr(fd), m.stored.f.Name())
	}
	return v, nil
}

// each is machine.each on the view's messages; a read error is returned.
func (v machineView) each(from, to uint64, fn func(at entryAt, msg string) bool) error {
	m := machine{stored: v.stored, messages: v.messages, at: v.at}
	m.each(from, to, fn)
	return m.err
}

func (v machineView) close() {
	if v.stored.f != nil {
		v.stored.f.Close()
	}
}

// encodeMachine lays out a snapshot of the machine (uvarints unless said otherwise):
//
//	message count, then each message as the index and term of its entry, a length and
//	its bytes;
//	clock, swept (varints); session count, then per session in id order:
//	id, seq, index, printed, count (0 or 1), lastSeen (varint)
//
// Format 1 has no index and term in the messages' records, and format 0 (snapshots
// written before sessions existed) has only the messages.
func encodeMachine(v machineView) []byte {
	var buf bytes.Buffer
	if _, err := encodeMachineTo(&buf, v); err != nil {
		panic(fmt.Sprintf("encode a machine in memory: %v", err)) // only stored messages can fail to read
	}
	return buf.Bytes()
}

// encodeMachineTo writes v as encodeMachine lays it out, copying the stored messages
// from their file, and returns where the messages are in what it wrote.
func encodeMachineTo(w io.Writer, v machineView) (storedMessages, error) {
	cw := &countingWriter{w: w}
	var b []byte
	total := v.stored.count + uint64(len(v.messages))
	cw.Write(binary.AppendUvarint(b, total))
	out := storedMessages{format: machineFormat, count: total}
	record := func(i uint64, at entryAt, msg string) {
		if i%storedIndexEvery == 0 {
			out.index = append(out.index, cw.n)
		}
		b = appendMessageRecord(b[:0], at, msg)
		cw.Write(b)
	}
	switch {
	case v.stored.count > 0 && v.stored.format != machineFormat:
		// Laid out the old way: each is read and written again.
		i := uint64(0)
		_, err := v.stored.read(0, v.stored.count, func(at entryAt, msg string) bool {
			record(i, at, msg)
			i++
			return true
		})
		if err != nil {
			return out, fmt.Errorf("copy the stored messages from %s: %w", v.stored.f.Name(), err)
		}
	case v.stored.count > 0:
		// The stored messages, as they are in their file; their offsets move by as much.
		shift := cw.n - v.stored.index[0]
		for _, at := range v.stored.index {
			out.index = append(out.index, at+shift)
		}
		size := v.stored.end - v.stored.index[0]
		if _, err := io.CopyN(cw, io.NewSectionReader(v.stored.f, v.stored.index[0], size), size); err != nil { // a short file is an error
			return out, fmt.Errorf("copy the stored messages from %s: %w", v.stored.f.Name(), err)
		}
	}
	for i, msg := range v.messages {
		record(v.stored.count+uint64(i), v.at[i], msg)
	}
	out.end = cw.n
	b = binary.AppendVarint(b[:0], v.clock)
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
	cw.Write(b)
	return out, cw.err
}

// appendMessageRecord appends a message's record to b: the index and term of its entry,
// its length and its bytes.
func appendMessageRecord(b []byte, at entryAt, msg string) []byte {
	b = binary.AppendUvarint(b, at.index)
	b = binary.AppendUvarint(b, at.term)
	b = binary.AppendUvarint(b, uint64(len(msg)))
	return append(b, msg...)
}

// countingWriter counts what it writes and keeps the first error.
type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// machineFormat is the layout encodeMachine writes, recorded in SnapshotMeta.Machine.
const machineFormat = 2

// restoreFile replaces the machine's state with a snapshot's whose machine bytes, data,
// are at offset off of file f: the messages stay there (the machine keeps f open), the
// rest is loaded.
func (m *machine) restoreFile(f *os.File, off int64, data []byte, format int) error {
	stored := storedMessages{f: f, format: format}
	st, err := parseMachine(data, format, func(i uint64, rec messageRecord) {
		if i%storedIndexEvery == 0 {
			stored.index = append(stored.index, off+int64(rec.start))
		}
		stored.count, stored.end = i+1, off+int64(rec.at+rec.size)
	})
	if err != nil {
		return err
	}
	m.close()
	m.stored, m.messages, m.at, m.sessions, m.clock, m.swept = stored, nil, nil, st.sessions, st.clock, st.swept
	return nil
}

// storeUpTo makes the messages of a snapshot file just written, stored (its messages
// are the first stored.count of this machine, stored.f its file), the machine's stored
// messages, and forgets them from memory.
func (m *machine) storeUpTo(stored storedMessages) {
	if stored.count < m.stored.count || stored.count > m.total() {
		stored.f.Close() // not this machine's (cannot happen: the loop checks first)
		return
	}
	rest, restAt := m.messages[stored.count-m.stored.count:], m.at[stored.count-m.stored.count:]
	m.close()
	// New arrays: the old ones held them all.
	m.stored, m.messages, m.at = stored, append([]string(nil), rest...), append([]entryAt(nil), restAt...)
}

// close closes the stored messages' file.
func (m *machine) close() {
	if m.stored.f != nil {
		m.stored.f.Close()
	}
}

// machineState is what a snapshot holds besides the messages.
type machineState struct {
	sessions     map[uint64]*session
	clock, swept int64
}

// messageRecord is where one message is in a snapshot's machine bytes: its record
// starts at start, its own bytes are [at, at+size), and it came from the entry entry.
type messageRecord struct {
	start, at, size int
	entry           entryAt
}

// parseMachine checks a snapshot's machine bytes, laid out in format, and hands each
// message (its number and its record) to message.
func parseMachine(data []byte, format int, message func(i uint64, rec messageRecord)) (machineState, error) {
	st := machineState{sessions: map[uint64]*session{}}
	if format > machineFormat {
		return st, fmt.Errorf("snapshot data: format %d; this binary reads up to %d: run a newer raft", format, machineFormat)
	}
	r := snapReader{data: data}
	count := r.uvarint()
	if r.err != nil || count > uint64(len(data)) {
		return st, errors.New("snapshot data: bad message count")
	}
	for i := range count {
		rec := messageRecord{start: r.off}
		if format >= 2 {
			rec.entry = entryAt{index: r.uvarint(), term: r.uvarint()}
		}
		size := r.uvarint()
		if r.err != nil || size > uint64(len(data)-r.off) {
			return st, fmt.Errorf("snapshot data: message %d is cut short", i+1)
		}
		rec.at, rec.size = r.off, int(size)
		message(i, rec)
		r.off += int(size)
	}
	if format >= 1 {
		st.clock, st.swept = r.varint(), r.varint()
		n := r.uvarint()
		if r.err == nil && n > uint64(len(data)) {
			r.err = errors.New("bad session count")
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			id := r.uvarint()
			s := &session{seq: r.uvarint(), index: r.uvarint(), printed: r.uvarint(), count: r.uvarint() == 1, lastSeen: r.varint()}
			st.sessions[id] = s
		}
		if r.err != nil {
			return st, fmt.Errorf("snapshot data: sessions: %v", r.err)
		}
	}
	if r.off != len(data) {
		return st, fmt.Errorf("snapshot data: %d bytes after the end", len(data)-r.off)
	}
	return st, nil
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
