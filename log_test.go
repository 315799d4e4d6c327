// log_test.go: tests of the write-ahead log: what a restart finds after every kind of
// damage a crash or a disk can do.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var testBootstrap = Config{Members: []string{":1", ":2", ":3"}}

func mustOpen(t *testing.T, dir string) (*storage, persistentState) {
	t.Helper()
	s, st, notice, err := openStorage(dir, ":1", testBootstrap)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	if notice != "" {
		t.Fatalf("unexpected notice opening %s: %s", dir, notice)
	}
	return s, st
}

func ents(first, term uint64, data ...string) []Entry {
	var es []Entry
	for i, d := range data {
		es = append(es, Entry{Index: first + uint64(i), Term: term, Type: EntryNormal, Data: []byte(d)})
	}
	return es
}

func TestWALRoundTripAcrossReopens(t *testing.T) {
	dir := t.TempDir()
	s, st := mustOpen(t, dir)
	if !reflect.DeepEqual(st.Bootstrap, testBootstrap) || len(st.Entries) != 0 {
		t.Fatalf("new data dir loaded %+v", st)
	}
	cc := encodeConfChange(ConfChange{Op: confAdd, Server: ":4", Config: Config{Members: []string{":1", ":2", ":3", ":4"}}})
	saves := []struct {
		hs   *HardState
		ents []Entry
	}{
		{&HardState{Term: 1, Vote: ":1"}, nil},
		{nil, ents(1, 1, "a", "b", "c")},
		{&HardState{Term: 2, Vote: ":2", Commit: 2}, append(ents(3, 2, "C", "d"), Entry{Index: 5, Term: 2, Type: EntryConfig, Data: cc})},
	}
	for _, sv := range saves {
		if err := s.Save(sv.hs, sv.ents); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// A second life writes a new gob stream after the first.
	s, st = mustOpen(t, dir)
	if err := s.Save(&HardState{Term: 3, Commit: 4}, ents(5, 3, "e", "f")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, st = mustOpen(t, dir)
	want := persistentState{
		HardState: HardState{Term: 3, Commit: 4},
		Entries:   append(append(ents(1, 1, "a", "b"), ents(3, 2, "C", "d")...), ents(5, 3, "e", "f")...),
		Bootstrap: testBootstrap,
	}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("loaded\n%+v\nwant\n%+v", st, want)
	}
}

// writeRecords creates a log with a few records and returns its path, its bytes, the
// offset where each record starts, and the state after each record.
func writeRecords(t *testing.T, dir string) (path string, data []byte, starts []int, states []persistentState) {
	t.Helper()
	s, st := mustOpen(t, dir)
	path = filepath.Join(dir, walName)
	for i := 1; i <= 5; i++ {
		info, _ := os.Stat(path)
		starts = append(starts, int(info.Size()))
		hs := &HardState{Term: uint64(i), Vote: ":2"}
		es := ents(uint64(2*i-1), uint64(i), fmt.Sprintf("msg %d", 2*i-1), fmt.Sprintf("msg %d", 2*i))
		if err := s.Save(hs, es); err != nil {
			t.Fatal(err)
		}
		replayRecord(&st, walRecord{HardState: hs, Entries: es})
		states = append(states, persistentState{HardState: st.HardState, Entries: append([]Entry(nil), st.Entries...), Bootstrap: st.Bootstrap})
	}
	s.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, data, starts, states
}

// A crash mid-write leaves the last record cut anywhere: the restart cuts it off,
// reports it, and loads everything before it.
func TestWALTornTailAtEveryOffset(t *testing.T) {
	dir := t.TempDir()
	path, data, starts, states := writeRecords(t, dir)
	last := starts[len(starts)-1]
	for cut := last; cut < len(data); cut++ {
		if err := os.WriteFile(path, data[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		s, st, notice, err := openStorage(dir, ":1", testBootstrap)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		s.Close()
		if want := states[len(states)-2]; !reflect.DeepEqual(st, want) {
			t.Fatalf("cut at %d: loaded %+v, want the state before the last record %+v", cut, st, want)
		}
		if (cut > last) != (notice != "") {
			t.Fatalf("cut at %d (record starts at %d): notice %q", cut, last, notice)
		}
		if info, _ := os.Stat(path); info.Size() != int64(last) {
			t.Fatalf("cut at %d: file is %d bytes after open, want %d (cut back to the last whole record)", cut, info.Size(), last)
		}
	}
}

// A torn write can also leave zeros (the file grew but the data never landed) or
// garbage in the last record; both are a torn tail.
func TestWALTornTailZerosOrGarbage(t *testing.T) {
	for name, tail := range map[string][]byte{"zeros": make([]byte, 4096), "garbage": []byte("\x07\x00\x00\x00garbage!!")} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path, data, _, states := writeRecords(t, dir)
			os.WriteFile(path, append(bytes.Clone(data), tail...), 0o600)
			s, st, notice, err := openStorage(dir, ":1", testBootstrap)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if !reflect.DeepEqual(st, states[len(states)-1]) || !strings.Contains(notice, "torn tail") {
				t.Fatalf("loaded %+v, notice %q", st, notice)
			}
		})
	}
}

