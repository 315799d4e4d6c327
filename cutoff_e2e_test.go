// cutoff_e2e_test.go: the leader of a 3-node cluster of the real binary is cut off by
// a network partition (partition_test.go) while clients on the majority side keep
// sending. Commands through a follower, and those of a client whose connection is to
// the old leader, must commit once the others have elected a new leader, each exactly
// once, and none may end "outcome unknown".
package main

import (
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// cutOp is one client command of TestEndToEndLeaderCutOff.
type cutOp struct {
	msg           string
	start, end    time.Time
	code          int
	stdout, stder string
}

func TestEndToEndLeaderCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	addrs := freeAddrs(t, 3)
	c := newE2ECluster(t, addrs)
	parts := requirePartitions(t, c, addrs)
	for _, id := range addrs {
		c.start(id)
	}
	old := c.send(addrs[0], "first").leader
	var followers []string
	for _, id := range addrs {
		if id != old {
			followers = append(followers, id)
		}
	}
	via := followers[0]

	// A client in stdin mode whose connection is to the leader: -S names it first.
	stdin := exec.Command(c.bin, "-C", "clientcommand", "-m", "-", "-S", strings.Join(append([]string{old}, followers...), ","), "-timeout", "10s")
	feed, err := stdin.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdinOut, stdinErr := newLines(), newLines()
	stdin.Stdout, stdin.Stderr = stdinOut, stdinErr
	if err := stdin.Start(); err != nil {
		t.Fatal(err)
	}
	stdinDone := make(chan struct{})
	go func() { stdin.Wait(); close(stdinDone) }()
	t.Cleanup(func() {
		stdin.Process.Kill()
		<-stdinDone
	})
	sent := 0 // lines sent to the stdin client
	var lineSent time.Time
	send := func(msg string) {
		io.WriteString(feed, msg+"\n")
		sent++
		lineSent = time.Now()
	}
	result := func() (took time.Duration, result string) {
		if !stdinOut.waitCount("", sent) {
			return time.Since(lineSent), "(none within " + e2eWait.String() + ")"
		}
		all, _ := stdinOut.snapshot()
		return time.Since(lineSent), all[sent-1]
	}
	send("stdin-1")
	if _, res := result(); !strings.HasPrefix(res, "committed at index ") {
		t.Fatalf("stdin client, before the cut: %q; stderr:\n%s", res, stdinErr)
	}

	// Clients sending through a follower, one command after another, until stop.
	c0 := time.Now()
	const clients = 3
	var mu sync.Mutex
	var ops []cutOp
	committed := make(chan time.Time, 1<<16) // when each committed command started
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 1; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				op := cutOp{msg: fmt.Sprintf("c%d-%d", i, seq), start: time.Now()}
				res := runRaft(c.bin, "-C", "clientcommand", "-m", op.msg, "-S", via, "-timeout", "10s")
				op.end, op.code, op.stdout, op.stder = time.Now(), res.code, res.stdout, res.stderr
				mu.Lock()
				ops = append(ops, op)
				mu.Unlock()
				if op.code == exitOK {
					select {
					case committed <- op.start:
					case <-stop:
					}
				}
			}
		}()
	}
	stopClients := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	t.Cleanup(stopClients)
	// awaitCommits waits for n commands started after since to commit.
	awaitCommits := func(n int, since time.Time) {
		t.Helper()
		timer := time.NewTimer(e2eWait)
		defer timer.Stop()
		for n > 0 {
			select {
			case started := <-committed:
				if started.After(since) {
					n--
				}
			case <-timer.C:
				t.Fatalf("commands started after +%v did not commit through %s within %v", since.Sub(c0).Round(time.Millisecond), via, e2eWait)
			}
		}
	}
	awaitCommits(2*clients, c0) // a working cluster, with commands in flight

	cutAt := time.Now()
	parts.cutOff(old)
	send("stdin-2") // to the old leader, on the connection the first line went on
	t.Logf("cut the leader %s off; clients send through %s", old, via)
	// A read, forwarded to the old leader, goes on to the new one. Commands without a
	// session are not sent again, but answered once another leads (a transfer: it has
	// moved; a removal: it may have been made), unless they come too late to be
	// forwarded to the old leader.
	transfer, remove, read := make(chan raftRun, 1), make(chan raftRun, 1), make(chan raftRun, 1)
	go func() { read <- runRaft(c.bin, "-C", "read", "-m", "count", "-S", via, "-timeout", "10s") }()
	go func() { transfer <- runRaft(c.bin, "-C", "transfer", "-S", via, "-timeout", "10s") }()
	go func() {
		remove <- runRaft(c.bin, "-C", "removeserver", "-m", "127.0.0.1:1", "-S", via, "-timeout", "10s")
	}()
	var newLeader string
	for deadline := time.Now().Add(e2eWait); newLeader == ""; {
		if time.Now().After(deadline) {
			t.Fatalf("no new leader known to %s within %v of cutting %s off", via, e2eWait, old)
		}
		if st := c.status(via); st.Leader != noLeader && st.Leader != old {
			newLeader = st.Leader
		}
	}
	electedAfter := time.Since(cutAt)
	t.Logf("%s knows the new leader %s, %v after the cut", via, newLeader, electedAfter.Round(time.Millisecond))
	stdinTook, res := result()
	stdinOK := strings.HasPrefix(res, "committed at index ")
	if !stdinOK {
		t.Errorf("stdin client, connected to the old leader, after the cut: %q; stderr:\n%s", res, stdinErr)
	}
	awaitCommits(2*clients, cutAt.Add(electedAfter)) // commands that started with the new leader known
	stopClients()
	if r := <-read; r.code != exitOK || !strings.HasPrefix(r.stdout, "Count ") {
		t.Errorf("read through %s, sent as the leader was cut off: exit %d: %s%s", via, r.code, r.stdout, r.stderr)
	}
	if r := <-transfer; r.code != exitOK {
		t.Errorf("transfer through %s, sent as the leader was cut off: exit %d: %s%s", via, r.code, r.stdout, r.stderr)
	} else {
		t.Logf("transfer through %s: %s", via, strings.TrimSpace(r.stdout))
	}
	switch r := <-remove; {
	case r.code == exitUnknown && strings.Contains(r.stderr, "lost the leadership to "):
	case r.code == exitFailed && strings.Contains(r.stderr, refusedNotMember):
		t.Logf("the removal came too late to be forwarded to the old leader: %s", r.stderr)
	default:
		t.Errorf("removeserver through %s, sent as the leader was cut off: exit %d, want 3 and that the leader lost the leadership: %s", via, r.code, r.stderr)
	}
	parts.heal(old)

	// Every command committed (none unknown), and each exactly once.
	var acked []string
	var across []time.Duration // commands in flight at the cut, or started until the new leader was known
	for _, op := range ops {
		if op.end.After(cutAt) && op.start.Before(cutAt.Add(electedAfter)) {
			across = append(across, op.end.Sub(op.start))
		}
		if op.code != exitOK {
			t.Errorf("%s through %s, started %v after the cut: exit %d after %v\n%s%s", op.msg, via,
				op.start.Sub(cutAt).Round(time.Millisecond), op.code, op.end.Sub(op.start).Round(time.Millisecond), op.stdout, op.stder)
			continue
		}
		acked = append(acked, op.msg)
	}
	if stdinOK {
		acked = append(acked, "stdin-2")
	}
	r := c.client("-C", "read", "-m", "print", "-S", newLeader, "-timeout", "10s")
	if r.code != exitOK {
		t.Fatalf("read print: exit %d: %s", r.code, r.stderr)
	}
	logged := parseLogs(strings.TrimSpace(strings.SplitN(r.stdout, "\n", 2)[0]))
	for _, msg := range append(acked, "stdin-1") {
		if n := strings.Count(" "+strings.Join(logged, " ")+" ", " "+msg+" "); n != 1 {
			t.Errorf("%s is in the log %d times, want once", msg, n)
		}
	}
	slices.Sort(across)
	if len(across) > 0 {
		t.Logf("%d commands across the cut: p50 %v, max %v (the election took %v); the stdin client's command to the old leader took %v",
			len(across), across[len(across)/2].Round(time.Millisecond), across[len(across)-1].Round(time.Millisecond),
			electedAfter.Round(time.Millisecond), stdinTook.Round(time.Millisecond))
	}
}
