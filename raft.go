// raft.go: the Raft consensus core: Figure 2 of the paper, the single-server membership
// changes of the dissertation (§4.1) with catch-up of new servers (§4.2.1), and what keeps
// a cluster available: pre-vote (§9.6), check-quorum and ignoring disruptive servers
// (§4.2.3, §6.2), and leadership transfer (§3.10).
//
// The core is a deterministic state machine. It has no goroutines, clock, files, sockets
// or unseeded randomness: the event loop (server.go) feeds it messages (Step), time
// (Tick) and client proposals (Propose), then takes the work that results (Ready):
// state to persist, messages to send once it is durable, and committed entries to apply.
// Tests drive many cores through a simulated network and clock the same way.
package main

import (
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
)

// EntryType tells what a log entry carries.
type EntryType uint8

const (
	EntryNormal  EntryType = iota // a client message, applied to the state machine
	EntryNoop                     // appended by a new leader to commit an entry of its term (§8)
	EntryConfig                   // a membership change; Data is an encoded ConfChange (§4.1)
	EntrySession                  // a client message with its session and sequence number (machine.go, §6.3)
)

// Entry is one log entry.
type Entry struct {
	Index uint64
	Term  uint64
	Type  EntryType
	Data  []byte
}

// MsgType is the kind of a message between servers.
type MsgType uint8

const (
	MsgVote          MsgType = iota + 1 // RequestVote
	MsgVoteResp                         // RequestVote reply
	MsgApp                              // AppendEntries carrying entries (possibly none)
	MsgAppResp                          // AppendEntries reply
	MsgHeartbeat                        // AppendEntries with no log check: leadership and a safe commit index
	MsgHeartbeatResp                    // heartbeat reply
	MsgPreVote                          // would you vote for me in the next term? (changes no term)
	MsgPreVoteResp                      // pre-vote reply
	MsgTimeoutNow                       // leadership transfer: campaign now, without waiting
	MsgSnap                             // InstallSnapshot: the transport carries the data, the core the metadata
	MsgSnapStatus                       // local, from the transport: sending a snapshot to From failed
)

var msgNames = map[MsgType]string{
	MsgVote: "RequestVote", MsgVoteResp: "RequestVoteReply", MsgApp: "AppendEntries",
	MsgAppResp: "AppendEntriesReply", MsgHeartbeat: "Heartbeat", MsgHeartbeatResp: "HeartbeatReply",
	MsgPreVote: "PreVote", MsgPreVoteResp: "PreVoteReply", MsgTimeoutNow: "TimeoutNow",
	MsgSnap: "InstallSnapshot", MsgSnapStatus: "SnapshotFailed",
}

func (t MsgType) String() string {
	if s, ok := msgNames[t]; ok {
		return s
	}
	return fmt.Sprintf("MsgType(%d)", uint8(t))
}

// Message is every RPC of Figure 2, request or reply, as a one-way message.
// Replies are messages of their own, so the core never waits for anything.
type Message struct {
	Type     MsgType
	From, To string
	Term     uint64
	// The data dirs of the sender and of the receiver as the sender knows it (0: not
	// known): a server that lost its disk is not the member it was (fromStranger).
	FromIncarnation, ToIncarnation uint64

	// RequestVote and PreVote: the candidate's last log entry, for the up-to-date check
	// (§5.4.1). A PreVote's Term is the term the sender would campaign in.
	LastLogIndex, LastLogTerm uint64
	// RequestVote sent on a leader's TimeoutNow: voters grant it even though they heard
	// from that leader within an election timeout.
	Transfer bool

	// InstallSnapshot: the snapshot the leader's log starts after (§7).
	Snapshot *SnapshotMeta

	// Heartbeat and its reply: the leader's latest read request (ReadIndex, §6.4). A reply
	// confirms this server still followed the leader when that read arrived.
	// AppendEntries and its reply: the catch-up the request belongs to (catchUp.seq).
	Context uint64

	// AppendEntries and Heartbeat. LeaderCommit is what the follower may commit: all
	// of the leader's commit index in an AppendEntries, min(its commit, the follower's
	// match) in a heartbeat, which has no log check.
	PrevLogIndex, PrevLogTerm uint64
	Entries                   []Entry
	LeaderCommit              uint64
	// AppendEntries and Heartbeat: the leader's whole commit index, so a follower knows
	// how far behind it is (readiness) even while it hears only heartbeats, as it does
	// while a snapshot is on its way. Never committed by: the follower's log may not
	// match the leader's that far.
	ClusterCommit uint64

	// Replies.
	Success bool // vote granted; entries accepted
	// AppendEntries accepted: the last index known to match the leader's log, which is
	// PrevLogIndex+len(Entries) of the request answered (never the follower's log length).
	MatchIndex uint64
	// AppendEntries refused: the PrevLogIndex refused, and where the follower's log
	// diverges, so the leader backs up a term at a time rather than an entry at a time.
	RejectIndex   uint64
	ConflictTerm  uint64 // term of the follower's entry at RejectIndex; 0 if its log is shorter
	ConflictIndex uint64 // first index of ConflictTerm in the follower's log, or its last index+1
	// AppendEntries and heartbeat replies: the replier's commit index, so a leader knows
	// when a server it removed has learned that its removal committed.
	Commit uint64
}

// HardState is what a server must not forget across a crash (Figure 2's persistent
// state, plus a commit index that lets a restart re-apply without waiting for a leader).
type HardState struct {
	Term   uint64
	Vote   string
	Commit uint64 // an index known to be committed when this was written
}

// Ready is the work the core hands to the event loop. Snapshot, HardState and Entries
// are to be persisted (fsync), and Advance called once they are; Messages may depend on
// that write (a granted vote, an acknowledged append), so they leave after it, except
// those splitMessages says may go at once. Committed entries are to be applied, in
// order, before the next Ready. The caller may ask for the next Ready before this one
// is durable, as long as it persists (and so Advances) them in the order handed out.
type Ready struct {
	// A snapshot from the leader that replaces this server's log and state machine: the
	// log now starts after it (record that first), and the state machine is loaded from it
	// before Committed is applied.
	Snapshot  *SnapshotMeta
	HardState *HardState // nil if it need not be written
	Entries   []Entry    // to append; an entry at an index already stored replaces it and all after it
	Messages  []Message
	Committed []Entry // newly committed, in log order
	// Server additions whose catch-up ended: the configuration entry appended, or why not.
	CatchUps []catchUpResult
	// Reads whose leadership a quorum confirmed: each may be answered once the state
	// machine has applied up to its Index. Err: the read failed (leadership lost).
	ReadStates []ReadState
	// Messages refused because their sender broke the protocol, for the log.
	Warnings []string
}

// ReadState is a linearizable read the leader may answer (§6.4): Ctx names the request,
// Index is the commit index when it arrived.
type ReadState struct {
	Ctx, Index uint64
	Term       uint64 // the leader's term when the read arrived
	Err        error
}

// catchUpResult ends an AddServer: the new server caught up and the entry that adds it
// is at Index (it commits like any other entry), or Err says why membership is unchanged.
type catchUpResult struct {
	Server      string
	Index, Term uint64
	Err         error
}

