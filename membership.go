// membership.go: who is in the cluster. The configuration (the members whose votes
// count) and the log entries that change it one server at a time (§4.1), the catch-up
// of a new server before it votes (§4.2.1), the removal of a server, the cluster's id,
// and the identity of each member's data dir (its incarnation).
//
// The core's side of it (the methods on raft) is as deterministic as the rest of the
// core; the server asks other servers, at a new data dir's first start, whether the
// cluster is new (server.go), and decides from their answers with the functions here.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Config is a cluster membership configuration: the servers whose votes count (§4.1).
// A server's identity is its address exactly as written in -c (":9990", "10.0.0.1:9990").
type Config struct {
	Members []string
	// The data dir each member has, by its random incarnation (walMeta.Incarnation),
	// recorded when the member joined: a server that comes back at a member's address
	// with another data dir (a wiped or replaced disk) is not that member. A member
	// without an entry (a configuration from before incarnations) is known by address
	// alone.
	Incarnations map[string]uint64
}

func (c Config) contains(id string) bool { return slices.Contains(c.Members, id) }

// incarnation is the data dir the configuration knows member id by (0: none recorded).
func (c Config) incarnation(id string) uint64 { return c.Incarnations[id] }

// with returns the configuration with server added, known by its data dir incarnation.
func (c Config) with(server string, incarnation uint64) Config {
	next := Config{Members: append(slices.Clone(c.Members), server), Incarnations: c.cloneIncarnations()}
	if incarnation != 0 {
		if next.Incarnations == nil {
			next.Incarnations = map[string]uint64{}
		}
		next.Incarnations[server] = incarnation
	}
	return next
}

func (c Config) cloneIncarnations() map[string]uint64 {
	if c.Incarnations == nil {
		return nil
	}
	clone := make(map[string]uint64, len(c.Incarnations))
	for id, inc := range c.Incarnations {
		clone[id] = inc
	}
	return clone
}

// without returns the configuration with server removed.
func (c Config) without(server string) Config {
	next := Config{Members: slices.DeleteFunc(slices.Clone(c.Members), func(m string) bool { return m == server }), Incarnations: c.cloneIncarnations()}
	delete(next.Incarnations, server)
	if len(next.Incarnations) == 0 {
		next.Incarnations = nil
	}
	return next
}

// quorum is the number of votes or replicas that make a majority of the configuration.
func (c Config) quorum() int { return len(c.Members)/2 + 1 }

// newClusterID names a new cluster by its first configuration and the operator's token:
// every member of that configuration computes the same id on its own.
func newClusterID(bootstrap Config, token string) uint64 {
	h := sha256.New()
	for _, m := range slices.Sorted(slices.Values(bootstrap.Members)) {
		if inc := bootstrap.incarnation(m); inc != 0 {
			// A cluster formed by these data dirs: formed again on wiped ones, or on the
			// same addresses later, it is another cluster.
			m += fmt.Sprintf(" %016x", inc)
		}
		h.Write([]byte(m + "\n"))
	}
	h.Write([]byte("token " + token))
	id := binary.BigEndian.Uint64(h.Sum(nil))
	return max(id, 1) // 0 means "not known yet"
}

func formatClusterID(id uint64) string {
	if id == 0 {
		return "none yet"
	}
	return fmt.Sprintf("%016x", id)
}

// ConfOp is the kind of a single-server membership change.
type ConfOp uint8

const (
	confAdd ConfOp = iota + 1
	confRemove
)

// ConfChange is the payload of an EntryConfig entry: one server added or removed, and the
// whole configuration that results, so a reader of the log never has to replay history
// to know the membership at an index.
type ConfChange struct {
	Op     ConfOp
	Server string
	Config Config
}

// announcement is the line every server prints when the change is applied.
func (cc ConfChange) announcement() string {
	if cc.Op == confAdd {
		return "Added new peer " + cc.Server
	}
	return "Removed peer " + cc.Server
}

func encodeConfChange(cc ConfChange) []byte {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(cc); err != nil {
		panic(fmt.Sprintf("encode %+v: %v", cc, err)) // a plain struct always encodes
	}
	return buf.Bytes()
}

