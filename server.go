// server.go: a running node. One goroutine, the event loop, owns the Raft core: it
// steps it with messages, ticks and proposals that arrive on channels, then carries out
// the core's Ready: a leader's AppendEntries leave at once, committed entries are
// applied and their clients answered, and the write goes to the disk writer
// (writer.go); replies that depend on the write (votes, acknowledged appends) leave
// once it is durable. The loop never waits on the disk.
// RPC handlers never touch the core; they hand the loop their input and wait on a
// channel of their own for the answer.
package main

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"log/slog"
	"math/rand"
	"net"
	"net/rpc"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	maxMsgBytes = 1 << 20 // entry data in one AppendEntries
	maxInflight = 64      // AppendEntries in flight to one follower
	maxDrain    = 1024    // inputs taken per loop turn before the next write
)

// node is one running server.
type node struct {
	id     string
	dir    string // the data dir
	core   *raft
	store  *storage
	trans  *transport
	sm     machine
	out    *log.Logger  // stdout: what applying entries prints
	logger *slog.Logger // stderr: what the node does
	tick   time.Duration
	// When the core was last ticked (advanceClock): it is ticked for the time gone by when
	// an input comes, or when the next tick that matters is due, not every tick.
	lastTick time.Time

	recvc chan Message
	callc chan *inCall     // Exchange calls from peers (reply.go)
	propc chan []*proposal // proposals, a batch's at once
	stopc chan struct{}    // closed to stop the loop
	donec chan struct{}    // closed once the loop has stopped

	pending   map[uint64]*proposal // by log index: commands waiting to be applied
	adding    map[string]*proposal // by server: additions waiting for catch-up
	transfers []*proposal          // leadership transfers waiting for a new leader
	reads     map[uint64]*proposal // by read context: reads waiting for leadership to be confirmed
	readWait  []*proposal          // reads confirmed at p.index, waiting for it to be applied
	readCtx   uint64               // the last read context handed to the core
	statusc   chan chan status     // status requests from RPC handlers
	watchers  []*watcher           // watch polls waiting for a message to be applied (watch.go)
	runc      chan func()          // functions to run in the loop (inLoop)
	backups   backupFiles          // backups being served to clients (backup.go)
	leaderc   chan struct{}        // closed once the node knows a leader other than watched (forward.go)
	watched   string               // the leader those waiting on leaderc forward to
	quietTo   uint64               // entries up to here were applied before a restart: re-apply silently
	seen      status               // the core's role, term and leader as last logged
	loaded    time.Duration        // how long loading the data dir took
	metrics   *metrics             // what -metrics serves; nil without it
	// The cluster clock this node stamps commands with while it leads: the log's clock
	// when it was elected, plus the time it has led, by the monotonic clock. A wall clock
	// that jumps, or runs ahead on one server, cannot make sessions expire early.
	leadTerm  uint64
	leadSince time.Time
	leadFrom  int64

	maxMessage      int               // bytes in a client message, at most
	snapshotEntries uint64            // take a snapshot once this many applied entries follow the last
	nextSnapshot    uint64            // the applied index at which to take the next one
	snapshotting    bool              // a snapshot is being written in the background
	snapc           chan snapshotDone // where it reports

	clusterMu     sync.Mutex // serializes learning the cluster id
	clusterWarned warnOnce   // senders of other clusters already logged

	recvMu   sync.Mutex     // guards recv (RPC handlers)
	recv     *incoming      // a snapshot being received from the leader
	received []SnapshotMeta // snapshots handed to the core since the last Ready

	// The disk writer (writer.go).
	writec     chan writeReq
	writtenc   chan writeDone
	writerDone chan struct{}
	// Writes handed to the writer and made durable since the start (writesOut: those not
	// yet back), and the Exchange calls stepped since the last closeCalls: a call is
	// answered once the writes its steps caused are.
	writesIssued, writesDone uint64
	opened                   []*inCall
	replyWait                time.Duration // how long an Exchange handler waits for its answers
}

// snapshotDone is the outcome of writing a snapshot in the background.
type snapshotDone struct {
	meta   SnapshotMeta
	stored storedMessages // where its messages are in the file
	bytes  int
	took   time.Duration
	err    error
}

// proposal is a client command on its way through the loop.
type proposal struct {
	req         *CommandRequest
	deadline    time.Time
	taken       time.Time // when the loop took it (with -metrics, for appends only)
	index, term uint64
	done        chan CommandResponse // buffered, so the loop never waits on it
	// Refused for not leading, with a leader known: closed once the node knows another
	// (a forward to the one named stops waiting then: forward.go).
	leaderChanged <-chan struct{}
}

// runNode runs a node until stop is closed or it fails.
func runNode(cfg nodeConfig, stdout io.Writer, logger *slog.Logger, stop <-chan struct{}) error {
	logger = logger.With("node", cfg.ID)
	start := time.Now()
	// The ports first, and nothing written before: a start that fails here (an address
	// in use) leaves no data dir behind that a later start would take as its own.
	ln, err := net.Listen("tcp", cfg.ID)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.ID, err)
	}
	metricsLn, err := listenMetrics(cfg.Metrics)
	if err != nil {
		ln.Close()
		return err
	}
	closeListeners := func() {
		ln.Close()
		if metricsLn != nil {
			metricsLn.Close()
		}
	}
	if err := checkSeed(cfg); err != nil {
		closeListeners()
		return err
	}
	if cfg.Restore != "" {
		meta, err := restoreSnapshot(cfg.Restore, cfg.DataDir, cfg.ID, cfg.Bootstrap)
		switch {
		case errors.Is(err, errRestoredAlready):
			// A service that keeps -restore in its command line: a restart is a restart.
			logger.Info(err.Error() + "; starting on it as it is (-restore can be dropped from the command line)")
		case err != nil:
			closeListeners()
			return explainStartError(cfg.DataDir, err)
		default:
			logger.Info("restored a snapshot into a new data dir", "file", cfg.Restore, "index", meta.Index, "term", meta.Term, "members", meta.Config.Members)
		}
	}
	store, st, snapData, notice, err := openNodeStorage(cfg.DataDir, cfg.ID, cfg.Bootstrap, cfg.ClusterToken)
	if err != nil {
		closeListeners()
		return explainStartError(cfg.DataDir, err)
	}
	defer store.Close()
	if notice != "" {
		logger.Info(notice)
	}
	var sm machine
	if snapData != nil {
		if err := openSnapshotMessages(cfg.DataDir, st.Snapshot, snapData, &sm); err != nil {
			closeListeners()
			return fmt.Errorf("%w: %s: %v", errDataDir, filepath.Join(cfg.DataDir, snapshotName(st.Snapshot)), err)
		}
		snapData = nil // the messages stay in the file
	}
	defer func() { sm.close() }()
	svc := &rpcService{store: store, logger: logger}
	trans := newTransport(cfg.ID, cfg.DataDir, nil, logger) // the node takes its reports (newNode)
	trans.useTLS(cfg.TLS)
	srv := rpc.NewServer()
	if err := srv.RegisterName("Raft", svc); err != nil {
		closeListeners()
		return err
	}
	go trans.serve(ln, srv)
	defer trans.stop()
	if cfg.Listening != nil {
		cfg.Listening()
	}
	forming := store.Meta().Forming != 0
	if forming {
		first, ok, err := formCluster(cfg, store, trans, logger, stop)
		if err != nil || !ok {
			if metricsLn != nil {
				metricsLn.Close()
			}
			return explainStorageError(err)
		}
		st.Bootstrap = first
	}
	restoredConfig(store.Meta(), &st.Snapshot)
	if err := initClusterID(store, st, cfg); err != nil {
		return explainStartError(cfg.DataDir, err)
	}
	n := newNode(cfg, st, store, trans, stdout, logger)
	n.sm = sm
	n.loaded = time.Since(start)
	stopMetrics := n.startMetrics(metricsLn)
	defer stopMetrics()
	svc.n.Store(n)
	go func() {
		select {
		case <-stop:
			if !cfg.NoHandOff {
				n.handOff(4 * cfg.Election)
			}
			close(n.stopc)
		case <-n.donec:
		}
	}()
	n.logStart(cfg, st, forming)
	if cfg.TLS == nil {
		logger.Warn("no TLS: anyone who can reach this port can join the cluster and send it commands; raft -C gencerts sets up mutual TLS", "addr", cfg.ID)
	}
	err = n.run()
	close(n.donec)
	if err != nil {
		return fmt.Errorf("node %s stopped: %w", n.id, explainStorageError(err))
	}
	logger.Info("node stopped")
	return nil
}

