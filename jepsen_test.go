// jepsen_test.go: a Jepsen-style test of the real binary. It starts 3- and 5-node
// clusters on 127.0.0.1, runs concurrent real clients that append unique messages and
// issue count, while a seeded nemesis SIGKILLs and restarts nodes, SIGSTOPs and
// SIGCONTs them (the leader included), restarts the whole cluster, and adds and removes
// a spare member. Then it heals everything, sends a final print, and checks that every
// node printed the same log, that every acknowledged append is in it exactly once, and
// that the whole history is linearizable (checkLinearizable, in linearize_test.go).
// The nemesis also stops nodes gracefully (SIGTERM: a leader hands leadership over
// first), cuts nodes off from all the others and the clients (a network partition on
// 127.0.0.1, partition_test.go; left out, loudly, where there is no root or nft) and
// moves leadership with the client's transfer command. It wipes members'
// data dirs too, any member's, and an operator brings them back (jepsen_wipe_test.go);
// every run wipes an original member at least once. Membership changes and transfers
// must be taken: refused or unresolved for too long, under faults that leave a majority
// up or once healed, they fail the test.
//
//	go test -race -count=1 -run 'Jepsen|Lineariz' -v .             # short: 10s of faults per size
//	go test -count=1 -run TestJepsen -v -timeout 30m . -long        # 3 minutes of faults per size
//	go test -count=1 -run 'TestJepsen/nodes=5$' -v . -jepsen-seed=N -jepsen-duration=1m
//
// Every run logs its seed and the command that replays it. The seed fixes the
// nemesis' choices and pacing and the clients' choices; what the cluster does in
// between (who wins an election, which op gets through) still depends on timing, so a
// replay runs the same schedule, not necessarily into the same interleaving.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	jepsenLong     = flag.Bool("long", false, "TestJepsen: run minutes of faults per cluster size instead of seconds")
	jepsenSeed     = flag.Int64("jepsen-seed", 0, "TestJepsen: the seed to replay (0: from the clock)")
	jepsenDuration = flag.Duration("jepsen-duration", 0, "TestJepsen: how long the nemesis runs per cluster size (0: 10s, or 3m with -long)")
)

const (
	jepsenShortFaults = 10 * time.Second
	jepsenLongFaults  = 3 * time.Minute
	jepsenClients     = 4
	jepsenOpTimeout   = "3s"             // the clients' -timeout: an op against a dead or stopped node gives up after it
	jepsenHealTimeout = "5s"             // the test's own ops, once everything is healed
	jepsenHealBound   = 60 * time.Second // bound on getting one op through after healing

	// A membership change or transfer the test wants taken fails it if it is not taken
	// within jepsenChangeBound of a healed cluster, or, under faults, if it stays
	// refused or unresolved for jepsenFaultChangeBound and jepsenStuckAttempts attempts
	// in a row (the faults always leave a majority of intact data dirs up, and heal
	// within two seconds).
	jepsenChangeBound      = 30 * time.Second
	jepsenFaultChangeBound = 60 * time.Second
	jepsenStuckAttempts    = 5
)

func TestJepsen(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	seed := *jepsenSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	faultFor := jepsenShortFaults
	if *jepsenLong {
		faultFor = jepsenLongFaults
	}
	if *jepsenDuration > 0 {
		faultFor = *jepsenDuration
	}
	// go test's own -timeout (10m by default) must cover both sizes.
	flags := fmt.Sprintf("-jepsen-seed=%d -jepsen-duration=%v -timeout=%v", seed, faultFor, 10*time.Minute+3*faultFor)
	t.Logf("seed %d; replay both sizes with: go test -race -count=1 -run 'TestJepsen' -v . %s", seed, flags)
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("nodes=%d", n), func(t *testing.T) {
			t.Logf("seed %d, %v of faults; replay with:\n\tgo test -race -count=1 -run 'TestJepsen/nodes=%d$' -v . %s", seed, faultFor, n, flags)
			runJepsen(t, n, seed, faultFor)
		})
	}
}

// raftRun is the result of one client process.
type raftRun struct {
	code           int // exit status; -1 if it was killed (it outlived e2eWait) or did not start
	stdout, stderr string
}