// splitMessages separates a Ready's messages that may leave before its write is durable
// from those that must wait for it. A leader's requests (AppendEntries, heartbeats,
// snapshots, TimeoutNow) depend only on its term and vote, made durable before it could
// win; sending them while the leader writes its own copy of the entries overlaps its
// fsync with the followers' (it counts itself toward a commit only once durable, in
// Advance). Votes and replies promise what the write records, so they wait.
func splitMessages(msgs []Message) (early, late []Message) {
	for _, m := range msgs {
		switch m.Type {
		case MsgApp, MsgHeartbeat, MsgSnap, MsgTimeoutNow:
			early = append(early, m)
		default:
			late = append(late, m)
		}
	}
	return early, late
}

// Errors from proposals.
var (
	errNotLeader        = errors.New("this server is not the leader")
	errLeaderNotReady   = errors.New("the new leader has not yet committed an entry of its term; retry shortly")
	errTransferring     = errors.New("leadership is being transferred; retry shortly")
	errNoTransferTarget = errors.New("no other member to transfer leadership to")
	errAlreadyLeader    = errors.New("the server is already the leader")
)

// A vote request or reply from a server outside every configuration this one knows is
// refused if its term is more than this far ahead. Pre-vote keeps terms from growing
// without real elections, so a candidate this far ahead that this server has never heard
// of is not a plausible case; a buggy or malicious node, or a corrupt term, is.
const maxTermLead = 1000

type role uint8

const (
	follower role = iota
	preCandidate
	candidate
	leader
)

func (r role) String() string {
	return [...]string{"follower", "pre-candidate", "candidate", "leader"}[r]
}

const (
	noLeader = ""
	noVote   = ""
)

// coreConfig sets up a core.
type coreConfig struct {
	ID             string
	Incarnation    uint64 // this server's data dir (walMeta.Incarnation)
	ElectionTicks  int    // minimum election timeout; each is drawn from [ElectionTicks, 2*ElectionTicks)
	HeartbeatTicks int
	MaxMsgBytes    int // bound on the entries' data in one AppendEntries (at least one entry is sent)
	MaxInflight    int // AppendEntries a leader sends to one follower before hearing back
	Rand           *rand.Rand
}

// persistentState is what a server loaded from its disk when it started.
type persistentState struct {
	HardState HardState
	Snapshot  SnapshotMeta // the log starts after it (zero: no snapshot yet)
	Entries   []Entry      // the log, from Snapshot.Index+1
	Bootstrap Config       // the configuration before any configuration entry
}

// configAt is a configuration and the index of the entry that carried it (0: bootstrap).
type configAt struct {
	index  uint64
	config Config
}

// progress is the leader's view of one follower: Figure 2's nextIndex and matchIndex,
// plus flow control. A follower is probed one AppendEntries at a time until its log
// position is known, then entries are streamed to it, up to MaxInflight unacknowledged.
type progress struct {
	match, next  uint64
	probing      bool     // position unknown: one AppendEntries at a time
	probeSent    bool     // probing: waiting for the reply (or the next heartbeat) before resending
	inflight     []uint64 // streaming: last index of each unacknowledged AppendEntries
	snapshot     uint64   // > 0: a snapshot with this last index is on its way; wait for it
	snapshotWait int      // heartbeat replies since it was sent
	removedAt    uint64   // > 0: removed by the configuration entry at this index; replicated to until it has it
	active       bool     // answered since the leader last checked it still has a quorum
	idle         int      // ticks since it last answered (for status)
	readAck      uint64   // the latest read context it has confirmed
	toldCommit   uint64   // the commit index last sent to it
}

func (pr *progress) paused(maxInflight int) bool {
	if pr.snapshot > 0 {
		return true
	}
	if pr.probing {
		return pr.probeSent
	}
	return len(pr.inflight) >= maxInflight
}

func (pr *progress) becomeProbe() {
	pr.probing, pr.probeSent, pr.inflight, pr.snapshot = true, false, nil, 0
}

func (pr *progress) becomeReplicate() {
	pr.probing, pr.probeSent, pr.inflight, pr.snapshot = false, false, nil, 0
	pr.next = pr.match + 1
}

// acknowledge drops the inflight AppendEntries that the follower's match index covers.
func (pr *progress) acknowledge(index uint64) {
	n := 0
	for n < len(pr.inflight) && pr.inflight[n] <= index {
		n++
	}
	pr.inflight = pr.inflight[n:]
}

// raft is one server's consensus state. Field names follow Figure 2.
type raft struct {
	id          string
	incarnation uint64 // this server's data dir: it is the member only with this one

	// Persistent state on all servers.
	currentTerm uint64
	votedFor    string
	log         *raftLog

	// Volatile state on all servers.
	commitIndex uint64
	lastApplied uint64 // highest index handed to the caller to apply

	role   role
	leader string

	// configs holds the configuration the log starts with (the bootstrap one, or the
	// snapshot's) and every configuration entry in the log; the last one is in effect,
	// committed or not (§4.1).
	configs []configAt

	snapshot        SnapshotMeta  // the log starts after it
	pendingSnapshot *SnapshotMeta // installed from the leader, to hand out in Ready

	// The highest commit index a leader has told this server of (Message.ClusterCommit):
	// how far it must apply to be caught up (status, for /ready). Its own commit index
	// lags behind it while its log does.
	leaderCommit uint64

	votes    map[string]bool      // (pre-)candidate: who answered, and how
	progress map[string]*progress // leader: every other server it replicates to

	// Leader: a server being caught up before it is added, and a leadership transfer.
	catchUp        *catchUp
	catchUpSeq     uint64          // catch-ups this server has begun (catchUp.seq)
	catchUpResults []catchUpResult // to hand out in Ready
	transferee     string          // the server leadership is being handed to
	transferTicks  int             // ticks since the transfer began
	reads          []ReadState     // reads waiting for a quorum to confirm leadership, oldest first
	readStates     []ReadState     // reads decided, to hand out in Ready

	// Followers: ticks since the leader was last heard from (or a vote granted).
	// Leaders: ticks since the last check that a quorum is still answering.
	electionElapsed  int
	heartbeatElapsed int
	electionTimeout  int // this term's randomized timeout, in ticks
	electionTicks    int
	heartbeatTicks   int
	maxMsgBytes      int
	maxInflight      int
	rand             *rand.Rand

	msgs           []Message
	appendsDue     bool            // a leader's entries appended since the last Ready, not yet sent (sendDueAppends)
	commitDue      bool            // its commit index moved since the last Ready; followers not yet told
	commitUntold   bool            // some follower may not know the commit index: tell it at the next tick
	warnings       []string        // for the operator: peers that broke the protocol
	strangers      map[string]bool // servers with another data dir than the cluster knows, already warned of
	savedHardState HardState       // the last hard state handed out for persisting

	// Why this server last stepped down by check-quorum, for the operator ("": it has
	// not, since it last became leader).
	quorumLost string
}

