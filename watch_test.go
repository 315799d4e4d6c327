// watch_test.go: following the committed log (-C watch).
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A poll's answer holds at most maxWatchBytes of messages (and at least one), numbered
// from the one asked for; a poll past the last message waits for the next one, and one
// whose wait is over is answered with nothing and where to ask from next. A member
// takes at most maxWatchers polls at once.
func TestWatchAnswers(t *testing.T) {
	n := testNode(io.Discard)
	big := strings.Repeat("x", 1000)
	for i := range 3000 {
		n.apply(Entry{Index: uint64(i + 2), Term: 1, Type: EntryNormal, Data: []byte(fmt.Sprint(i+1, big))})
	}
	poll := func(from uint64, deadline time.Time) *watcher {
		w := &watcher{from: from, deadline: deadline, done: make(chan WatchResponse, 1)}
		n.takeWatcher(w)
		n.answerWatches()
		return w
	}
	later := time.Now().Add(time.Hour)
	from, size := uint64(1), 0
	for from <= 3000 {
		resp := <-poll(from, later).done
		size = 0
		for i, m := range resp.Messages {
			size += watchItemBytes + len(m.Data)
			if want := from + uint64(i); m.N != want || m.Index != want+1 || m.Data != fmt.Sprint(want, big) {
				t.Fatalf("message %d: got n=%d index=%d %.10q", want, m.N, m.Index, m.Data)
			}
		}
		if resp.Status != StatusOK || len(resp.Messages) == 0 || size > maxWatchBytes || resp.Next != from+uint64(len(resp.Messages)) {
			t.Fatalf("poll from %d: status %d, %d messages (%d bytes), next %d", from, resp.Status, len(resp.Messages), size, resp.Next)
		}
		from = resp.Next
	}
	// Tiny messages: what each adds besides its bytes counts too.
	tiny := testNode(io.Discard)
	for i := range 50000 {
		tiny.apply(Entry{Index: uint64(i + 1), Term: 1, Type: EntryNormal, Data: []byte("x")})
	}
	tiny.takeWatcher(&watcher{from: 1, deadline: later, done: make(chan WatchResponse, 1)})
	w0 := tiny.watchers[0]
	tiny.answerWatches()
	if resp := <-w0.done; len(resp.Messages) == 0 || len(resp.Messages)*(watchItemBytes+1) > maxWatchBytes {
		t.Fatalf("an answer of 1-byte messages holds %d of them", len(resp.Messages))
	}
	// Past the end: it waits for the next message, which is its answer.
	w := poll(3001, later)
	if len(n.watchers) != 1 {
		t.Fatalf("a poll past the last message was answered: %+v", <-w.done)
	}
	n.apply(Entry{Index: 3002, Term: 2, Type: EntryNormal, Data: []byte("new")})
	n.answerWatches()
	if resp := <-w.done; len(resp.Messages) != 1 || resp.Messages[0] != (WatchedMessage{N: 3001, Index: 3002, Term: 2, Data: "new"}) || resp.Next != 3002 {
		t.Fatalf("the waiting poll got %+v", resp)
	}
	// "The next one": resolved when the poll is taken, and kept when its wait runs out.
	if resp := <-poll(0, time.Now()).done; resp.Status != StatusOK || len(resp.Messages) != 0 || resp.Next != 3002 {
		t.Fatalf("a poll for the next message, waited out: %+v", resp)
	}
	// A bounded number wait at once.
	for range maxWatchers {
		poll(5000, later)
	}
	if resp := <-poll(5000, later).done; resp.Status != StatusRetry || !strings.Contains(resp.Error, "watches waiting") {
		t.Fatalf("poll number %d: %+v", maxWatchers+1, resp)
	}
}

// What -C watch prints keeps every message on one line, every byte recoverable.
func TestWatchOutput(t *testing.T) {
	for msg, want := range map[string]string{"I like beer.": "I like beer.", "a\nb": `"a\nb"`, `"q"`: `"\"q\""`, "\xff": `"\xff"`} {
		if got := watchText(msg); got != want {
			t.Errorf("text of %q: %s, want %s", msg, got, want)
		}
	}
	var j watchedJSON
	json.Unmarshal(watchJSON(WatchedMessage{N: 1, Index: 2, Term: 3, Data: "\xffa\n"}), &j)
	if b, _ := base64.StdEncoding.DecodeString(j.MessageBase64); string(b) != "\xffa\n" || j.Message != "" || j.N != 1 || j.Index != 2 || j.Term != 3 {
		t.Fatalf("json of a message that is not UTF-8: %+v", j)
	}
}