func decodeConfChange(data []byte) (ConfChange, error) {
	var cc ConfChange
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&cc); err != nil {
		return ConfChange{}, fmt.Errorf("decode configuration entry: %w", err)
	}
	if cc.Op != confAdd && cc.Op != confRemove || len(cc.Config.Members) == 0 {
		return ConfChange{}, fmt.Errorf("decode configuration entry: invalid change %+v", cc)
	}
	return cc, nil
}

// config is the configuration in effect: the latest in the log.
func (r *raft) config() Config { return r.configs[len(r.configs)-1].config }

// knows reports whether id is in any configuration this server holds, or is being
// caught up to join.
func (r *raft) knows(id string) bool {
	for _, c := range r.configs {
		if c.config.contains(id) {
			return true
		}
	}
	return r.progress[id] != nil
}

// configIndex is the index of the entry that carried the configuration in effect.
func (r *raft) configIndex() uint64 { return r.configs[len(r.configs)-1].index }

// promotable reports whether this server may campaign. Members of the configuration in
// effect do. So does a server that the latest configuration removes, until it knows that
// change committed: it may still be needed as leader to commit it (dissertation §4.2.2,
// Figure 4.6); it does not count its own vote. A spare, never a member, never campaigns.
func (r *raft) promotable() bool {
	if r.isMember(r.config()) {
		return true
	}
	n := len(r.configs)
	return n > 1 && r.configIndex() > r.commitIndex && r.isMember(r.configs[n-2].config)
}

// isMember reports whether this server, with its data dir, is a member of c. A server
// at a member's address with another data dir is not: whatever the member voted for
// and acknowledged is gone with its disk.
func (r *raft) isMember(c Config) bool {
	inc := c.incarnation(r.id)
	return c.contains(r.id) && (inc == 0 || inc == r.incarnation)
}

// AddServer starts adding a server (§4.2.1). It first catches up with the log as a
// non-voter; once it is close, the configuration entry that makes it a voter is
// appended. The outcome comes in a later Ready's CatchUps.
func (r *raft) AddServer(server string) error {
	if err := r.canChangeConfig(); err != nil {
		return err
	}
	if r.config().contains(server) {
		return errAlreadyMember
	}
	// Replication starts from scratch, whatever the leader knew of a server at this
	// address: it may have come back with an empty disk, and what it had acknowledged
	// before must not count now. A server removed a moment ago and added back is still
	// to learn of its removal if this addition fails.
	var removedAt uint64
	if old := r.progress[server]; old != nil {
		removedAt = old.removedAt
	}
	pr := &progress{next: r.log.lastIndex() + 1, probing: true}
	r.progress[server] = pr
	r.catchUpSeq++
	r.catchUp = &catchUp{server: server, round: 1, roundEnd: r.log.lastIndex(), removedAt: removedAt, seq: r.catchUpSeq}
	r.sendAppend(server, pr, true)
	return nil
}

// RemoveServer appends the configuration entry that removes a server (§4.1).
func (r *raft) RemoveServer(server string) (index, term uint64, err error) {
	if err := r.canChangeConfig(); err != nil {
		return 0, 0, err
	}
	return r.appendConfChange(confRemove, server, 0)
}

// canChangeConfig: the new configuration takes effect as soon as it is in the log, so
// only one change may be under way at a time, and a new leader must first commit an
// entry of its own term: until then it cannot know that a change left by its
// predecessor is not committed.
func (r *raft) canChangeConfig() error {
	if r.role != leader {
		return errNotLeader
	}
	if r.transferee != noLeader {
		return errTransferring
	}
	if t, _ := r.log.term(r.commitIndex); t != r.currentTerm {
		return errLeaderNotReady
	}
	if r.configIndex() > r.commitIndex || r.catchUp != nil {
		return errChangeInProgress
	}
	return nil
}

// appendConfChange appends a single-server membership change.
// An added server is known from then on by its data dir's incarnation (0: not known).
func (r *raft) appendConfChange(op ConfOp, server string, incarnation uint64) (index, term uint64, err error) {
	cur := r.config()
	var next Config
	switch op {
	case confAdd:
		if cur.contains(server) {
			return 0, 0, errAlreadyMember
		}
		next = cur.with(server, incarnation)
	case confRemove:
		if !cur.contains(server) {
			return 0, 0, errNotMember
		}
		if len(cur.Members) == 1 {
			return 0, 0, errLastMember
		}
		next = cur.without(server)
	default:
		return 0, 0, fmt.Errorf("unknown membership change %d", op)
	}
	data := encodeConfChange(ConfChange{Op: op, Server: server, Config: next})
	index = r.appendEntry(Entry{Type: EntryConfig, Data: data})
	r.appendsDue = true
	return index, r.currentTerm, nil
}

