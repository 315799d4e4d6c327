// log.go: durable storage of a node's hard state (term, vote) and log, in its data dir.
//
// The data dir holds one write-ahead log file, "wal": a sequence of frames, each
//
//	length uint32 LE | CRC-32C uint32 LE | kind byte | payload (length bytes)
//
// where the CRC covers the kind and the payload, and the payload is one gob-encoded
// walRecord. The first record names the node, the format version and the bootstrap
// configuration; every later record is one Save: a hard state and/or entries, written
// with one write and made durable with one fsync. An entry at an index already in the
// log replaces it and everything after it, so truncation is just a later record.
//
// Each time the file is opened for writing a new gob stream starts (kind frameNewStream),
// so type descriptors are written once per stream, not once per record.
//
// A crash can leave a frame half written at the end of the file. On open, a bad frame
// with no whole frame after it is such a torn tail: it is cut off and reported. A bad
// frame followed by good ones is corruption: the node refuses to start and the file is
// left as it is.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

const (
	walName       = "wal"
	walVersion    = 1
	frameHeader   = 9       // length, CRC, kind
	maxFrameBytes = 1 << 30 // a larger length field is damage, not data
)

// Frame kinds.
const (
	frameContinue  byte = 1 // the payload continues the gob stream of the frames before it
	frameNewStream byte = 2 // the payload starts a new gob stream
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// walMeta is the first record of a data dir: whose it is and how it is written.
type walMeta struct {
	Version   int
	ID        string
	Bootstrap Config
}

// walRecord is one frame's payload.
type walRecord struct {
	Meta      *walMeta
	HardState *HardState
	Entries   []Entry
}

// errDataDir marks a data dir that cannot be used as it is; the message says why and where.
var errDataDir = errors.New("data dir unusable")

// storage is an open data dir. Only the event loop calls Save.
type storage struct {
	dir  string
	lock *os.File // the data dir itself, flock'ed while this node runs
	f    *os.File
	buf  bytes.Buffer
	enc  *gob.Encoder
	// framed is the number of frames written by enc: its first frame starts a stream.
	framed int
}

// openStorage opens (or creates) the data dir of node id and loads what it holds.
// notice, if not empty, is something the node should log (a cut torn tail).
func openStorage(dir, id string, bootstrap Config) (s *storage, st persistentState, notice string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, st, "", fmt.Errorf("create data dir: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, st, "", err
	}
	defer func() {
		if err != nil {
			lock.Close()
		}
	}()
	path := filepath.Join(dir, walName)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := createWAL(dir, walMeta{Version: walVersion, ID: id, Bootstrap: bootstrap}); err != nil {
			return nil, st, "", err
		}
		st.Bootstrap = bootstrap
	case err != nil:
		return nil, st, "", fmt.Errorf("read %s: %w", path, err)
	default:
		var meta walMeta
		var good int
		meta, st, good, err = replayWAL(path, data)
		if err != nil {
			return nil, st, "", err
		}
		if meta.ID != id {
			return nil, st, "", fmt.Errorf("%w: %s belongs to node %s, not %s; give this node its own data dir (-d)", errDataDir, path, meta.ID, id)
		}
		if good < len(data) {
			if err := cutTail(path, good); err != nil {
				return nil, st, "", err
			}
			notice = fmt.Sprintf("%s: cut off a torn tail of %d bytes at offset %d (a write the last crash interrupted; it was never acknowledged)", path, len(data)-good, good)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, st, "", fmt.Errorf("open %s: %w", path, err)
	}
	s = &storage{dir: dir, lock: lock, f: f}
	s.enc = gob.NewEncoder(&s.buf)
	return s, st, notice, nil
}

// lockDir takes an exclusive lock on the data dir, so two nodes never share one.
func lockDir(dir string) (*os.File, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open data dir: %w", err)
	}
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		d.Close()
		return nil, fmt.Errorf("%w: %s is in use by another raft process (%v)", errDataDir, dir, err)
	}
	return d, nil
}

// createWAL writes a new log holding only its meta record: to a temporary file,
// fsync, rename, fsync of the directory, so a crash leaves either no log or a whole one.
func createWAL(dir string, meta walMeta) error {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(walRecord{Meta: &meta}); err != nil {
		return fmt.Errorf("encode log header: %w", err)
	}
	tmp := filepath.Join(dir, walName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	_, err = f.Write(appendFrame(nil, frameNewStream, buf.Bytes()))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, walName))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("create log in %s: %w", dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// cutTail truncates the log to its last whole frame, durably.
func cutTail(path string, size int) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s to cut its torn tail: %w", path, err)
	}
	defer f.Close()
	if err := f.Truncate(int64(size)); err != nil {
		return fmt.Errorf("cut torn tail of %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cut torn tail of %s: %w", path, err)
	}
	return nil
}