// takeFormStep records a forming step in the data dir of self (which is new, and
// forming): a first configuration accepted, the cluster formed (done, with first as its
// first configuration), or this data dir a spare of a running cluster (done, with first
// the configuration it starts with, which lacks it).
func takeFormStep(store *storage, self, token string, step formStep) (first Config, done bool, err error) {
	switch step.kind {
	case formAccept:
		err = store.UpdateMeta(func(m *walMeta) { m.Bootstrap, m.Forming = step.config, formAccepted })
		return Config{}, false, err
	case formStart:
		id := newClusterID(step.config, token)
		err = store.UpdateMeta(func(m *walMeta) { m.Bootstrap, m.Forming, m.ClusterID = step.config, 0, id })
		return step.config, err == nil, err
	case formSpare:
		seed := store.Meta().Bootstrap.Members
		spare := Config{Members: slices.DeleteFunc(slices.Clone(seed), func(m string) bool { return m == self })}
		err = store.UpdateMeta(func(m *walMeta) { m.Bootstrap, m.Forming, m.ClusterID = spare, 0, step.cluster })
		return spare, err == nil, err
	}
	return Config{}, false, nil
}

// checkSeed refuses an explicit -c that contradicts the data dir's: a data dir belongs
// to the cluster it was made for. (Starting the node of a one-member cluster with the
// -c of a new three-member one made two leaders, each committing on its own.)
func checkSeed(cfg nodeConfig) error {
	if !cfg.ExplicitMembers {
		return nil
	}
	meta, err := peekMeta(cfg.DataDir)
	if err != nil || meta == nil {
		return err // openStorage says what is wrong with the dir
	}
	seed := meta.Seed
	if seed == nil {
		seed = meta.Bootstrap.Members
	}
	if sameMembers(seed, cfg.Bootstrap.Members) {
		return nil
	}
	return fmt.Errorf("%w: %s was made with -c '%s', and this node was started with -c '%s': a data dir belongs to the cluster it was made for. To start it again, use its -c (or leave -c out: the data dir holds the membership); for a node of another cluster, give it a data dir of its own (-d)",
		errDataDir, cfg.DataDir, strings.Join(seed, ","), strings.Join(cfg.Bootstrap.Members, ","))
}

// formCluster forms a new cluster with the other members of -c (membership.go, "Forming
// a new cluster"): it asks them, until every one has answered and holds the same first
// configuration, and returns it. If the cluster turns out not to be new, the data dir
// records that it is a spare, and the configuration returned is one without it. ok is
// false if the node was stopped meanwhile.
func formCluster(cfg nodeConfig, store *storage, trans *transport, logger *slog.Logger, stop <-chan struct{}) (first Config, ok bool, err error) {
	meta := store.Meta()
	clients := map[string]*rpc.Client{}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	ask := func(peer string) (FormReply, error) {
		c := clients[peer]
		if c == nil {
			var err error
			if c, err = trans.dial(peer); err != nil {
				return FormReply{}, err
			}
			clients[peer] = c
		}
		var reply FormReply
		err := callWithin(c, "Raft.Form", &FormRequest{From: cfg.ID, Formation: meta.Formation, Incarnation: meta.Incarnation}, &reply, deliverTimeout, stop, errStopped)
		if err != nil {
			c.Close()
			delete(clients, peer)
			return FormReply{}, err
		}
		if reply.Error != "" {
			return FormReply{}, errors.New(reply.Error)
		}
		return reply, nil
	}
	logger.Info("listening", "dir", cfg.DataDir, "members", meta.Bootstrap.Members, "incarnation", fmt.Sprintf("%016x", meta.Incarnation),
		"forming", "a new cluster: this data dir is new, so the cluster starts once every member of -c has started with a new data dir of its own")
	said := map[string]bool{}
	ticker := time.NewTicker(cfg.Election)
	defer ticker.Stop()
	for {
		meta = store.Meta()
		var accepted *Config
		if meta.Forming == formAccepted {
			accepted = &meta.Bootstrap
		}
		answers := map[string]FormReply{}
		for _, peer := range meta.Bootstrap.Members {
			if peer == cfg.ID {
				continue
			}
			reply, err := ask(peer)
			if errors.Is(err, errStopped) {
				return Config{}, false, nil
			}
			if err != nil {
				if key := peer + ": " + err.Error(); !said[key] && !errors.Is(err, syscall.ECONNREFUSED) {
					said[key] = true
					logger.Warn("forming a new cluster: a member did not answer", "member", peer, "err", err)
				}
				continue
			}
			answers[peer] = reply
		}
		step := decideForming(cfg.ID, meta.Incarnation, meta.Bootstrap.Members, accepted, answers)
		if step.kind == formWait {
			if !said[step.why] {
				said[step.why] = true
				logger.Info("forming a new cluster: " + step.why)
			}
		} else {
			first, done, err := takeFormStep(store, cfg.ID, cfg.ClusterToken, step)
			if err != nil {
				return Config{}, false, err
			}
			switch {
			case step.kind == formStart:
				logger.Info("formed a new cluster", "cluster_id", formatClusterID(store.Meta().ClusterID), "members", first.Members)
			case step.kind == formSpare:
				logger.Warn(fmt.Sprintf("this data dir is new, but the cluster is not: %s. So this server is not the member %s was, whose data is gone with its old data dir: it waits as a spare and takes no part. To bring it back, remove %s from the cluster and add it again: raft -C removeserver -m %s -S <member>, then raft -C addserver -m %s -S <member>",
					step.why, cfg.ID, cfg.ID, cfg.ID, cfg.ID))
			}
			if done {
				return first, true, nil
			}
			continue // accepted: tell the others at once
		}
		select {
		case <-stop:
			return Config{}, false, nil
		case <-ticker.C:
		}
	}
}