// runRaft runs the client binary. Unlike e2eCluster.client it never calls t.Fatal, so
// the client goroutines and the nemesis' membership changes can use it.
func runRaft(bin string, args ...string) raftRun {
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := raftRun{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		r.code = -1
		r.stderr += err.Error()
	}
	return r
}

var (
	countRE   = regexp.MustCompile(`(?m)^Count (\d+)$`)
	electedRE = regexp.MustCompile(`msg="elected leader" node=\S+ term=(\d+)`)
)

// fault is a node the nemesis has killed or stopped, and when it heals it.
type fault struct {
	kind   string // "kill", "term", "pause" or "cut"
	healAt time.Time
}

// Whether the spare is a member, as far as the test knows.
type spareState int

const (
	spareOut   spareState = iota // certainly not a member
	spareIn                      // a member (the add committed)
	spareMaybe                   // the last change's outcome is unknown
)

func (s spareState) String() string { return [...]string{"out", "in", "maybe"}[s] }

// memChange is a membership change the nemesis has under way (in a goroutine, so faults
// keep healing on time while it runs): of the spare, or the operator's of a wiped member.
type memChange struct {
	add      bool
	server   string
	via      string
	operator bool // bringing back the wiped member (operatorDone takes the outcome)
	res      chan raftRun
}

// What the client says when a leader, with its configuration committed, refuses a
// change: the answer settles whether the server is a member.
var (
	refusedAlreadyMember = "refused: " + errAlreadyMember.Error()
	refusedNotMember     = "refused: " + errNotMember.Error()
)

type jepsenRun struct {
	t       *testing.T
	c       *e2eCluster
	rng     *rand.Rand // the nemesis'
	members []string   // the original members: never removed
	spare   string     // the extra node the nemesis adds and removes
	all     []string   // members and spare
	t0      time.Time  // history times are relative to this

	// Owned by the test goroutine (the nemesis runs on it).
	faults     map[string]*fault
	spareState spareState
	spareWipe  bool // its removal committed: wipe its data dir before adding it again
	mem        *memChange
	leaderTerm int
	leaderID   string
	elected    map[int]string // term -> who announced it was elected in it
	scanned    map[*proc]int  // stderr lines already scanned for elections
	actions    map[string]int
	testSeq    int
	own        []histOp // the test's own ops: first append, healing append, print

	parts *partitions // cuts nodes off (partition_test.go); nil where that cannot run

	// Wipes (jepsen_wipe_test.go).
	wiped       *wipedMember // the member whose data dir is lost and not yet back (nil: none)
	forceWipeAt time.Time    // every run wipes an original member, at the latest from then on
	memberWipes int          // wipes of original members
	spareWipes  int          // wipes of the spare while a member
	readds      int          // wiped members back as members
	readded     []string     // who, in order
	wrongStarts []*proc      // the processes started on the wiped member's new data dir
	healed      bool         // the nemesis is over: the end's bounds apply (untilTaken)
	stuck       map[string]*stuckChange

	mu        sync.Mutex
	anomalies []string // client results that mean the client or the test is broken
}

