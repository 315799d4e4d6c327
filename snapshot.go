// snapshot.go: snapshots of the state machine (Raft paper §7). A snapshot replaces the
// log up to its last included entry: the applied messages, plus the index, term and
// membership at that entry. It is one file in the data dir, snap-<index>-<term>.snap:
//
//	frame: gob SnapshotMeta | frame: the state machine's bytes (machine.snapshot)
//
// framed as the log is (length, CRC-32C, kind), written to a temporary file, fsynced and
// renamed, so a crash leaves either no snapshot or a whole one.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// SnapshotMeta describes a snapshot: its last included entry and the configuration in
// effect there (the latest configuration entry at or before it, or the bootstrap one).
type SnapshotMeta struct {
	Index, Term uint64
	Config      Config
	ConfigIndex uint64 // index of the entry that carried Config (0: the bootstrap configuration)
	Machine     int    // how the state machine's bytes are laid out (machineFormat)
}

// snapshotName is the file of snapshot m, its index and term in decimal, as the logs and
// status give them.
func snapshotName(m SnapshotMeta) string {
	return fmt.Sprintf("snap-%d-%d.snap", m.Index, m.Term)
}

// hexSnapshotName is the name older binaries gave the file (index and term in hex, 16
// digits). A data dir opened with its snapshot under it has it renamed (renameHexSnapshot).
func hexSnapshotName(m SnapshotMeta) string {
	return fmt.Sprintf("snap-%016x-%016x.snap", m.Index, m.Term)
}

// snapshotPath is where snapshot m is in dir: under its name, or under its hex name if
// only that is there (a data dir of an older binary, not yet renamed).
func snapshotPath(dir string, m SnapshotMeta) string {
	path := filepath.Join(dir, snapshotName(m))
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if hex := filepath.Join(dir, hexSnapshotName(m)); fileExists(hex) {
			return hex
		}
	}
	return path
}

// renameHexSnapshot gives snapshot m its decimal name, durably, if the file has its hex
// name, and says so ("": it had its name already).
func renameHexSnapshot(dir string, m SnapshotMeta) (string, error) {
	path := snapshotPath(dir, m)
	if filepath.Base(path) == snapshotName(m) {
		return "", nil
	}
	if err := os.Rename(path, filepath.Join(dir, snapshotName(m))); err != nil {
		return "", fmt.Errorf("rename snapshot %s to its decimal name: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("rename snapshot %s to its decimal name: %w", path, err)
	}
	return fmt.Sprintf("%s: renamed to %s (snapshot files are named in decimal now)", path, snapshotName(m)), nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// encodeSnapshotFile lays out a snapshot file.
func encodeSnapshotFile(meta SnapshotMeta, data []byte) []byte {
	b := appendFrame(nil, frameNewStream, gobBytes(meta))
	return appendFrame(b, frameSnapshotData, data)
}

// writeSnapshot writes a snapshot file durably.
func writeSnapshot(dir string, meta SnapshotMeta, data []byte) error {
	return writeFileAtomic(dir, snapshotName(meta), encodeSnapshotFile(meta, data))
}

// writeMachineSnapshot writes a snapshot file of a machine view durably, streaming the
// view's stored messages from their file: memory use does not grow with the messages.
// It returns where the messages are in the new file (not opened: f is nil) and its size.
func writeMachineSnapshot(dir string, meta SnapshotMeta, v machineView) (stored storedMessages, size int64, err error) {
	err = writeFileAtomicWith(dir, snapshotName(meta), func(f *os.File) error {
		stored, size, err = writeSnapshotTo(f, meta, v)
		return err
	})
	return stored, size, err
}

// writeSnapshotTo writes the snapshot file into f: the header frame, then the data
// frame, whose length and checksum are filled in once the data has gone past.
func writeSnapshotTo(f *os.File, meta SnapshotMeta, v machineView) (storedMessages, int64, error) {
	head := appendFrame(nil, frameNewStream, gobBytes(meta))
	base := int64(len(head) + frameHeader)
	if _, err := f.Write(append(head, make([]byte, frameHeader)...)); err != nil {
		return storedMessages{}, 0, err
	}
	crc := crc32.New(crcTable)
	crc.Write([]byte{frameSnapshotData})
	out := bufio.NewWriterSize(io.MultiWriter(f, crc), 256<<10)
	stored, err := encodeMachineTo(out, v)
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		return stored, 0, err
	}
	pos, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return stored, 0, err
	}
	if pos-base > maxFrameBytes {
		return stored, 0, fmt.Errorf("the snapshot data is %d bytes, more than a frame holds (%d)", pos-base, maxFrameBytes)
	}
	var h [frameHeader]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(pos-base))
	binary.LittleEndian.PutUint32(h[4:], crc.Sum32())
	h[8] = frameSnapshotData
	if _, err := f.WriteAt(h[:], int64(len(head))); err != nil {
		return stored, 0, err
	}
	for i := range stored.index {
		stored.index[i] += base
	}
	stored.end += base
	return stored, pos, nil
}

