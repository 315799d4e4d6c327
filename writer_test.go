package main

import (
	"io"
	"log/slog"
	"os"
	"testing"
	"time"
)

// A failed write stops the node, and the writer writes nothing more, not even the
// writes queued behind the failed one before the loop heard of it. After a failed fsync
// the kernel may have dropped the failed write's pages. A later write that did get
// through would then sit after a gap in the log, and at restart the node would find
// its log damaged in the middle (which it refuses to start with), not cut short at the
// end by a crash (which it cuts off, and carries on).
func TestWriterStopsAfterAFailedWrite(t *testing.T) {
	dir := t.TempDir()
	id := "127.0.0.1:1"
	cfg := nodeConfig{ID: id, DataDir: dir, Bootstrap: Config{Members: []string{id}},
		Heartbeat: 100 * time.Millisecond, Election: time.Second}
	store, st, _, _, err := openStorage(dir, id, cfg.Bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(cfg, st, store, nil, io.Discard, slog.New(slog.DiscardHandler))
	// The log's file becomes a pipe: writes go through, and every fsync fails (EINVAL),
	// as an fsync does after a disk error.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	segment := store.f
	store.f = pw
	defer func() {
		store.f = segment
		store.Close()
		pr.Close()
		close(n.donec)
		n.trans.stop()
	}()
	go n.writer()
	write := func(term uint64) writeReq { return writeReq{rd: Ready{HardState: &HardState{Term: term}}} }

	n.writec <- write(1)
	if done := <-n.writtenc; done.err == nil {
		t.Fatal("an fsync of a pipe succeeded; the test cannot make a write fail")
	}
	// A write the loop handed over before it heard of the failure; then it stops, as
	// run's deferred cleanup does.
	n.writec <- write(2)
	n.stopWriter()
	pw.Close()
	data, err := io.ReadAll(pr)
	if err != nil {
		t.Fatal(err)
	}
	frames := 0
	for off := 0; ; frames++ {
		_, _, next, ok := readFrame(data, off)
		if !ok {
			break
		}
		off = next
	}
	if frames != 1 {
		t.Fatalf("the writer wrote %d records, %d after a write that failed; want none after it", frames, frames-1)
	}
}