func runJepsen(t *testing.T, n int, seed int64, faultFor time.Duration) {
	began := time.Now()
	ids := freeAddrs(t, n+1)
	r := &jepsenRun{
		t: t, rng: rand.New(rand.NewSource(seed ^ int64(n)<<40)),
		members: ids[:n], spare: ids[n], all: ids,
		faults: map[string]*fault{}, elected: map[int]string{}, scanned: map[*proc]int{}, actions: map[string]int{},
		stuck: map[string]*stuckChange{},
	}
	r.c = newE2ECluster(t, r.members)
	// Cutting nodes off needs each node to run as a user of its own, from its first start.
	if parts, err := newPartitions(t, r.c, r.all); err != nil {
		partitionsUnavailable(t, err)
	} else {
		r.parts = parts
	}
	// Snapshots every few hundred entries, so faults also hit compaction, snapshots
	// sent to lagging or restarted members, and restarts from a snapshot.
	r.c.extra = []string{"-snapshot-entries", "50"}
	r.t0 = time.Now()
	for _, id := range r.members {
		r.c.start(id)
	}
	// One committed op before the faults start, so every fault hits a working cluster.
	r.mustCommit(opAppend)

	stop := make(chan struct{})
	var stopOnce sync.Once
	stopClients := func() { stopOnce.Do(func() { close(stop) }) }
	histories := make([][]histOp, jepsenClients)
	var wg sync.WaitGroup
	// If the test fails early, stop the clients before the nodes are killed (cleanups run
	// last registered first), so no client outlives the test.
	t.Cleanup(func() { stopClients(); wg.Wait() })
	for i := range histories {
		rng := rand.New(rand.NewSource(seed ^ int64(n)<<40 ^ int64(i+1)<<48))
		wg.Add(1)
		go func() {
			defer wg.Done()
			histories[i] = r.client(i, rng, stop)
		}()
	}

	r.nemesis(faultFor)
	r.healAll()
	r.healed = true
	// The clients go on through the recovery, and while the operator brings the wiped
	// member back; their ops in flight finish within their -timeout (plus the client's
	// grace), or e2eWait at worst.
	r.settleWiped()
	stopClients()
	wg.Wait()

	// Whole again: membership changes and transfers must be taken, and the final
	// membership must make progress, then print.
	r.resolveSpare()
	r.flipSpare()
	r.transfersTaken()
	final := slices.Clone(r.members)
	if r.spareState == spareIn {
		final = append(final, r.spare)
	}
	r.mustCommit(opAppend)
	printOp, printRun := r.mustCommit(opPrint)
	r.checkFinal(seed, n, final, printOp, printRun, slices.Concat(append(histories, r.own)...))
	r.checkMembers(final)
	t.Logf("%d-node run: %d wipes of original members, %d of the spare, %d added back (%v)",
		n, r.memberWipes, r.spareWipes, r.readds, r.names(r.readded))
	if r.memberWipes == 0 {
		t.Errorf("no original member lost its data dir: the run did not test wipes (seed %d)", seed)
	}
	t.Logf("%d-node run took %v", n, time.Since(began).Round(time.Millisecond))
}

// client runs ops one after another, each a new client process, until stop is closed.
func (r *jepsenRun) client(id int, rng *rand.Rand, stop <-chan struct{}) []histOp {
	var h []histOp
	for seq := 1; ; seq++ {
		select {
		case <-stop:
			return h
		default:
		}
		op := histOp{Client: id, Kind: opAppend, Msg: fmt.Sprintf("c%d-%d", id, seq)}
		if rng.Intn(8) == 0 {
			op.Kind, op.Msg = opCount, "count"
		}
		// Any original member, up or not; the spare one op in ten, since while it is not
		// a member (or not running) an op sent to it only waits out its -timeout.
		target := r.members[rng.Intn(len(r.members))]
		if rng.Intn(10) == 0 {
			target = r.spare
		}
		op, _ = r.do(op, target, jepsenOpTimeout)
		h = append(h, op)
	}
}

// do runs one op through the real client and records its outcome and times.
func (r *jepsenRun) do(op histOp, server, timeout string) (histOp, raftRun) {
	op.Invoke = time.Since(r.t0)
	res := runRaft(r.c.bin, "-C", "clientcommand", "-m", op.Msg, "-S", server, "-timeout", timeout)
	op.Respond = time.Since(r.t0)
	switch res.code {
	case exitOK:
		m := committedRE.FindStringSubmatch(res.stdout)
		cm := countRE.FindStringSubmatch(res.stdout)
		if m == nil || (op.Kind == opCount && cm == nil) {
			r.anomaly("%v via %s: exit 0 without its result:\n%s%s", op, server, res.stdout, res.stderr)
			op.Outcome = outcomeUnknown
			break
		}
		op.Outcome = outcomeOK
		op.Index, _ = strconv.Atoi(m[1])
		if op.Kind == opCount {
			op.N, _ = strconv.Atoi(cm[1])
		}
	case exitFailed:
		op.Outcome = outcomeFailed
	case exitUnknown:
		op.Outcome = outcomeUnknown
	default:
		// Usage errors mean the test is broken; -1 means the client outlived e2eWait
		// despite its -timeout. Either way the outcome is unknown.
		op.Outcome = outcomeUnknown
		r.anomaly("%v via %s: exit %d:\n%s%s", op, server, res.code, res.stdout, res.stderr)
	}
	return op, res
}