// openSnapshotMessages loads the machine of the snapshot described by meta, whose data
// (read and checked by readSnapshot) is the end of its file, keeping its messages there.
func openSnapshotMessages(dir string, meta SnapshotMeta, data []byte, sm *machine) error {
	f, err := os.Open(filepath.Join(dir, snapshotName(meta)))
	if err != nil {
		return err
	}
	info, err := f.Stat()
	if err == nil {
		err = sm.restoreFile(f, info.Size()-int64(len(data)), data, meta.Machine)
	}
	if err != nil {
		f.Close()
	}
	return err
}

// readSnapshot reads the snapshot described by meta and returns the state machine's bytes.
func readSnapshot(dir string, meta SnapshotMeta) ([]byte, error) {
	path := snapshotPath(dir, meta)
	file, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: the log starts after snapshot %d (term %d), which cannot be read: %v; restore the data dir from a backup, or remove the node from the cluster and add it back with an empty one",
			errDataDir, meta.Index, meta.Term, err)
	}
	got, data, err := decodeSnapshotFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v; restore the data dir from a backup, or remove the node from the cluster and add it back with an empty one", errDataDir, path, err)
	}
	if got.Index != meta.Index || got.Term != meta.Term {
		return nil, fmt.Errorf("%w: %s holds snapshot %d (term %d), not %d (term %d)", errDataDir, path, got.Index, got.Term, meta.Index, meta.Term)
	}
	return data, nil
}

// decodeSnapshotFile checks a snapshot file and splits it into its parts.
func decodeSnapshotFile(file []byte) (SnapshotMeta, []byte, error) {
	var meta SnapshotMeta
	kind, payload, next, ok := readFrame(file, 0)
	if !ok || kind != frameNewStream {
		return meta, nil, errors.New("damaged header (bad length or checksum at offset 0)")
	}
	if err := decodeGob(payload, &meta); err != nil {
		return meta, nil, fmt.Errorf("header passes its checksum but does not decode: %v", err)
	}
	kind, data, end, ok := readFrame(file, next)
	if !ok || end != len(file) || kind != frameSnapshotData {
		return meta, nil, fmt.Errorf("damaged data (bad length or checksum at offset %d)", next)
	}
	return meta, data, nil
}

// --- Restoring a backup ---

// restoreSnapshot makes dir, which must not exist yet or be empty, the data dir of node
// id of a new cluster whose members are bootstrap, holding the state of a snapshot file
// (a copy of any member's snap-<index>-<term>.snap). The log starts after the snapshot,
// which counts as committed; the membership is bootstrap, not the snapshot's. Every
// member of the new cluster is restored from the same file.
func restoreSnapshot(file, dir, id string, bootstrap Config) (SnapshotMeta, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return SnapshotMeta{}, fmt.Errorf("-restore: %w", err)
	}
	meta, data, err := decodeSnapshotFile(raw)
	if err == nil {
		_, err = parseMachine(data, meta.Machine, func(uint64, messageRecord) {})
	}
	if err != nil {
		return SnapshotMeta{}, fmt.Errorf("-restore: %s is not a usable snapshot: %v", file, err)
	}
	sum := sha256.Sum256(raw)
	if names, err := listDir(dir); err == nil && len(names) > 0 {
		return SnapshotMeta{}, restoredBefore(file, dir, hex.EncodeToString(sum[:]))
	}
	// Built beside it and renamed into place: a restore that fails half-way (a full
	// disk) leaves no data dir that a later start would take for a new, empty one.
	tmp := filepath.Clean(dir) + ".restoring"
	os.RemoveAll(tmp) // what an earlier failed attempt left
	meta.Config, meta.ConfigIndex = bootstrap, meta.Index
	if err := buildRestoredDir(tmp, id, bootstrap, meta, data, hex.EncodeToString(sum[:])); err != nil {
		os.RemoveAll(tmp)
		return SnapshotMeta{}, fmt.Errorf("-restore: %w", err)
	}
	os.Remove(dir) // empty, or absent; rename replaces neither a full dir nor a file
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return SnapshotMeta{}, fmt.Errorf("-restore: %w", err)
	}
	return meta, syncDir(filepath.Dir(filepath.Clean(dir)))
}