// newRaft builds a core from what a server found on its disk. It starts as a follower.
func newRaft(c coreConfig, st persistentState) *raft {
	r := &raft{
		id:             c.ID,
		incarnation:    c.Incarnation,
		currentTerm:    st.HardState.Term,
		votedFor:       st.HardState.Vote,
		log:            newRaftLog(st.Snapshot, st.Entries),
		electionTicks:  c.ElectionTicks,
		heartbeatTicks: c.HeartbeatTicks,
		maxMsgBytes:    c.MaxMsgBytes,
		maxInflight:    c.MaxInflight,
		rand:           c.Rand,
		configs:        []configAt{{0, st.Bootstrap}},
		snapshot:       st.Snapshot,
		savedHardState: st.HardState,
	}
	if st.Snapshot.Index > 0 {
		r.configs = []configAt{{st.Snapshot.ConfigIndex, st.Snapshot.Config}}
	}
	// The caller loads the state machine from the snapshot: it is applied up to there.
	r.lastApplied = st.Snapshot.Index
	r.commitIndex = max(min(st.HardState.Commit, r.log.lastIndex()), st.Snapshot.Index)
	r.trackConfigs(st.Entries)
	r.becomeFollower(r.currentTerm, noLeader)
	return r
}

// Tick advances the core's clock by one tick.
func (r *raft) Tick() {
	if r.role == leader {
		r.tickLeader()
		return
	}
	r.electionElapsed++
	if r.electionElapsed >= r.electionTimeout {
		r.resetElectionTimer()
		if r.promotable() {
			r.preCampaign()
		}
	}
}

func (r *raft) tickLeader() {
	r.heartbeatElapsed++
	if r.heartbeatElapsed >= r.heartbeatTicks {
		r.heartbeatElapsed = 0
		r.broadcastHeartbeat()
	}
	if r.commitUntold {
		r.tellCommit()
	}
	// Check-quorum: a leader that has not heard from a majority for an election timeout
	// steps down, so its clients go looking for the leader the others have elected.
	r.electionElapsed++
	if r.electionElapsed >= r.electionTicks {
		r.electionElapsed = 0
		if ok, why := r.quorumActive(); !ok {
			r.becomeFollower(r.currentTerm, noLeader)
			r.quorumLost = why
			return
		}
	}
	for _, pr := range r.progress {
		pr.idle++
	}
	if r.transferee != noLeader {
		r.transferTicks++
		if r.transferTicks >= r.electionTicks {
			r.transferee = noLeader // the target did not take over in time: carry on leading
		}
	}
	if cu := r.catchUp; cu != nil {
		cu.roundTicks++
		cu.idleTicks++
		if cu.idleTicks >= catchUpIdleTimeout*r.electionTicks {
			r.endCatchUp(errCatchUpUnreachable)
		}
	}
}

// TicksToNext is how many ticks can pass before one of them does more than count: a
// heartbeat, the commit index to tell, an election, a check of the quorum, a transfer or catch-up given up (at
// least 1). The loop that drives the core need not wake before then, unless something
// else arrives; it ticks the core for the time gone by before it steps it.
func (r *raft) TicksToNext() int {
	if r.role != leader {
		return max(r.electionTimeout-r.electionElapsed, 1)
	}
	next := min(r.heartbeatTicks-r.heartbeatElapsed, r.electionTicks-r.electionElapsed)
	if r.commitUntold {
		next = 1
	}
	if r.transferee != noLeader {
		next = min(next, r.electionTicks-r.transferTicks)
	}
	if cu := r.catchUp; cu != nil {
		next = min(next, catchUpIdleTimeout*r.electionTicks-cu.idleTicks)
	}
	return max(next, 1)
}

// inLease reports whether this server has heard from a leader (or is one) within the
// minimum election timeout. It then ignores requests to elect another: a server that
// was removed, or partitioned away, must not depose a leader that is doing its job.
func (r *raft) inLease() bool {
	return r.leader != noLeader && r.electionElapsed < r.electionTicks
}

// Step advances the core by one message from another server.
func (r *raft) Step(m Message) {
	if r.fromStranger(m) {
		return
	}
	switch {
	case m.Term > r.currentTerm+maxTermLead && !r.knows(m.From) && m.Type != MsgApp && m.Type != MsgHeartbeat && m.Type != MsgSnap:
		// A candidate, or a reply, from a server outside every configuration this one
		// knows, this many terms ahead: a buggy or misconfigured node, or garbage. Its
		// term would be adopted for good, so the message changes nothing. A leader's
		// messages are taken: this server may lag behind the configuration that made it
		// leader, or be a new server (term 0) that knows only its -c.
		r.warnings = append(r.warnings, fmt.Sprintf("refused %s from %s: term %d is more than %d terms ahead of this server's %d, and %s is not a member",
			m.Type, m.From, m.Term, maxTermLead, r.currentTerm, m.From))
		return
	case (m.Type == MsgVote || m.Type == MsgPreVote) && !m.Transfer && r.inLease():
		// §4.2.3: while a leader is known, votes are not even considered, and a
		// RequestVote's newer term is not adopted. A PreVote is refused.
		if m.Type == MsgPreVote {
			r.send(Message{Type: MsgPreVoteResp, To: m.From})
		}
		return
	case (m.Type == MsgPreVote || (m.Type == MsgPreVoteResp && m.Success)) && m.Term >= r.currentTerm:
		// A pre-vote is about a term that may never exist: it changes no one's term.
		// A granted reply carries the term the pre-candidate proposed.
	case m.Term > r.currentTerm:
		// Any other message from a newer term makes us a follower of that term (§5.1).
		lead := noLeader
		if m.Type == MsgApp || m.Type == MsgHeartbeat || m.Type == MsgSnap {
			lead = m.From
		}
		r.becomeFollower(m.Term, lead)
	case m.Term < r.currentTerm:
		// A stale request is refused with our term, which makes its sender step down.
		switch m.Type {
		case MsgVote:
			r.send(Message{Type: MsgVoteResp, To: m.From})
		case MsgPreVote:
			r.send(Message{Type: MsgPreVoteResp, To: m.From})
		case MsgApp, MsgHeartbeat, MsgSnap:
			r.send(Message{Type: MsgAppResp, To: m.From, RejectIndex: m.PrevLogIndex})
		}
		return // stale replies answer questions we no longer ask
	}
	switch m.Type {
	case MsgVote, MsgPreVote:
		r.handleRequestVote(m)
	case MsgVoteResp, MsgPreVoteResp:
		r.handleVoteResponse(m)
	case MsgTimeoutNow:
		r.handleTimeoutNow(m)
	case MsgSnap:
		r.handleSnapshot(m)
	case MsgSnapStatus:
		r.handleSnapshotFailed(m)
	case MsgApp:
		r.handleAppendEntries(m)
	case MsgAppResp:
		r.handleAppendResponse(m)
	case MsgHeartbeat:
		r.handleHeartbeat(m)
	case MsgHeartbeatResp:
		r.handleHeartbeatResponse(m)
	}
}

// Propose appends a client message (EntryNormal or EntrySession) to the leader's log and
// returns its index and term.
func (r *raft) Propose(t EntryType, data []byte) (index, term uint64, err error) {
	if r.role != leader {
		return 0, 0, errNotLeader
	}
	if r.transferee != noLeader {
		return 0, 0, errTransferring
	}
	index = r.appendEntry(Entry{Type: t, Data: data})
	r.appendsDue = true
	return index, r.currentTerm, nil
}