func (r *jepsenRun) anomaly(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.anomalies = append(r.anomalies, fmt.Sprintf(format, args...))
}

// mustCommit sends the test's own op through random members until one commits.
func (r *jepsenRun) mustCommit(kind opKind) (histOp, raftRun) {
	r.t.Helper()
	deadline := time.Now().Add(jepsenHealBound)
	for time.Now().Before(deadline) {
		op := histOp{Client: -1, Kind: kind, Msg: string(kind)}
		if kind == opAppend {
			r.testSeq++
			op.Msg = fmt.Sprintf("test-%d", r.testSeq)
		}
		op, res := r.do(op, r.members[r.rng.Intn(len(r.members))], jepsenHealTimeout)
		r.own = append(r.own, op)
		if op.Outcome == outcomeOK {
			return op, res
		}
	}
	r.t.Fatalf("no %s committed within %v of a healed cluster", kind, jepsenHealBound)
	return histOp{}, raftRun{}
}

func (r *jepsenRun) logf(format string, args ...any) {
	r.t.Helper()
	r.t.Logf("%7v nemesis: %s", time.Since(r.t0).Round(time.Millisecond), fmt.Sprintf(format, args...))
}

// name says which node id is, in the same words for every replay of a seed (the ports
// change from run to run): n1, n2, ... for the original members, then the spare.
func (r *jepsenRun) name(id string) string {
	if id == r.spare {
		return "spare(" + id + ")"
	}
	if i := slices.Index(r.members, id); i >= 0 {
		return fmt.Sprintf("n%d(%s)", i+1, id)
	}
	return id
}

func (r *jepsenRun) names(ids []string) []string {
	var out []string
	for _, id := range ids {
		out = append(out, r.name(id))
	}
	return out
}

func (r *jepsenRun) alive(id string) bool {
	p := r.c.procs[id]
	if p == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// leader is the node that most recently announced it was elected: the highest term
// seen in any node's stderr. It may have been deposed since; that is fine for picking
// a target. On the way it checks Election Safety: at most one leader per term.
func (r *jepsenRun) leader() string {
	for id, p := range r.c.procs {
		all, _ := p.stderr.snapshot()
		for _, l := range all[r.scanned[p]:] {
			m := electedRE.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			term, _ := strconv.Atoi(m[1])
			if other, ok := r.elected[term]; ok && other != id {
				r.t.Errorf("two leaders in term %d: %s and %s", term, r.name(other), r.name(id))
			}
			r.elected[term] = id
			if term > r.leaderTerm {
				r.leaderTerm, r.leaderID = term, id
			}
		}
		r.scanned[p] = len(all)
	}
	return r.leaderID
}

// restart starts id again on its data dir, after scanning the old process's output.
func (r *jepsenRun) restart(id string) {
	r.leader()
	r.countSnapshots(r.c.procs[id])
	p := r.c.start(id)
	if r.isWiped(id) {
		r.wrongStarts = append(r.wrongStarts, p)
		r.actions["start on a wiped data dir"]++
	}
}

// countSnapshots adds up what a node process logged about snapshots, and how often it
// refused a server that lost its data dir.
func (r *jepsenRun) countSnapshots(p *proc) {
	if p != nil {
		r.actions["(nodes) snapshots taken"] += strings.Count(p.stderr.String(), "log compacted")
		r.actions["(nodes) snapshots installed"] += strings.Count(p.stderr.String(), "installed snapshot")
		r.actions["(nodes) refused a lost data dir"] += strings.Count(p.stderr.String(), "It lost its data")
	}
}

// voters is who may be a member now: the original members, and the spare while it is
// or may be one (or is being added or removed, or brought back after a wipe).
func (r *jepsenRun) voters() []string {
	if r.spareState != spareOut || r.mem != nil || r.isWiped(r.spare) {
		return r.all
	}
	return r.members
}

// down says whether voter v does not count toward a majority now: it is faulted, or it
// is the wiped member, whose data dir is not the one the configuration knows.
func (r *jepsenRun) down(v string) bool {
	return r.faults[v] != nil || !r.alive(v) || r.isWiped(v)
}

// canFault says whether id may be killed or stopped (or wiped) now: it must be a
// voter, and faulting it must leave a majority of the voters up with intact data dirs,
// so the cluster keeps making progress and acknowledged ops keep meaning something. The
// wiped member counts as down until it is back: a wipe and a kill in a 3-node cluster
// would leave one intact data dir of three. Faulting the wiped member itself takes
// nothing more away.
func (r *jepsenRun) canFault(id string) bool {
	if r.faults[id] != nil || !r.alive(id) {
		return false
	}
	if r.isWiped(id) {
		return true
	}
	if id == r.spare && (r.spareState == spareOut || r.mem != nil) {
		return false
	}
	vs := r.voters()
	down := 0
	for _, v := range vs {
		if r.down(v) {
			down++
		}
	}
	return down+1 <= (len(vs)-1)/2
}

func (r *jepsenRun) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.rng.Int63n(int64(hi-lo)))
}

