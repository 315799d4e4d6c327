// backup.go: raft -C backup -m FILE, an on-demand backup: a consistent snapshot of the
// leader's state machine, in the snapshot file format (snapshot.go) that -restore takes.
//
// The client calls Raft.Backup on the leader (a follower names it). The leader first
// confirms with a majority that it still leads and waits until it has applied
// everything committed before the call (the barrier a read uses, §6.4), then takes a
// view of its machine in the event loop (as a background snapshot does) and writes the
// snapshot file from it, outside the loop, to a temporary file in its data dir, which it
// unlinks at once: the file lives as long as the open descriptor, so neither an
// abandoned transfer nor a crash leaves it behind. The client then reads the file
// with more Raft.Backup calls, a piece (1 MiB at most) at a time, from the offset it has,
// so neither side holds more than a piece in memory. A transfer not read on for
// backupIdle is dropped.
//
// The client writes the pieces to a temporary file beside FILE, checks the checksums of
// the whole, fsyncs it and links it to FILE, which must not exist (a backup never
// overwrites a file), then fsyncs the dir: FILE is either absent or whole.
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"net/rpc"
	"os"
	"path/filepath"
	"sync"
	"time"
)

const (
	backupPieceBytes = 1 << 20
	backupIdle       = 30 * time.Second // a transfer not read on for this long is dropped
	maxBackups       = 4                // transfers a member serves at once
	maxBackupHeader  = 1 << 20          // the header frame (gob SnapshotMeta) is far smaller
)

// BackupRequest is the argument of Raft.Backup.
type BackupRequest struct {
	ID     uint64        // 0: take a new backup; else the one to read on
	Offset int64         // where to read from
	Wait   time.Duration // a new backup: how long the client waits for it
}

// BackupReply is the reply of Raft.Backup: what the backup is, and a piece of it.
type BackupReply struct {
	Status    CommandStatus // StatusOK, StatusRetry (not the leader, no leader yet, busy) or StatusRejected
	Leader    string        // the leader, if known
	NotLeader bool
	Error     string // why not StatusOK

	From        string // the member serving it
	ID          uint64
	Index, Term uint64 // the last entry it holds
	Messages    uint64 // the client messages it holds
	Size        int64  // of the whole file
	Offset      int64  // where Data is in the file
	Data        []byte
}

// Backup takes a backup (ID 0), or hands out a piece of one being read.
func (s *rpcService) Backup(req *BackupRequest, reply *BackupReply) error {
	n, err := s.node()
	if err != nil {
		*reply = BackupReply{Status: StatusRetry, Error: err.Error()}
		return nil
	}
	if req.ID == 0 {
		*reply = n.takeBackup(req.Wait)
		return nil
	}
	*reply = n.backups.piece(req.ID, req.Offset)
	return nil
}

// servedBackup is a backup file being read by a client.
type servedBackup struct {
	f     *os.File // unlinked: closing it frees the space
	head  BackupReply
	timer *time.Timer // drops it after backupIdle without a read
}

// backupFiles are the backups a node is serving, by id, and those being written.
type backupFiles struct {
	mu      sync.Mutex
	open    map[uint64]*servedBackup
	writing int // places reserved for backups being taken
}

// takeBackup writes a backup of the machine as of a read barrier and returns its first piece.
func (n *node) takeBackup(wait time.Duration) BackupReply {
	if !n.backups.reserve() {
		return BackupReply{Status: StatusRetry, Leader: n.id, Error: fmt.Sprintf("%s is already serving %d backups; try again once one is done", n.id, maxBackups)}
	}
	sb, failed := n.writeBackup(wait)
	n.backups.settle(sb)
	if sb == nil {
		return failed
	}
	n.logger.Info("serving a backup", "index", sb.head.Index, "term", sb.head.Term, "bytes", sb.head.Size)
	return n.backups.piece(sb.head.ID, 0)
}