// Catch-up of a new server (§4.2.1): the leader replicates its log to the server in
// rounds, each round the entries in the log when it began. Once a round takes less than
// an election timeout the server is close enough to count as a voter without stalling
// commits; after this many rounds, or this many election timeouts without an answer from
// it, the addition is abandoned.
const (
	catchUpRounds      = 10
	catchUpIdleTimeout = 10 // election timeouts
)

// catchUp is the leader's record of a server being caught up before it is added.
type catchUp struct {
	server     string
	round      int
	roundEnd   uint64 // the round is over once the server holds every entry up to here
	roundTicks int    // ticks since the round began
	idleTicks  int    // ticks since the server last answered
	removedAt  uint64 // the server's progress.removedAt before, to restore if it is not added
	// The data dir of the server: learned from its first answer to this catch-up's
	// AppendEntries (they carry seq as their Context), recorded in the entry that adds it.
	// Until it has answered, nothing it says counts (unheard).
	incarnation uint64
	answered    bool
	seq         uint64
}

// catchUpProgress moves the catch-up of server on after it acknowledged entries.
func (r *raft) catchUpProgress(server string) {
	cu := r.catchUp
	if cu == nil || cu.server != server {
		return
	}
	cu.idleTicks = 0
	for r.progress[server].match >= cu.roundEnd {
		switch {
		case cu.roundTicks < r.electionTicks:
			// A round shorter than an election timeout: adding the server now stalls
			// commits for less than that while it takes the rest.
			r.catchUp = nil
			index, term, err := r.appendConfChange(confAdd, server, cu.incarnation)
			r.catchUpResults = append(r.catchUpResults, catchUpResult{Server: server, Index: index, Term: term, Err: err})
			return
		case cu.round >= catchUpRounds:
			r.endCatchUp(errCatchUpTooSlow)
			return
		default:
			// The next round: what was appended meanwhile. In an idle cluster it is
			// already over, and takes no time at all.
			cu.round++
			cu.roundEnd, cu.roundTicks = r.log.lastIndex(), 0
		}
	}
}

// endCatchUp abandons the catch-up in progress: membership stays as it is.
func (r *raft) endCatchUp(err error) {
	cu := r.catchUp
	r.catchUp = nil
	if pr := r.progress[cu.server]; pr != nil && !r.config().contains(cu.server) {
		if pr.removedAt = cu.removedAt; pr.removedAt == 0 {
			delete(r.progress, cu.server)
		} // else it is still to learn that it was removed
	}
	r.catchUpResults = append(r.catchUpResults, catchUpResult{Server: cu.server, Err: err})
}

// removedAt is the index of the configuration entry that removed this server, if the
// configuration in effect lacks it and an earlier one in its log had it; 0 if it is a
// member, or its log does not tell (a spare never added; a removal compacted away).
func (r *raft) removedAt() uint64 {
	for i := len(r.configs) - 1; i >= 0; i-- {
		if r.configs[i].config.contains(r.id) {
			if i == len(r.configs)-1 {
				return 0
			}
			return r.configs[i+1].index
		}
	}
	return 0
}

// forgetRemoved stops replicating to a removed server once it reports that the change
// removing it committed: from then on it knows it is out and will not campaign.
func (r *raft) forgetRemoved(m Message) bool {
	if pr := r.progress[m.From]; pr.removedAt > 0 && m.Commit >= pr.removedAt {
		delete(r.progress, m.From)
		return true
	}
	return false
}

// trackConfigs records the configuration entries among ents. A configuration takes
// effect as soon as it is in the log, committed or not (§4.1).
func (r *raft) trackConfigs(ents []Entry) bool {
	changed := false
	for _, e := range ents {
		if e.Type != EntryConfig {
			continue
		}
		cc, err := decodeConfChange(e.Data)
		if err != nil {
			panic(fmt.Sprintf("%s: entry %d: %v", r.id, e.Index, err)) // storage and transport check this before the core sees it
		}
		r.configs = append(r.configs, configAt{e.Index, cc.Config})
		changed = true
	}
	return changed
}