// hasReady reports whether Ready would hand out any work.
func (r *raft) hasReady() bool {
	return r.appendsDue || r.commitDue || len(r.msgs) > 0 || len(r.catchUpResults) > 0 || len(r.readStates) > 0 || len(r.warnings) > 0 || r.pendingSnapshot != nil || r.log.written < r.log.lastIndex() ||
		r.commitIndex > r.lastApplied || r.mustSaveHardState()
}

func (r *raft) hardState() HardState {
	return HardState{Term: r.currentTerm, Vote: r.votedFor, Commit: r.lastApplied}
}

// mustSaveHardState: a new term or vote is written before anything that depends on it.
// The commit index only rides along with entries; losing it costs a re-apply, not safety.
func (r *raft) mustSaveHardState() bool {
	return r.currentTerm != r.savedHardState.Term || r.votedFor != r.savedHardState.Vote
}

// Ready hands out the work accumulated since the last Ready.
func (r *raft) Ready() Ready {
	r.sendDueAppends()
	rd := Ready{
		Snapshot:   r.pendingSnapshot,
		Entries:    r.log.unwritten(),
		Messages:   r.msgs,
		Committed:  r.log.slice(r.lastApplied+1, r.commitIndex+1, 0),
		CatchUps:   r.catchUpResults,
		ReadStates: r.readStates,
		Warnings:   r.warnings,
	}
	if hs := r.hardState(); r.mustSaveHardState() || ((len(rd.Entries) > 0 || rd.Snapshot != nil) && hs != r.savedHardState) {
		rd.HardState = &hs
		r.savedHardState = hs
	}
	r.log.written = r.log.lastIndex()
	if n := len(rd.Committed); n > 0 {
		r.lastApplied = rd.Committed[n-1].Index
	}
	r.msgs, r.catchUpResults, r.pendingSnapshot, r.readStates, r.warnings = nil, nil, nil, nil, nil
	return rd
}

// Advance tells the core that rd's write is durable. Readys are advanced in the order
// they were handed out.
func (r *raft) Advance(rd Ready) {
	if n := len(rd.Entries); n > 0 {
		last := rd.Entries[n-1]
		// The log may have changed since Ready; only entries still in it count as stable.
		if t, ok := r.log.term(last.Index); ok && t == last.Term && last.Index > r.log.stable {
			r.log.stable = last.Index
			// The leader counts itself toward a quorum only for entries on its own disk.
			if r.role == leader {
				r.maybeCommit()
			}
		}
	}
}

// --- Elections (§5.2), with pre-vote (§9.6) ---

func (r *raft) resetElectionTimer() {
	r.electionElapsed = 0
	r.electionTimeout = r.electionTicks + r.rand.Intn(r.electionTicks)
}

func (r *raft) becomeFollower(term uint64, lead string) {
	if term > r.currentTerm {
		// votedFor is cleared only by a new term, never by stepping down within one.
		r.currentTerm, r.votedFor = term, noVote
	}
	if r.role == leader && r.catchUp != nil {
		r.endCatchUp(errCatchUpLeaderLost)
	}
	for _, rs := range r.reads {
		r.readStates = append(r.readStates, ReadState{Ctx: rs.Ctx, Err: errNotLeader})
	}
	r.reads = nil
	r.role, r.leader = follower, lead
	r.votes, r.progress = nil, nil
	r.transferee = noLeader
	r.resetElectionTimer()
}

// preCampaign asks the others whether they would vote for this server in the next term,
// without starting it. A server that was cut off, and so missed nothing but cannot win,
// then does not force the cluster into a new term when it comes back.
func (r *raft) preCampaign() {
	r.role, r.leader = preCandidate, noLeader
	r.votes = map[string]bool{r.id: true}
	if r.tallyVotes() {
		return
	}
	r.requestVotes(MsgPreVote, r.currentTerm+1, false)
}

// campaign starts an election in the next term. transfer says the leader asked for it.
func (r *raft) campaign(transfer bool) {
	r.currentTerm++
	r.votedFor = r.id
	r.role, r.leader = candidate, noLeader
	r.votes = map[string]bool{r.id: true}
	r.resetElectionTimer()
	if r.tallyVotes() {
		return // a cluster of one elects itself
	}
	r.requestVotes(MsgVote, r.currentTerm, transfer)
}

func (r *raft) requestVotes(t MsgType, term uint64, transfer bool) {
	for _, id := range r.config().Members {
		if id != r.id {
			r.send(Message{Type: t, To: id, Term: term, LastLogIndex: r.log.lastIndex(), LastLogTerm: r.log.lastTerm(), Transfer: transfer})
		}
	}
}

// handleRequestVote answers a RequestVote or a PreVote.
func (r *raft) handleRequestVote(m Message) {
	// Vote once per term: for the first candidate that asks, or again for the same one
	// (its request may have been duplicated). The vote is persisted before the reply leaves.
	// A pre-vote for a later term promises nothing, so it may go to anyone.
	canVote := r.votedFor == m.From || (r.votedFor == noVote && r.leader == noLeader) ||
		(m.Type == MsgPreVote && m.Term > r.currentTerm)
	// Only for a candidate whose log is at least as up-to-date as ours: compare the last
	// entries' terms, then the lengths (§5.4.1). Commit indices play no part.
	lastTerm := r.log.lastTerm()
	upToDate := m.LastLogTerm > lastTerm || (m.LastLogTerm == lastTerm && m.LastLogIndex >= r.log.lastIndex())
	resp := MsgVoteResp
	if m.Type == MsgPreVote {
		resp = MsgPreVoteResp
	}
	switch {
	case !canVote || !upToDate:
		r.send(Message{Type: resp, To: m.From})
	case m.Type == MsgPreVote:
		r.send(Message{Type: resp, To: m.From, Term: m.Term, Success: true})
	default:
		r.votedFor = m.From
		r.electionElapsed = 0
		r.send(Message{Type: resp, To: m.From, Success: true})
	}
}

func (r *raft) handleVoteResponse(m Message) {
	switch {
	case r.role == candidate && m.Type == MsgVoteResp:
	case r.role == preCandidate && m.Type == MsgPreVoteResp && (!m.Success || m.Term == r.currentTerm+1):
	default:
		return // an answer to an election this server is no longer running
	}
	r.votes[m.From] = m.Success
	r.tallyVotes()
}

// handleTimeoutNow starts an election at once, at the leader's request (§3.10): the
// leader has stopped taking commands and this server's log matches its own.
func (r *raft) handleTimeoutNow(m Message) {
	if r.role == follower && r.isMember(r.config()) {
		r.campaign(true)
	}
}

