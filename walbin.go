// walbin.go: the log's hot records, a hard state and/or entries (every Save, so every
// Ready's write on every node), encoded by hand in frames of kind frameEntries; the
// rare ones (a segment's first record, a snapshot) stay in gob (log.go). Gob's encoder
// and its allocations were a visible part of every node's CPU under load. A payload is
//
//	flags byte (walHardState: a hard state follows)
//	[hard state: term | vote (length, bytes) | commit]
//	entry count | [index of the first entry | each entry: term | type byte | data (length, bytes)]
//
// where integers are uvarints. The entries of a record are consecutive (replay refuses
// any that are not), so only the first index is written. A field is never left out, so
// a record decodes to what gob gave for it: no entries and empty data read as nil
// (TestWALEntriesRecordRoundTrip checks every field, and fails on a field added to
// Entry or HardState and not here). A change of layout is a new frame kind.
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
)

const walHardState = 1 // flags: a hard state follows

// minEntryBytes: the least an entry takes encoded (term, type and data length), which
// bounds the count a record may claim.
const minEntryBytes = 3

var errMalformedRecord = errors.New("cut short, a length past its end, or bytes after its end")

// entriesOnly reports whether rec carries nothing but a hard state and entries: a
// record appendEntriesRecord encodes.
func entriesOnly(rec *walRecord) bool {
	return rec.Meta == nil && rec.Start == nil && rec.Snapshot == nil && !rec.ReplaceLog
}

// appendEntriesRecord appends the encoding of rec, which is entriesOnly, to b. Entries
// that are not consecutive are refused: only the first index is written.
func appendEntriesRecord(b []byte, rec *walRecord) ([]byte, error) {
	ents := rec.Entries
	for i := 1; i < len(ents); i++ {
		if ents[i].Index != ents[i-1].Index+1 {
			return b, fmt.Errorf("entry %d follows entry %d in one record", ents[i].Index, ents[i-1].Index)
		}
	}
	b = append(b, bit(rec.HardState != nil, walHardState))
	if hs := rec.HardState; hs != nil {
		b = binary.AppendUvarint(appendStr(binary.AppendUvarint(b, hs.Term), hs.Vote), hs.Commit)
	}
	b = binary.AppendUvarint(b, uint64(len(ents)))
	if len(ents) > 0 {
		b = binary.AppendUvarint(b, ents[0].Index)
	}
	for i := range ents {
		e := &ents[i]
		b = append(binary.AppendUvarint(b, e.Term), byte(e.Type))
		b = append(binary.AppendUvarint(b, uint64(len(e.Data))), e.Data...)
	}
	return b, nil
}

// readEntriesRecord decodes a payload appendEntriesRecord wrote. Malformed, it is
// refused, and nothing is allocated that the payload could not hold. The entries' data
// is copied, all of it into one allocation: the payload is part of a whole segment read
// into memory, which must not stay there for the entries that live on in the log.
func readEntriesRecord(payload []byte) (walRecord, error) {
	var rec walRecord
	r := binReader{b: payload}
	flags := r.byte()
	if flags&^walHardState != 0 {
		return rec, fmt.Errorf("flags %#x, of which this binary knows only %#x", flags, walHardState)
	}
	var hs HardState
	if flags&walHardState != 0 {
		hs = HardState{Term: r.uvarint(), Vote: r.str(), Commit: r.uvarint()}
	}
	size := 0
	if n := r.count(minEntryBytes); n > 0 {
		first := r.uvarint()
		rec.Entries = make([]Entry, n)
		for i := range rec.Entries {
			e := &rec.Entries[i]
			e.Index = first + uint64(i)
			e.Term, e.Type, e.Data = r.uvarint(), EntryType(r.byte()), r.bytes()
			size += len(e.Data)
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return walRecord{}, errMalformedRecord
	}
	if flags&walHardState != 0 {
		h := hs
		rec.HardState = &h
	}
	if size > 0 {
		data := make([]byte, 0, size)
		for i := range rec.Entries {
			if d := rec.Entries[i].Data; d != nil {
				data = append(data, d...)
				rec.Entries[i].Data = data[len(data)-len(d) : len(data) : len(data)]
			}
		}
	}
	return rec, nil
}