// explainStorageError says what an operator can do about a data dir that cannot be
// written. The node stops rather than carry on with state it cannot keep; everything it
// acknowledged is already on disk (and on a majority), so stopping loses nothing.
func explainStorageError(err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EFBIG):
		return fmt.Errorf("%w: no room left to write the data dir (disk full, quota or file size limit); this node takes no more writes. Everything it acknowledged is on disk: make room and restart it", err)
	case errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%w: the data dir cannot be written (read-only file system or permissions); this node takes no more writes. Everything it acknowledged is on disk: make the data dir writable and restart it", err)
	case errors.Is(err, syscall.EIO):
		return fmt.Errorf("%w: the disk reported an I/O error; this node takes no more writes. Check the disk before restarting it", err)
	}
	return err
}

// explainStartError says what an operator can do about a data dir that a node could not
// start on. It never ran: it took no writes and answered no one.
func explainStartError(dir string, err error) error {
	didNot := "the node did not start"
	switch {
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w: the data dir %s cannot be written (read-only file system), so %s; make it writable, or give the node another data dir (-d)", err, dir, didNot)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%w: the data dir %s cannot be written (permissions), so %s; make it writable by this user, or give the node another data dir (-d)", err, dir, didNot)
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("%w: the data dir %s cannot be made: part of its path is a file, not a directory, so %s; give the node another data dir (-d)", err, dir, didNot)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EFBIG):
		return fmt.Errorf("%w: no room to write the data dir %s (disk full, quota or file size limit), so %s; make room and start it again", err, dir, didNot)
	case errors.Is(err, syscall.EIO):
		return fmt.Errorf("%w: the disk of the data dir %s reported an I/O error, so %s; check the disk", err, dir, didNot)
	}
	return err
}

// newNode builds a node on its opened data dir; trans is its transport (nil: a new one).
func newNode(cfg nodeConfig, st persistentState, store *storage, trans *transport, stdout io.Writer, logger *slog.Logger) *node {
	tick := max(min(cfg.Heartbeat/3, 10*time.Millisecond), time.Millisecond)
	ticks := func(d time.Duration) int { return max(int((d+tick/2)/tick), 1) }
	seed := fnv.New64a()
	seed.Write([]byte(cfg.ID))
	var incarnation uint64
	if store != nil {
		incarnation = store.Incarnation()
	}
	core := newRaft(coreConfig{
		ID:             cfg.ID,
		Incarnation:    incarnation,
		ElectionTicks:  max(ticks(cfg.Election), 2),
		HeartbeatTicks: ticks(cfg.Heartbeat),
		MaxMsgBytes:    maxMsgBytes,
		MaxInflight:    maxInflight,
		Rand:           rand.New(rand.NewSource(time.Now().UnixNano() ^ int64(seed.Sum64()))),
	}, st)
	n := &node{
		id: cfg.ID, dir: cfg.DataDir, core: core, store: store,
		out: log.New(stdout, "", log.LstdFlags), logger: logger, tick: tick,
		recvc: make(chan Message, 4096), callc: make(chan *inCall, 64), propc: make(chan []*proposal, 1024),
		stopc: make(chan struct{}), donec: make(chan struct{}),
		pending: map[uint64]*proposal{}, adding: map[string]*proposal{}, quietTo: core.commitIndex,
		reads: map[uint64]*proposal{}, statusc: make(chan chan status), runc: make(chan func()),
		writec: make(chan writeReq, maxWriteBatch), writtenc: make(chan writeDone), writerDone: make(chan struct{}),
		snapshotEntries: cfg.SnapshotEntries, nextSnapshot: st.Snapshot.Index + cfg.SnapshotEntries, maxMessage: cfg.MaxMessage,
		snapc: make(chan snapshotDone, 1), replyWait: min(maxReplyWait, max(cfg.Heartbeat, time.Millisecond)),
	}
	if trans == nil {
		trans = newTransport(cfg.ID, cfg.DataDir, n.report, logger)
	}
	n.trans, trans.report, trans.receive = trans, n.report, n.deliver
	if store != nil {
		n.trans.cluster = func() uint64 { id, _ := store.ClusterID(); return id }
	}
	return n
}

// clusterTime is the time to stamp a command with (see node.leadSince).
func (n *node) clusterTime() int64 {
	if n.leadSince.IsZero() || n.leadTerm != n.core.currentTerm {
		n.leadTerm, n.leadSince, n.leadFrom = n.core.currentTerm, time.Now(), n.sm.clock
	}
	return max(n.leadFrom+int64(time.Since(n.leadSince)), n.sm.clock)
}

// report hands the event loop a message from the transport itself.
func (n *node) report(m Message) {
	select {
	case n.recvc <- m:
	case <-n.donec:
	}
}

// logStart says that the node started, and on what; "listening" unless formCluster has
// already said so.
func (n *node) logStart(cfg nodeConfig, st persistentState, formed bool) {
	s := n.core.status()
	id, _ := n.store.ClusterID()
	attrs := []any{"cluster_id", formatClusterID(id), "dir", cfg.DataDir, "loaded_in", n.loaded.Round(time.Millisecond).String(), "term", s.Term, "last_index", s.LastLog}
	if st.Snapshot.Index > 0 {
		attrs = append(attrs, "snapshot_index", st.Snapshot.Index)
	}
	msg := "listening"
	if formed {
		msg = "started"
	}
	n.logger.Info(msg, append(attrs, "members", s.Config.Members)...)
	switch {
	case s.RemovedAt > 0:
		n.logger.Info(removedNote(n.id, s.RemovedAt))
	case !s.Config.contains(n.id):
		n.logger.Info("not a member, so it will not campaign; add it with: raft -C addserver -m " + n.id + " -S <member>")
	}
	n.seen = s
}