// tallyVotes moves a (pre-)candidate on once a majority of the configuration has voted
// for it, or back to follower once a majority has refused. It reports whether it decided.
func (r *raft) tallyVotes() bool {
	cfg := r.config()
	granted, refused := 0, 0
	for _, id := range cfg.Members {
		if v, ok := r.votes[id]; ok && v {
			granted++
		} else if ok {
			refused++
		}
	}
	switch {
	case granted >= cfg.quorum() && r.role == preCandidate:
		r.campaign(false)
		return true
	case granted >= cfg.quorum():
		r.becomeLeader()
		return true
	case refused >= cfg.quorum():
		r.becomeFollower(r.currentTerm, noLeader)
		return true
	}
	return false
}

func (r *raft) becomeLeader() {
	r.role, r.leader = leader, r.id
	r.votes, r.quorumLost = nil, ""
	r.heartbeatElapsed, r.electionElapsed = 0, 0
	r.progress = map[string]*progress{}
	r.syncProgress()
	// A new leader appends an entry of its own term at once: entries of earlier terms
	// commit only with it (§5.4.2), and membership changes wait until it has committed.
	r.appendEntry(Entry{Type: EntryNoop})
	r.broadcastAppend(true)
}

// --- Log replication (§5.3) ---

// handleSnapshot installs a snapshot from the leader (§7, Figure 13). The transport has
// already written it, whole, to the data dir.
func (r *raft) handleSnapshot(m Message) {
	if r.role == leader || m.Snapshot == nil {
		return
	}
	r.becomeFollowerOf(m.From)
	s := *m.Snapshot
	reply := Message{Type: MsgAppResp, To: m.From, Success: true, Context: m.Context}
	switch {
	case s.Index <= r.commitIndex:
		// Nothing new: everything it covers is committed here already.
	case r.log.matches(s.Index, s.Term):
		// This log holds its last entry, so it holds all it covers: commit up to it and
		// keep the log (and the entries after it, which may be acknowledged already).
		r.commitIndex = s.Index
	default:
		// The log lacks what the snapshot covers, or conflicts with it: replace the log
		// and the state machine with it.
		r.log = newRaftLog(s, nil)
		r.configs = []configAt{{s.ConfigIndex, s.Config}}
		r.snapshot = s
		r.commitIndex, r.lastApplied = s.Index, s.Index
		r.pendingSnapshot = &s
	}
	// Committed entries are the same everywhere: the log matches the leader's up to here.
	reply.MatchIndex, reply.Commit = r.commitIndex, r.commitIndex
	r.send(reply)
}

// snapshotProgress follows a snapshot on its way, from the follower's heartbeat replies:
// its commit index reaching the snapshot says it was installed (the reply may have been
// lost); if that takes two election timeouts, the snapshot (or the follower, which may
// have crashed before installing it) was lost, and it is sent again. A reply that does
// not count (unheard) only counts the time.
func (r *raft) snapshotProgress(pr *progress, m Message, counts bool) {
	pr.snapshotWait++
	switch {
	case counts && m.Commit >= pr.snapshot:
		pr.match = max(pr.match, pr.snapshot) // committed entries are the same everywhere
		pr.becomeProbe()
		pr.next = pr.match + 1
	case pr.snapshotWait > 2*r.electionTicks/r.heartbeatTicks:
		pr.becomeProbe()
	}
}

// handleSnapshotFailed hears from the transport that a snapshot did not arrive: the
// follower is probed again, and sent the snapshot again if it still needs it.
func (r *raft) handleSnapshotFailed(m Message) {
	if pr := r.progress[m.From]; r.role == leader && pr != nil && pr.snapshot > 0 {
		pr.becomeProbe()
	}
}

// Compact drops the log up to index, which the caller has written into a snapshot of the
// state machine (its metadata from snapshotMeta). The log must hold index, applied.
func (r *raft) Compact(s SnapshotMeta) {
	if s.Index <= r.snapshot.Index || s.Index > r.lastApplied {
		panic(fmt.Sprintf("%s: compact to %d: the log starts after %d and is applied up to %d", r.id, s.Index, r.snapshot.Index, r.lastApplied))
	}
	r.log.compact(s.Index)
	r.snapshot = s
	// The configuration the log now starts with, and the entries after it.
	for len(r.configs) > 1 && r.configs[1].index <= s.Index {
		r.configs = r.configs[1:]
	}
}

// snapshotMeta describes a snapshot of the state machine applied up to index.
func (r *raft) snapshotMeta(index uint64) SnapshotMeta {
	term, ok := r.log.term(index)
	if !ok || index > r.lastApplied {
		panic(fmt.Sprintf("%s: snapshot at %d: the log holds [%d, %d], applied up to %d", r.id, index, r.log.firstIndex(), r.log.lastIndex(), r.lastApplied))
	}
	c := r.configs[0]
	for _, ca := range r.configs[1:] {
		if ca.index <= index {
			c = ca
		}
	}
	return SnapshotMeta{Index: index, Term: term, Config: c.config, ConfigIndex: c.index}
}

func (r *raft) handleAppendEntries(m Message) {
	if r.role == leader {
		return // two leaders in one term cannot happen; don't let a bad peer make it so
	}
	r.becomeFollowerOf(m.From)
	r.heardCommit(m)
	reply := Message{Type: MsgAppResp, To: m.From, RejectIndex: m.PrevLogIndex, Commit: r.commitIndex, Context: m.Context}
	if !entriesFollow(m) {
		return // malformed: entries must be numbered on from PrevLogIndex
	}
	if m.PrevLogIndex < r.snapshot.Index {
		// The entry to check was compacted into our snapshot: it is committed, and so
		// matches, as does all we have committed. The leader goes on from there.
		reply.Success, reply.MatchIndex = true, r.commitIndex
		r.send(reply)
		return
	}
	// Refuse if our log has no entry at PrevLogIndex with term PrevLogTerm, and say
	// where our log diverges so the leader can skip a whole term per round trip.
	if m.PrevLogIndex > r.log.lastIndex() {
		reply.ConflictIndex = r.log.lastIndex() + 1
		r.send(reply)
		return
	}
	if t, _ := r.log.term(m.PrevLogIndex); t != m.PrevLogTerm {
		if m.PrevLogIndex <= r.commitIndex {
			// Every leader's log holds what is committed (Leader Completeness): this one
			// is broken. Refuse, and say so. (Found by FuzzStepMessage: index 0 with a
			// nonzero term sent the back-up loop below round the whole uint64 range.)
			r.warnings = append(r.warnings, fmt.Sprintf("refused AppendEntries from %s (term %d): it has term %d at index %d, where this server has committed term %d; that server is broken",
				m.From, m.Term, m.PrevLogTerm, m.PrevLogIndex, t))
			return
		}
		reply.ConflictTerm = t
		reply.ConflictIndex = m.PrevLogIndex
		for reply.ConflictIndex > r.commitIndex+1 {
			if pt, _ := r.log.term(reply.ConflictIndex - 1); pt != t {
				break
			}
			reply.ConflictIndex--
		}
		r.send(reply)
		return
	}
	// Append what we lack. Truncate only at a real conflict: a delayed, shorter
	// AppendEntries must not cut off entries a later one already added.
	for i, e := range m.Entries {
		t, ok := r.log.term(e.Index)
		if ok && t == e.Term {
			continue
		}
		if ok && e.Index <= r.commitIndex {
			// No correct leader does this (Leader Completeness): refuse it, say so, and
			// keep what is committed.
			r.warnings = append(r.warnings, fmt.Sprintf("refused AppendEntries from %s (term %d): its entry %d (term %d) conflicts with committed entry %d (term %d); that server is broken",
				m.From, m.Term, e.Index, e.Term, e.Index, t))
			return
		}
		if ok {
			r.untrackConfigs(e.Index)
		}
		r.log.append(m.Entries[i:])
		r.trackConfigs(m.Entries[i:])
		break
	}
	// The entries up to PrevLogIndex+len(Entries) now match the leader's; anything after
	// them may not, so the commit index never goes past them (Figure 2, rule 5).
	last := m.PrevLogIndex + uint64(len(m.Entries))
	r.commitIndex = max(r.commitIndex, min(m.LeaderCommit, last))
	reply.Success, reply.MatchIndex, reply.Commit = true, last, r.commitIndex
	r.send(reply)
}