// untrackConfigs forgets configurations from entries at index and after, which are
// about to be overwritten: the configuration rolls back to the previous one.
func (r *raft) untrackConfigs(index uint64) {
	for len(r.configs) > 1 && r.configs[len(r.configs)-1].index >= index {
		r.configs = r.configs[:len(r.configs)-1]
	}
}

// syncProgress makes the leader replicate to every member of the configuration in
// effect. A removed server is still sent entries until it has the one that removed it,
// so it learns it is out and stops expecting a leader.
func (r *raft) syncProgress() {
	cfg := r.config()
	for _, id := range cfg.Members {
		if id == r.id {
			continue
		}
		if pr := r.progress[id]; pr != nil {
			pr.removedAt = 0
		} else {
			r.progress[id] = &progress{next: r.log.lastIndex() + 1, probing: true}
		}
	}
	for id, pr := range r.progress {
		if !cfg.contains(id) && pr.removedAt == 0 && (r.catchUp == nil || r.catchUp.server != id) {
			pr.removedAt = r.configIndex()
		}
	}
}

// Errors from membership changes.
var (
	errChangeInProgress   = errors.New("another membership change is still in progress; retry when it commits")
	errAlreadyMember      = errors.New("the server is already a member")
	errNotMember          = errors.New("the server is not a member")
	errLastMember         = errors.New("cannot remove the only member of the cluster")
	errCatchUpLeaderLost  = errors.New("this server lost leadership while the new server was catching up; membership unchanged")
	errCatchUpUnreachable = errors.New("the new server did not answer; is it running, and reachable at that address? membership unchanged")
	errCatchUpTooSlow     = errors.New("the new server did not catch up with the log; membership unchanged")
)

var errCatchUpNewDataDir = errors.New("the new server came back with another data dir while it was catching up; membership unchanged: add it again")

// incarnationOf is the data dir the cluster knows server by: the one being caught up,
// or the one the latest configuration that records it has; 0 if none is recorded.
func (r *raft) incarnationOf(server string) uint64 {
	if cu := r.catchUp; cu != nil && cu.server == server {
		return cu.incarnation
	}
	for i := len(r.configs) - 1; i >= 0; i-- {
		if inc := r.configs[i].config.incarnation(server); inc != 0 {
			return inc
		}
	}
	return 0
}

// fromStranger reports whether m comes from, or is meant for, another data dir than the
// one the cluster knows at that address, and if so refuses it: a server that lost its
// disk (or a new server at a member's address) must not vote, be voted for or count
// toward a commit as the member it replaces. Both ends say so, once per data dir.
//
// A request is refused if it is meant for another data dir than this server's. What
// the sender's own data dir is counts only in answers, which the asker counts: votes
// and acknowledgements. A request carries nothing that is counted, and the asker's
// data dir may well be newer than this server knows of it (a member added back while
// this one was down must still be followed, and voted for, to hear of it).
func (r *raft) fromStranger(m Message) bool {
	switch m.Type {
	case MsgSnapStatus:
		return false // from this server's own transport
	case MsgAppResp, MsgHeartbeatResp, MsgVoteResp, MsgPreVoteResp:
		return r.answerFromStranger(m)
	}
	if m.ToIncarnation == 0 || m.ToIncarnation == r.incarnation {
		return false
	}
	if r.isMember(r.config()) {
		// This server was added back with its data dir; the sender has not heard of it.
		r.warnStranger(m.From, m.ToIncarnation, fmt.Sprintf("%s knows this server by the data dir it had before (%016x; this one is %016x, a member since it was added back): %s is behind, and will hear of it from the leader",
			m.From, m.ToIncarnation, r.incarnation, m.From))
	} else {
		r.warnStranger(m.From, m.ToIncarnation, fmt.Sprintf("%s is not the member %s knows by this address: %s's %v is meant for data dir %016x, and this is %016x. This server lost its data (or its data dir is new) and takes no part until it is added back: raft -C removeserver -m %s, then raft -C addserver -m %s",
			r.id, m.From, m.From, m.Type, m.ToIncarnation, r.incarnation, r.id, r.id))
	}
	// An answer that the sender refuses in turn, so that it hears of this too.
	switch m.Type {
	case MsgApp, MsgHeartbeat, MsgSnap:
		r.send(Message{Type: MsgAppResp, To: m.From, RejectIndex: m.PrevLogIndex})
	case MsgVote:
		r.send(Message{Type: MsgVoteResp, To: m.From})
	case MsgPreVote:
		r.send(Message{Type: MsgPreVoteResp, To: m.From})
	}
	return true
}