// nemesis injects faults for d, one action every 0.5-1.5s, healing each fault when
// its time comes. It runs on the test goroutine, so it may call t.Fatal.
func (r *jepsenRun) nemesis(d time.Duration) {
	end := time.Now().Add(d)
	r.forceWipeAt = time.Now().Add(r.between(d/10, d/4))
	next := time.Now().Add(r.between(500*time.Millisecond, 1500*time.Millisecond))
	for {
		now := time.Now()
		for _, id := range r.sortedFaults() {
			if !now.Before(r.faults[id].healAt) {
				r.heal(id)
			}
		}
		if !now.Before(end) {
			return
		}
		if at, ok := r.operatorAt(); ok && !now.Before(at) {
			r.operatorStep()
		}
		if !now.Before(next) {
			r.act()
			next = time.Now().Add(r.between(500*time.Millisecond, 1500*time.Millisecond))
		}
		wake := next
		if end.Before(wake) {
			wake = end
		}
		for _, f := range r.faults {
			if f.healAt.Before(wake) {
				wake = f.healAt
			}
		}
		if at, ok := r.operatorAt(); ok && at.Before(wake) {
			wake = at
		}
		var memDone chan raftRun // nil, never ready, unless a change is under way
		if r.mem != nil {
			memDone = r.mem.res
		}
		timer := time.NewTimer(time.Until(wake))
		select {
		case res := <-memDone:
			r.memDone(res)
		case <-timer.C:
		}
		timer.Stop()
	}
}

