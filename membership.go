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
)

// Config is a cluster membership configuration: the servers whose votes count (§4.1).
// A server's identity is its address exactly as written in -c (":9990", "10.0.0.1:9990").
type Config struct {
	Members []string
}

func (c Config) contains(id string) bool { return slices.Contains(c.Members, id) }

// quorum is the number of votes or replicas that make a majority of the configuration.
func (c Config) quorum() int { return len(c.Members)/2 + 1 }

// newClusterID names a new cluster by its first configuration and the operator's token:
// every member of that configuration computes the same id on its own.
func newClusterID(bootstrap Config, token string) uint64 {
	h := sha256.New()
	for _, m := range slices.Sorted(slices.Values(bootstrap.Members)) {
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
	if r.config().contains(r.id) {
		return true
	}
	n := len(r.configs)
	return n > 1 && r.configIndex() > r.commitIndex && r.configs[n-2].config.contains(r.id)
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
	pr := r.progress[server]
	if pr == nil {
		pr = &progress{next: r.log.lastIndex() + 1, probing: true}
		r.progress[server] = pr
	}
	// A server removed a moment ago and added back is not to be forgotten meanwhile.
	r.catchUp = &catchUp{server: server, round: 1, roundEnd: r.log.lastIndex(), removedAt: pr.removedAt}
	pr.removedAt = 0
	r.sendAppend(server, pr, true)
	return nil
}

// RemoveServer appends the configuration entry that removes a server (§4.1).
func (r *raft) RemoveServer(server string) (index, term uint64, err error) {
	if err := r.canChangeConfig(); err != nil {
		return 0, 0, err
	}
	return r.appendConfChange(confRemove, server)
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
func (r *raft) appendConfChange(op ConfOp, server string) (index, term uint64, err error) {
	cur := r.config()
	var members []string
	switch op {
	case confAdd:
		if cur.contains(server) {
			return 0, 0, errAlreadyMember
		}
		members = append(slices.Clone(cur.Members), server)
	case confRemove:
		if !cur.contains(server) {
			return 0, 0, errNotMember
		}
		if len(cur.Members) == 1 {
			return 0, 0, errLastMember
		}
		members = slices.DeleteFunc(slices.Clone(cur.Members), func(m string) bool { return m == server })
	default:
		return 0, 0, fmt.Errorf("unknown membership change %d", op)
	}
	data := encodeConfChange(ConfChange{Op: op, Server: server, Config: Config{Members: members}})
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
			index, term, err := r.appendConfChange(confAdd, server)
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
