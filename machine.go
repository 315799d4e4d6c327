// machine.go: the replicated state machine. It holds every client message applied so
// far, in log order; "print" and "count" are messages too, and produce output when
// applied. Every server applies the same entries in the same order, so every server
// prints the same lines.
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

type machine struct {
	messages []string
}

// apply applies one committed client message and returns what it prints, if anything:
// "Count N" (the number of messages before it) or "Logs [...]" (all of them, itself included).
func (m *machine) apply(data []byte) string {
	msg := string(data)
	var out string
	if msg == "count" {
		out = fmt.Sprintf("Count %d", len(m.messages))
	}
	m.messages = append(m.messages, msg)
	if msg == "print" {
		out = "Logs [" + strings.Join(m.messages, " ") + "]"
	}
	return out
}

// view returns the messages applied so far. Later applies only append past its end, so
// a snapshot can encode it in the background while the event loop goes on.
func (m *machine) view() []string {
	return m.messages[:len(m.messages):len(m.messages)]
}

// encodeMachine lays out a snapshot of the messages: a count, then each message as a
// length and its bytes (uvarints).
func encodeMachine(messages []string) []byte {
	size := binary.MaxVarintLen64
	for _, msg := range messages {
		size += binary.MaxVarintLen64 + len(msg)
	}
	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, uint64(len(messages)))
	for _, msg := range messages {
		b = binary.AppendUvarint(b, uint64(len(msg)))
		b = append(b, msg...)
	}
	return b
}

// restore replaces the machine's state with a snapshot's.
func (m *machine) restore(data []byte) error {
	count, n := binary.Uvarint(data)
	if n <= 0 || count > uint64(len(data)) {
		return errors.New("snapshot data: bad message count")
	}
	// One string holds every message; each message is a slice of it.
	body := data[n:]
	all := string(body)
	messages := make([]string, 0, count)
	off := 0
	for range count {
		size, k := binary.Uvarint(body[off:])
		if k <= 0 || size > uint64(len(body)-off-k) {
			return fmt.Errorf("snapshot data: message %d is cut short", len(messages)+1)
		}
		off += k
		messages = append(messages, all[off:off+int(size)])
		off += int(size)
	}
	if off != len(all) {
		return fmt.Errorf("snapshot data: %d bytes after the last message", len(all)-off)
	}
	m.messages = messages
	return nil
}