func (r *jepsenRun) sortedFaults() []string {
	var ids []string
	for id := range r.faults {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (r *jepsenRun) act() {
	if r.forceWipe() {
		return
	}
	switch x := r.rng.Intn(100); {
	case x < 22:
		r.crash("kill")
	case x < 40:
		r.crash("pause")
	case x < 51:
		r.crash("cut")
	case x < 61:
		r.crash("term")
	case x < 68:
		r.transfer()
	case x < 75:
		r.restartAll()
	case x < 83:
		r.wipeAny()
	default:
		r.membership()
	}
}

// transfer asks a random node to move leadership (to a random node, or with no -m to
// the most up-to-date member). Any one may fail under faults, but transfers through and
// to intact members refused or unresolved for long fail the test (noteChange); those to
// or through a node that is down or no member (the spare while out, the wiped member)
// may be refused for ever.
func (r *jepsenRun) transfer() {
	via := r.all[r.rng.Intn(len(r.all))]
	args := []string{"-C", "transfer", "-S", via, "-timeout", jepsenOpTimeout}
	to := ""
	if r.rng.Intn(2) == 0 {
		to = r.all[r.rng.Intn(len(r.all))]
		args = append(args, "-m", to)
	}
	intact := r.intact()
	counts := slices.Contains(intact, via) && (to == "" || slices.Contains(intact, to))
	res := runRaft(r.c.bin, args...)
	if res.code != exitOK && res.code != exitFailed && res.code != exitUnknown {
		r.anomaly("transfer %v: exit %d: %s %s", args, res.code, res.stdout, res.stderr)
	}
	r.actions[fmt.Sprintf("transfer exit %d", res.code)]++
	r.logf("transfer %v to %q: exit %d", r.name(via), r.name(to), res.code)
	if counts {
		r.noteChange("a leadership transfer through and to intact members", res.code == exitOK, res)
	}
}

// crash SIGKILLs, SIGTERMs or SIGSTOPs a node, or cuts it off from every other node and
// client (a network partition: partition_test.go): half the time the leader, if that is
// allowed.
func (r *jepsenRun) crash(kind string) {
	if kind == "cut" && r.parts == nil {
		r.actions["skipped cut: partitions cannot run here"]++
		return
	}
	var cands []string
	for _, id := range r.all {
		if r.canFault(id) {
			cands = append(cands, id)
		}
	}
	if len(cands) == 0 {
		r.actions["skipped "+kind]++
		return
	}
	target, label := cands[r.rng.Intn(len(cands))], kind
	if r.rng.Intn(2) == 0 {
		if l := r.leader(); slices.Contains(cands, l) {
			target, label = l, kind+" leader"
		}
	}
	r.actions[label]++
	f := &fault{kind: kind}
	switch kind {
	case "kill":
		r.c.stop(target, syscall.SIGKILL)
		f.healAt = time.Now().Add(r.between(200*time.Millisecond, time.Second))
	case "term":
		if err := r.c.stop(target, syscall.SIGTERM); err != nil {
			r.anomaly("%s exited with %v on SIGTERM", r.name(target), err)
		}
		f.healAt = time.Now().Add(r.between(200*time.Millisecond, time.Second))
	case "pause":
		if err := r.c.procs[target].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			r.t.Fatalf("SIGSTOP %s: %v", target, err)
		}
		f.healAt = time.Now().Add(r.between(300*time.Millisecond, 2*time.Second))
	case "cut":
		// Long enough, mostly, for the others to elect a leader meanwhile.
		r.parts.cutOff(target)
		f.healAt = time.Now().Add(r.between(500*time.Millisecond, 2*time.Second))
	}
	r.faults[target] = f
	r.logf("%s %s until +%v", label, r.name(target), time.Until(f.healAt).Round(time.Millisecond))
}

func (r *jepsenRun) heal(id string) {
	switch r.faults[id].kind {
	case "kill", "term":
		r.restart(id)
		r.logf("restarted %s", r.name(id))
	case "pause":
		if err := r.c.procs[id].cmd.Process.Signal(syscall.SIGCONT); err != nil {
			r.t.Fatalf("SIGCONT %s: %v", id, err)
		}
		r.logf("resumed %s", r.name(id))
	case "cut":
		r.parts.heal(id)
		r.logf("healed the partition of %s", r.name(id))
	}
	delete(r.faults, id)
}

// restartAll SIGKILLs every running node, then starts them all again.
func (r *jepsenRun) restartAll() {
	if len(r.faults) > 0 {
		r.actions["skipped restart all"]++
		return
	}
	r.actions["restart all"]++
	var running []string
	for _, id := range r.all {
		if r.alive(id) {
			running = append(running, id)
			r.c.stop(id, syscall.SIGKILL)
		}
	}
	for _, i := range r.rng.Perm(len(running)) {
		r.restart(running[i])
	}
	r.logf("restarted all of %v", r.names(running))
}

// membership adds the spare if it is out, or removes it otherwise. Only the spare is
// added or removed at will (the operator removes a wiped member only to add it back),
// so the original members always hold a majority of the configuration's voters minus
// the faults canFault allows.
func (r *jepsenRun) membership() {
	// While a member is wiped, the operator's changes bringing it back are the only ones.
	if r.mem != nil || r.faults[r.spare] != nil || r.wiped != nil {
		r.actions["skipped membership"]++
		return
	}
	var vias []string
	for _, id := range r.members {
		if r.faults[id] == nil && r.alive(id) {
			vias = append(vias, id)
		}
	}
	m := &memChange{add: r.spareState == spareOut, server: r.spare, via: vias[r.rng.Intn(len(vias))], res: make(chan raftRun, 1)}
	cmd := "removeserver"
	if m.add {
		cmd = "addserver"
		// A spare whose removal committed is wiped, as the README says; one that may
		// still be a member keeps its data dir.
		if r.spareWipe && r.alive(r.spare) {
			r.leader()
			r.c.stop(r.spare, syscall.SIGKILL)
		}
		if r.spareWipe {
			delete(r.c.procs, r.spare) // the next start gets a fresh data dir
			r.spareWipe = false
		}
		if !r.alive(r.spare) {
			r.restart(r.spare)
		}
	}
	r.mem = m
	r.logf("%s %s via %s (spare is %v)", cmd, r.name(r.spare), r.name(m.via), r.spareState)
	bin, spare := r.c.bin, r.spare
	go func() { m.res <- runRaft(bin, "-C", cmd, "-m", spare, "-S", m.via, "-timeout", jepsenOpTimeout) }()
}

// memDone takes the outcome of the membership change under way. Under faults any one
// outcome is fine, but changes refused or unresolved for long fail the test
// (noteChange).
func (r *jepsenRun) memDone(res raftRun) {
	m := r.mem
	r.mem = nil
	if m.operator {
		r.operatorDone(m, res)
		return
	}
	cmd, outcome := "remove", "unknown"
	if m.add {
		cmd = "add"
	}
	switch {
	case res.code == exitOK:
		outcome = "ok"
		r.spareState = spareOut
		if m.add {
			r.spareState = spareIn
		} else {
			r.spareWipe = true
		}
	case res.code == exitFailed && strings.Contains(res.stderr, refusedAlreadyMember):
		outcome, r.spareState = "refused", spareIn
	case res.code == exitFailed && strings.Contains(res.stderr, refusedNotMember):
		outcome, r.spareState = "refused", spareOut
	case res.code == exitFailed:
		outcome = "failed" // certainly not committed: nothing changed
	default:
		r.spareState = spareMaybe
	}
	r.actions[cmd+" "+outcome]++
	r.logf("%s %s: %s (exit %d), spare is %v", cmd, r.name(r.spare), outcome, res.code, r.spareState)
	r.noteChange("a change of the spare's membership", outcome == "ok" || outcome == "refused", res)
}

// healAll ends every fault and waits for the membership change under way; every node
// the test started is running again afterwards.
func (r *jepsenRun) healAll() {
	for _, id := range r.sortedFaults() {
		r.heal(id)
	}
	if r.mem != nil {
		r.memDone(<-r.mem.res) // bounded: runRaft kills the client after e2eWait
	}
	var ids []string
	for id := range r.c.procs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if !r.alive(id) {
			p := r.c.procs[id]
			r.t.Errorf("%s exited on its own (%v):\n%s", r.name(id), p.err, p.stderr)
			r.restart(id)
		}
	}
}