// Save appends a hard state and entries as one record, and returns once it is on disk.
// A failed write or fsync leaves the node unable to keep its promises: the caller stops.
func (s *storage) Save(hs *HardState, ents []Entry) error {
	if hs == nil && len(ents) == 0 {
		return nil
	}
	s.buf.Reset()
	if err := s.enc.Encode(walRecord{HardState: hs, Entries: ents}); err != nil {
		return fmt.Errorf("encode log record: %w", err)
	}
	kind := frameContinue
	if s.framed == 0 {
		kind = frameNewStream
	}
	s.framed++
	frame := appendFrame(make([]byte, 0, frameHeader+s.buf.Len()), kind, s.buf.Bytes())
	if _, err := s.f.Write(frame); err != nil {
		return fmt.Errorf("write %s: %w", s.f.Name(), err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", s.f.Name(), err)
	}
	return nil
}

// Close closes the log and releases the data dir.
func (s *storage) Close() error {
	err := s.f.Close()
	s.lock.Close()
	return err
}

func appendFrame(b []byte, kind byte, payload []byte) []byte {
	var h [frameHeader]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(payload)))
	crc := crc32.Update(crc32.Checksum([]byte{kind}, crcTable), crcTable, payload)
	binary.LittleEndian.PutUint32(h[4:], crc)
	h[8] = kind
	return append(append(b, h[:]...), payload...)
}

// readFrame parses the frame at off. ok is false if there is no whole, intact frame there.
func readFrame(data []byte, off int) (kind byte, payload []byte, next int, ok bool) {
	if len(data)-off < frameHeader {
		return 0, nil, 0, false
	}
	n := binary.LittleEndian.Uint32(data[off:])
	crc := binary.LittleEndian.Uint32(data[off+4:])
	kind = data[off+8]
	if n == 0 || n > maxFrameBytes || uint64(off)+frameHeader+uint64(n) > uint64(len(data)) {
		return 0, nil, 0, false
	}
	if kind != frameContinue && kind != frameNewStream {
		return 0, nil, 0, false
	}
	payload = data[off+frameHeader : off+frameHeader+int(n)]
	if crc32.Update(crc32.Checksum([]byte{kind}, crcTable), crcTable, payload) != crc {
		return 0, nil, 0, false
	}
	return kind, payload, off + frameHeader + int(n), true
}

// wholeFrameAfter reports whether an intact frame starts anywhere after off.
func wholeFrameAfter(data []byte, off int) bool {
	for p := off + 1; p+frameHeader <= len(data); p++ {
		if _, _, _, ok := readFrame(data, p); ok {
			return true
		}
	}
	return false
}

// replayWAL rebuilds the hard state and log from a log file's bytes. good is the length
// of the intact prefix; anything after it is a torn tail to cut off.
func replayWAL(path string, data []byte) (meta walMeta, st persistentState, good int, err error) {
	var dec *gob.Decoder
	var in bytes.Buffer
	off := 0
	for off < len(data) {
		kind, payload, next, ok := readFrame(data, off)
		if !ok {
			if wholeFrameAfter(data, off) {
				return meta, st, 0, fmt.Errorf("%w: %s: the record at offset %d is damaged (bad length or checksum) and intact records follow it; restore this node's data dir from a backup, or remove the node from the cluster and add it back with an empty one", errDataDir, path, off)
			}
			break // a torn tail
		}
		if kind == frameNewStream {
			in.Reset()
			dec = gob.NewDecoder(&in)
		} else if dec == nil {
			return meta, st, 0, fmt.Errorf("%w: %s: the record at offset %d continues a stream that never started", errDataDir, path, off)
		}
		in.Write(payload)
		var rec walRecord
		if err := dec.Decode(&rec); err != nil || in.Len() != 0 {
			return meta, st, 0, fmt.Errorf("%w: %s: the record at offset %d passes its checksum but does not decode (%v)", errDataDir, path, off, err)
		}
		if off == 0 {
			if rec.Meta == nil {
				return meta, st, 0, fmt.Errorf("%w: %s does not start with a log header", errDataDir, path)
			}
			if rec.Meta.Version > walVersion {
				return meta, st, 0, fmt.Errorf("%w: %s is format version %d; this binary reads up to version %d: run a newer raft", errDataDir, path, rec.Meta.Version, walVersion)
			}
			meta = *rec.Meta
			st.Bootstrap = meta.Bootstrap
		} else if err := replayRecord(&st, rec); err != nil {
			return meta, st, 0, fmt.Errorf("%w: %s: the record at offset %d: %v", errDataDir, path, off, err)
		}
		off = next
	}
	if off == 0 {
		return meta, st, 0, fmt.Errorf("%w: %s has no intact log header", errDataDir, path)
	}
	return meta, st, off, nil
}

// replayRecord applies one saved record to the state being rebuilt.
func replayRecord(st *persistentState, rec walRecord) error {
	if rec.HardState != nil {
		st.HardState = *rec.HardState
	}
	if len(rec.Entries) == 0 {
		return nil
	}
	first := rec.Entries[0].Index
	last := uint64(len(st.Entries))
	if first == 0 || first > last+1 {
		return fmt.Errorf("entries start at index %d but the log ends at %d", first, last)
	}
	for i, e := range rec.Entries {
		if e.Index != first+uint64(i) {
			return fmt.Errorf("entry %d follows entry %d", e.Index, first+uint64(i)-1)
		}
		if e.Type == EntryConfig {
			if _, err := decodeConfChange(e.Data); err != nil {
				return fmt.Errorf("entry %d: %v", e.Index, err)
			}
		}
	}
	// Entries at indices already in the log replace them and everything after them.
	st.Entries = append(st.Entries[:first-1], rec.Entries...)
	return nil
}
