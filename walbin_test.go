// walbin_test.go: the binary encoding of the log's hot records (walbin.go) decodes to
// what gob gave for the same record, refuses what it did not write, and never
// allocates more than its input could hold.
//
//	go test -run '^$' -fuzz FuzzWALEntriesRecord -fuzztime 1m .
package main

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

// show is rec as a failure prints it: the hard state, not its address.
func show(rec walRecord) string {
	if rec.HardState == nil {
		return fmt.Sprintf("{HardState: nil, Entries: %+v}", rec.Entries)
	}
	return fmt.Sprintf("{HardState: &%+v, Entries: %+v}", *rec.HardState, rec.Entries)
}

// viaGob is rec as a gob record of the log reads back.
func viaGob(t *testing.T, rec walRecord) walRecord {
	t.Helper()
	var back walRecord
	if err := decodeGob(gobBytes(rec), &back); err != nil {
		t.Fatal(err)
	}
	return back
}

// viaBinary is rec as a binary record of the log reads back.
func viaBinary(t *testing.T, rec walRecord) (walRecord, []byte) {
	t.Helper()
	enc, err := appendEntriesRecord(nil, &rec)
	if err != nil {
		t.Fatal(err)
	}
	back, err := readEntriesRecord(enc)
	if err != nil {
		t.Fatalf("%s encoded as %x does not decode: %v", show(rec), enc, err)
	}
	return back, enc
}

// Every field of a hard state and of entries survives the trip, and a record reads back
// as gob read it: a field added to HardState or Entry and left out of walbin.go fails
// here. Cut short anywhere, with a byte after it, or with flags it does not know, a
// record is refused, not decoded into something else.
func TestWALEntriesRecordRoundTrip(t *testing.T) {
	var next uint64
	full := walRecord{HardState: new(HardState), Entries: make([]Entry, 3)}
	fillAll(reflect.ValueOf(full.HardState).Elem(), &next)
	for i := range full.Entries {
		fillAll(reflect.ValueOf(&full.Entries[i]).Elem(), &next)
		full.Entries[i].Index = 1000 + uint64(i) // consecutive, as a record's are
	}
	if got, _ := viaBinary(t, full); !reflect.DeepEqual(got, full) {
		t.Fatalf("the record came back otherwise:\n sent %s\n got  %s", show(full), show(got))
	}
	big := strings.Repeat("x", 300) // a length of two bytes
	for _, rec := range []walRecord{
		full,
		{},
		{HardState: &HardState{}}, // gob keeps a zero hard state
		{HardState: &HardState{Term: math.MaxUint64, Vote: "127.0.0.1:9990 ☃", Commit: math.MaxUint64}},
		{Entries: []Entry{}}, // read as nil
		{Entries: []Entry{{Index: 1}}},
		{Entries: []Entry{{Index: 7, Term: 2, Data: []byte{}}, {Index: 8, Term: 2, Type: EntryConfig, Data: []byte("c")}, {Index: 9, Term: 3, Data: nil}}},
		{HardState: &HardState{Term: 5, Vote: ":2"}, Entries: ents(1<<40, 5, "a", big, "", "b")},
		{Entries: []Entry{{Index: math.MaxUint64, Term: math.MaxUint64, Type: math.MaxUint8, Data: []byte(big)}}},
	} {
		got, enc := viaBinary(t, rec)
		if want := viaGob(t, rec); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s read back as\n %s\nbut gob reads it as\n %s", show(rec), show(got), show(want))
		}
		for n := range len(enc) {
			if cut, err := readEntriesRecord(enc[:n]); err == nil {
				t.Fatalf("%s cut to %d of %d bytes decoded without an error, as %s", show(rec), n, len(enc), show(cut))
			}
		}
		if _, err := readEntriesRecord(append(enc, 0)); err == nil {
			t.Fatalf("%s with a byte after it decoded without an error", show(rec))
		}
		if _, err := readEntriesRecord(append([]byte{enc[0] | 0x80}, enc[1:]...)); err == nil {
			t.Fatalf("%s with a flag this binary does not know decoded without an error", show(rec))
		}
	}
}