// resolveSpare settles whether the spare is a member, removing it if that is unknown,
// so the test knows which nodes must print the final log.
func (r *jepsenRun) resolveSpare() {
	if r.spareState != spareMaybe {
		return
	}
	vias := r.intact() // the spare is not among them: it may not be a member
	r.untilTaken("settling whether the spare is a member", func() (bool, string) {
		via := vias[r.rng.Intn(len(vias))]
		r.logf("settling the spare: removeserver %s via %s", r.name(r.spare), r.name(via))
		r.mem = &memChange{add: false, server: r.spare, via: via}
		res := runRaft(r.c.bin, "-C", "removeserver", "-m", r.spare, "-S", via, "-timeout", jepsenHealTimeout)
		r.memDone(res)
		return r.spareState != spareMaybe, describeRun(res)
	})
}

// logsLines returns the "Logs [...]" part of every such line a node printed.
func logsLines(p *proc) []string {
	all, _ := p.stdout.snapshot()
	var out []string
	for _, l := range all {
		if i := strings.Index(l, "Logs ["); i >= 0 {
			out = append(out, l[i:])
		}
	}
	return out
}

func extends(long, short []string) bool {
	return len(long) >= len(short) && slices.Equal(long[:len(short)], short)
}

func parseLogs(line string) []string {
	inner := strings.TrimSuffix(strings.TrimPrefix(line, "Logs ["), "]")
	if inner == "" {
		return nil
	}
	return strings.Split(inner, " ")
}