// A person tails a 3-node cluster's log through a leader kill and restart, another
// member's kill, and snapshots that compact the log under it: the watch prints every
// committed message exactly once, in order, each where it committed, from message 1
// though it started late; Ctrl-C ends it with status 0. A watch without -from starts
// with the messages committed after it.
func TestEndToEndWatch(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	ids := freeAddrs(t, 3)
	c := newE2ECluster(t, ids)
	start := func(id string) {
		_, port, _ := net.SplitHostPort(id)
		c.startWith(id, "-c", c.members, "-p", port, "-snapshot-entries", "20")
	}
	for _, id := range ids {
		start(id)
	}
	type sent struct {
		msg   string
		index int
	}
	var log []sent
	send := func(msg string) {
		r := c.send(c.members, msg) // the client finds a member that is up
		log = append(log, sent{msg, r.index})
	}
	for i := range 30 {
		send(fmt.Sprint("before ", i))
	}
	send("two\nlines")
	send("not utf-8: \xff")

	watch := func(args ...string) (*exec.Cmd, *lines, *lines) {
		out, errs := newLines(), newLines()
		cmd := exec.Command(c.bin, append([]string{"-C", "watch", "-json", "-S", c.members, "-timeout", "20s"}, args...)...)
		cmd.Stdout, cmd.Stderr = out, errs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, out, errs
	}
	all, out, errs := watch("-from", "1")
	if !out.waitCount("}", len(log)) {
		t.Fatalf("the watch printed %d of %d messages:\n%s\n%s", out.count("}"), len(log), out, errs)
	}
	next, nextOut, _ := watch()

	leader := c.status(ids[0]).Leader
	c.stop(leader, syscall.SIGKILL)
	for i := range 10 {
		send(fmt.Sprint("leader down ", i))
	}
	start(leader)
	other := ids[0]
	if other == leader {
		other = ids[1]
	}
	c.stop(other, syscall.SIGKILL)
	for i := range 10 {
		send(fmt.Sprint("another down ", i))
	}
	start(other)
	send("end")
	if !out.waitCount("}", len(log)) {
		t.Fatalf("the watch printed %d of %d messages:\n%s\n%s", out.count("}"), len(log), out, errs)
	}
	all.Process.Signal(syscall.SIGINT)
	if err := all.Wait(); err != nil {
		t.Fatalf("watch on Ctrl-C: %v\n%s", err, errs)
	}
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(got) != len(log) {
		t.Fatalf("the watch printed %d messages, %d committed:\n%s", len(got), len(log), out)
	}
	for i, line := range got {
		var j watchedJSON
		if err := json.Unmarshal([]byte(line), &j); err != nil {
			t.Fatalf("line %d: %q: %v", i+1, line, err)
		}
		msg := j.Message
		if j.MessageBase64 != "" {
			b, _ := base64.StdEncoding.DecodeString(j.MessageBase64)
			msg = string(b)
		}
		if j.N != uint64(i+1) || msg != log[i].msg || j.Index != uint64(log[i].index) || j.Term == 0 {
			t.Fatalf("line %d: %s; want message %d, %q, committed at index %d", i+1, line, i+1, log[i].msg, log[i].index)
		}
	}

	// The watch started without -from printed only messages committed after it started,
	// from the one after the last committed before it, with no gap. It polls on its own,
	// maybe another member than the first watch, which applies "end" later: it is stopped
	// once it has printed it.
	if !nextOut.waitLine(`"message":"end"}`) {
		t.Fatalf("a watch of the next messages did not print the last one, \"end\", within %v:\n%s", e2eWait, nextOut)
	}
	next.Process.Signal(syscall.SIGINT)
	next.Wait()
	var first watchedJSON
	lines := strings.Split(strings.TrimSpace(nextOut.String()), "\n")
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.N < 33 || first.N+uint64(len(lines)) != uint64(len(log))+1 {
		t.Fatalf("a watch of the next messages, started after message 32, printed %d lines from message %d (%v):\n%s", len(lines), first.N, err, nextOut)
	}
}

// A watch of a cluster that is down gives up after -timeout with status 1, naming every
// member it asked and why.
func TestEndToEndWatchDeadCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: runs the binary")
	}
	dead := freeAddrs(t, 2)
	out, err := exec.Command(raftBinary(t), "-C", "watch", "-S", strings.Join(dead, ","), "-timeout", "1s").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitFailed {
		t.Fatalf("watch of a dead cluster: %v\n%s", err, out)
	}
	last := strings.TrimSpace(string(out))
	last = last[strings.LastIndex(last, "\n")+1:]
	for _, addr := range dead {
		if !strings.Contains(last, addr+": dial tcp "+addr+": connect: connection refused") {
			t.Fatalf("the last line does not say why %s failed: %s", addr, last)
		}
	}
}