// writeBackup writes the backup file for takeBackup; if it cannot, it says why instead.
func (n *node) writeBackup(wait time.Duration) (*servedBackup, BackupReply) {
	// The barrier of a linearizable read, here and not at the leader (Forwarded): the
	// backup holds everything committed before it was asked for.
	read := n.command(&CommandRequest{Command: cmdRead, Message: "count", Wait: wait, Forwarded: true})
	if read.Status != StatusOK {
		status := read.Status
		if status != StatusRejected {
			status = StatusRetry // a read changes nothing: trying again is always safe
		}
		return nil, BackupReply{Status: status, Leader: read.Leader, NotLeader: read.NotLeader, Error: read.Error}
	}
	var meta SnapshotMeta
	var view machineView
	var viewErr error
	if err := n.inLoop(func() {
		meta = n.core.snapshotMeta(n.core.lastApplied)
		view, viewErr = n.sm.view()
	}); err != nil {
		return nil, BackupReply{Status: StatusRetry, Error: err.Error()}
	}
	defer view.close()
	if viewErr != nil {
		return nil, BackupReply{Status: StatusRejected, Leader: n.id, Error: fmt.Sprintf("%s cannot read its state: %v", n.id, viewErr)}
	}
	meta.Machine = machineFormat
	f, size, err := writeBackupFile(n.dir, meta, view)
	if err != nil {
		return nil, BackupReply{Status: StatusRejected, Leader: n.id, Error: fmt.Sprintf("%s cannot write the backup in its data dir: %v", n.id, err)}
	}
	head := BackupReply{Status: StatusOK, Leader: n.id, From: n.id, ID: newSessionID(), Index: meta.Index, Term: meta.Term,
		Messages: view.stored.count + uint64(len(view.messages)), Size: size}
	return &servedBackup{f: f, head: head}, BackupReply{}
}

// writeBackupFile writes the snapshot file of view to a temporary file in dir that has no
// name any more, and returns it open.
func writeBackupFile(dir string, meta SnapshotMeta, view machineView) (*os.File, int64, error) {
	f, err := os.CreateTemp(dir, "backup-*.tmp") // a crash before the unlink: removed at the next start
	if err != nil {
		return nil, 0, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, 0, err
	}
	_, size, err := writeSnapshotTo(f, meta, view)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, size, nil
}

func (b *backupFiles) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.open)
}

// reserve takes one of the maxBackups places for a backup about to be taken, if one is
// free: checked and taken at once, so that however many clients ask together, no more
// than maxBackups files are written and served. settle ends the reservation: the backup
// written keeps the place until it is dropped, or, if none was (sb nil), the place is
// free again. (The place passes from the one to the other under one lock: a backup that
// counted for two between being added and its reservation given back turned clients
// away with only half the places in use.)
func (b *backupFiles) reserve() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.open)+b.writing >= maxBackups {
		return false
	}
	b.writing++
	return true
}

func (b *backupFiles) settle(sb *servedBackup) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writing--
	if sb == nil {
		return
	}
	if b.open == nil {
		b.open = map[uint64]*servedBackup{}
	}
	id := sb.head.ID
	b.open[id] = sb
	sb.timer = time.AfterFunc(backupIdle, func() { b.drop(id) })
}

// drop forgets a backup and frees its file.
func (b *backupFiles) drop(id uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if sb := b.open[id]; sb != nil {
		sb.timer.Stop()
		sb.f.Close()
		delete(b.open, id)
	}
}

// piece returns the piece of backup id at offset; the last one ends the transfer.
func (b *backupFiles) piece(id uint64, offset int64) BackupReply {
	b.mu.Lock()
	sb := b.open[id]
	b.mu.Unlock()
	if sb == nil {
		return BackupReply{Status: StatusRejected, Error: fmt.Sprintf("no backup %016x here: it was dropped after %v without a read, or the member restarted; take a new one", id, backupIdle)}
	}
	r := sb.head
	if offset < 0 || offset > r.Size {
		return BackupReply{Status: StatusRejected, Error: fmt.Sprintf("offset %d of a %d-byte backup", offset, r.Size)}
	}
	sb.timer.Reset(backupIdle)
	r.Offset, r.Data = offset, make([]byte, min(backupPieceBytes, r.Size-offset))
	if _, err := sb.f.ReadAt(r.Data, offset); err != nil {
		b.drop(id)
		return BackupReply{Status: StatusRejected, Error: fmt.Sprintf("%s cannot read the backup: %v", r.From, err)}
	}
	if offset+int64(len(r.Data)) == r.Size {
		b.drop(id) // the client has it all; if this answer is lost, it takes a new one
	}
	return r
}