// entriesFollow checks that a message's entries are numbered on from PrevLogIndex.
func entriesFollow(m Message) bool {
	for i, e := range m.Entries {
		if e.Index != m.PrevLogIndex+1+uint64(i) || e.Term > m.Term {
			return false
		}
	}
	return true
}

func (r *raft) becomeFollowerOf(lead string) {
	if r.role == candidate || r.role == preCandidate {
		r.becomeFollower(r.currentTerm, lead)
	}
	r.leader = lead
	r.electionElapsed = 0
}

func (r *raft) handleAppendResponse(m Message) {
	pr := r.progress[m.From]
	if r.role != leader || pr == nil || m.MatchIndex > r.log.lastIndex() || m.RejectIndex > r.log.lastIndex() {
		return // not ours to track, or malformed: it claims indices we never sent
	}
	if r.unheard(m.From) {
		return // an answer from before this catch-up: the first probe is resent on a heartbeat reply
	}
	pr.active, pr.idle = true, 0
	if !m.Success {
		// A refusal of an index we already know matches, or (while probing) of another
		// index than the one we last probed, answers an old request: ignore it.
		if m.RejectIndex <= pr.match || (pr.probing && m.RejectIndex != pr.next-1) {
			return
		}
		pr.next = r.backUp(m, pr)
		pr.becomeProbe()
		r.sendAppend(m.From, pr, true)
		return
	}
	advanced := m.MatchIndex > pr.match
	if advanced {
		pr.match = m.MatchIndex // matchIndex never moves backwards
	}
	if pr.snapshot > 0 && pr.match < pr.snapshot {
		return // an answer from before the snapshot: keep waiting for it
	}
	if pr.probing || pr.snapshot > 0 {
		pr.becomeReplicate()
	} else {
		pr.acknowledge(pr.match)
		pr.next = max(pr.next, pr.match+1)
	}
	if r.forgetRemoved(m) {
		return
	}
	r.catchUpProgress(m.From)
	if m.From == r.transferee && pr.match == r.log.lastIndex() {
		r.send(Message{Type: MsgTimeoutNow, To: m.From})
	}
	if advanced && r.maybeCommit() {
		return // everyone hears the news at the next Ready
	}
	r.sendAppend(m.From, pr, false)
}

// quorumActive reports whether a majority of the configuration (this server included,
// if a member) has answered since the last check, and starts the next period. If not,
// why says who answered and who did not.
func (r *raft) quorumActive() (ok bool, why string) {
	cfg := r.config()
	var unheard []string
	for _, id := range cfg.Members {
		if pr := r.progress[id]; id != r.id && (pr == nil || !pr.active) {
			unheard = append(unheard, id)
		}
	}
	for _, pr := range r.progress {
		pr.active = false
	}
	heard := len(cfg.Members) - len(unheard)
	if heard >= cfg.quorum() {
		return true, ""
	}
	self := ""
	if cfg.contains(r.id) {
		self = " (itself included)"
	}
	return false, fmt.Sprintf("no majority heard from within an election timeout: in contact with %d of %d members%s, a majority is %d; no answer from %s",
		heard, len(cfg.Members), self, cfg.quorum(), strings.Join(unheard, ", "))
}

// --- Linearizable reads (§6.4) ---

// ReadIndex starts a read that must see every write committed before it arrived. The
// leader notes its commit index, then confirms with a round of heartbeats that a
// majority still follows it: a deposed leader that does not know it yet can answer no
// read. ctx names the read, and must grow from one read to the next. The outcome comes
// in a later Ready's ReadStates.
func (r *raft) ReadIndex(ctx uint64) error {
	if r.role != leader {
		return errNotLeader
	}
	if t, _ := r.log.term(r.commitIndex); t != r.currentTerm {
		// Until an entry of its term commits, the leader does not know what is committed.
		return errLeaderNotReady
	}
	r.reads = append(r.reads, ReadState{Ctx: ctx, Index: r.commitIndex, Term: r.currentTerm})
	if !r.confirmReads() {
		r.broadcastHeartbeat()
	}
	return nil
}

// readCtx is the latest read context, which heartbeats carry.
func (r *raft) readCtx() uint64 {
	if n := len(r.reads); n > 0 {
		return r.reads[n-1].Ctx
	}
	return 0
}

// confirmReads hands out the reads a majority of the configuration has confirmed, in
// order. It reports whether none is left waiting.
func (r *raft) confirmReads() bool {
	cfg := r.config()
	for len(r.reads) > 0 {
		rs := r.reads[0]
		acks := 0
		for _, id := range cfg.Members {
			if pr := r.progress[id]; id == r.id || (pr != nil && pr.readAck >= rs.Ctx) {
				acks++
			}
		}
		if acks < cfg.quorum() {
			return false
		}
		r.readStates = append(r.readStates, rs)
		r.reads = r.reads[1:]
	}
	return true
}

// --- Leadership transfer (§3.10) ---

// TransferLeadership hands leadership to server, or with "" to the member whose log is
// most up to date. The leader stops taking commands, brings the target's log up to its
// own, then tells it to campaign at once. If the target has not taken over within an
// election timeout, the leader carries on. It returns the target.
func (r *raft) TransferLeadership(server string) (string, error) {
	if r.role != leader {
		return "", errNotLeader
	}
	if r.transferee != noLeader {
		return "", errTransferring
	}
	if r.catchUp != nil {
		// It would append the entry adding the server, leaving the target behind (§3.10).
		return "", errChangeInProgress
	}
	cfg := r.config()
	if server == noLeader {
		// Of the members heard from within an election timeout (a member that lost its
		// disk, and whose answers are refused, keeps the match its old one reached).
		for _, id := range r.progressOrder() {
			if pr := r.progress[id]; cfg.contains(id) && pr.idle < r.electionTicks && (server == noLeader || pr.match > r.progress[server].match) {
				server = id
			}
		}
		if server == noLeader {
			return "", errNoTransferTarget
		}
	}
	switch {
	case server == r.id:
		return "", errAlreadyLeader
	case !cfg.contains(server):
		return "", errNotMember
	}
	r.transferee, r.transferTicks = server, 0
	pr := r.progress[server]
	if pr.match == r.log.lastIndex() {
		r.send(Message{Type: MsgTimeoutNow, To: server})
	} else {
		r.sendAppend(server, pr, true)
	}
	return server, nil
}

