// log.go: durable storage of a node's hard state (term, vote) and log, in its data dir.
//
// A data dir (format version 3) holds:
//
//	meta                      whose dir it is: format version, node id, first configuration, cluster id
//	wal-0000000000000001.log  the write-ahead log, in segments numbered consecutively
//	wal-0000000000000002.log  ...; only the last one is written to
//	snap-<index>-<term>.snap  the latest snapshot, if the log has been compacted (snapshot.go)
//
// Every file is a sequence of frames,
//
//	length uint32 LE | CRC-32C uint32 LE | kind byte | payload (length bytes)
//
// where the CRC covers the kind and the payload, and a payload is one record: one of a
// hard state and/or entries encoded by hand (frameEntries, walbin.go), any other in gob.
// The gob records of a segment are one gob stream, so type descriptors are written once
// per segment. Its first record (in gob) says where the log stood when the segment was
// opened (the last entry, the hard state, the snapshot), so older segments can be
// deleted once a snapshot covers them. Every later record is one write, made durable
// with one fsync: a hard state and/or entries (one Save, or a group commit of several
// merged into one record), or a snapshot. An entry at an index already in the log
// replaces it and everything after it, so truncation is just a later record, and
// replay rebuilds exactly the log on disk even where the records it cuts back to are
// in deleted segments.
//
// A segment grows to about segmentBytes; then the next one starts. Each start of the
// node opens a new segment, so a segment is never appended to after a crash. A new name
// (the data dir and the parents made for it, a segment, meta) and the deletion of
// compacted segments are made durable by an fsync of their directory.
//
// A data dir of format version 1 (the whole log in one file, wal, whose first record is
// the header meta now holds) is upgraded at open: wal is renamed to the first segment,
// then meta is written. A first segment that starts with that header and no meta is an
// upgrade a crash interrupted; the next open finishes it. Format version 2 is version 3
// with every record in gob: it reads the same, and its meta says 3 once it is opened,
// before anything is written in binary.
//
// A power loss can leave the last write in part on disk, in any part: since a write is
// one frame, that is a bad last frame of the last segment. On open, a bad frame with no
// whole frame after it there is such a torn tail: it is cut off and reported (nothing
// in it was acknowledged). Anything else that does not check out (a bad frame elsewhere,
// a missing segment or snapshot, another node's dir, a newer format, a whole frame of a
// kind this binary does not know) stops the node before it changes anything on disk.
// (Binaries before group commit wrote it as a frame per record; their dirs read the
// same, but such a write torn in the middle reads as damage.)
package main

import (
	"bytes"
	cryptorand "crypto/rand"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
)

const (
	metaName      = "meta"
	legacyWALName = "wal" // format version 1: the whole log in one file
	walVersion    = 3
	frameHeader   = 9       // length, CRC, kind
	maxFrameBytes = 1 << 30 // a larger length field is damage, not data
	maxKeptFrame  = 1 << 20 // a larger frame's buffer is not kept for the next write

	defaultSegmentBytes = 64 << 20
)

