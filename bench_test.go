// bench_test.go: Go benchmarks that keep the cost of the core and of the log encoder
// visible (go test -run '^$' -bench . -benchmem). Tests never assert speed; these only
// report it. The load generator (raft -C bench) measures the whole system.
package main

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"
)

// BenchmarkCoreCommit drives three cores directly (no network, no disk): one op is one
// client message proposed to the leader and committed, in batches of 64 as group commit
// makes them.
func BenchmarkCoreCommit(b *testing.B) {
	ids := []string{"a", "b", "c"}
	cores := map[string]*raft{}
	for _, id := range ids {
		cores[id] = newRaft(coreConfig{ID: id, ElectionTicks: 10, HeartbeatTicks: 1, MaxMsgBytes: maxMsgBytes, MaxInflight: maxInflight,
			Rand: rand.New(rand.NewSource(1))}, persistentState{Bootstrap: Config{Members: ids}})
	}
	// settle hands every Ready on until no core has anything left: persisting is free.
	settle := func() {
		for busy := true; busy; {
			busy = false
			for _, id := range ids {
				r := cores[id]
				for r.hasReady() {
					busy = true
					rd := r.Ready()
					r.Advance(rd)
					for _, m := range rd.Messages {
						cores[m.To].Step(m)
					}
				}
			}
		}
	}
	cores["a"].campaign(false)
	settle()
	l := cores["a"]
	data := bytes.Repeat([]byte("x"), 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 64 {
		for range min(64, b.N-i) {
			if _, _, err := l.Propose(EntryNormal, data); err != nil {
				b.Fatal(err)
			}
		}
		settle()
	}
	b.StopTimer()
	if l.commitIndex != l.log.lastIndex() {
		b.Fatalf("commit %d of %d", l.commitIndex, l.log.lastIndex())
	}
}

// BenchmarkWALEncode is the cost of encoding one log record of 64 entries of 64 bytes
// (what one Save writes under load), without the write and fsync.
func BenchmarkWALEncode(b *testing.B) {
	ents := make([]Entry, 64)
	for i := range ents {
		ents[i] = Entry{Index: uint64(i + 1), Term: 1, Type: EntrySession, Data: encodeCommand(command{Session: 1, Seq: uint64(i), Message: fmt.Sprintf("%064d", i)})}
	}
	hs := &HardState{Term: 1, Commit: 1}
	s, _, _, _, err := openStorage(b.TempDir(), ":1", testBootstrap)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	b.SetBytes(64 * 64)
	b.ResetTimer()
	for range b.N {
		if _, err := s.encode(walRecord{HardState: hs, Entries: ents}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSaveAll is the disk writer's SaveAll of one record of 20 entries of 64 bytes
// and a hard state: with its write and fsync (in a temporary dir), and its encoding
// alone (encode: the frame as write makes it).
func BenchmarkSaveAll(b *testing.B) {
	ents := make([]Entry, 20)
	data := bytes.Repeat([]byte("y"), 64)
	for i := range ents {
		ents[i] = Entry{Term: 1, Type: EntryNormal, Data: data}
	}
	next, hs := uint64(1), &HardState{Term: 1, Vote: ":1"}
	record := func() walRecord { // the next 20 entries, as the core hands them over
		for i := range ents {
			ents[i].Index = next
			next++
		}
		hs.Commit = next - 1
		return walRecord{HardState: hs, Entries: ents}
	}
	run := func(name string, op func(s *storage, rec walRecord) error) {
		b.Run(name, func(b *testing.B) {
			s, _, _, _, err := openStorage(b.TempDir(), ":1", testBootstrap)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			next = 1 // a new log
			b.ReportAllocs()
			b.SetBytes(20 * 64)
			for b.Loop() {
				if err := op(s, record()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	run("fsync", func(s *storage, rec walRecord) error { return s.SaveAll([]walRecord{rec}) })
	run("encode", func(s *storage, rec walRecord) error { _, err := s.encode(rec); return err })
}

// BenchmarkWALSave is one Save of 64 entries: encode, one write, one fsync.
func BenchmarkWALSave(b *testing.B) {
	s, _, _, _, err := openStorage(b.TempDir(), ":1", testBootstrap)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	next := uint64(1)
	b.SetBytes(64 * 64)
	b.ResetTimer()
	for range b.N {
		ents := make([]Entry, 64)
		for i := range ents {
			ents[i] = Entry{Index: next, Term: 1, Type: EntryNormal, Data: bytes.Repeat([]byte("y"), 64)}
			next++
		}
		if err := s.Save(&HardState{Term: 1, Commit: next - 1}, ents); err != nil {
			b.Fatal(err)
		}
	}
}