// A record's entries share one copy of their data, taken from the frame: the log keeps
// no part of the segment it was read from in memory.
func TestWALEntriesRecordCopiesData(t *testing.T) {
	enc, err := appendEntriesRecord(nil, &walRecord{Entries: ents(1, 1, "a", "bc", "", "d")})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := readEntriesRecord(enc)
	if err != nil {
		t.Fatal(err)
	}
	clear(enc)
	if !reflect.DeepEqual(rec.Entries, []Entry{{Index: 1, Term: 1, Data: []byte("a")}, {Index: 2, Term: 1, Data: []byte("bc")}, {Index: 3, Term: 1}, {Index: 4, Term: 1, Data: []byte("d")}}) {
		t.Fatalf("after the frame was overwritten the entries hold %+v", rec.Entries)
	}
	rec.Entries[0].Data = append(rec.Entries[0].Data, 'X') // past its end: never into the next entry's
	if string(rec.Entries[1].Data) != "bc" {
		t.Fatalf("appending to one entry's data changed the next: %q", rec.Entries[1].Data)
	}
}

// A count or a length that the rest of the frame cannot hold is refused before
// anything is allocated for it.
func TestWALEntriesRecordRefusesLyingCounts(t *testing.T) {
	for name, payload := range map[string][]byte{
		"entries":       {0, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 1, 0, 0},
		"entries, just": {0, 4, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0}, // 4 claimed, 10 bytes left: room for 3
		"vote":          {walHardState, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 'a', 0},
		"count past 64": {0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		var err error
		allocs := testing.AllocsPerRun(10, func() { _, err = readEntriesRecord(payload) })
		if err == nil || allocs != 0 {
			t.Fatalf("%s: err %v after %.0f allocations, want an error and none", name, err, allocs)
		}
	}
}

// Every field of walRecord is either encoded in binary (a hard state and entries) or
// keeps its record in gob: a field added to walRecord and not sorted into one or the
// other (entriesOnly) would be lost from a binary record, and fails here.
func TestWALRecordFieldsSorted(t *testing.T) {
	binary := map[string]bool{"HardState": true, "Entries": true}
	typ := reflect.TypeFor[walRecord]()
	for i := range typ.NumField() {
		var rec walRecord
		var next uint64
		fillAll(reflect.ValueOf(&rec).Elem().Field(i), &next)
		if name := typ.Field(i).Name; entriesOnly(&rec) != binary[name] {
			t.Fatalf("a record with only walRecord.%s set: entriesOnly is %v, want %v; encode the field in walbin.go, or leave its records to gob", name, !binary[name], binary[name])
		}
	}
}

// The decoder never panics and never reads more entries than the payload holds, and a
// record it accepts encodes and reads back the same; a record made of the inputs reads
// back as gob reads it.
func FuzzWALEntriesRecord(f *testing.F) {
	for _, rec := range []walRecord{
		{HardState: &HardState{Term: 2, Vote: ":2", Commit: 9}, Entries: ents(7, 2, "a", "", "msg")},
		{Entries: []Entry{{Index: 1, Term: 1, Type: EntryConfig, Data: encodeConfChange(ConfChange{Op: confAdd, Server: ":4", Config: Config{Members: []string{":1", ":4"}}})}}},
		{HardState: &HardState{}},
	} {
		enc, err := appendEntriesRecord(nil, &rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc, uint64(2), uint64(7), ":2", uint8(3))
		f.Add(enc[:len(enc)-1], uint64(0), uint64(1), "", uint8(0))
	}
	f.Add([]byte{}, uint64(0), uint64(0), "", uint8(0))
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 1, 0, 0}, uint64(math.MaxUint64), uint64(math.MaxUint64), "☃", uint8(255))
	f.Add([]byte("\x03garbage, not a record"), uint64(1<<40), uint64(1), ":1", uint8(7))
	f.Fuzz(func(t *testing.T, payload []byte, term, first uint64, vote string, n uint8) {
		if rec, err := readEntriesRecord(payload); err == nil {
			if len(rec.Entries)*minEntryBytes > len(payload) {
				t.Fatalf("%d bytes read as %d entries", len(payload), len(rec.Entries))
			}
			if again, _ := viaBinary(t, rec); !reflect.DeepEqual(again, rec) {
				t.Fatalf("%x read as %s, which encodes and reads back as %s", payload, show(rec), show(again))
			}
		}
		rec := walRecord{}
		if n&1 != 0 {
			rec.HardState = &HardState{Term: term, Vote: vote, Commit: first ^ term}
		}
		for i := range uint64(n>>1) % 16 {
			data := payload[:min(int(i)*7, len(payload))]
			rec.Entries = append(rec.Entries, Entry{Index: first + i, Term: term + i/3, Type: EntryType(n + uint8(i)), Data: data})
		}
		if got, _ := viaBinary(t, rec); !reflect.DeepEqual(got, viaGob(t, rec)) {
			t.Fatalf("%s read back as %s, but gob reads it as %s", show(rec), show(got), show(viaGob(t, rec)))
		}
	})
}
