// machine_test.go: the state machine: output, client sessions (exactly-once), their
// expiry by log time, and snapshots of it all.
package main

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// A command sent again with its session's sequence number is not applied again; the
// retry is answered with what the first copy printed, and where it was applied.
func TestSessionAppliesOnce(t *testing.T) {
	var m machine
	t0 := time.Now().UnixNano()
	apply := func(index, session, seq uint64, msg string) (string, uint64, error) {
		return m.applyCommand(entryAt{index, 1}, command{Session: session, Seq: seq, Time: t0, Message: msg})
	}
	apply(1, 7, 1, "a")
	if out, at, err := apply(2, 7, 2, "count"); out != "Count 1" || at != 2 || err != nil {
		t.Fatalf("count: %q at %d (%v)", out, at, err)
	}
	apply(3, 8, 1, "b") // another client
	// The count is retried after the log moved on: the answer is the original one.
	if out, at, err := apply(4, 7, 2, "count"); out != "Count 1" || at != 2 || err != nil {
		t.Fatalf("retried count: %q at %d (%v); want the first answer, Count 1 at 2", out, at, err)
	}
	if out, _, _ := apply(5, 7, 3, "print"); out != "Logs [a count b print]" {
		t.Fatalf("print: %q", out)
	}
	apply(6, 8, 2, "c")
	if out, at, _ := apply(7, 7, 3, "print"); out != "Logs [a count b print]" || at != 5 {
		t.Fatalf("retried print: %q at %d; want what it printed then, at 5", out, at)
	}
	if _, _, err := apply(8, 7, 1, "a"); err == nil {
		t.Fatal("a command older than the session's last was applied")
	}
	if want := []string{"a", "count", "b", "print", "c"}; !reflect.DeepEqual(m.messages, want) {
		t.Fatalf("messages %q, want %q: retries must not be applied", m.messages, want)
	}
}

// Sessions expire by the time in the log, so every server forgets the same ones at the
// same entry, whatever its own clock says.
func TestSessionsExpireByLogTime(t *testing.T) {
	var m machine
	t0 := int64(1_000_000_000_000)
	m.applyCommand(entryAt{1, 1}, command{Session: 1, Seq: 1, Time: t0, Message: "a"})
	m.applyCommand(entryAt{2, 1}, command{Session: 2, Seq: 1, Time: t0 + int64(sessionTTL/2), Message: "b"})
	m.applyCommand(entryAt{3, 1}, command{Session: 3, Seq: 1, Time: t0 + int64(sessionTTL) + int64(time.Minute), Message: "c"})
	if _, ok := m.sessions[1]; ok {
		t.Fatal("session 1, idle for more than the TTL of log time, was kept")
	}
	if _, ok := m.sessions[2]; !ok {
		t.Fatal("session 2, idle for less than the TTL, was forgotten")
	}
	// A leader with a clock behind does not turn log time back.
	m.applyCommand(entryAt{4, 1}, command{Session: 4, Seq: 1, Time: t0, Message: "d"})
	if m.clock != t0+int64(sessionTTL)+int64(time.Minute) {
		t.Fatalf("log clock went back to %d", m.clock)
	}
}

// A snapshot keeps the sessions: a retry after a restart from it is still applied once.
func TestSessionsInSnapshot(t *testing.T) {
	var m machine
	t0 := time.Now().UnixNano()
	m.applyCommand(entryAt{1, 1}, command{Session: 9, Seq: 1, Time: t0, Message: "a"})
	m.applyCommand(entryAt{2, 1}, command{Session: 9, Seq: 2, Time: t0, Message: "count"})
	var back machine
	if err := back.restore(encodeMachine(m.testView()), machineFormat); err != nil {
		t.Fatal(err)
	}
	if out, at, _ := back.applyCommand(entryAt{3, 1}, command{Session: 9, Seq: 2, Time: t0, Message: "count"}); out != "Count 1" || at != 2 || len(back.messages) != 2 {
		t.Fatalf("retry after restore: %q at %d, %d messages", out, at, len(back.messages))
	}
	// A format 0 snapshot (messages only) still loads.
	old := encodeFormat1([]string{"x", "y"})
	old = old[:len(old)-3] // without the clocks and the session count
	if err := back.restore(old, 0); err != nil || len(back.messages) != 2 || len(back.sessions) != 0 {
		t.Fatalf("format 0: %v, %q", err, back.messages)
	}
}