// errRestoredAlready: the data dir was restored from this very file, by an earlier start
// with the same command line; the node starts on it as it is.
var errRestoredAlready = errors.New("the data dir was restored from this file already")

// restoredBefore says why -restore file does not go into dir, which is not empty:
// errRestoredAlready if dir was restored from that file (whose SHA-256 is sum), else
// what dir is and what to do.
func restoredBefore(file, dir, sum string) error {
	meta, err := peekMeta(dir)
	switch {
	case err != nil:
		return err
	case meta != nil && meta.RestoredFrom == sum:
		return fmt.Errorf("%w (%s, sha256 %.12s): %s holds what this node did since", errRestoredAlready, file, sum, dir)
	case meta != nil && meta.RestoredFrom != "":
		return fmt.Errorf("-restore %s: the data dir %s was restored from another file (sha256 %.12s, and this one's is %.12s) and holds this node's state since: to start the node on it, drop -restore; to restore %s instead, move the data dir away (or give another -d)",
			file, dir, meta.RestoredFrom, sum, file)
	case meta != nil:
		return fmt.Errorf("-restore %s: the data dir %s is not empty: it holds the state of node %s, and was not restored from this file: to start the node on it, drop -restore; to restore the file, move the data dir away (or give another -d)", file, dir, meta.ID)
	}
	return fmt.Errorf("-restore builds a new data dir, and %s is not empty (move it away, or give another -d)", dir)
}

// buildRestoredDir writes a whole data dir at dir whose log starts after snapshot meta,
// restored from a file whose SHA-256 is sum.
func buildRestoredDir(dir, id string, bootstrap Config, meta SnapshotMeta, data []byte, sum string) error {
	store, _, _, _, err := openStorage(dir, id, bootstrap)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.UpdateMeta(func(m *walMeta) { m.Restored, m.RestoredFrom = true, sum }); err != nil {
		return err
	}
	if err := writeSnapshot(dir, meta, data); err != nil {
		return err
	}
	if err := store.SaveSnapshot(meta, true); err != nil {
		return err
	}
	return store.Save(&HardState{Term: meta.Term, Commit: meta.Index}, nil)
}

// --- Sending a snapshot to a follower (InstallSnapshot, in chunks) ---

// SnapshotChunk is the argument of Raft.InstallSnapshot: a piece of a snapshot file.
type SnapshotChunk struct {
	Cluster  uint64 // the sender's cluster id
	From, To string
	Term     uint64
	// Of the InstallSnapshot message the pieces make up (Message).
	FromIncarnation, ToIncarnation, Context uint64
	Meta                                    SnapshotMeta
	Offset                                  int64 // where Data goes in the file
	Data                                    []byte
	Done                                    bool // the last piece: the file is whole
}

// SnapshotAck is the reply of Raft.InstallSnapshot: the offset the receiver expects next,
// so a sender whose earlier piece was lost resumes from where the receiver is.
type SnapshotAck struct {
	Offset int64
}

const (
	snapshotChunkBytes = 1 << 20
	snapshotCallWait   = 10 * time.Second // the last call also checks the whole file
)

// recvName is where a received snapshot waits until the core takes it.
func recvName(m SnapshotMeta) string {
	return fmt.Sprintf("recv-%d-%d.snap", m.Index, m.Term)
}

// sendSnapshot streams the snapshot that m announces to m.To, in the background; one at a
// time per follower. If it fails, the core hears so (MsgSnapStatus) and tries again later.
func (t *transport) sendSnapshot(m Message) {
	t.mu.Lock()
	busy := t.snapshotsOut[m.To]
	t.snapshotsOut[m.To] = true
	t.mu.Unlock()
	if busy {
		return
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		err := t.streamSnapshot(m)
		t.mu.Lock()
		delete(t.snapshotsOut, m.To)
		t.mu.Unlock()
		if err != nil {
			t.logger.Warn("sending snapshot failed; will retry", "index", m.Snapshot.Index, "to", m.To, "err", err)
			t.report(Message{Type: MsgSnapStatus, From: m.To, To: t.id, Term: m.Term})
		}
	}()
}