// Frame kinds.
const (
	frameContinue     byte = 1 // the payload continues the gob stream of the frames before it
	frameNewStream    byte = 2 // the payload starts a new gob stream
	frameSnapshotData byte = 3 // a snapshot's state machine bytes (snapshot.go)
	frameEntries      byte = 4 // a record of a hard state and entries, encoded by hand (walbin.go)
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// walMeta says whose a data dir is and how it is written.
type walMeta struct {
	Version   int
	ID        string
	Bootstrap Config
	// The cluster the data dir belongs to; members refuse messages from any other.
	// 0: not known yet (a spare learns it from the first leader that contacts it, and
	// a dir written before cluster ids has it set when opened).
	ClusterID uint64
	// ClusterID was guessed when a dir written before cluster ids was opened, by a
	// server that joined as a spare: the first leader's id replaces it if they differ.
	ClusterIDGuessed bool
	// Incarnation names this data dir, at random, when it is made: a server that comes
	// back at the same address with a new one (a wiped or replaced disk) is another
	// server, not the member that had the old one (Config.Incarnations).
	Incarnation uint64
	// Seed is -c as it was when the data dir was made (nil: from before seeds; Bootstrap
	// has it), and Formation names it with -cluster-token: members of a new cluster
	// check that they were given the same. Forming says how far a new data dir is in
	// forming a new cluster with the others of -c (0: formed, or never forming).
	Seed      []string
	Formation uint64
	Forming   formState
	// Restored: the data dir was made by -restore, whose snapshot's configuration is
	// -c without incarnations; the first configuration formed stands in for it
	// (restoredConfig).
	Restored bool
	// RestoredFrom is the SHA-256 of the file it was restored from, in hex ("": not
	// restored, or by a binary that did not record it): started again with the same
	// -restore, the node starts on the data dir as it is.
	RestoredFrom string
}

// logPosition names a log entry.
type logPosition struct {
	Index, Term uint64
}

// walRecord is one frame's payload.
type walRecord struct {
	Meta      *walMeta // format version 1 only: the first record of the single log file
	HardState *HardState
	Entries   []Entry
	// The first record of a segment: the log's last entry when the segment was opened.
	// Entries up to it are in earlier segments, or covered by the snapshot.
	Start *logPosition
	// The log now starts after this snapshot's last entry (compaction, or a snapshot
	// installed from the leader).
	Snapshot *SnapshotMeta
	// The snapshot replaces the whole log (installed from the leader), whatever the log
	// on disk holds after it.
	ReplaceLog bool
}

// errDataDir marks a data dir that cannot be used as it is; the message says why and where.
var errDataDir = errors.New("data dir unusable")

// segment is one log file.
type segment struct {
	seq      uint64
	maxIndex uint64 // the highest index written to it, or where the log stood when it opened
}

func segmentName(seq uint64) string { return fmt.Sprintf("wal-%016x.log", seq) }

// storage is an open data dir. The event loop calls its methods, except SaveAll, which
// the disk writer (writer.go) calls; the loop flushes the writer before it touches the
// log itself (SaveSnapshot). ClusterID and SetClusterID lock metaMu and may run anytime.
type storage struct {
	dir          string
	lock         *os.File // the data dir itself, flock'ed while this node runs
	segmentBytes int64

	segs   []segment // live segments, oldest first; the last is being written
	f      *os.File  // the last segment
	size   int64     // bytes in it
	frame  []byte    // the frame being written, kept for the next
	buf    bytes.Buffer
	enc    *gob.Encoder
	framed int // frames written by enc: its first starts a stream
	// gobOnly writes every record in gob, as binaries before frameEntries did: a test's
	// seam, to make the data dirs they left.
	gobOnly bool

	// What the first record of the next segment repeats.
	hs   HardState
	last logPosition
	snap SnapshotMeta

	syncDir func(dir string) error // syncDir; a test's seam, to see when the dir is synced

	metaMu sync.Mutex // guards meta and closed: SetClusterID may be called by any goroutine
	meta   walMeta
	closed bool
}

// openStorage opens (or creates) the data dir of node id and loads what it holds: the
// hard state, the snapshot's metadata and data (nil if none), and the log after it.
// notice, if not empty, is something the node should log (a cut torn tail).
func openStorage(dir, id string, bootstrap Config) (*storage, persistentState, []byte, string, error) {
	return openNodeStorage(dir, id, bootstrap, "")
}

// openNodeStorage is openStorage for a node started with -cluster-token token, which
// names the cluster a new data dir forms.
func openNodeStorage(dir, id string, bootstrap Config, token string) (s *storage, st persistentState, snapData []byte, notice string, err error) {
	if err := makeDataDir(dir, syncDir); err != nil {
		return nil, st, nil, "", fmt.Errorf("create data dir: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, st, nil, "", err
	}
	defer func() {
		if err != nil {
			lock.Close()
		}
	}()
	s = &storage{dir: dir, lock: lock, segmentBytes: defaultSegmentBytes, syncDir: syncDir}
	d, err := readDataDir(dir, id)
	if err != nil {
		return nil, st, nil, "", err
	}
	if d.meta == nil {
		// A new data dir: the meta file, then the first segment (which opens below).
		d.meta = newMeta(id, bootstrap, token)
		if err := writeMeta(dir, *d.meta); err != nil {
			return nil, st, nil, "", fmt.Errorf("create data dir %s: %w", dir, err)
		}
		d.state.Bootstrap = d.meta.Bootstrap
	}
	st = d.state.persistentState
	if st.Snapshot.Index > 0 {
		if snapData, err = readSnapshot(dir, st.Snapshot); err != nil {
			return nil, st, nil, "", err
		}
	}
	// Everything checks out; from here on the data dir is changed.
	if d.torn != nil {
		if err := d.torn.cut(); err != nil {
			return nil, st, nil, "", err
		}
		notice = d.torn.String()
		if d.torn.good == 0 {
			d.segs = d.segs[:len(d.segs)-1] // nothing of it survived: it is gone
		}
	}
	if d.legacy {
		// Format version 1: the single log file becomes the first segment, then meta is
		// written. A crash between the two leaves a first segment that starts with the
		// version 1 header and no meta, which the next start upgrades again (readDataDir).
		// (Meta first would leave both a version 1 and a version 2 log.)
		if d.legacyName == legacyWALName {
			if err := os.Rename(filepath.Join(dir, legacyWALName), filepath.Join(dir, segmentName(1))); err != nil {
				return nil, st, nil, "", fmt.Errorf("upgrade data dir %s: %w", dir, err)
			}
			if err := syncDir(dir); err != nil {
				return nil, st, nil, "", fmt.Errorf("upgrade data dir %s: %w", dir, err)
			}
		}
		if err := writeMeta(dir, walMeta{Version: walVersion, ID: id, Bootstrap: d.meta.Bootstrap}); err != nil {
			return nil, st, nil, "", fmt.Errorf("upgrade data dir %s: %w", dir, err)
		}
		notice = strings.TrimPrefix(notice+"; ", "; ") + fmt.Sprintf("%s: upgraded the data dir from format version 1 to %d", dir, walVersion)
	}
	s.segs = d.segs
	s.meta = *d.meta
	s.meta.Version, s.meta.ID = walVersion, id
	// A data dir from before incarnations gets one. One of format version 2 becomes 3
	// before a record is written in binary: a binary before frameEntries then refuses it
	// (as of a newer format, or as damaged) where it would have cut the records it cannot
	// read off as a torn tail.
	if s.meta.Incarnation == 0 || d.meta.Version < walVersion {
		if s.meta.Incarnation == 0 {
			s.meta.Incarnation = newIncarnation()
		}
		if err := writeMeta(dir, s.meta); err != nil {
			return nil, st, nil, "", fmt.Errorf("upgrade data dir %s: %w", dir, err)
		}
	}
	if d.meta.Version == 2 {
		notice = strings.TrimPrefix(notice+"; ", "; ") + fmt.Sprintf("%s: upgraded the data dir from format version 2 to %d (binaries before this one refuse it)", dir, walVersion)
	}
	s.hs, s.last, s.snap = st.HardState, d.state.lastPosition(), st.Snapshot
	if st.Snapshot.Index > 0 {
		renamed, err := renameHexSnapshot(dir, st.Snapshot)
		if err != nil {
			return nil, st, nil, "", err
		}
		if renamed != "" {
			notice = strings.TrimPrefix(notice+"; "+renamed, "; ")
		}
	}
	if err := removeStale(dir, st.Snapshot, true); err != nil {
		return nil, st, nil, "", err
	}
	if err := s.openSegment(); err != nil {
		return nil, st, nil, "", err
	}
	return s, st, snapData, notice, nil
}

// makeDataDir creates dir and the parents it lacks, durably: a new directory's name is
// on disk only once its parent is fsynced. A dir that exists but holds no meta yet (an
// earlier start, or the user, created it) is new too: its name is synced before a vote
// is written into it.
func makeDataDir(dir string, syncDir func(string) error) error {
	var missing []string // dir's missing ancestors and dir itself, innermost first
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			break // there (or not for us to create: MkdirAll says why)
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, metaName)); len(missing) == 0 && errors.Is(err, fs.ErrNotExist) {
		missing = append(missing, filepath.Clean(dir))
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := syncDir(filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}

func writeMeta(dir string, m walMeta) error {
	return writeFileAtomic(dir, metaName, appendFrame(nil, frameNewStream, gobBytes(m)))
}

// newMeta describes a new data dir of node id, made with -c bootstrap and
// -cluster-token token. A member of a one-member -c is that cluster's first
// configuration at once; a member of a larger one first forms it with the others
// (decideForming); a server outside -c is a spare.
func newMeta(id string, bootstrap Config, token string) *walMeta {
	m := &walMeta{Version: walVersion, ID: id, Bootstrap: bootstrap, Incarnation: newIncarnation(),
		Seed: bootstrap.Members, Formation: newClusterID(Config{Members: bootstrap.Members}, token)}
	switch {
	case !bootstrap.contains(id):
	case len(bootstrap.Members) == 1:
		m.Bootstrap = Config{Members: bootstrap.Members, Incarnations: map[string]uint64{id: m.Incarnation}}
	default:
		m.Forming = formGathering
	}
	return m
}

// peekMeta reads a data dir's meta file without taking the dir or changing anything:
// nil if the dir is new (or holds no meta; openStorage says what is wrong with it).
func peekMeta(dir string) (*walMeta, error) {
	data, err := os.ReadFile(filepath.Join(dir, metaName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %v", errDataDir, filepath.Join(dir, metaName), err)
	}
	var meta walMeta
	if err := decodeSingleFrame(data, &meta); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errDataDir, filepath.Join(dir, metaName), err)
	}
	return &meta, nil
}

// Meta is a copy of what the meta file says.
func (s *storage) Meta() walMeta {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	return s.meta
}

// UpdateMeta changes the meta file, durably.
func (s *storage) UpdateMeta(change func(*walMeta)) error {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if s.closed {
		return errors.New("update meta: the data dir is closed")
	}
	m := s.meta
	change(&m)
	if err := writeMeta(s.dir, m); err != nil {
		return err
	}
	s.meta = m
	return nil
}

// newIncarnation names a new data dir: at random, so that no two are alike.
func newIncarnation() uint64 {
	var b [8]byte
	if _, err := cryptorand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("read random bytes: %v", err)) // crypto/rand does not fail on Linux
	}
	return max(binary.LittleEndian.Uint64(b[:]), 1) // 0 means "not known"
}