// Damage anywhere before the last record is not a torn write: the node refuses to
// start, names the file and offset, and leaves the file as it was.
func TestWALCorruptionBeforeTailRefused(t *testing.T) {
	dir := t.TempDir()
	path, data, starts, _ := writeRecords(t, dir)
	for i, start := range starts[:len(starts)-1] {
		end := starts[i+1]
		for _, at := range []int{start, start + 3, start + 5, start + 8, start + frameHeader, (start + end) / 2, end - 1} {
			damaged := bytes.Clone(data)
			damaged[at] ^= 0x10
			os.WriteFile(path, damaged, 0o600)
			_, _, _, err := openStorage(dir, ":1", testBootstrap)
			if !errors.Is(err, errDataDir) {
				t.Fatalf("record %d, byte %d flipped: err = %v, want a data dir error", i, at, err)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", start)) {
				t.Fatalf("record %d, byte %d flipped: error %q does not name %s and offset %d", i, at, err, path, start)
			}
			if now, _ := os.ReadFile(path); !bytes.Equal(now, damaged) {
				t.Fatalf("record %d, byte %d flipped: the refused log was changed on disk", i, at)
			}
		}
	}
	// The header (first record) damaged: refused too.
	damaged := bytes.Clone(data)
	damaged[frameHeader+2] ^= 1
	os.WriteFile(path, damaged, 0o600)
	if _, _, _, err := openStorage(dir, ":1", testBootstrap); !errors.Is(err, errDataDir) {
		t.Fatalf("damaged header: err = %v", err)
	}
}

func TestWALRefusesAnotherNodesDataDir(t *testing.T) {
	dir := t.TempDir()
	s, _ := mustOpen(t, dir)
	s.Close()
	_, _, _, err := openStorage(dir, ":2", testBootstrap)
	if !errors.Is(err, errDataDir) || !strings.Contains(err.Error(), "belongs to node :1") {
		t.Fatalf("err = %v, want a refusal naming the owner", err)
	}
}

func TestWALRefusesNewerFormat(t *testing.T) {
	dir := t.TempDir()
	if err := createWAL(dir, walMeta{Version: walVersion + 1, ID: ":1"}); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := openStorage(dir, ":1", testBootstrap)
	if !errors.Is(err, errDataDir) || !strings.Contains(err.Error(), "format version") {
		t.Fatalf("err = %v, want a format version refusal", err)
	}
}

func TestWALLockedWhileOpen(t *testing.T) {
	dir := t.TempDir()
	s, _ := mustOpen(t, dir)
	_, _, _, err := openStorage(dir, ":1", testBootstrap)
	if !errors.Is(err, errDataDir) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: err = %v, want 'in use'", err)
	}
	s.Close()
	s, _ = mustOpen(t, dir) // free again once closed
	s.Close()
}

// A crash while creating the log leaves at most a temporary file, never a half log.
func TestWALCreationLeftoverIgnored(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, walName+".tmp"), []byte("half"), 0o600)
	s, st := mustOpen(t, dir)
	defer s.Close()
	if !reflect.DeepEqual(st.Bootstrap, testBootstrap) {
		t.Fatalf("loaded %+v", st)
	}
}

// Records whose entries do not follow on from the log are damage, not data.
func TestWALReplayRejectsGaps(t *testing.T) {
	var st persistentState
	if err := replayRecord(&st, walRecord{Entries: ents(1, 1, "a")}); err != nil {
		t.Fatal(err)
	}
	if err := replayRecord(&st, walRecord{Entries: ents(3, 1, "c")}); err == nil {
		t.Fatal("a record starting at 3 after a log ending at 1 was accepted")
	}
	if err := replayRecord(&st, walRecord{Entries: []Entry{{Index: 2, Term: 1, Type: EntryConfig, Data: []byte("junk")}}}); err == nil {
		t.Fatal("an undecodable configuration entry was accepted")
	}
}