func (t *transport) streamSnapshot(m Message) error {
	f, err := os.Open(filepath.Join(t.dir, snapshotName(*m.Snapshot)))
	if err != nil {
		return err // replaced by a newer one meanwhile: the core will ask again
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	client, err := t.dial(m.To)
	if err != nil {
		return err
	}
	defer client.Close()
	buf := make([]byte, snapshotChunkBytes)
	var off int64
	for {
		n, err := f.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			return err
		}
		chunk := &SnapshotChunk{Cluster: t.clusterID(), From: t.id, To: m.To, Term: m.Term, Meta: *m.Snapshot, Offset: off, Data: buf[:n],
			Done: off+int64(n) == info.Size(), FromIncarnation: m.FromIncarnation, ToIncarnation: m.ToIncarnation, Context: m.Context}
		var ack SnapshotAck
		if err := callWithin(client, "Raft.InstallSnapshot", chunk, &ack, snapshotCallWait, t.stopc, errStopping); err != nil {
			return err
		}
		if chunk.Done && ack.Offset == info.Size() {
			return nil
		}
		if ack.Offset < 0 || ack.Offset > info.Size() {
			return fmt.Errorf("the receiver expects offset %d of a %d-byte snapshot", ack.Offset, info.Size())
		}
		off = ack.Offset // on from where the receiver is: resends what it lost
	}
}

// --- Receiving one ---

// incoming is a snapshot being received.
type incoming struct {
	meta SnapshotMeta
	from string
	f    *os.File
	size int64
}

// receiveSnapshot takes one piece of a snapshot. Pieces of one snapshot from one leader
// are written in order; a piece out of order is answered with the offset expected, and
// a piece of another snapshot starts over. The whole file is checked before the event
// loop hears of it.
func (n *node) receiveSnapshot(c *SnapshotChunk, ack *SnapshotAck) error {
	if c.To != n.id {
		return fmt.Errorf("snapshot for %s reached %s: check that every member's -c lists the same addresses", c.To, n.id)
	}
	n.recvMu.Lock()
	defer n.recvMu.Unlock()
	in := n.recv
	if in == nil || in.meta.Index != c.Meta.Index || in.meta.Term != c.Meta.Term || in.from != c.From || c.Offset == 0 {
		if in != nil {
			in.f.Close()
			n.recv = nil
		}
		if c.Offset != 0 {
			ack.Offset = 0 // a snapshot we have no start of: from the beginning
			return nil
		}
		f, err := os.Create(filepath.Join(n.dir, recvName(c.Meta)+".tmp"))
		if err != nil {
			return fmt.Errorf("%s cannot store a snapshot: %v", n.id, err)
		}
		in = &incoming{meta: c.Meta, from: c.From, f: f}
		n.recv = in
	}
	if c.Offset != in.size {
		ack.Offset = in.size
		return nil
	}
	if _, err := in.f.Write(c.Data); err != nil {
		in.f.Close()
		n.recv = nil
		return fmt.Errorf("%s cannot store a snapshot: %v", n.id, err)
	}
	in.size += int64(len(c.Data))
	ack.Offset = in.size
	if !c.Done {
		return nil
	}
	n.recv = nil
	if err := n.finishSnapshot(in); err != nil {
		ack.Offset = 0
		return err
	}
	return n.deliver([]Message{{Type: MsgSnap, From: c.From, To: c.To, Term: c.Term, Snapshot: &in.meta,
		FromIncarnation: c.FromIncarnation, ToIncarnation: c.ToIncarnation, Context: c.Context}})
}

// finishSnapshot makes a received snapshot durable under its waiting name, once it
// checks out.
func (n *node) finishSnapshot(in *incoming) error {
	tmp := in.f.Name()
	err := in.f.Sync()
	if cerr := in.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s cannot store a snapshot: %v", n.id, err)
	}
	file, err := os.ReadFile(tmp)
	if err == nil {
		var meta SnapshotMeta
		if meta, _, err = decodeSnapshotFile(file); err == nil && (meta.Index != in.meta.Index || meta.Term != in.meta.Term) {
			err = fmt.Errorf("it holds snapshot %d (term %d), not %d (term %d)", meta.Index, meta.Term, in.meta.Index, in.meta.Term)
		}
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(n.dir, recvName(in.meta)))
	}
	if err == nil {
		err = syncDir(n.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snapshot %d from %s: %v", in.meta.Index, in.from, err)
	}
	return nil
}