// run is the event loop.
func (n *node) run() (err error) {
	n.lastTick = time.Now()
	timer := time.NewTimer(n.tick)
	defer timer.Stop()
	go n.writer()
	defer func() {
		// Whatever was handed to the disk is made durable (and its replies sent) before
		// the node stops.
		if err == nil {
			err = n.flushWrites()
		}
		n.stopWriter()
	}()
	for {
		if err := n.handleReady(); err != nil {
			return err
		}
		n.closeCalls()
		timer.Reset(n.untilNextTick())
		select {
		case <-n.stopc:
			return nil
		case <-timer.C:
			n.advanceClock()
			n.expireWaiting(time.Now())
		case m := <-n.recvc:
			n.advanceClock()
			n.step(m)
		case c := <-n.callc:
			n.advanceClock()
			n.stepCall(c)
		case ps := <-n.propc:
			n.proposeAll(ps)
		case reply := <-n.statusc:
			n.advanceClock()
			reply <- n.core.status()
		case f := <-n.runc:
			f()
		case done := <-n.writtenc:
			if err := n.written(done); err != nil {
				return err
			}
		case done := <-n.snapc:
			if err := n.snapshotWritten(done); err != nil {
				return err
			}
		}
		// Take whatever else is waiting, so one write and one fsync cover all of it.
	drain:
		for taken := 0; taken < maxDrain; taken++ {
			select {
			case m := <-n.recvc:
				n.step(m)
			case c := <-n.callc:
				n.stepCall(c)
			case ps := <-n.propc:
				n.proposeAll(ps)
				taken += len(ps) - 1
			default:
				break drain
			}
		}
	}
}

// advanceClock ticks the core for the ticks gone by since the last, up to the first that
// does more than count (TicksToNext); those after it are dropped, as a ticker drops the
// ticks of a loop that was held up.
func (n *node) advanceClock() {
	gone := time.Since(n.lastTick) / n.tick
	if gone <= 0 {
		return
	}
	for range min(int(gone), n.core.TicksToNext()) {
		n.core.Tick()
	}
	n.lastTick = n.lastTick.Add(gone * n.tick)
}

// untilNextTick is how long the loop may wait for an input before it must tick the core:
// until the tick that does more than count, or the next tick while clients wait (their
// deadlines are checked at each tick). An idle node wakes only for what it must do:
// a follower for its election timeout, a leader for its heartbeats.
func (n *node) untilNextTick() time.Duration {
	ticks := 1
	if len(n.pending) == 0 && len(n.adding) == 0 && len(n.reads) == 0 && len(n.readWait) == 0 && len(n.transfers) == 0 && len(n.watchers) == 0 {
		ticks = n.core.TicksToNext()
	}
	return max(time.Until(n.lastTick.Add(time.Duration(ticks)*n.tick)), 0)
}

// handleReady persists, sends and applies until the core has nothing left to hand out.
func (n *node) handleReady() error {
	for n.core.hasReady() {
		rd := n.core.Ready()
		early, late := splitMessages(rd.Messages)
		n.trans.send(early)
		for _, w := range rd.Warnings {
			n.logger.Warn(w)
		}
		if rd.Snapshot != nil {
			if err := n.flushWrites(); err != nil {
				return err
			}
			if err := n.installSnapshot(*rd.Snapshot); err != nil {
				return err
			}
		}
		for _, cu := range rd.CatchUps {
			n.caughtUp(cu)
		}
		// Committed entries are durable on a majority (and on the leader, which counts
		// itself only once durable): apply them, and answer their clients, before this
		// Ready's write rather than after it.
		n.metrics.applying(len(rd.Committed))
		for _, e := range rd.Committed {
			if err := n.apply(e); err != nil {
				return err
			}
		}
		for _, rs := range rd.ReadStates {
			n.readConfirmed(rs)
		}
		if rd.HardState == nil && len(rd.Entries) == 0 && n.writesOut() == 0 {
			// Nothing to write, and no write on its way for the replies to wait for.
			n.trans.send(late)
			n.core.Advance(rd)
			continue
		}
		if err := n.write(writeReq{rd: rd, late: late}); err != nil {
			return err
		}
	}
	n.dropUnusedSnapshots()
	n.logTransitions()
	if err := n.answerReads(); err != nil {
		return err
	}
	n.answerWatches()
	n.checkTransfers()
	n.maybeSnapshot()
	return nil
}

// step hands the core a message, noting snapshots received from the leader.
func (n *node) step(m Message) {
	if m.Type == MsgSnap && m.Snapshot != nil {
		n.received = append(n.received, *m.Snapshot)
	}
	n.core.Step(m)
}

// dropUnusedSnapshots removes received snapshots the core did not install (it had
// their entries already); installed ones were renamed.
func (n *node) dropUnusedSnapshots() {
	for _, meta := range n.received {
		if err := os.Remove(filepath.Join(n.dir, recvName(meta))); err != nil && !os.IsNotExist(err) {
			n.logger.Warn("remove unused snapshot", "err", err)
		}
	}
	n.received = nil
}

// installSnapshot makes a snapshot received from the leader this node's state: the log
// starts after it, durably, and the state machine is loaded from it.
func (n *node) installSnapshot(meta SnapshotMeta) error {
	recv, final := filepath.Join(n.dir, recvName(meta)), filepath.Join(n.dir, snapshotName(meta))
	if err := os.Rename(recv, final); err != nil {
		return fmt.Errorf("install snapshot %d: %w", meta.Index, err)
	}
	if err := syncDir(n.dir); err != nil {
		return fmt.Errorf("install snapshot %d: %w", meta.Index, err)
	}
	if err := n.store.SaveSnapshot(meta, true); err != nil {
		return err
	}
	data, err := readSnapshot(n.dir, meta)
	if err == nil {
		err = openSnapshotMessages(n.dir, meta, data, &n.sm)
	}
	if err != nil {
		return fmt.Errorf("install snapshot %d: %w", meta.Index, err)
	}
	n.metrics.snapshot(len(data))
	n.quietTo = max(n.quietTo, meta.Index)
	n.nextSnapshot = meta.Index + n.snapshotEntries // it has this one already
	n.logger.Info("installed snapshot from the leader", "index", meta.Index, "term", meta.Term, "bytes", len(data))
	return nil
}