// Incarnation names the data dir (walMeta.Incarnation).
func (s *storage) Incarnation() uint64 {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	return s.meta.Incarnation
}

// ClusterID is the cluster the data dir belongs to (0: not known yet), and whether it
// was guessed (walMeta.ClusterIDGuessed).
func (s *storage) ClusterID() (id uint64, guessed bool) {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	return s.meta.ClusterID, s.meta.ClusterIDGuessed
}

// SetClusterID records, durably, that the data dir belongs to cluster id.
func (s *storage) SetClusterID(id uint64, guessed bool) error {
	err := s.UpdateMeta(func(m *walMeta) { m.ClusterID, m.ClusterIDGuessed = id, guessed })
	if err != nil {
		return fmt.Errorf("record the cluster id: %w", err)
	}
	return nil
}

// dataDir is what readDataDir found.
type dataDir struct {
	meta       *walMeta // nil: a new data dir
	legacy     bool     // format version 1, or an upgrade from it not finished
	legacyName string   // the version 1 log: legacyWALName, or the first segment it was renamed to
	segs       []segment
	state      logState
	torn       *tornTail // at the end of the last segment
}

// readDataDir reads and checks every file of a data dir without changing any.
func readDataDir(dir, id string) (d dataDir, err error) {
	names, err := listDir(dir)
	if err != nil {
		return d, err
	}
	var seqs []uint64
	for _, name := range names {
		var seq uint64
		if n, _ := fmt.Sscanf(name, "wal-%016x.log", &seq); n == 1 && name == segmentName(seq) {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	hasMeta, hasLegacy := slices.Contains(names, metaName), slices.Contains(names, legacyWALName)
	switch {
	case hasLegacy && len(seqs) > 0:
		return d, fmt.Errorf("%w: %s holds both a version 1 log (%s) and a version 2 one; it was changed by hand? restore it from a backup", errDataDir, dir, legacyWALName)
	case hasLegacy:
		// Format version 1. With a meta file too: an upgrade by an earlier binary, which
		// wrote meta before renaming the log, and crashed in between; the log's header
		// is what that meta repeats, and the upgrade is done again.
		d.legacy, d.legacyName = true, legacyWALName
		seqs = []uint64{0} // read below as the first segment
	case !hasMeta && slices.Equal(seqs, []uint64{1}) && startsWithLegacyHeader(filepath.Join(dir, segmentName(1))):
		// An upgrade from version 1 that renamed the log to the first segment and
		// crashed before it wrote meta: finish it.
		d.legacy, d.legacyName = true, segmentName(1)
	case !hasMeta && len(seqs) > 0:
		return d, fmt.Errorf("%w: %s has log segments but no %s file; restore it from a backup", errDataDir, dir, metaName)
	case !hasMeta:
		return d, nil // new
	default:
		path := filepath.Join(dir, metaName)
		data, err := os.ReadFile(path)
		if err != nil {
			return d, fmt.Errorf("%w: read %s: %v", errDataDir, path, err)
		}
		var meta walMeta
		if err := decodeSingleFrame(data, &meta); err != nil {
			return d, fmt.Errorf("%w: %s: %v", errDataDir, path, err)
		}
		// Before the segments: a newer format's records may be of kinds this binary
		// does not know, and the format is what to tell the user about.
		if meta.Version > walVersion {
			return d, fmt.Errorf("%w: %s is format version %d; this binary reads up to version %d: run a newer raft", errDataDir, dir, meta.Version, walVersion)
		}
		d.meta = &meta
	}
	for i, seq := range seqs {
		name := segmentName(seq)
		if seq == 0 {
			name = legacyWALName
		} else if i > 0 && seq != seqs[i-1]+1 {
			return d, fmt.Errorf("%w: %s: log segment %s is missing (between %s and %s); restore the data dir from a backup", errDataDir, dir, segmentName(seqs[i-1]+1), segmentName(seqs[i-1]), name)
		}
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			return d, fmt.Errorf("%w: read %s: %v", errDataDir, path, err)
		}
		maxIndex, good, err := d.replaySegment(path, data, i == 0)
		if err != nil {
			return d, err
		}
		if good < len(data) {
			if i < len(seqs)-1 && endsInRecord(data, good) {
				return d, fmt.Errorf("%w: %s was cut short: it ends in the middle of the record at offset %d, and later segments follow it, so what it held after that is lost; %s", errDataDir, path, good, damagedDirAdvice)
			}
			if i < len(seqs)-1 {
				return d, fmt.Errorf("%w: %s: the record at offset %d is damaged (bad length or checksum) and later segments follow it; %s", errDataDir, path, good, damagedDirAdvice)
			}
			d.torn = &tornTail{path: path, good: good, size: len(data)}
		}
		d.segs = append(d.segs, segment{seq: max(seq, 1), maxIndex: maxIndex})
	}
	if d.meta == nil {
		return d, fmt.Errorf("%w: %s: the log has no header", errDataDir, dir)
	}
	if d.meta.ID != id {
		return d, fmt.Errorf("%w: %s belongs to node %s, not %s; give this node its own data dir (-d)", errDataDir, dir, d.meta.ID, id)
	}
	d.state.Bootstrap = d.meta.Bootstrap
	if err := d.state.check(); err != nil {
		oldest := legacyWALName
		if len(d.segs) > 0 && !d.legacy {
			oldest = segmentName(d.segs[0].seq)
		}
		return d, fmt.Errorf("%w: %s: the oldest log segment, %s, %v; %s", errDataDir, dir, oldest, err, damagedDirAdvice)
	}
	return d, nil
}

// startsWithLegacyHeader reports whether the file at path starts with the header of a
// version 1 log.
func startsWithLegacyHeader(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	kind, payload, _, ok := readFrame(data, 0)
	var rec walRecord
	return ok && kind == frameNewStream && decodeGob(payload, &rec) == nil && rec.Meta != nil
}

// replaySegment replays one segment's records into d.state. good is the length of its
// intact prefix; maxIndex the highest index it holds.
func (d *dataDir) replaySegment(path string, data []byte, first bool) (maxIndex uint64, good int, err error) {
	var dec *gob.Decoder
	var in bytes.Buffer
	off, records := 0, 0
	for off < len(data) {
		kind, payload, next, ok := readFrame(data, off)
		if !ok {
			if wholeFrameAfter(data, off) {
				return 0, 0, fmt.Errorf("%w: %s: the record at offset %d is damaged (bad length or checksum) and intact records follow it; restore this node's data dir from a backup, or remove the node from the cluster and add it back with an empty one", errDataDir, path, off)
			}
			break // a torn tail
		}
		var rec walRecord
		switch kind {
		case frameEntries:
			rec, err = readEntriesRecord(payload)
		case frameNewStream, frameContinue:
			if kind == frameNewStream {
				in.Reset()
				dec = gob.NewDecoder(&in)
			} else if dec == nil {
				return 0, 0, fmt.Errorf("%w: %s: the record at offset %d continues a stream that never started", errDataDir, path, off)
			}
			in.Write(payload)
			if err = dec.Decode(&rec); err == nil && in.Len() != 0 {
				err = errors.New("bytes after its end")
			}
		case frameSnapshotData:
			return 0, 0, fmt.Errorf("%w: %s: the record at offset %d is not a log record", errDataDir, path, off)
		default:
			return 0, 0, fmt.Errorf("%w: %s: the record at offset %d is of kind %d, which this binary does not know: a newer version of raft wrote it; run that version or a newer one", errDataDir, path, off, kind)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("%w: %s: the record at offset %d passes its checksum but does not decode (%v)", errDataDir, path, off, err)
		}
		if err := d.replayRecord(rec, first && records == 0, records == 0); err != nil {
			return 0, 0, fmt.Errorf("%w: %s: the record at offset %d: %v", errDataDir, path, off, err)
		}
		for _, e := range rec.Entries {
			maxIndex = max(maxIndex, e.Index)
		}
		if rec.Start != nil {
			maxIndex = max(maxIndex, rec.Start.Index)
		}
		records++
		off = next
	}
	return maxIndex, off, nil
}

func (d *dataDir) replayRecord(rec walRecord, firstOfDir, firstOfSegment bool) error {
	switch {
	case rec.Meta != nil:
		if !firstOfDir {
			return errors.New("a log header where log records belong")
		}
		if d.legacy {
			d.meta = rec.Meta
		} // else: the first segment of a data dir upgraded from version 1
		return nil
	case d.legacy && firstOfDir:
		return errors.New("the log does not start with its header")
	case rec.Start != nil && !firstOfSegment:
		return errors.New("a segment header in the middle of a segment")
	case rec.Start != nil && firstOfDir:
		// The oldest segment kept: the log before it was compacted away.
		d.state.base = *rec.Start
	case rec.Start != nil && *rec.Start != d.state.lastPosition():
		last := d.state.lastPosition()
		if rec.Start.Index > last.Index {
			return fmt.Errorf("the segment starts after entry %d (term %d), but the segments before it end at entry %d (term %d): the one before it was cut short, and entries %d to %d are lost; %s",
				rec.Start.Index, rec.Start.Term, last.Index, last.Term, last.Index+1, rec.Start.Index, damagedDirAdvice)
		}
		return fmt.Errorf("the segment starts after entry %d (term %d), but the segments before it end at entry %d (term %d): it does not belong here (a segment of another data dir, or an older copy); %s",
			rec.Start.Index, rec.Start.Term, last.Index, last.Term, damagedDirAdvice)
	}
	return d.state.apply(rec)
}

// tornTail is the end of the last segment, cut short by a crash.
type tornTail struct {
	path       string
	good, size int
}

func (t *tornTail) String() string {
	return fmt.Sprintf("%s: cut off a torn tail of %d bytes at offset %d (a write the last crash interrupted; it was never acknowledged)", t.path, t.size-t.good, t.good)
}

// cut truncates the segment to its last whole frame, durably; an empty one is removed.
func (t *tornTail) cut() error {
	if t.good == 0 {
		if err := os.Remove(t.path); err != nil {
			return fmt.Errorf("remove torn segment %s: %w", t.path, err)
		}
		return syncDir(filepath.Dir(t.path))
	}
	f, err := os.OpenFile(t.path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s to cut its torn tail: %w", t.path, err)
	}
	defer f.Close()
	if err := f.Truncate(int64(t.good)); err != nil {
		return fmt.Errorf("cut torn tail of %s: %w", t.path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cut torn tail of %s: %w", t.path, err)
	}
	return nil
}

// logState is a log being rebuilt from saved records, in order: exactly the log they
// leave, whatever segments were deleted.
type logState struct {
	persistentState
	// base is the entry the log in Entries follows: the snapshot's last entry; or, once
	// segments have been deleted, where the oldest kept segment began, or where a record
	// cut the log back to below that. The entries after the snapshot up to the base are
	// in deleted segments: a snapshot later in the log must cover them (check).
	base logPosition
	// The base is an entry of a deleted segment that a record cut the log back to: its
	// term is not known. (Entries then holds that record's entries, so is not empty.)
	baseTermUnknown bool
}

func (l *logState) lastIndex() uint64 { return l.base.Index + uint64(len(l.Entries)) }

func (l *logState) lastPosition() logPosition {
	if n := len(l.Entries); n > 0 {
		return logPosition{l.Entries[n-1].Index, l.Entries[n-1].Term}
	}
	return l.base
}

// apply applies one saved record.
func (l *logState) apply(rec walRecord) error {
	if rec.HardState != nil {
		l.HardState = *rec.HardState
	}
	if s := rec.Snapshot; s != nil {
		if err := l.applySnapshot(*s, rec.ReplaceLog); err != nil {
			return err
		}
	}
	if len(rec.Entries) == 0 {
		return nil
	}
	first := rec.Entries[0].Index
	if first == 0 || first > l.lastIndex()+1 {
		return fmt.Errorf("entries start at index %d but the log ends at %d", first, l.lastIndex())
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
	// The core never writes entries the snapshot covers: they are committed and applied.
	if first <= l.Snapshot.Index {
		return fmt.Errorf("entries start at index %d, but the snapshot covers the log up to %d", first, l.Snapshot.Index)
	}
	// Entries at indices already in the log replace them and everything after them. A
	// record that starts at or before the base cuts the log back into what the deleted
	// segments held: the base is stale, and the log is what they held up to first-1
	// (covered by a later snapshot, or the snapshot itself) and this record.
	if first <= l.base.Index {
		l.base, l.baseTermUnknown = logPosition{Index: first - 1}, true
		if first-1 == l.Snapshot.Index {
			l.base, l.baseTermUnknown = logPosition{l.Snapshot.Index, l.Snapshot.Term}, false
		}
		l.Entries = nil
	}
	keep := first - l.base.Index - 1
	l.Entries = append(l.Entries[:keep], rec.Entries...)
	return nil
}

// applySnapshot makes the log start after a snapshot's last entry. If the log holds that
// entry, what follows it stays (compaction); otherwise, or with replace (a snapshot from
// the leader, which the node installed because its log in memory did not hold it), the
// log is empty (Figure 13, steps 6 and 7). This holds wherever the base is: a snapshot
// at or before it still replaces the log, and one at the base whose term differs from
// the base's finds the log not holding its entry.
func (l *logState) applySnapshot(s SnapshotMeta, replace bool) error {
	if s.Index < l.Snapshot.Index {
		return fmt.Errorf("snapshot at index %d after one at %d", s.Index, l.Snapshot.Index)
	}
	l.Snapshot = s
	switch {
	case replace:
		l.Entries = nil
	case s.Index < l.base.Index:
		return nil // it covers part of what the deleted segments held; the log after them stays
	case s.Index == l.base.Index:
		if !l.baseTermUnknown && l.base.Term != s.Term {
			l.Entries = nil
		}
	case s.Index <= l.lastIndex() && l.Entries[s.Index-l.base.Index-1].Term == s.Term:
		l.Entries = l.Entries[s.Index-l.base.Index:]
	default:
		l.Entries = nil
	}
	l.base, l.baseTermUnknown = logPosition{s.Index, s.Term}, false
	return nil
}

// check verifies, once every record is read, that nothing is missing: every entry before
// the oldest kept segment is covered by the snapshot. Its error completes "the oldest
// log segment, <name>, ...".
func (l *logState) check() error {
	switch {
	case l.base.Index > l.Snapshot.Index && l.Snapshot.Index == 0:
		return fmt.Errorf("starts after entry %d, and there is no snapshot: entries 1 to %d are missing, so the log was cut short at its start (the segments before it deleted or lost)",
			l.base.Index, l.base.Index)
	case l.base.Index > l.Snapshot.Index:
		return fmt.Errorf("starts after entry %d, but the snapshot covers the log only up to entry %d: entries %d to %d are missing, so the log was cut short at its start (a segment before it deleted or lost)",
			l.base.Index, l.Snapshot.Index, l.Snapshot.Index+1, l.base.Index)
	}
	return nil
}

// damagedDirAdvice is what to do about a data dir that lost part of its log.
const damagedDirAdvice = "restore the data dir from a backup, or remove this node from the cluster and add it back with an empty data dir (it catches up from the others)"

// endsInRecord reports whether data, which does not hold a whole frame at off, ends in
// the middle of one there: its header is cut, or its length runs past the end. (A
// damaged frame is one that is all there but does not check out.)
func endsInRecord(data []byte, off int) bool {
	if len(data)-off < frameHeader {
		return true
	}
	n := binary.LittleEndian.Uint32(data[off:])
	return n > 0 && n <= maxFrameBytes && uint64(off)+frameHeader+uint64(n) > uint64(len(data))
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

func listDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read data dir: %w", err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

// removeStale removes snapshots other than the one the log starts from, and at startup
// what a crash can leave behind: temporary files, and snapshots received but never
// recorded in the log (so never acknowledged). While the node runs, temporary files may
// be a snapshot being written or received, and are left alone.
func removeStale(dir string, snap SnapshotMeta, startup bool) error {
	names, err := listDir(dir)
	if err != nil {
		return err
	}
	removed := false
	for _, name := range names {
		stale := (strings.HasPrefix(name, "snap-") && strings.HasSuffix(name, ".snap") && name != snapshotName(snap)) ||
			(startup && (strings.HasSuffix(name, ".tmp") || strings.HasPrefix(name, "recv-")))
		if stale {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("remove %s: %w", filepath.Join(dir, name), err)
			}
			removed = true
		}
	}
	if removed {
		return syncDir(dir)
	}
	return nil
}

// writeFileAtomic writes a file so that a crash leaves either the old one or the whole
// new one: to a temporary file, fsync, rename, fsync of the directory.
func writeFileAtomic(dir, name string, data []byte) error {
	return writeFileAtomicWith(dir, name, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// writeFileAtomicWith is writeFileAtomic for a file that write fills in.
func writeFileAtomicWith(dir, name string, write func(f *os.File) error) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
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

func gobBytes(v any) []byte {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		panic(fmt.Sprintf("encode %T: %v", v, err)) // plain structs always encode
	}
	return buf.Bytes()
}

// decodeSingleFrame decodes a file that holds one frame.
func decodeSingleFrame(data []byte, v any) error {
	kind, payload, next, ok := readFrame(data, 0)
	if !ok || next != len(data) {
		return errors.New("damaged (bad length or checksum at offset 0)")
	}
	if kind != frameNewStream {
		return fmt.Errorf("holds a record of kind %d, not the one this binary writes (%d): a newer version of raft wrote it? run that version or a newer one", kind, frameNewStream)
	}
	if err := decodeGob(payload, v); err != nil {
		return fmt.Errorf("passes its checksum but does not decode at offset 0: %v", err)
	}
	return nil
}

func decodeGob(data []byte, v any) error {
	return gob.NewDecoder(bytes.NewReader(data)).Decode(v)
}

// openSegment starts the next segment. Its first record repeats the hard state, the
// snapshot and where the log ends, so every older segment can go once a snapshot
// covers it.
func (s *storage) openSegment() error {
	seq := uint64(1)
	if n := len(s.segs); n > 0 {
		seq = s.segs[n-1].seq + 1
	}
	path := filepath.Join(s.dir, segmentName(seq))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("create log segment: %w", err)
	}
	if s.f != nil {
		s.f.Close()
	}
	s.f, s.size, s.framed = f, 0, 0
	s.buf.Reset()
	s.enc = gob.NewEncoder(&s.buf)
	s.segs = append(s.segs, segment{seq: seq, maxIndex: s.last.Index})
	start := s.last
	rec := walRecord{HardState: &s.hs, Start: &start}
	if s.snap.Index > 0 {
		snap := s.snap
		rec.Snapshot = &snap
	}
	if err := s.write(rec); err != nil {
		return err
	}
	// The new file's name must be durable before anything in it counts.
	if err := s.syncDir(s.dir); err != nil {
		return fmt.Errorf("create log segment %s: %w", path, err)
	}
	return nil
}

// Save appends a hard state and entries as one record, and returns once it is on disk.
// A failed write or fsync leaves the node unable to keep its promises: the caller stops.
func (s *storage) Save(hs *HardState, ents []Entry) error {
	if hs == nil && len(ents) == 0 {
		return nil
	}
	return s.SaveAll([]walRecord{{HardState: hs, Entries: ents}})
}

// SaveAll appends records of hard states and entries, in order, with one write and one
// fsync: as one record, in one frame. A power loss during the write can leave any part
// of it on disk; a frame per record could leave a later frame whole after an earlier
// damaged one, which reads as damage in the middle of the log, not as a torn tail.
func (s *storage) SaveAll(recs []walRecord) error {
	if len(recs) == 0 {
		return nil
	}
	rec, err := mergeRecords(recs)
	if err != nil {
		return err
	}
	if s.size >= s.segmentBytes {
		if err := s.openSegment(); err != nil {
			return err
		}
	}
	if rec.HardState != nil {
		s.hs = *rec.HardState
	}
	if n := len(rec.Entries); n > 0 {
		s.last = logPosition{rec.Entries[n-1].Index, rec.Entries[n-1].Term}
		seg := &s.segs[len(s.segs)-1]
		seg.maxIndex = max(seg.maxIndex, s.last.Index)
	}
	return s.write(rec)
}

// mergeRecords makes one record that changes the log as recs do, one after the other:
// the last hard state, and the entries, each record's replacing those of earlier ones
// from its first index on. The entries are copied where they are joined, never
// appended to in place: they are slices of the core's log.
func mergeRecords(recs []walRecord) (walRecord, error) {
	if len(recs) == 1 {
		return recs[0], nil
	}
	var m walRecord
	for _, rec := range recs {
		if rec.HardState != nil {
			m.HardState = rec.HardState
		}
		if len(rec.Entries) == 0 {
			continue
		}
		if len(m.Entries) == 0 || rec.Entries[0].Index <= m.Entries[0].Index {
			m.Entries = rec.Entries
			continue
		}
		keep := rec.Entries[0].Index - m.Entries[0].Index
		if keep > uint64(len(m.Entries)) {
			return m, fmt.Errorf("save: entries from %d follow entries that end at %d, in one write", rec.Entries[0].Index, m.Entries[len(m.Entries)-1].Index)
		}
		m.Entries = append(m.Entries[:keep:keep], rec.Entries...)
	}
	return m, nil
}

// SaveSnapshot records that the log now starts after snapshot meta, whose file is
// already durable, then deletes the segments and snapshots it makes unnecessary. With
// replaced, the snapshot came from the leader and replaces the whole log (this server's
// log did not hold its last entry); otherwise it compacts the log, which holds it.
func (s *storage) SaveSnapshot(meta SnapshotMeta, replaced bool) error {
	if err := s.write(walRecord{Snapshot: &meta, ReplaceLog: replaced}); err != nil {
		return err
	}
	if replaced {
		s.last = logPosition{meta.Index, meta.Term}
	}
	s.snap = meta
	removed := false
	for len(s.segs) > 1 && s.segs[0].maxIndex <= meta.Index {
		path := filepath.Join(s.dir, segmentName(s.segs[0].seq))
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove compacted log segment %s: %w", path, err)
		}
		s.segs = s.segs[1:]
		removed = true
	}
	// The removals are durable only once the dir is synced: until then a power loss can
	// bring back any of them, or leave a gap between the segments kept.
	if removed {
		if err := s.syncDir(s.dir); err != nil {
			return fmt.Errorf("remove compacted log segments: %w", err)
		}
	}
	return removeStale(s.dir, meta, false)
}

// write appends a record to the current segment, in one frame: one write, one fsync.
// A write is never more than one frame, so a torn write is always a torn last frame.
func (s *storage) write(rec walRecord) error {
	frame, err := s.encode(rec)
	if err != nil {
		return err
	}
	if _, err := s.f.Write(frame); err != nil {
		return err // an *fs.PathError: "write <segment>: <why>"
	}
	if err := syncData(s.f); err != nil {
		return err // "sync <segment>: <why>"
	}
	s.size += int64(len(frame))
	if cap(s.frame) > maxKeptFrame {
		s.frame = nil
	}
	return nil
}

// encode frames rec in s.frame: a record of a hard state and entries in binary
// (walbin.go), any other in the segment's gob stream.
func (s *storage) encode(rec walRecord) ([]byte, error) {
	var err error
	s.frame = append(s.frame[:0], make([]byte, frameHeader)...)
	kind := frameEntries
	if entriesOnly(&rec) && !s.gobOnly {
		if s.frame, err = appendEntriesRecord(s.frame, &rec); err != nil {
			return nil, fmt.Errorf("encode log record: %w", err)
		}
	} else {
		s.buf.Reset()
		if err := s.enc.Encode(rec); err != nil {
			return nil, fmt.Errorf("encode log record: %w", err)
		}
		kind = frameContinue
		if s.framed == 0 {
			kind = frameNewStream
		}
		s.framed++
		s.frame = append(s.frame, s.buf.Bytes()...)
	}
	if n := len(s.frame) - frameHeader; n > maxFrameBytes {
		return nil, fmt.Errorf("a log record of %d bytes is more than a frame holds (%d)", n, maxFrameBytes)
	}
	putFrameHeader(s.frame, kind)
	return s.frame, nil
}

// Close closes the log and releases the data dir.
func (s *storage) Close() error {
	s.metaMu.Lock()
	s.closed = true
	s.metaMu.Unlock()
	err := s.f.Close()
	s.lock.Close()
	return err
}

func appendFrame(b []byte, kind byte, payload []byte) []byte {
	start := len(b)
	b = append(append(b, make([]byte, frameHeader)...), payload...)
	putFrameHeader(b[start:], kind)
	return b
}

// putFrameHeader fills in the header of frame, whose payload follows it.
func putFrameHeader(frame []byte, kind byte) {
	binary.LittleEndian.PutUint32(frame[0:], uint32(len(frame)-frameHeader))
	frame[8] = kind
	binary.LittleEndian.PutUint32(frame[4:], kindAndPayloadCRC(frame))
}

// kindAndPayloadCRC is the CRC of a whole frame: of its kind and the payload after it.
// (frameCRC takes them apart, at the cost of an allocation.)
func kindAndPayloadCRC(frame []byte) uint32 {
	return crc32.Checksum(frame[8:], crcTable)
}

func frameCRC(kind byte, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum([]byte{kind}, crcTable), crcTable, payload)
}

// readFrame parses the frame at off. ok is false if there is no whole, intact frame there.
// A frame of any kind is intact if its checksum holds: what a kind this binary does not
// know means is for the reader to say (a newer version wrote it), not a torn write.
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
	frame := data[off : off+frameHeader+int(n)]
	if kindAndPayloadCRC(frame) != crc {
		return 0, nil, 0, false
	}
	payload = frame[frameHeader:]
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