func TestCommandEncoding(t *testing.T) {
	c := command{Session: 1 << 60, Seq: 3, Time: -5, Message: "  héllo ☃ "}
	got, err := decodeCommand(encodeCommand(c))
	if err != nil || got != c {
		t.Fatalf("round trip: %+v (%v), want %+v", got, err, c)
	}
	for _, bad := range [][]byte{nil, {0x80}, {1, 0x80}, {1, 1, 0x80}} {
		if _, err := decodeCommand(bad); err == nil {
			t.Fatalf("%x decoded", bad)
		}
	}
}

// storeInSnapshot writes a snapshot at meta of a machine that applied msgs, and loads it
// into m as a node does: the messages are then read from the file. It returns the
// snapshot's machine bytes.
func storeInSnapshot(t *testing.T, dir string, meta SnapshotMeta, msgs []string, m *machine) []byte {
	t.Helper()
	var full machine
	for _, msg := range msgs {
		full.apply(entryAt{full.total() + 1, 1}, []byte(msg))
	}
	if _, _, err := writeMachineSnapshot(dir, meta, full.testView()); err != nil {
		t.Fatal(err)
	}
	return loadSnapshot(t, dir, meta, m)
}

// loadSnapshot loads the snapshot at meta into m as a node does, and returns its
// machine bytes.
func loadSnapshot(t *testing.T, dir string, meta SnapshotMeta, m *machine) []byte {
	t.Helper()
	data, err := readSnapshot(dir, meta)
	if err == nil {
		err = openSnapshotMessages(dir, meta, data, m)
	}
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// testView is view for a machine whose messages are all in memory.
func (m *machine) testView() machineView {
	v, err := m.view()
	if err != nil {
		panic(err)
	}
	return v
}

// Messages up to the latest snapshot are read back from its file, not memory: after
// snapshots taken at random points (each copying the previous one's messages and adding
// those applied since), every range of messages reads the same as it was applied, the
// machine holds only the messages since the last snapshot, and a restart from the file
// reads the same too.
func TestStoredMessages(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	dir := t.TempDir()
	var m machine
	defer m.close()
	var want []string
	at := func(i int) entryAt { return entryAt{uint64(3*i + 7), uint64(i/100 + 1)} } // where the i-th message was in the log
	check := func(m *machine, when string) {
		t.Helper()
		if m.total() != uint64(len(want)) {
			t.Fatalf("%s: %d messages, want %d", when, m.total(), len(want))
		}
		for range 20 {
			from := uint64(rng.Intn(len(want) + 1))
			to := from + uint64(rng.Intn(len(want)-int(from)+1))
			if got := m.slice(from, to); !slices.Equal(got, want[from:to]) || m.err != nil {
				t.Fatalf("%s: messages [%d, %d): got %d of them (%v)", when, from, to, len(got), m.err)
			}
			i := int(from)
			m.each(from, to, func(got entryAt, _ string) bool {
				if got != at(i) {
					t.Fatalf("%s: message %d from entry %v, want %v", when, i, got, at(i))
				}
				i++
				return true
			})
		}
		if got := m.logs(uint64(len(want))); got != "Logs ["+strings.Join(want, " ")+"]" {
			t.Fatalf("%s: logs differ", when)
		}
	}
	var last SnapshotMeta
	for round := range 6 {
		for range rng.Intn(700) {
			msg := strings.Repeat(fmt.Sprint(len(want)), 1+rng.Intn(40))
			want = append(want, msg)
			m.apply(at(len(want)-1), []byte(msg))
		}
		v, err := m.view()
		if err != nil {
			t.Fatal(err)
		}
		last = SnapshotMeta{Index: uint64(len(want)) + 1, Term: 1, Machine: machineFormat}
		stored, _, err := writeMachineSnapshot(dir, last, v)
		v.close()
		if err != nil {
			t.Fatal(err)
		}
		// Applied while it was written: these stay in memory.
		for range rng.Intn(5) {
			want = append(want, fmt.Sprint("late", len(want)))
			m.apply(at(len(want)-1), []byte(want[len(want)-1]))
		}
		if stored.f, err = os.Open(filepath.Join(dir, snapshotName(last))); err != nil {
			t.Fatal(err)
		}
		m.storeUpTo(stored)
		if len(m.messages) > 4 {
			t.Fatalf("round %d: %d messages still in memory after the snapshot", round, len(m.messages))
		}
		check(&m, fmt.Sprintf("round %d", round))
	}
	// A restart: the file's messages, plus (from the log) the ones after it.
	var back machine
	defer back.close()
	loadSnapshot(t, dir, last, &back)
	for i := back.total(); i < uint64(len(want)); i++ {
		back.apply(at(int(i)), []byte(want[i]))
	}
	check(&back, "restarted")
	// A view of the messages (a watch reads one outside the loop) has a descriptor of its
	// own: it reads them all though the machine's is closed.
	v, err := back.messagesFrom(0)
	if err != nil {
		t.Fatal(err)
	}
	defer v.close()
	// A file that cannot be read any more is an error the node stops on, not a short print.
	back.stored.f.Close()
	if back.logs(back.total()); back.err == nil {
		t.Fatal("reading a closed file went unnoticed")
	}
	var got []string
	if err := v.each(0, uint64(len(want)), func(_ entryAt, msg string) bool { got = append(got, msg); return true }); err != nil || !slices.Equal(got, want) {
		t.Fatalf("the view read %d of %d messages (%v)", len(got), len(want), err)
	}
}

// A snapshot file cut short (damaged after it was written) fails the next snapshot, which
// copies its messages, rather than yield a file whose checksum covers wrong data.
// (Found in review.)
func TestSnapshotOfShortStoredFileFails(t *testing.T) {
	dir := t.TempDir()
	var msgs []string
	for i := range 1000 {
		msgs = append(msgs, fmt.Sprint("message ", i))
	}
	var m machine
	defer m.close()
	first := SnapshotMeta{Index: 1000, Term: 1, Machine: machineFormat}
	data := storeInSnapshot(t, dir, first, msgs, &m)
	if err := os.Truncate(filepath.Join(dir, snapshotName(first)), int64(len(data)/2)); err != nil {
		t.Fatal(err)
	}
	m.apply(entryAt{m.total() + 1, 1}, []byte("after"))
	v := m.testView()
	defer v.close()
	if _, _, err := writeMachineSnapshot(dir, SnapshotMeta{Index: 1001, Term: 1, Machine: machineFormat}, v); err == nil {
		t.Fatal("a snapshot copied the messages of a file cut short")
	}
}

// restore replaces the machine's state with a snapshot's, laid out in format, holding
// every message in memory (a node keeps them in the file: restoreFile).
func (m *machine) restore(data []byte, format int) error {
	all := string(data) // one string holds the message bytes; each message is a slice of it
	var messages []string
	var ats []entryAt
	st, err := parseMachine(data, format, func(_ uint64, rec messageRecord) {
		messages, ats = append(messages, all[rec.at:rec.at+rec.size]), append(ats, rec.entry)
	})
	if err != nil {
		return err
	}
	m.close()
	m.stored, m.messages, m.at, m.sessions, m.clock, m.swept = storedMessages{}, messages, ats, st.sessions, st.clock, st.swept
	return nil
}

// encodeFormat1 lays out messages as machine format 1 did: without their entries, and
// with no sessions.
func encodeFormat1(messages []string) []byte {
	b := binary.AppendUvarint(nil, uint64(len(messages)))
	for _, msg := range messages {
		b = append(binary.AppendUvarint(b, uint64(len(msg))), msg...)
	}
	return append(b, 0, 0, 0) // clock, swept, no sessions
}

// A snapshot in format 1 (before messages recorded their entries) still loads, its
// messages with no entry, and the next snapshot taken from it writes them again in
// today's format, after which both old and new messages read back as applied.
func TestMachineFormat1Upgrade(t *testing.T) {
	dir := t.TempDir()
	old := SnapshotMeta{Index: 3, Term: 1, Machine: 1}
	if err := writeSnapshot(dir, old, encodeFormat1([]string{"a", "b c", "d\n"})); err != nil {
		t.Fatal(err)
	}
	var m machine
	defer m.close()
	loadSnapshot(t, dir, old, &m)
	m.apply(entryAt{4, 2}, []byte("e"))
	want := []entryAt{{}, {}, {}, {4, 2}}
	check := func(m *machine, when string) {
		t.Helper()
		var got []entryAt
		var msgs []string
		m.each(0, m.total(), func(at entryAt, msg string) bool {
			got, msgs = append(got, at), append(msgs, msg)
			return true
		})
		if !slices.Equal(got, want) || !slices.Equal(msgs, []string{"a", "b c", "d\n", "e"}) || m.err != nil {
			t.Fatalf("%s: %q at %v (%v)", when, msgs, got, m.err)
		}
	}
	check(&m, "loaded")
	next := SnapshotMeta{Index: 4, Term: 2, Machine: machineFormat}
	v, err := m.view()
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = writeMachineSnapshot(dir, next, v)
	v.close()
	if err != nil {
		t.Fatal(err)
	}
	var back machine
	defer back.close()
	loadSnapshot(t, dir, next, &back)
	check(&back, "rewritten")
}

// viewOf is a machine holding messages, the i-th from the entry at index i (term 1).
func viewOf(messages []string) machineView {
	v := machineView{messages: messages}
	for i := range messages {
		v.at = append(v.at, entryAt{uint64(i) + 1, 1})
	}
	return v
}