// maybeSnapshot starts writing a snapshot in the background once enough entries have
// been applied since the last one. The event loop goes on meanwhile: the snapshot encodes
// a view of the messages that later applies do not touch.
func (n *node) maybeSnapshot() {
	applied := n.core.lastApplied
	if n.snapshotting || n.snapshotEntries == 0 || applied < n.nextSnapshot {
		return
	}
	meta := n.core.snapshotMeta(applied)
	view, err := n.sm.view()
	if err != nil {
		n.logger.Error("snapshot failed; the log stays whole until the next attempt", "index", applied, "err", err)
		n.nextSnapshot = applied + n.snapshotEntries
		return
	}
	n.snapshotting = true
	meta.Machine = machineFormat
	go func() {
		defer view.close()
		start := time.Now()
		stored, size, err := writeMachineSnapshot(n.dir, meta, view)
		n.snapc <- snapshotDone{meta: meta, stored: stored, bytes: int(size), took: time.Since(start), err: err}
	}()
}

// snapshotWritten compacts the log once a snapshot is durable.
func (n *node) snapshotWritten(done snapshotDone) error {
	n.snapshotting = false
	if done.err != nil {
		// The log is still whole; nothing is lost. Try again at the next threshold.
		n.logger.Error("snapshot failed; the log stays whole until the next attempt", "index", done.meta.Index, "err", done.err)
		n.nextSnapshot = n.core.lastApplied + n.snapshotEntries
		return nil
	}
	n.nextSnapshot = done.meta.Index + n.snapshotEntries
	if done.meta.Index <= n.core.snapshot.Index {
		return nil // a snapshot from the leader got further meanwhile
	}
	if err := n.flushWrites(); err != nil {
		return err
	}
	if err := n.store.SaveSnapshot(done.meta, false); err != nil {
		return err
	}
	n.metrics.snapshot(done.bytes)
	n.core.Compact(done.meta)
	// Its messages are in the file now: read them from there, not memory.
	f, err := os.Open(filepath.Join(n.dir, snapshotName(done.meta)))
	if err != nil {
		return fmt.Errorf("open the snapshot just written: %w", err)
	}
	done.stored.f = f
	n.sm.storeUpTo(done.stored)
	n.logger.Info("snapshot written; log compacted", "index", done.meta.Index, "bytes", done.bytes, "took", done.took.Round(time.Millisecond).String())
	return nil
}

// caughtUp hears the end of a server's catch-up: the entry adding it is in the log (its
// client waits for it to commit), or the addition was abandoned.
func (n *node) caughtUp(cu catchUpResult) {
	p := n.adding[cu.Server]
	delete(n.adding, cu.Server)
	if cu.Err != nil {
		err := cu.Err
		if f := n.trans.lastFailure(cu.Server); f != nil && errors.Is(err, errCatchUpUnreachable) {
			// The transport knows more than "no answer": say what it was told.
			if f.answered {
				err = fmt.Errorf("the new server answered, but took none of the leader's messages: %v; membership unchanged", f.err)
			} else {
				err = fmt.Errorf("the new server did not answer (%v); is it running, and reachable at that address? membership unchanged", f.err)
			}
		}
		n.logger.Warn("not adding server", "server", cu.Server, "err", err)
		if p != nil {
			n.refuse(p, err)
		}
		return
	}
	n.logger.Info("server caught up; adding it", "server", cu.Server, "index", cu.Index)
	if p != nil {
		p.index, p.term = cu.Index, cu.Term
		n.pending[cu.Index] = p
	}
}

// handOff transfers leadership, if this node leads, before it stops: the others then
// need not wait out an election timeout to notice it is gone (§3.10).
func (n *node) handOff(wait time.Duration) {
	resp := n.command(&CommandRequest{Command: cmdTransfer, Forwarded: true, Wait: wait})
	switch {
	case resp.NotLeader || resp.Error == errNoTransferTarget.Error():
		// Not the leader, or the only member: nothing to hand over.
	case resp.Status == StatusOK:
		n.logger.Info("handed leadership over before stopping", "to", resp.Leader)
	default:
		n.logger.Warn("could not hand leadership over before stopping", "err", resp.Error)
	}
}

// readConfirmed hears that a read's leadership was confirmed (or lost).
func (n *node) readConfirmed(rs ReadState) {
	p := n.reads[rs.Ctx]
	delete(n.reads, rs.Ctx)
	if p == nil {
		return
	}
	if rs.Err != nil {
		n.refuse(p, rs.Err)
		return
	}
	p.index, p.term = rs.Index, rs.Term
	n.readWait = append(n.readWait, p)
}

// answerReads answers the confirmed reads whose index has been applied, from the state
// machine as it is now: it holds at least everything committed before the read arrived.
// A stored message that cannot be read stops the node, before any answer built on it.
func (n *node) answerReads() error {
	keep := n.readWait[:0]
	for _, p := range n.readWait {
		if p.index > n.core.lastApplied {
			keep = append(keep, p)
			continue
		}
		result, messages := n.read(p.req)
		if n.sm.err != nil {
			n.readWait = append(keep, p) // unanswered: the node stops, and its client hears so
			return n.sm.err
		}
		p.done <- CommandResponse{Status: StatusOK, Index: n.core.lastApplied, Term: p.term, Leader: n.id, Result: result, Messages: messages}
	}
	n.readWait = keep
	return nil
}

// read is what a read command answers: its result, or for print with AsList the
// messages instead.
func (n *node) read(req *CommandRequest) (string, []string) {
	total := n.sm.total()
	if req.Message == "count" {
		return fmt.Sprintf("Count %d", total), nil
	}
	from := min(max(req.From, 1)-1, total)
	to := total
	if req.N > 0 {
		to = min(to, from+req.N)
	}
	messages := n.sm.slice(from, to)
	if req.AsList {
		return "", messages
	}
	return "Logs [" + strings.Join(messages, " ") + "]", nil
}

// view asks the loop for the core's status.
func (n *node) view() (status, error) {
	reply := make(chan status, 1)
	select {
	case n.statusc <- reply:
	case <-n.donec:
		return status{}, fmt.Errorf("%s is shutting down", n.id)
	}
	return <-reply, nil
}

