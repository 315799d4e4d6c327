// backup_test.go: tests of raft -C backup: the served file, its pieces and its check,
// and a round trip through the real binary (backup, -restore, the same messages).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A backup is served in pieces of at most backupPieceBytes, from the offset asked for;
// the last piece ends it, and an unknown backup or a bad offset is refused.
func TestBackupServedInPieces(t *testing.T) {
	var msgs []string
	for i := range 2500 {
		msgs = append(msgs, fmt.Sprintf("%01000d", i)) // 2.5 MB: three pieces
	}
	meta := SnapshotMeta{Index: 2501, Term: 3, Machine: machineFormat}
	f, size, err := writeBackupFile(t.TempDir(), meta, viewOf(msgs))
	if err != nil {
		t.Fatal(err)
	}
	if names, _ := os.ReadDir(filepath.Dir(f.Name())); len(names) != 0 {
		t.Fatalf("the backup file has a name: %v", names)
	}
	var served backupFiles
	head := BackupReply{Status: StatusOK, ID: 42, Index: meta.Index, Term: meta.Term, Size: size}
	served.reserve()
	served.settle(&servedBackup{f: f, head: head})
	var got bytes.Buffer
	for off := int64(0); off < size; {
		p := served.piece(42, off)
		if p.Status != StatusOK || p.Offset != off || len(p.Data) == 0 || len(p.Data) > backupPieceBytes {
			t.Fatalf("piece at %d of %d: status %d, offset %d, %d bytes (%s)", off, size, p.Status, p.Offset, len(p.Data), p.Error)
		}
		got.Write(p.Data)
		off += int64(len(p.Data))
	}
	if served.count() != 0 {
		t.Fatal("the backup is still served after its last piece")
	}
	if p := served.piece(42, 0); p.Status != StatusRejected || !strings.Contains(p.Error, "no backup 000000000000002a here") {
		t.Fatalf("a backup read to its end, asked again: %+v", p)
	}
	gotMeta, data, err := decodeSnapshotFile(got.Bytes())
	if err != nil || gotMeta.Index != meta.Index || !bytes.Equal(data, encodeMachine(viewOf(msgs))) {
		t.Fatalf("the pieces put together: %v, meta %+v", err, gotMeta)
	}

	f, size, _ = writeBackupFile(t.TempDir(), meta, viewOf(msgs))
	served.reserve()
	served.settle(&servedBackup{f: f, head: BackupReply{ID: 7, Size: size}})
	for _, off := range []int64{-1, size + 1} {
		if p := served.piece(7, off); p.Status != StatusRejected || !strings.Contains(p.Error, "offset") {
			t.Errorf("offset %d: %+v", off, p)
		}
	}
	served.drop(7)
}

// A backup takes one place from its reservation until it is dropped, never two: with
// one written and served, the other maxBackups-1 places are free to be reserved, and a
// reservation that wrote nothing gives its place back.
func TestBackupHoldsOnePlace(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "b")
	if err != nil {
		t.Fatal(err)
	}
	var b backupFiles
	if !b.reserve() {
		t.Fatal("no place free in an idle member")
	}
	b.settle(&servedBackup{f: f, head: BackupReply{ID: 1}})
	defer b.drop(1)
	for i := 1; i < maxBackups; i++ {
		if !b.reserve() {
			t.Fatalf("one backup served, %d reserved: the next is turned away (%d places)", i-1, maxBackups)
		}
	}
	if b.reserve() {
		t.Fatalf("a place past the %d", maxBackups)
	}
	b.settle(nil)
	if !b.reserve() {
		t.Fatal("a reservation that wrote nothing kept its place")
	}
}

// The client checks the whole file it received before it names it: a piece lost, cut
// short or damaged in transit is refused.
func TestBackupFileChecked(t *testing.T) {
	meta := SnapshotMeta{Index: 9, Term: 2, Machine: machineFormat}
	good := encodeSnapshotFile(meta, encodeMachine(viewOf([]string{"a", "b c", "d\ne"})))
	head := BackupReply{Index: 9, Term: 2, Size: int64(len(good))}
	check := func(file []byte, head BackupReply) error {
		f, err := os.CreateTemp(t.TempDir(), "b")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		f.Write(file)
		return checkBackupFile(f, head)
	}
	if err := check(good, head); err != nil {
		t.Fatalf("a good file: %v", err)
	}
	short := head
	short.Size--
	if err := check(good[:len(good)-1], short); err == nil {
		t.Error("a file cut short passed")
	}
	for _, at := range []int{3, 20, len(good) - 2} {
		bad := bytes.Clone(good)
		bad[at] ^= 0x40
		if err := check(bad, head); err == nil {
			t.Errorf("a file damaged at byte %d passed", at)
		}
	}
	other := head
	other.Index = 10
	if err := check(good, other); err == nil || !strings.Contains(err.Error(), "not 10") {
		t.Errorf("a backup of another index: %v", err)
	}
}