// checkFinal waits for every node of the final membership to print the final print's
// log, checks they agree, and checks the history against that log.
func (r *jepsenRun) checkFinal(seed int64, n int, final []string, printOp histOp, printRun raftRun, history []histOp) {
	t := r.t
	var want string // the leader's answer to the print
	for _, l := range strings.Split(printRun.stdout, "\n") {
		if strings.HasPrefix(l, "Logs [") {
			want = l
		}
	}
	if want == "" {
		t.Fatalf("the final print's answer has no Logs line:\n%s", printRun.stdout)
	}
	unknownPrints := 0
	for _, op := range r.own {
		if op.Kind == opPrint && op.Outcome == outcomeUnknown {
			unknownPrints++
		}
	}
	for _, id := range final {
		p := r.c.procs[id]
		if !p.stdout.waitCount(" "+want, 1) {
			ls := logsLines(p)
			last := "(none)"
			if len(ls) > 0 {
				last = ls[len(ls)-1]
			}
			t.Errorf("%s did not print the final log the leader answered the print with\nleader: %s\n%s: %s", id, want, id, last)
			continue
		}
		// Its last Logs line is the final print's, unless an earlier print attempt whose
		// outcome was unknown committed after it: then it must extend it.
		ls := logsLines(p)
		if last := ls[len(ls)-1]; last != want && (unknownPrints == 0 || !extends(parseLogs(last), parseLogs(want))) {
			t.Errorf("%s printed the final log, then another one that does not extend it:\nfinal: %s\nlast:  %s", id, want, last)
		}
	}
	finalLog := parseLogs(want)
	r.leader() // the last check of one leader per term

	// What happened.
	for _, id := range r.all {
		r.countSnapshots(r.c.procs[id])
	}
	tally := map[string]int{}
	okClientAppends := 0
	for _, op := range history {
		tally[fmt.Sprintf("%s %s", op.Kind, op.Outcome)]++
		if op.Client >= 0 && op.Kind == opAppend && op.Outcome == outcomeOK {
			okClientAppends++
		}
	}
	t.Logf("seed %d, %d nodes: %d ops: %s; nemesis: %s; final log: %d entries (print at index %d); final members %v",
		seed, n, len(history), summary(tally), summary(r.actions), len(finalLog), printOp.Index, r.names(final))

	r.mu.Lock()
	for _, a := range r.anomalies {
		t.Errorf("client anomaly: %s", a)
	}
	r.mu.Unlock()
	if okClientAppends == 0 {
		t.Errorf("no client append was acknowledged under the faults: the test checked nothing")
	}

	vs := checkLinearizable(history, finalLog)
	if len(vs) == 0 {
		return
	}
	const show = 30
	for i, v := range vs {
		if i == show {
			t.Errorf("... and %d more violations", len(vs)-show)
			break
		}
		t.Errorf("violation %v", v)
	}
	// Keep the evidence: the whole history and the final log.
	f, err := os.CreateTemp("", fmt.Sprintf("raft-jepsen-seed%d-n%d-*.txt", seed, n))
	if err != nil {
		t.Logf("cannot save the history: %v", err)
		return
	}
	defer f.Close()
	sorted := slices.Clone(history)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Invoke < sorted[j].Invoke })
	fmt.Fprintf(f, "seed %d, %d nodes\nfinal log (%d entries):\n%s\nhistory by invocation:\n", seed, n, len(finalLog), want)
	for _, op := range sorted {
		fmt.Fprintln(f, op)
	}
	for _, v := range vs {
		fmt.Fprintf(f, "violation %v\n", v)
	}
	t.Logf("history, final log and violations saved in %s", f.Name())
}

// summary renders a tally in a stable order.
func summary(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