// status is the node's view of the cluster, for Raft.Status.
func (n *node) status() (NodeStatus, error) {
	s, err := n.view()
	if err != nil {
		return NodeStatus{}, err
	}
	st := NodeStatus{ID: s.ID, Role: s.Role.String(), Term: s.Term, Leader: s.Leader, Commit: s.Commit,
		Applied: s.Applied, LastIndex: s.LastLog, SnapshotIndex: s.Snapshot, Version: buildVersion(), RemovedAt: s.RemovedAt,
		ElectionTimeoutMs: int64(time.Duration(s.ElectionTicks) * n.tick / time.Millisecond)}
	id, _ := n.store.ClusterID()
	st.Cluster = formatClusterID(id)
	peers := map[string]peerStatus{}
	for _, p := range s.Peers {
		peers[p.ID] = p
	}
	add := func(id string, voter bool) {
		m := MemberStatus{ID: id, Voter: voter}
		if p, ok := peers[id]; ok {
			m.Tracked, m.Match, m.LastContactMs = true, p.Match, int64(time.Duration(p.Idle)*n.tick/time.Millisecond)
		} else if id == s.ID && s.Role == leader {
			m.Tracked, m.Match = true, s.LastLog
		}
		st.Members = append(st.Members, m)
	}
	for _, id := range s.Config.Members {
		add(id, true)
	}
	for _, p := range s.Peers {
		if !s.Config.contains(p.ID) {
			add(p.ID, false) // being caught up, or removed and still being told
		}
	}
	return st, nil
}

// inLoop runs f in the event loop, between two inputs, and returns once it has run.
func (n *node) inLoop(f func()) error {
	done := make(chan struct{})
	select {
	case n.runc <- func() { f(); close(done) }:
	case <-n.donec:
		return fmt.Errorf("%s is shutting down", n.id)
	}
	<-done
	return nil
}

// transferred answers a transfer of the leadership from `from` to target (empty: to
// any member) now that s.Leader leads.
func transferred(from, target string, s status) CommandResponse {
	result := fmt.Sprintf("leadership transferred from %s to %s (term %d)", from, s.Leader, s.Term)
	if target != "" && s.Leader != target {
		// The target lost its election to another up-to-date member.
		result = fmt.Sprintf("leadership moved from %s to %s (term %d), not to %s", from, s.Leader, s.Term, target)
	}
	return CommandResponse{Status: StatusOK, Term: s.Term, Leader: s.Leader, Result: result}
}

// checkTransfers answers leadership transfers that are over: another server leads, or
// this one gave up and leads on.
func (n *node) checkTransfers() {
	if len(n.transfers) == 0 {
		return
	}
	s := n.core.status()
	keep := n.transfers[:0]
	for _, p := range n.transfers {
		switch {
		case s.Role != leader && s.Leader != noLeader:
			p.done <- transferred(n.id, p.req.Message, s)
		case s.Role == leader && s.Transferee == noLeader:
			p.done <- CommandResponse{Status: StatusRejected, Leader: n.id,
				Error: fmt.Sprintf("%s did not take over within an election timeout; %s is still the leader", p.req.Message, n.id)}
		case time.Now().After(p.deadline):
			p.done <- CommandResponse{Status: StatusUnknown, Leader: n.id,
				Error: fmt.Sprintf("the transfer to %s did not finish within %v", p.req.Message, roundDuration(p.req.Wait))}
		default:
			keep = append(keep, p)
		}
	}
	n.transfers = keep
}

func (n *node) logTransitions() {
	s := n.core.status()
	n.metrics.transition(n.seen, s)
	if s.Role != n.seen.Role || s.Term != n.seen.Term || s.Leader != n.seen.Leader {
		switch {
		case s.Role == leader:
			n.logger.Info("elected leader", "term", s.Term)
		case s.Role == candidate:
			n.logger.Info("campaigning", "term", s.Term)
		case s.Role == preCandidate && n.seen.Leader != noLeader:
			n.logger.Warn("lost contact with the leader; asking the others whether an election could succeed (pre-vote)", "leader", n.seen.Leader, "term", s.Term)
		case s.Leader != noLeader:
			n.logger.Info("following leader", "leader", s.Leader, "term", s.Term)
		case n.seen.Role == leader && s.QuorumLost != "":
			n.logger.Warn("stepped down", "term", s.Term, "why", s.QuorumLost)
		case n.seen.Role == leader && s.Term > n.seen.Term:
			n.logger.Info("stepped down", "term", s.Term, "why", fmt.Sprintf("another server campaigns in term %d, later than its %d", s.Term, n.seen.Term))
		case n.seen.Role == leader:
			n.logger.Info("stepped down", "term", s.Term)
		}
	}
	if was, is := n.seen.Config.contains(n.id), s.Config.contains(n.id); was != is {
		switch {
		case is:
			n.logger.Info("now a member", "members", s.Config.Members)
		case s.RemovedAt > 0:
			n.logger.Info(removedNote(n.id, s.RemovedAt), "members", s.Config.Members)
		default:
			n.logger.Info("no longer a member; it will not campaign", "members", s.Config.Members)
		}
	}
	n.seen = s
	n.noteLeader()
}

// removedNote says what a server removed from the cluster by the configuration entry at
// index at does, and what to do with it. It keeps running, unlike a removed etcd member:
// its data dir is still good, and adding it back as it is is a plain addserver.
func removedNote(id string, at uint64) string {
	return fmt.Sprintf("removed from the cluster by the configuration entry at index %d: it takes no part and will not campaign. It keeps running so that it can be added back as it is (raft -C addserver -m %s -S <member>); to retire it, stop it and delete its data dir", at, id)
}

// apply applies one committed entry and answers the client waiting for it, if any.
func (n *node) apply(e Entry) error {
	var result string
	var err error
	switch e.Type {
	case EntryNormal:
		result = n.sm.apply(entryAt{e.Index, e.Term}, e.Data)
	case EntrySession:
		c, _ := decodeCommand(e.Data) // checked when it entered the log
		var at uint64
		result, at, err = n.sm.applyCommand(entryAt{e.Index, e.Term}, c)
		if n.sm.err != nil {
			// A stored message could not be read: stop before printing or answering a
			// short "Logs [...]".
			return n.sm.err
		}
		if at != e.Index {
			// A retry of a command applied before (at), or refused: nothing new to print.
			term := e.Term
			if t, ok := n.core.log.term(at); ok {
				term = t // where the first copy committed (unless compacted away)
			}
			n.answer(e, CommandResponse{Status: StatusOK, Index: at, Term: term, Result: result, Leader: n.id}, err)
			return nil
		}
	case EntryConfig:
		cc, _ := decodeConfChange(e.Data) // checked when it entered the log
		result = cc.announcement()
	}
	if n.sm.err != nil {
		return n.sm.err
	}
	if result != "" && e.Index > n.quietTo {
		n.out.Print(result)
	}
	n.answer(e, CommandResponse{Status: StatusOK, Index: e.Index, Term: e.Term, Result: result, Leader: n.id}, nil)
	return nil
}