// backUp picks the next index to probe after a refusal: past the follower's last entry
// if its log is short, else after the leader's last entry of the conflicting term, else
// the first index of that term in the follower's log.
func (r *raft) backUp(m Message, pr *progress) uint64 {
	next := m.ConflictIndex
	if m.ConflictTerm > 0 {
		if index := r.log.lastIndexOfTerm(m.ConflictTerm, m.RejectIndex); index > 0 {
			next = index + 1
		}
	}
	return max(min(next, m.RejectIndex), pr.match+1, 1)
}

func (r *raft) handleHeartbeat(m Message) {
	if r.role == leader {
		return
	}
	r.becomeFollowerOf(m.From)
	r.heardCommit(m)
	// The leader sends min(its commit, our match), so every index up to it is in our log
	// and matches; it is safe to commit without a log check.
	r.commitIndex = max(r.commitIndex, min(m.LeaderCommit, r.log.lastIndex()))
	r.send(Message{Type: MsgHeartbeatResp, To: m.From, Commit: r.commitIndex, Context: m.Context})
}

// heardCommit notes how far the leader that sent m has committed, for readiness. A
// leader of an older version sends no ClusterCommit: its LeaderCommit is the best
// there is.
func (r *raft) heardCommit(m Message) {
	r.leaderCommit = max(r.leaderCommit, m.ClusterCommit, m.LeaderCommit)
}

func (r *raft) handleHeartbeatResponse(m Message) {
	pr := r.progress[m.From]
	if r.role != leader || pr == nil {
		return
	}
	if r.unheard(m.From) {
		// It may be a data dir the cluster lost: what it says does not count yet. The
		// catch-up's probe (or its snapshot) is sent again until it answers.
		if pr.snapshot > 0 {
			r.snapshotProgress(pr, m, false)
		}
		pr.probeSent = false
		r.sendAppend(m.From, pr, true)
		return
	}
	if r.forgetRemoved(m) {
		return
	}
	pr.active, pr.idle = true, 0
	if m.Context > pr.readAck {
		pr.readAck = m.Context
		r.confirmReads()
	}
	r.catchUpProgress(m.From)
	if pr.snapshot > 0 {
		r.snapshotProgress(pr, m, true)
	}
	pr.probeSent = false
	if !pr.probing && len(pr.inflight) >= r.maxInflight {
		// The window is full and a round trip has gone by: assume one was lost.
		pr.inflight = pr.inflight[1:]
	}
	if pr.match < r.log.lastIndex() {
		// Resend what it lacks. If an AppendEntries was lost, this one is refused and the
		// follower is probed again from where its log ends.
		r.sendAppend(m.From, pr, true)
	}
}

// sendAppend sends a follower the entries it lacks, if its flow control allows.
// With sendEmpty it sends even with no entries, to probe or to carry the commit index.
func (r *raft) sendAppend(to string, pr *progress, sendEmpty bool) {
	if pr.paused(r.maxInflight) {
		return
	}
	prevIndex := pr.next - 1
	prevTerm, ok := r.log.term(prevIndex)
	if !ok && prevIndex < r.snapshot.Index {
		// What the follower needs next was compacted into the snapshot: send that (§7).
		snap := r.snapshot
		m := Message{Type: MsgSnap, To: to, Snapshot: &snap}
		if cu := r.catchUp; cu != nil && cu.server == to {
			m.Context = cu.seq
		}
		r.send(m)
		pr.snapshot, pr.snapshotWait = snap.Index, 0
		return
	}
	if !ok {
		panic(fmt.Sprintf("%s: nextIndex %d for %s is outside the log [%d, %d]", r.id, pr.next, to, r.log.firstIndex(), r.log.lastIndex()))
	}
	ents := r.log.slice(pr.next, r.log.lastIndex()+1, r.maxMsgBytes)
	if len(ents) == 0 && !sendEmpty {
		return
	}
	m := Message{Type: MsgApp, To: to, PrevLogIndex: prevIndex, PrevLogTerm: prevTerm, Entries: ents, LeaderCommit: r.commitIndex, ClusterCommit: r.commitIndex}
	if cu := r.catchUp; cu != nil && cu.server == to {
		m.Context = cu.seq
	}
	r.send(m)
	pr.toldCommit = r.commitIndex
	switch {
	case pr.probing:
		pr.probeSent = true
	case len(ents) > 0:
		last := ents[len(ents)-1].Index
		pr.next = last + 1 // stream on without waiting for the reply
		pr.inflight = append(pr.inflight, last)
	}
}

// sendDueAppends sends the followers, once per Ready, the entries proposed and the
// commit index reached since the last: however many proposals and acknowledgements one
// turn of the event loop took in, each follower gets one AppendEntries for them.
//
// A commit index that moved goes with those entries, but alone only at the next tick
// (tellCommit): a follower needs it only to apply, and under load the next entries
// carry it anyway. Sent at once, it cost every committed batch a second round of
// AppendEntries and replies; with one client, every message.
func (r *raft) sendDueAppends() {
	if r.role == leader && (r.appendsDue || r.commitDue) {
		r.broadcastAppend(false)
		r.commitUntold = r.commitUntold || r.commitDue
	}
	r.appendsDue, r.commitDue = false, false
}

// tellCommit sends the commit index, in an AppendEntries, to each follower not yet told.
func (r *raft) tellCommit() {
	r.commitUntold = false
	for _, id := range r.progressOrder() {
		if pr := r.progress[id]; pr.toldCommit < r.commitIndex {
			r.sendAppend(id, pr, true)
		}
	}
}

func (r *raft) broadcastAppend(sendEmpty bool) {
	for _, id := range r.progressOrder() {
		r.sendAppend(id, r.progress[id], sendEmpty)
	}
}

func (r *raft) broadcastHeartbeat() {
	for _, id := range r.progressOrder() {
		pr := r.progress[id]
		r.send(Message{Type: MsgHeartbeat, To: id, LeaderCommit: min(pr.match, r.commitIndex), ClusterCommit: r.commitIndex, Context: r.readCtx()})
		pr.toldCommit = max(pr.toldCommit, min(pr.match, r.commitIndex))
	}
}