// The round trip through the binary: a backup of a running cluster (its state partly in
// a snapshot file, partly in memory, larger than a piece) through a follower, restored
// into a new cluster that then holds the same messages; and the refusals, which write
// nothing: the file exists, its dir does not, the cluster is down.
func TestEndToEndBackup(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	members := freeAddrs(t, 3)
	c := newE2ECluster(t, members)
	c.extra = []string{"-snapshot-entries", "20"}
	for _, id := range members {
		c.start(id)
	}
	var msgs []string
	for i := range 40 {
		msgs = append(msgs, fmt.Sprintf("m%d", i))
	}
	msgs = append(msgs, "  two\nlines and spaces ", "héllo ☃")
	for i := range 12 { // 1.2 MB in all: more than one piece
		msgs = append(msgs, fmt.Sprintf("%d-%s", i, strings.Repeat("x", 100<<10)))
	}
	lead := ""
	for i, m := range msgs {
		lead = c.send(members[i%3], m).leader
	}
	for _, id := range members {
		if !c.procs[id].stderr.waitLine("log compacted") {
			t.Fatalf("%s never compacted its log:\n%s", id, c.procs[id].stderr)
		}
	}
	follower := members[0]
	if follower == lead {
		follower = members[1]
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "backup.snap")
	r := c.client("-C", "backup", "-m", file, "-S", follower)
	want := regexp.MustCompile(`^backup written to ` + regexp.QuoteMeta(file) + `: index (\d+), term \d+, ` + fmt.Sprint(len(msgs)) + ` messages, (\d+) bytes \(from the leader ` + regexp.QuoteMeta(lead) + `\)\n$`)
	m := want.FindStringSubmatch(r.stdout)
	if r.code != exitOK || m == nil {
		t.Fatalf("backup: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	info, err := os.Stat(file)
	if err != nil || fmt.Sprint(info.Size()) != m[2] || info.Size() <= backupPieceBytes {
		t.Fatalf("backup.snap: %v, %v bytes; the client said %s", err, info.Size(), m[2])
	}
	if !c.procs[lead].stderr.waitLine("serving a backup") {
		t.Fatalf("the leader %s did not log the backup:\n%s", lead, c.procs[lead].stderr)
	}
	onlyFiles(t, dir, "backup.snap")
	for _, id := range members {
		if names, _ := filepath.Glob(filepath.Join(c.procs[id].dir, "backup-*")); len(names) != 0 {
			t.Fatalf("%s's data dir holds %v after the backup", id, names)
		}
	}
	saved, _ := os.ReadFile(file)

	// -json: one object.
	r = c.client("-C", "backup", "-m", filepath.Join(dir, "second.snap"), "-S", lead, "-json")
	var j backupResult
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || r.code != exitOK || j.Outcome != "ok" || j.Messages == nil || *j.Messages != uint64(len(msgs)) ||
		j.Leader != lead || j.Index == 0 || j.Term == 0 || fmt.Sprint(j.Bytes) != m[2] || j.File != filepath.Join(dir, "second.snap") {
		t.Fatalf("backup -json: exit %d, %q (%v) %q", r.code, r.stdout, err, r.stderr)
	}

	// Refused, writing nothing: the file exists; its dir does not.
	r = c.client("-C", "backup", "-m", file, "-S", lead)
	if now, _ := os.ReadFile(file); r.code != exitFailed || !strings.Contains(r.stderr, file+" exists, and a backup never overwrites a file") || !bytes.Equal(now, saved) {
		t.Fatalf("backup over an existing file: exit %d, %q; file changed: %v", r.code, r.stderr, !bytes.Equal(now, saved))
	}
	missing := filepath.Join(dir, "no", "such", "dir", "b.snap")
	if r = c.client("-C", "backup", "-m", missing, "-S", lead); r.code != exitFailed || !strings.Contains(r.stderr, "cannot write in "+filepath.Dir(missing)+": no such file or directory") {
		t.Fatalf("backup into a missing dir: exit %d, %q", r.code, r.stderr)
	}
	if r = c.client("-C", "backup", "-S", lead); r.code != exitUsage || !strings.Contains(r.stderr, "-C backup needs the file to write: -m FILE") {
		t.Fatalf("backup without -m: exit %d, %q", r.code, r.stderr)
	}
	onlyFiles(t, dir, "backup.snap", "second.snap")

	// The restore: a new cluster, of other addresses, from the file, holds the messages.
	restored := freeAddrs(t, 3)
	b := newE2ECluster(t, restored)
	for _, id := range restored {
		_, port, _ := net.SplitHostPort(id)
		p := b.startWith(id, "-c", b.members, "-p", port, "-restore", file, "-cluster-token", "restored")
		if !p.stderr.waitLine("restored a snapshot into a new data dir") {
			t.Fatalf("%s: no restore logged:\n%s", id, p.stderr)
		}
	}
	r = b.client("-C", "read", "-m", "print", "-S", restored[2], "-timeout", "10s")
	if wantLogs := "Logs [" + strings.Join(msgs, " ") + "]\nread at index "; r.code != exitOK || !strings.HasPrefix(r.stdout, wantLogs) {
		t.Fatalf("read -m print of the restored cluster: exit %d, %.300q...; want %.300q...", r.code, r.stdout, wantLogs)
	}
	if st := b.status(restored[0]); fmt.Sprint(st.SnapshotIndex) != m[1] {
		t.Fatalf("the restored cluster starts after index %d; the backup was of %s", st.SnapshotIndex, m[1])
	}

	// A dead cluster: no backup, and nothing written.
	for _, id := range members {
		c.stop(id, syscall.SIGKILL)
	}
	r = c.client("-C", "backup", "-m", filepath.Join(dir, "third.snap"), "-S", strings.Join(members, ","), "-timeout", "1s")
	if r.code != exitFailed || !strings.Contains(r.stderr, "no backup within 1s") || !strings.Contains(r.stderr, "connection refused") || !strings.Contains(r.stderr, "nothing written") {
		t.Fatalf("backup of a dead cluster: exit %d, %q", r.code, r.stderr)
	}
	onlyFiles(t, dir, "backup.snap", "second.snap")
}

// A backup stopped by Ctrl-C or SIGTERM before it is whole removes its temporary file,
// says so, and exits 1: nothing is left beside FILE (a partial .FILE.*.tmp was). The
// member asked is wedged (it accepts and never answers), so the stop comes while the
// client waits on it, with the temporary file there.
func TestEndToEndBackupInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	wedged := silentServer(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		dir := t.TempDir()
		file := filepath.Join(dir, "b.snap")
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(raftBinary(t), "-C", "backup", "-m", file, "-S", wedged, "-timeout", "20s")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		for deadline := time.Now().Add(e2eWait); ; time.Sleep(5 * time.Millisecond) {
			if tmps, _ := filepath.Glob(filepath.Join(dir, ".b.snap.*.tmp")); len(tmps) > 0 {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("no temporary file in %s within %v: %s", dir, e2eWait, stderr.String())
			}
		}
		cmd.Process.Signal(sig)
		var err error
		select {
		case err = <-exited:
		case <-time.After(e2eWait):
			cmd.Process.Kill()
			t.Fatalf("backup did not exit on %v", sig)
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitFailed || stderr.String() != "raft: backup to "+file+": interrupted (SIGINT or SIGTERM); nothing written\n" {
			t.Fatalf("backup on %v: %v, %q %q", sig, err, stdout.String(), stderr.String())
		}
		onlyFiles(t, dir)
	}
}

// However many clients ask a member for a backup at once, it writes and serves at most
// maxBackups (the check and the registration were apart: every request that came
// while the first were written passed the check, and each wrote a file in the data dir).
func TestEndToEndBackupsAtOnceBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	addr := freeAddrs(t, 1)[0]
	c := newE2ECluster(t, []string{addr})
	c.start(addr)
	// 16 MB of state: each backup takes a while to write.
	if r := c.client("-C", "bench", "-S", addr, "-n", "160", "-size", "100000", "-c", "8", "-timeout", "20s"); r.code != exitOK {
		t.Fatalf("bench: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	const asking = 4 * maxBackups
	conns := make([]map[string]*rpc.Client, asking)
	for i := range conns {
		conns[i] = map[string]*rpc.Client{}
		if _, err := connTo(conns[i], addr, time.Second, nil); err != nil {
			t.Fatal(err)
		}
		defer dropConn(conns[i], addr)
	}
	replies := make([]BackupReply, asking)
	errs := make([]error, asking)
	var wg sync.WaitGroup
	for i := range asking {
		wg.Go(func() {
			errs[i] = invoke(conns[i], addr, "Raft.Backup", &BackupRequest{Wait: 10 * time.Second}, &replies[i], e2eWait, nil, nil)
		})
	}
	wg.Wait()
	served, busy := 0, 0
	for i, r := range replies {
		switch {
		case errs[i] != nil:
			t.Fatalf("request %d: %v", i, errs[i])
		case r.Status == StatusOK:
			served++
		case r.Status == StatusRetry && strings.Contains(r.Error, fmt.Sprintf("already serving %d backups", maxBackups)):
			busy++
		default:
			t.Fatalf("request %d: %+v", i, r)
		}
	}
	// None is read on, so none ends: the first maxBackups keep their places.
	if served != maxBackups || busy != asking-maxBackups {
		t.Fatalf("%d asked at once: %d served, %d told it is busy; want %d served", asking, served, busy, maxBackups)
	}
}

// onlyFiles fails the test unless dir holds exactly the files named.
func onlyFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%s holds %v (%v); want %v", dir, got, err, want)
	}
}