// answerFromStranger is fromStranger for an answer: it is refused if it comes from
// another data dir than the one this server knows at that address. A server being
// caught up is known by its first answer to the catch-up (catchUp.answered).
func (r *raft) answerFromStranger(m Message) bool {
	cu := r.catchUp
	if cu != nil && cu.server == m.From && !cu.answered && m.Type == MsgAppResp && m.Context == cu.seq && m.Term == r.currentTerm {
		cu.incarnation, cu.answered = m.FromIncarnation, true
	}
	// A member known by address alone (recorded before incarnations) is taken by
	// address, as it was. One whose data dir is recorded must answer from it: an answer
	// without an incarnation (an old binary on a new disk, say) is not from it.
	known := r.incarnationOf(m.From)
	if known == 0 || m.FromIncarnation == known {
		return false
	}
	r.warnStranger(m.From, m.FromIncarnation, fmt.Sprintf("refused %v from %s: this server knows %s by data dir %016x, and this comes from data dir %016x. It lost its data (or is a new server at that address) and is not counted as that member: remove it and add it back (raft -C removeserver -m %s, then raft -C addserver -m %s); unless it was added back already, and this server has not heard of it yet",
		m.Type, m.From, m.From, known, m.FromIncarnation, m.From, m.From))
	if cu != nil && cu.server == m.From {
		r.endCatchUp(errCatchUpNewDataDir)
	}
	return true
}

// unheard reports whether server is being caught up and has not yet answered the
// catch-up: until it has, what it says may come from a data dir the cluster lost at
// that address (an answer on its way since before), and does not count.
func (r *raft) unheard(server string) bool {
	cu := r.catchUp
	return cu != nil && cu.server == server && !cu.answered
}

// warnStranger warns once per server and data dir.
func (r *raft) warnStranger(server string, incarnation uint64, warning string) {
	key := fmt.Sprintf("%s/%016x", server, incarnation)
	if r.strangers[key] || len(r.strangers) >= 1000 {
		return
	}
	if r.strangers == nil {
		r.strangers = map[string]bool{}
	}
	r.strangers[key] = true
	r.warnings = append(r.warnings, warning)
}

// --- Forming a new cluster ---
//
// A fresh data dir may bootstrap a cluster only if that cluster is new: a member that
// lost its disk and is started again with its old command line must not form the
// cluster anew with whoever else lost theirs (or has not started yet), nor vote as the
// member it was. So the members of a new cluster's -c form it together: each asks all
// the others (Raft.Form) until every one of them has answered with a fresh data dir of
// its own; the first configuration is then -c with every member's incarnation, which
// each of them records (accepts) and, once every member has accepted the same, takes
// as its bootstrap. A member that hears instead from a running member of the cluster
// knows that the cluster is not new: it becomes a spare, and takes part only once it
// is removed and added back. Until every member of -c has started, none of them
// campaigns; a one-member -c forms at once.

// formState is how far a data dir is in forming its cluster.
type formState uint8

const (
	formGathering formState = iota + 1 // a fresh data dir, hearing from the other members
	formAccepted                       // it has chosen the first configuration (walMeta.Bootstrap)
	formDone                           // a member or spare of a running cluster
)

// FormRequest is the argument of Raft.Form: a fresh data dir asks a member of its -c.
type FormRequest struct {
	From        string
	Formation   uint64 // names -c and -cluster-token: newClusterID of -c without incarnations
	Incarnation uint64 // the asker's data dir
}

// FormReply is the answer to Raft.Form.
type FormReply struct {
	State       formState
	Incarnation uint64
	Config      Config // formAccepted, formDone: the first configuration it holds
	Cluster     uint64 // formDone: its cluster id
	Error       string // the request does not fit this server (another -c or token)
}

// formStep is what a forming data dir does next, from the answers it has.
type formStep struct {
	kind    formStepKind
	config  Config // accept, start: the first configuration
	cluster uint64 // spare: the running cluster's id
	why     string // wait: who is missing; spare: what the running member said
}

type formStepKind uint8