// --- The client ---

// backupResult is what -C backup -json prints.
type backupResult struct {
	Command  string  `json:"command"`
	File     string  `json:"file"`
	Outcome  string  `json:"outcome"` // ok or failed
	Index    uint64  `json:"index,omitempty"`
	Term     uint64  `json:"term,omitempty"`
	Messages *uint64 `json:"messages,omitempty"`
	Bytes    int64   `json:"bytes,omitempty"`
	Leader   string  `json:"leader,omitempty"` // the member it came from
	Error    string  `json:"error,omitempty"`
}

// errInterrupted ends a backup on SIGINT or SIGTERM.
var errInterrupted = errors.New("interrupted (SIGINT or SIGTERM)")

// backup runs -C backup: it writes the backup to the file -m names and reports it.
func (c *client) backup(stdout io.Writer) int {
	path := c.cfg.Message
	head, err := c.saveBackup(path, time.Now().Add(c.cfg.Timeout), interrupted())
	if err != nil {
		if c.cfg.JSON {
			out, _ := json.Marshal(backupResult{Command: cmdBackup, File: path, Outcome: "failed", Error: err.Error()})
			fmt.Fprintf(stdout, "%s\n", out)
		}
		fmt.Fprintf(c.stderr, "raft: backup to %s: %v; nothing written\n", path, err)
		return exitFailed
	}
	if c.cfg.JSON {
		out, _ := json.Marshal(backupResult{Command: cmdBackup, File: path, Outcome: "ok", Index: head.Index, Term: head.Term,
			Messages: &head.Messages, Bytes: head.Size, Leader: head.From})
		fmt.Fprintf(stdout, "%s\n", out)
		return exitOK
	}
	fmt.Fprintf(stdout, "backup written to %s: index %d, term %d, %d messages, %d bytes (from the leader %s)\n",
		path, head.Index, head.Term, head.Messages, head.Size, head.From)
	return exitOK
}

// saveBackup writes a backup to path, which must not exist, by the deadline: whole and
// durable, or not at all. Until the file is whole, stop closing ends it
// (errInterrupted), and the temporary file goes: a Ctrl-C leaves nothing behind.
func (c *client) saveBackup(path string, deadline time.Time, stop <-chan struct{}) (BackupReply, error) {
	if _, err := os.Lstat(path); err == nil {
		return BackupReply{}, fmt.Errorf("%s exists, and a backup never overwrites a file: remove it, or give another -m", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return BackupReply{}, err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is a pattern: say the dir
		}
		return BackupReply{}, fmt.Errorf("cannot write in %s: %w", dir, err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name()) // linked to path by then, if it worked
	}()
	type fetched struct {
		head BackupReply
		err  error
	}
	done := make(chan fetched, 1)
	go func() {
		head, err := c.download(tmp, deadline)
		if err == nil {
			err = tmp.Sync()
		}
		if err == nil {
			err = checkBackupFile(tmp, head)
		}
		done <- fetched{head, err}
	}()
	var got fetched
	select {
	case got = <-done:
	case <-stop:
		// The download may go on writing to tmp until the process exits; only this
		// goroutine names the file, and it will not now.
		return BackupReply{}, errInterrupted
	}
	head, err := got.head, got.err
	if err == nil {
		err = tmp.Close()
	}
	if err != nil {
		return head, err
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return head, fmt.Errorf("%s was created meanwhile, and a backup never overwrites a file", path)
	} else if err != nil {
		// No hard links on this file system: rename, which would replace a file
		// created since the check above.
		if _, serr := os.Lstat(path); serr == nil {
			return head, fmt.Errorf("%s was created meanwhile, and a backup never overwrites a file", path)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return head, err
		}
	}
	return head, syncDir(dir)
}