// progressOrder lists followers in a fixed order, so a seeded run replays exactly.
func (r *raft) progressOrder() []string {
	ids := make([]string, 0, len(r.progress))
	for id := range r.progress {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// maybeCommit advances the commit index to the highest index stored on a majority of
// the configuration, and reports whether it moved.
func (r *raft) maybeCommit() bool {
	cfg := r.config()
	matches := make([]uint64, 0, len(cfg.Members))
	for _, id := range cfg.Members {
		switch {
		case id == r.id:
			matches = append(matches, r.log.stable)
		case r.progress[id] != nil:
			matches = append(matches, r.progress[id].match)
		default:
			matches = append(matches, 0)
		}
	}
	slices.Sort(matches)
	n := matches[len(matches)-cfg.quorum()]
	// A leader may only count replicas for entries of its own term (§5.4.2, Figure 8):
	// committing an older entry by count could later be overwritten.
	if t, _ := r.log.term(n); n <= r.commitIndex || t != r.currentTerm {
		return false
	}
	r.commitIndex = n
	r.commitDue = true
	// A leader removed from the configuration manages the cluster until the change that
	// removed it commits, then steps down (§4.2.2); the others elect a leader among them.
	if !cfg.contains(r.id) && r.configIndex() <= r.commitIndex {
		r.broadcastAppend(true) // the others hear that the change committed before it lets go
		r.appendsDue, r.commitDue = false, false
		r.becomeFollower(r.currentTerm, noLeader)
	}
	return true
}

// appendEntry appends an entry of the current term to the leader's log.
func (r *raft) appendEntry(e Entry) uint64 {
	e.Index, e.Term = r.log.lastIndex()+1, r.currentTerm
	ents := []Entry{e}
	r.log.append(ents)
	if r.trackConfigs(ents) {
		r.syncProgress()
	}
	return e.Index
}

// send queues a message from this server, in its current term unless m says otherwise
// (pre-votes are about the next term).
func (r *raft) send(m Message) {
	m.From = r.id
	m.FromIncarnation, m.ToIncarnation = r.incarnation, r.incarnationOf(m.To)
	if m.Term == 0 {
		m.Term = r.currentTerm
	}
	r.msgs = append(r.msgs, m)
}

// status is a snapshot of the core for logs and tests.
type status struct {
	ID                       string
	Role                     role
	Term                     uint64
	Leader                   string
	Commit, Applied, LastLog uint64
	Config                   Config
	Transferee               string // leader: the server leadership is being handed to
	Snapshot                 uint64 // the log starts after this index
	Peers                    []peerStatus
	// A leader was heard from within the election timeout, or this server leads
	// (inLease); and the highest commit index it has heard of, its own included.
	LeaderHeard  bool
	LeaderCommit uint64
	QuorumLost   string // why it last stepped down by check-quorum (raft.quorumLost)
	RemovedAt    uint64 // the configuration entry that removed it (raft.removedAt)
	// The election timeout, in ticks (health judges the leader's contacts by it).
	ElectionTicks int
}

// peerStatus is the leader's view of one other server.
type peerStatus struct {
	ID          string
	Match, Next uint64
	Idle        int  // ticks since it last answered
	Voter       bool // in the configuration (else being caught up, or removed)
}

func (r *raft) status() status {
	s := status{ID: r.id, Role: r.role, Term: r.currentTerm, Leader: r.leader,
		Commit: r.commitIndex, Applied: r.lastApplied, LastLog: r.log.lastIndex(), Config: r.config(),
		Transferee: r.transferee, Snapshot: r.snapshot.Index, LeaderHeard: r.inLease(), LeaderCommit: max(r.leaderCommit, r.commitIndex),
		QuorumLost: r.quorumLost, RemovedAt: r.removedAt(), ElectionTicks: r.electionTicks}
	for _, id := range r.progressOrder() {
		pr := r.progress[id]
		s.Peers = append(s.Peers, peerStatus{ID: id, Match: pr.match, Next: pr.next, Idle: pr.idle, Voter: r.config().contains(id)})
	}
	return s
}

// --- The log in memory ---

// raftLog is the core's copy of the log. entries[0] is a placeholder for the entry
// before the first (index 0, term 0 until the log can be compacted).
type raftLog struct {
	entries []Entry
	stable  uint64 // last index known to be on this server's disk
	written uint64 // last index handed out to be written (stable <= written)
}

// newRaftLog makes a log that starts after the snapshot's last entry.
func newRaftLog(snap SnapshotMeta, ents []Entry) *raftLog {
	l := &raftLog{entries: make([]Entry, 1, len(ents)+1)}
	l.entries[0] = Entry{Index: snap.Index, Term: snap.Term}
	l.entries = append(l.entries, ents...)
	l.stable, l.written = l.lastIndex(), l.lastIndex()
	return l
}

// matches reports whether the log holds an entry at index with term.
func (l *raftLog) matches(index, term uint64) bool {
	t, ok := l.term(index)
	return ok && t == term
}

// compact drops the entries up to index; the placeholder takes index's place. The kept
// entries are copied, so the dropped ones can be freed.
func (l *raftLog) compact(index uint64) {
	off := index - l.entries[0].Index
	kept := make([]Entry, 0, uint64(len(l.entries))-off)
	l.entries = append(kept, l.entries[off:]...)
	l.entries[0].Data, l.entries[0].Type = nil, EntryNoop
	// What the snapshot covers is on disk in it.
	l.stable, l.written = max(l.stable, index), max(l.written, index)
}

func (l *raftLog) firstIndex() uint64 { return l.entries[0].Index + 1 }
func (l *raftLog) lastIndex() uint64  { return l.entries[len(l.entries)-1].Index }
func (l *raftLog) lastTerm() uint64   { return l.entries[len(l.entries)-1].Term }

// term returns the term of the entry at index, and whether the log holds it.
func (l *raftLog) term(index uint64) (uint64, bool) {
	if index < l.entries[0].Index || index > l.lastIndex() {
		return 0, false
	}
	return l.entries[index-l.entries[0].Index].Term, true
}

// lastIndexOfTerm is the index of the last entry of term at or before atMost, or 0.
func (l *raftLog) lastIndexOfTerm(term, atMost uint64) uint64 {
	for index := min(atMost, l.lastIndex()); index >= l.firstIndex(); index-- {
		t, _ := l.term(index)
		if t == term {
			return index
		}
		if t < term {
			break
		}
	}
	return 0
}

// slice returns the entries in [lo, hi), cut after maxBytes of data (0: no limit) but
// never empty when the range is not. The slice is capped so appending to it cannot
// write into the log.
func (l *raftLog) slice(lo, hi uint64, maxBytes int) []Entry {
	if lo >= hi {
		return nil
	}
	off := l.entries[0].Index
	ents := l.entries[lo-off : hi-off : hi-off]
	if maxBytes > 0 {
		size := 0
		for i, e := range ents {
			size += len(e.Data)
			if size > maxBytes && i > 0 {
				return ents[:i:i]
			}
		}
	}
	return ents
}

// unwritten returns the entries not yet handed out to be written.
func (l *raftLog) unwritten() []Entry {
	return l.slice(l.written+1, l.lastIndex()+1, 0)
}

// append adds ents, which start at most one past the last index; entries at and after
// ents[0].Index are replaced. A replacement copies the kept prefix, so slices of the old
// log already handed out (in messages being sent, in a Ready) never change under their readers.
func (l *raftLog) append(ents []Entry) {
	first := ents[0].Index
	if first > l.lastIndex()+1 || first <= l.entries[0].Index {
		panic(fmt.Sprintf("append entries from %d to a log holding [%d, %d]", first, l.firstIndex(), l.lastIndex()))
	}
	if first <= l.lastIndex() {
		keep := first - l.entries[0].Index
		l.entries = append(l.entries[:keep:keep], ents...)
		l.stable, l.written = min(l.stable, first-1), min(l.written, first-1)
		return
	}
	l.entries = append(l.entries, ents...)
}