// answer tells the client waiting for the entry at e.Index, if any, how it went.
func (n *node) answer(e Entry, resp CommandResponse, err error) {
	p := n.pending[e.Index]
	if p == nil {
		return
	}
	delete(n.pending, e.Index)
	n.metrics.appendDone(p, p.term == e.Term)
	switch {
	case p.term != e.Term:
		// Another leader's entry took its place: ours was never committed and never will be.
		p.done <- CommandResponse{Status: StatusRetry, Leader: n.core.leader,
			Error: fmt.Sprintf("lost in a leader change: index %d now holds another command (not committed)", e.Index)}
	case err != nil:
		p.done <- CommandResponse{Status: StatusRejected, Leader: n.id, Error: err.Error()}
	default:
		p.done <- resp
	}
}

// proposeAll hands the core a batch of client commands, in order.
func (n *node) proposeAll(ps []*proposal) {
	for _, p := range ps {
		n.propose(p)
	}
}

// propose hands a client command to the core.
func (n *node) propose(p *proposal) {
	var err error
	switch p.req.Command {
	case cmdClient:
		if p.req.Session == 0 {
			p.index, p.term, err = n.core.Propose(EntryNormal, []byte(p.req.Message))
			break
		}
		// The cluster's clock goes into the entry: sessions expire by log time.
		c := command{Session: p.req.Session, Seq: p.req.Seq, Time: n.clusterTime(), Message: p.req.Message}
		p.index, p.term, err = n.core.Propose(EntrySession, encodeCommand(c))
	case cmdAddServer:
		if err = n.core.AddServer(p.req.Message); err == nil {
			n.logger.Info("catching up a new server before adding it", "server", p.req.Message)
			n.adding[p.req.Message] = p
			return
		}
	case cmdRemoveServer:
		p.index, p.term, err = n.core.RemoveServer(p.req.Message)
	case cmdRead:
		n.readCtx++
		if err = n.core.ReadIndex(n.readCtx); err == nil {
			n.reads[n.readCtx] = p
			return
		}
	case cmdTransfer:
		var to string
		if to, err = n.core.TransferLeadership(p.req.Message); err == nil {
			n.logger.Info("transferring leadership", "to", to)
			p.req.Message = to
			n.transfers = append(n.transfers, p)
			return
		}
	}
	if err != nil {
		n.refuse(p, err)
		return
	}
	n.metrics.proposed(p)
	n.pending[p.index] = p
}

// refusal turns a core error into an answer for the client.
func (n *node) refusal(err error) CommandResponse {
	lead := n.core.leader
	switch err {
	case errNotLeader:
		resp := CommandResponse{Status: StatusRetry, NotLeader: true, Leader: lead}
		switch {
		case lead != noLeader:
			resp.Error = fmt.Sprintf("%s is not the leader; the leader is %s", n.id, lead)
		case !n.core.promotable():
			resp.Error = fmt.Sprintf("%s is not a member of the cluster and knows no leader; send commands to a member", n.id)
		default:
			resp.Error = fmt.Sprintf("%s knows no leader: an election is under way, or no majority of %v is running", n.id, n.core.config().Members)
		}
		return resp
	case errAlreadyLeader: // transferring to the leader: there is nothing to do
		return CommandResponse{Status: StatusOK, Term: n.core.currentTerm, Leader: lead,
			Result: fmt.Sprintf("%s is already the leader (term %d)", lead, n.core.currentTerm)}
	case errLeaderNotReady, errChangeInProgress, errTransferring, errCatchUpLeaderLost:
		return CommandResponse{Status: StatusRetry, Leader: lead, Error: err.Error()}
	default:
		return CommandResponse{Status: StatusRejected, Leader: lead, Error: err.Error()}
	}
}

// expireWaiting answers the commands still waiting when their client's wait is over.
func (n *node) expireWaiting(now time.Time) {
	for index, p := range n.pending {
		if now.After(p.deadline) {
			delete(n.pending, index)
			n.metrics.appendDone(p, false)
			p.done <- CommandResponse{Status: StatusUnknown, Leader: n.id,
				Error: fmt.Sprintf("%s appended the command but it did not commit within %v; it may still commit", n.id, roundDuration(p.req.Wait))}
		}
	}
	for server, p := range n.adding {
		if now.After(p.deadline) {
			delete(n.adding, server)
			p.done <- CommandResponse{Status: StatusUnknown, Leader: n.id,
				Error: fmt.Sprintf("%s is still catching %s up after %v; it may still be added", n.id, server, roundDuration(p.req.Wait))}
		}
	}
	for ctx, p := range n.reads {
		if now.After(p.deadline) {
			delete(n.reads, ctx)
			p.done <- CommandResponse{Status: StatusRetry, Leader: n.id,
				Error: fmt.Sprintf("%s could not confirm with a majority that it still leads within %v", n.id, roundDuration(p.req.Wait))}
		}
	}
}

// deliver hands messages from a peer to the loop (called by RPC handlers, and by the
// peers for the responses in their calls' replies).
func (n *node) deliver(msgs []Message) error {
	if err := n.checkDelivery(msgs); err != nil {
		return err
	}
	timer := time.NewTimer(deliverTimeout / 2)
	defer timer.Stop()
	for _, m := range msgs {
		select {
		case n.recvc <- m:
		case <-timer.C:
			return errBusy(n.id)
		case <-n.donec:
			return errShuttingDown(n.id)
		}
	}
	return nil
}

// checkDelivery refuses messages for another server, and what the core must never see.
func (n *node) checkDelivery(msgs []Message) error {
	for _, m := range msgs {
		if m.To != n.id {
			return fmt.Errorf("a message for %s reached %s, which is how that server names itself: a server is known by its address exactly as written in its -p and in -c (check that every member's -c lists the same addresses; add or name it as %s)", m.To, n.id, n.id)
		}
		if err := checkMessage(m); err != nil {
			return fmt.Errorf("refused %v from %s: %v", m.Type, m.From, err)
		}
	}
	return nil
}

func errBusy(id string) error         { return fmt.Errorf("%s is too busy to take messages", id) }
func errShuttingDown(id string) error { return fmt.Errorf("%s is shutting down", id) }

// checkMessage refuses what the core must never see: entries that do not decode.
func checkMessage(m Message) error {
	for _, e := range m.Entries {
		var err error
		switch e.Type {
		case EntryNormal, EntryNoop:
		case EntryConfig:
			_, err = decodeConfChange(e.Data)
		case EntrySession:
			_, err = decodeCommand(e.Data)
		default:
			err = fmt.Errorf("unknown entry type %d", e.Type)
		}
		if err != nil {
			return fmt.Errorf("entry %d: %v", e.Index, err)
		}
	}
	return nil
}

