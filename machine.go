// machine.go: the replicated state machine. It holds every client message applied so
// far, in log order; "print" and "count" are messages too, and produce output when
// applied. Every server applies the same entries in the same order, so every server
// prints the same lines.
package main

import (
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