const (
	formWait   formStepKind = iota + 1 // ask again later
	formAccept                         // record config, then ask again
	formStart                          // every member holds config: start with it
	formSpare                          // the cluster is not new: wait as a spare
)

// decideForming picks the next step of data dir incarnation at self, a member of the
// new cluster's members (-c), given the configuration it has accepted (nil: none yet)
// and the answers of the other members (absent: no answer).
//
// It accepts a first configuration once every other member has answered with a fresh
// data dir (the configuration then binds each to its incarnation), or adopts the one a
// member accepted, if that binds self to this data dir. It starts once every other
// member holds the configuration it accepted, or answers from another data dir than
// that configuration records for it: a data dir replaced while the cluster formed can
// never accept it, and is just a member that lost its disk. No two first configurations
// can both start: each data dir accepts one, durably, and one starts only once every
// data dir it records has accepted it or is gone.
func decideForming(self string, incarnation uint64, members []string, accepted *Config, answers map[string]FormReply) formStep {
	var missing, pending []string
	fresh := 0 // other members that answered with a data dir as new as this one
	all := Config{Members: members, Incarnations: map[string]uint64{self: incarnation}}
	for _, m := range members {
		if m == self {
			continue
		}
		a, ok := answers[m]
		if !ok {
			missing = append(missing, m)
			continue
		}
		all.Incarnations[m] = a.Incarnation
		replaced := accepted != nil && a.Incarnation != accepted.incarnation(m)
		holds := accepted != nil && (a.State == formAccepted || a.State == formDone) && sameConfig(a.Config, *accepted)
		switch {
		case holds || replaced:
		case a.State == formDone && a.Cluster != 0:
			return formStep{kind: formSpare, cluster: a.Cluster, why: fmt.Sprintf("%s is a member of a running cluster (id %s)", m, formatClusterID(a.Cluster))}
		case a.State == formAccepted && a.Config.incarnation(self) != incarnation:
			return formStep{kind: formSpare, why: fmt.Sprintf("%s has formed the cluster with another data dir at %s (incarnation %016x; this one is %016x)", m, self, a.Config.incarnation(self), incarnation)}
		case a.State == formAccepted && accepted == nil:
			return formStep{kind: formAccept, config: a.Config}
		case a.State == formAccepted:
			pending = append(pending, m+" (it chose another first configuration)")
		case a.State == formDone:
			pending = append(pending, m+" (a spare that knows no cluster)")
		default:
			fresh++
			pending = append(pending, m)
		}
	}
	switch {
	case len(missing) > 0:
		return formStep{kind: formWait, why: "waiting for " + strings.Join(missing, ", ") + " to answer"}
	case accepted == nil && fresh == len(members)-1:
		return formStep{kind: formAccept, config: all} // every other member is new
	case len(pending) > 0:
		return formStep{kind: formWait, why: "waiting for " + strings.Join(pending, ", ") + " to choose the first configuration"}
	}
	return formStep{kind: formStart, config: *accepted}
}

// restoredConfig gives the snapshot a data dir was restored from (-restore) the first
// configuration its cluster formed, with every member's data dir: the snapshot holds -c
// as given, without them, and a member of the restored cluster that lost its disk must
// not count as the member it was either. Its later snapshots and configuration entries
// carry the incarnations as any do; this is only for the restored one, at every start.
func restoredConfig(meta walMeta, snap *SnapshotMeta) {
	if meta.Restored && meta.Forming == 0 && snap.Index > 0 && snap.ConfigIndex == snap.Index &&
		len(snap.Config.Incarnations) == 0 && len(meta.Bootstrap.Incarnations) > 0 && sameMembers(snap.Config.Members, meta.Bootstrap.Members) {
		snap.Config.Incarnations = meta.Bootstrap.cloneIncarnations()
	}
}

// sameMembers reports whether two member lists hold the same addresses.
func sameMembers(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(m string) bool { return !slices.Contains(b, m) })
}

// sameConfig reports whether two configurations have the same members, with the same
// data dirs.
func sameConfig(a, b Config) bool {
	if len(a.Members) != len(b.Members) || len(a.Incarnations) != len(b.Incarnations) {
		return false
	}
	for _, m := range a.Members {
		if !b.contains(m) || a.incarnation(m) != b.incarnation(m) {
			return false
		}
	}
	return true
}