// initClusterID gives a data dir that has no cluster id one, if it can. A member of the
// first configuration names its cluster by that configuration (and -cluster-token): the
// same on every member, without a word exchanged. A fresh spare learns the id from the
// first leader that contacts it. A server that joined as a spare and has a log from
// before cluster ids guesses as the members do, from the -c it was started with (the
// cluster's, usually); a leader's id replaces a wrong guess.
func initClusterID(store *storage, st persistentState, cfg nodeConfig) error {
	if id, _ := store.ClusterID(); id != 0 {
		return nil
	}
	member := st.Bootstrap.contains(cfg.ID)
	if !member && len(st.Entries) == 0 && st.Snapshot.Index == 0 {
		return nil
	}
	return store.SetClusterID(newClusterID(st.Bootstrap, cfg.ClusterToken), !member)
}

// checkCluster refuses messages from a server of another cluster: a stray node of an
// old cluster on the same address, or a member of another cluster given a wrong -c. A
// server that does not know its cluster yet (a spare no leader has contacted) joins
// the cluster of the first leader that does (fromLeader).
func (n *node) checkCluster(cluster uint64, from string, fromLeader bool) error {
	mine, _ := n.store.ClusterID()
	if cluster == mine && mine != 0 {
		return nil
	}
	n.clusterMu.Lock()
	defer n.clusterMu.Unlock()
	mine, guessed := n.store.ClusterID()
	if (mine == 0 || guessed) && cluster != 0 && fromLeader {
		if err := n.store.SetClusterID(cluster, false); err != nil {
			return err
		}
		n.logger.Info("joined the cluster of the leader that contacted this server", "cluster_id", formatClusterID(cluster), "leader", from, "was", formatClusterID(mine))
		return nil
	}
	if cluster == mine && mine != 0 {
		return nil
	}
	err := fmt.Errorf("%s refused messages from %s: it is of cluster %s, and %s of cluster %s (a data dir belongs to one cluster: check -c, -d and -cluster-token)",
		n.id, from, formatClusterID(cluster), n.id, formatClusterID(mine))
	n.clusterWarned.warn(n.logger, from+"/"+formatClusterID(cluster), err.Error())
	return err
}

// warnOnce logs a warning once per key: a sender refused over and over (every
// heartbeat) is logged once. It keeps at most 1000 keys, so a flood of senders cannot
// grow it.
type warnOnce struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (w *warnOnce) warn(logger *slog.Logger, key, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[key] || len(w.seen) >= 1000 {
		return
	}
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	w.seen[key] = true
	logger.Warn(msg)
}

// command runs a client command: through the loop, or forwarded to the leader.
func (n *node) command(req *CommandRequest) CommandResponse {
	return n.commands([]*CommandRequest{req})[0]
}

// commands runs client commands as if each had come on its own: all go to the loop at
// once, and those a follower must forward go to the leader together.
func (n *node) commands(reqs []*CommandRequest) []CommandResponse {
	out := make([]CommandResponse, len(reqs))
	props := make([]*proposal, len(reqs))
	batch := make([]*proposal, 0, len(reqs)) // handed to the loop at once: one hand-off
	start := time.Now()
	for i, req := range reqs {
		if err := checkCommand(req, n.maxMessage); err != nil {
			out[i] = CommandResponse{Status: StatusRejected, Error: err.Error()}
			continue
		}
		if mine, _ := n.store.ClusterID(); req.Forwarded && req.Cluster != 0 && mine != 0 && req.Cluster != mine {
			out[i] = CommandResponse{Status: StatusRetry, Error: fmt.Sprintf("%s is not the leader of the cluster that forwarded the command (it is of cluster %s, and the command came from cluster %s): the forwarding member's leader is out of date; retry", n.id, formatClusterID(mine), formatClusterID(req.Cluster))}
			continue
		}
		if req.Wait <= 0 || req.Wait > maxCommandWait {
			req.Wait = maxCommandWait
		}
		// The loop answers every proposal it takes, by its deadline at the latest
		// (expireWaiting), so no timer is needed here.
		props[i] = &proposal{req: req, deadline: start.Add(req.Wait), done: make(chan CommandResponse, 1)}
		batch = append(batch, props[i])
	}
	if len(batch) > 0 {
		if resp, ok := n.submit(batch...); !ok {
			for i, p := range props {
				if p != nil {
					out[i], props[i] = resp, nil
				}
			}
		}
	}
	var forwards sync.WaitGroup
	for i, p := range props {
		if p == nil {
			continue
		}
		if out[i] = n.await(p); out[i].NotLeader && out[i].Leader != noLeader && !p.req.Forwarded {
			// A follower forwards to the leader it knows (and to the next, if that one
			// is replaced while it waits).
			forwards.Go(func() { out[i] = n.forward(out[i].Leader, p) })
		}
	}
	forwards.Wait()
	return out
}

// submit hands ps to the loop; if the node is shutting down, it says so instead.
func (n *node) submit(ps ...*proposal) (CommandResponse, bool) {
	select {
	case n.propc <- ps:
		return CommandResponse{}, true
	case <-n.donec:
		return CommandResponse{Status: StatusRetry, Error: fmt.Sprintf("%s is shutting down", n.id)}, false
	}
}

// await waits for the loop's answer to p.
func (n *node) await(p *proposal) CommandResponse {
	select {
	case resp := <-p.done:
		return resp
	case <-n.donec:
		return CommandResponse{Status: StatusUnknown, Error: fmt.Sprintf("%s shut down before the command committed; it may still commit", n.id)}
	}
}

// checkCommand validates a command before it goes near the log.
func checkCommand(req *CommandRequest, maxMessage int) error {
	switch req.Command {
	case cmdClient:
		if req.Message == "" {
			return fmt.Errorf("empty message")
		}
		if len(req.Message) > maxMessage {
			return fmt.Errorf("the message is %d bytes; this cluster takes at most %d (-max-message)", len(req.Message), maxMessage)
		}
		if req.Session != 0 && req.Seq == 0 {
			return fmt.Errorf("a session's commands are numbered from 1")
		}
	case cmdRead:
		if req.Message != "print" && req.Message != "count" {
			return fmt.Errorf("read %s: want print or count", quote(req.Message))
		}
	case cmdAddServer, cmdRemoveServer, cmdTransfer:
		if req.Command == cmdTransfer && req.Message == "" {
			return nil // to the most up-to-date member
		}
		addr, err := parseAddress(req.Message)
		if err != nil {
			return err
		}
		if addr != req.Message {
			return fmt.Errorf("address %s is not in canonical form %q", quote(req.Message), addr)
		}
	default:
		return fmt.Errorf("unknown command %s", quote(req.Command))
	}
	return nil
}