// download fetches a backup from the leader into f, retrying through leader changes
// (a backup changes nothing, so a new one may always be taken) until the deadline.
func (c *client) download(f *os.File, deadline time.Time) (BackupReply, error) {
	why := "no attempt finished"
	wait := minRetryWait
	for {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return BackupReply{}, fmt.Errorf("no backup within %v: %s", c.cfg.Timeout, why)
		}
		server := c.target()
		var head BackupReply
		err := c.invoke(server, "Raft.Backup", &BackupRequest{Wait: remaining}, &head, remaining)
		switch {
		case errors.As(err, new(certError)):
			return head, err
		case errors.As(err, new(rpc.ServerError)):
			return head, fmt.Errorf("%s refused it: %v", server, err)
		case err != nil:
			why = fmt.Sprintf("%s: %v", server, err)
			c.moveOn(server)
		case head.Status == StatusOK:
			err := c.fetchPieces(server, f, head, deadline)
			if err == nil {
				return head, nil
			}
			why = fmt.Sprintf("reading the backup from %s: %v", server, err)
			c.moveOn(server)
		case head.Status == StatusRejected:
			return head, fmt.Errorf("%s refused it: %s", server, head.Error)
		default:
			why = head.Error
			if head.Leader != noLeader && head.Leader != server {
				c.leader = head.Leader
			} else if head.NotLeader {
				c.moveOn(server)
			}
		}
		time.Sleep(min(wait, time.Until(deadline)))
		wait = min(2*wait, maxRetryWait)
	}
}

// fetchPieces writes the backup whose first piece is head into f, reading the rest from server.
func (c *client) fetchPieces(server string, f *os.File, head BackupReply, deadline time.Time) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	piece, off := head, int64(0)
	for {
		if piece.ID != head.ID || piece.Offset != off || piece.Size != head.Size || int64(len(piece.Data)) > head.Size-off {
			return fmt.Errorf("%s sent a piece that does not fit (offset %d of %d bytes; want offset %d)", server, piece.Offset, piece.Size, off)
		}
		if _, err := f.WriteAt(piece.Data, off); err != nil {
			return err
		}
		off += int64(len(piece.Data))
		if off == head.Size {
			return nil
		}
		if len(piece.Data) == 0 {
			return fmt.Errorf("%s sent an empty piece at offset %d of %d", server, off, head.Size)
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return fmt.Errorf("%d of %d bytes within %v", off, head.Size, c.cfg.Timeout)
		}
		piece = BackupReply{}
		if err := c.invoke(server, "Raft.Backup", &BackupRequest{ID: head.ID, Offset: off}, &piece, remaining); err != nil {
			return err
		}
		if piece.Status != StatusOK {
			return errors.New(piece.Error)
		}
	}
}

// checkBackupFile checks that f holds a whole snapshot file of the backup head
// describes: both frames pass their checksums and the header names its index and term.
// It reads the file in pieces: memory does not grow with its size.
func checkBackupFile(f *os.File, head BackupReply) error {
	r := io.NewSectionReader(f, 0, head.Size)
	var h [frameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil || h[8] != frameNewStream || binary.LittleEndian.Uint32(h[0:]) > maxBackupHeader {
		return fmt.Errorf("the backup's header is damaged (%d bytes received)", head.Size)
	}
	payload := make([]byte, binary.LittleEndian.Uint32(h[0:]))
	var meta SnapshotMeta
	if _, err := io.ReadFull(r, payload); err != nil || frameCRC(h[8], payload) != binary.LittleEndian.Uint32(h[4:]) || decodeGob(payload, &meta) != nil {
		return errors.New("the backup's header fails its checksum")
	}
	if meta.Index != head.Index || meta.Term != head.Term {
		return fmt.Errorf("the backup holds index %d (term %d), not %d (term %d) as announced", meta.Index, meta.Term, head.Index, head.Term)
	}
	off := int64(frameHeader + len(payload))
	if _, err := io.ReadFull(r, h[:]); err != nil || h[8] != frameSnapshotData || int64(binary.LittleEndian.Uint32(h[0:])) != head.Size-off-frameHeader {
		return fmt.Errorf("the backup's data frame is damaged or cut short (at offset %d)", off)
	}
	crc := crc32.New(crcTable)
	crc.Write(h[8:9])
	if _, err := io.Copy(crc, r); err != nil || crc.Sum32() != binary.LittleEndian.Uint32(h[4:]) {
		return errors.New("the backup's data fails its checksum")
	}
	return nil
}
