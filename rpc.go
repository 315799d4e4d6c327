// rpc.go: the transport. net/rpc over TCP (or mutual TLS, tls.go), service "Raft" with three methods:
//
//	Raft.Deliver          a batch of Raft messages from one server to another (one-way:
//	                      the replies are messages of their own, sent back the same way)
//	Raft.InstallSnapshot  a piece of a snapshot file (snapshot.go)
//	Raft.Command          a client command, answered once it is committed and applied
//
// Each peer has a bounded queue and one sender goroutine holding one connection, with
// one Deliver call in flight: messages arrive in the order they were sent (net/rpc runs
// concurrent calls in parallel, so pipelining calls would reorder them), and everything
// queued while a call is out goes in the next batch. A full queue drops messages rather
// than block the event loop; Raft resends what matters. Every call is bounded by a timer,
// since net/rpc's Call has none.
package main

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/rpc"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Batch is the argument of Raft.Deliver.
type Batch struct {
	Cluster  uint64 // the sender's cluster id: members of other clusters are refused
	Messages []Message
}

// Ack is the empty reply of Raft.Deliver: the messages were handed to the event loop.
type Ack struct{}

// CommandRequest is the argument of Raft.Command.
type CommandRequest struct {
	Command   string        // cmdClient, cmdRead, cmdAddServer, cmdRemoveServer or cmdTransfer
	Message   string        // the text to append, what to read, or the server to add, remove or transfer to
	Wait      time.Duration // how long the client waits for the outcome
	Forwarded bool          // sent by a follower for a client: the receiver does not forward again
	// Forwarded: the follower's cluster id. A leader of another cluster (one that a
	// member removed from this one formed anew at the address it had) refuses it.
	Cluster uint64
	// The client's session and this command's number in it (clientcommand): a command
	// sent again with the same pair is applied once, and answered as the first time.
	// Session 0: no session.
	Session, Seq uint64
	From, N      uint64 // read print: messages From.. (1-based), at most N (0: all)
	// read print: answer with the messages in Messages (the client's -json), else in
	// Result as "Logs [...]"; never both, as a log can be long.
	AsList bool
}

// StatusRequest is the argument of Raft.Status.
type StatusRequest struct{}

// NodeStatus is the reply of Raft.Status: one node's view of the cluster.
type NodeStatus struct {
	ID            string         `json:"id"`
	Role          string         `json:"role"`
	Term          uint64         `json:"term"`
	Leader        string         `json:"leader"`
	Commit        uint64         `json:"commit_index"`
	Applied       uint64         `json:"applied_index"`
	LastIndex     uint64         `json:"last_log_index"`
	SnapshotIndex uint64         `json:"snapshot_index"`
	Cluster       string         `json:"cluster_id"`
	Version       string         `json:"version"` // the node's binary (version.go)
	Members       []MemberStatus `json:"members"`
	// The configuration entry that removed this node from the cluster (0: it was not).
	RemovedAt uint64 `json:"removed_at,omitempty"`
	// Its election timeout, by which health judges the leader's last contact with each
	// member (0 from a node that predates it).
	ElectionTimeoutMs int64 `json:"election_timeout_ms,omitempty"`
}

// MemberStatus is a server in the configuration (or being added), as a node sees it.
// Only a leader knows how far the others are (Tracked).
type MemberStatus struct {
	ID            string `json:"id"`
	Voter         bool   `json:"voter"`
	Tracked       bool   `json:"tracked"`
	Match         uint64 `json:"match_index"`
	LastContactMs int64  `json:"last_contact_ms"`
}

// CommandStatus is the outcome of a command. Decisions travel in these fields, never
// in an error string.
type CommandStatus uint8

const (
	StatusOK       CommandStatus = iota + 1 // committed and applied at Index
	StatusRetry                             // not committed; sending it again may succeed (no leader yet, a change in progress)
	StatusRejected                          // not committed, and sending it again will not help (already a member, ...)
	StatusUnknown                           // it may or may not commit (the leader was lost after it appended it)
)

// CommandResponse is the reply of Raft.Command.
type CommandResponse struct {
	Status      CommandStatus
	Index, Term uint64 // where it committed
	Result      string // what applying it printed ("Count 3", "Logs [...]", "Added new peer :9993")
	// read print with AsList: the messages read, one string each, as stored ("Logs
	// [...]" in Result cannot be split back into messages that hold spaces), and Result
	// is empty.
	Messages    []string
	Leader      string // the leader, if known
	NotLeader   bool   // the server asked is not the leader (Leader says who is, if known)
	ForwardedTo string // the server asked forwarded the command to this leader
	Error       string // why it did not succeed
}

const (
	peerQueueLen    = 4096
	maxBatchMsgs    = 512
	maxBatchBytes   = 4 << 20
	dialTimeout     = 500 * time.Millisecond
	deliverTimeout  = 2 * time.Second
	minRedialWait   = 20 * time.Millisecond
	maxRedialWait   = 500 * time.Millisecond
	maxCommandWait  = 60 * time.Second
	forwardOverhead = 500 * time.Millisecond // extra time a forwarder waits for the leader's own answer
	// The largest gob message a server reads: a batch of messages (maxBatchBytes, or one
	// AppendEntries of up to 2 MiB), a snapshot piece (1 MiB) or a client message
	// (-max-message, at most 1 MiB), with room to spare. Larger is refused before it is
	// read: the gob decoder would allocate whatever size the sender claims.
	maxRPCBytes = 16 << 20
)

// errStopping: this server is shutting down.
var errStopping = errors.New("this server is shutting down")

// errNotSent marks a failure that happened before a request left: it certainly had no effect.
var errNotSent = errors.New("not sent")

// rpcService is what net/rpc exposes as "Raft". While a new data dir forms its cluster
// with the others of -c (formCluster), there is no node yet: the service answers
// Raft.Form from the data dir, and everything else with "not yet".
type rpcService struct {
	n      atomic.Pointer[node] // nil while forming
	store  *storage
	logger *slog.Logger
	warned warnOnce // servers of another -c refused, already logged
}

func newRPCService(n *node) *rpcService {
	s := &rpcService{store: n.store, logger: n.logger}
	s.n.Store(n)
	return s
}

// node is the running node, or errForming.
func (s *rpcService) node() (*node, error) {
	if n := s.n.Load(); n != nil {
		return n, nil
	}
	m := s.store.Meta()
	return nil, fmt.Errorf("%s is forming a new cluster: it starts once every member of %s has started with a new data dir", m.ID, strings.Join(m.Bootstrap.Members, ","))
}

// Form answers a member of -c that forms a new cluster (decideForming).
func (s *rpcService) Form(req *FormRequest, reply *FormReply) error {
	m := s.store.Meta()
	if req.Formation != m.Formation && m.Formation != 0 {
		reply.Error = fmt.Sprintf("%s refused messages from %s: they were started with another -c or -cluster-token (the -c of %s is %s); a new cluster forms only of members given the same", m.ID, req.From, m.ID, strings.Join(m.Seed, ","))
		s.warned.warn(s.logger, req.From, reply.Error)
		return nil
	}
	reply.Incarnation, reply.Config = m.Incarnation, m.Bootstrap
	switch m.Forming {
	case formGathering:
		reply.State, reply.Config = formGathering, Config{}
	case formAccepted:
		reply.State = formAccepted
	default:
		reply.State, reply.Cluster = formDone, m.ClusterID
	}
	return nil
}

// Deliver hands a batch of messages to the event loop.
func (s *rpcService) Deliver(b *Batch, _ *Ack) error {
	n, err := s.accept(b)
	if n == nil {
		return err
	}
	return n.deliver(b.Messages)
}

// Exchange hands a batch of messages to the event loop and returns the responses to
// them (reply.go).
func (s *rpcService) Exchange(b *Batch, r *Replies) error {
	n, err := s.accept(b)
	if n == nil {
		return err
	}
	r.Messages, err = n.exchange(b.Messages)
	return err
}

// accept returns the node to hand b to: nil if it is empty (with an error if there
// is no node to take it, or it comes from another cluster).
func (s *rpcService) accept(b *Batch) (*node, error) {
	n, err := s.node()
	if err != nil || len(b.Messages) == 0 {
		return nil, err
	}
	m := b.Messages[0]
	if err := n.checkCluster(b.Cluster, m.From, m.Type == MsgApp || m.Type == MsgHeartbeat || m.Type == MsgSnap); err != nil {
		return nil, err
	}
	return n, nil
}

// InstallSnapshot takes a piece of a snapshot from the leader.
func (s *rpcService) InstallSnapshot(c *SnapshotChunk, ack *SnapshotAck) error {
	n, err := s.node()
	if err != nil {
		return err
	}
	if err := n.checkCluster(c.Cluster, c.From, true); err != nil {
		return err
	}
	return n.receiveSnapshot(c, ack)
}

// Status reports the node's view of the cluster.
func (s *rpcService) Status(_ *StatusRequest, st *NodeStatus) error {
	n, err := s.node()
	if err != nil {
		return err
	}
	*st, err = n.status()
	return err
}

// Command runs a client command.
func (s *rpcService) Command(req *CommandRequest, resp *CommandResponse) error {
	n, err := s.node()
	if err != nil {
		*resp = CommandResponse{Status: StatusRetry, Error: err.Error()}
		return nil
	}
	*resp = n.command(req)
	return nil
}

// Commands runs client commands (batch.go).
func (s *rpcService) Commands(b *CommandBatch, resp *CommandBatchResponse) error {
	n, err := s.node()
	if err != nil {
		resp.Responses = make([]CommandResponse, len(b.Requests))
		for i := range resp.Responses {
			resp.Responses[i] = CommandResponse{Status: StatusRetry, Error: err.Error()}
		}
		return nil
	}
	reqs := make([]*CommandRequest, len(b.Requests))
	for i := range b.Requests {
		reqs[i] = &b.Requests[i]
	}
	resp.Responses = n.commands(reqs)
	return nil
}

// transport sends messages to peers and forwards commands. send is called only by the
// event loop; forward by RPC handlers.
type transport struct {
	id     string
	dir    string        // the data dir, where snapshots to send are
	report func(Message) // hands the event loop news from the transport (a snapshot not sent)
	// receive hands the event loop the responses in a reply (node.deliver).
	receive func([]Message) error
	// The open Exchange calls by caller, oldest first, whose replies take the responses
	// sent to it (reply.go). The event loop's only, as send is.
	calls  map[string][]*inCall
	logger *slog.Logger
	peers  map[string]*peer
	stopc  chan struct{}
	wg     sync.WaitGroup
	dial   func(addr string) (*rpc.Client, error) // how peers and forwarded commands connect (useTLS and tests replace it)
	tls    *tlsKeys                               // nil: plain TCP; else accept only TLS connections (useTLS)
	// The cluster id stamped on what this server sends (nil: none, in tests).
	cluster func() uint64

	mu           sync.Mutex
	fwd          *batcher          // commands forwarded to the leader, batched
	snapshotsOut map[string]bool   // followers a snapshot is being sent to
	conns        map[net.Conn]bool // accepted connections, closed on stop
	ln           net.Listener

	tlsWarned warnOnce // hosts that opened a TLS handshake with this member without TLS, already logged
}

func newTransport(id, dir string, report func(Message), logger *slog.Logger) *transport {
	t := &transport{id: id, dir: dir, report: report, logger: logger, peers: map[string]*peer{}, stopc: make(chan struct{}),
		dial: dialRPC, conns: map[net.Conn]bool{}, snapshotsOut: map[string]bool{}, calls: map[string][]*inCall{}}
	// t.dial, not dialRPC: useTLS and tests replace it after this.
	t.fwd = newBatcher(func(addr string) (*rpc.Client, error) { return t.dial(addr) }, forwardOverhead)
	return t
}

func dialRPC(addr string) (*rpc.Client, error) { return dialRPCClient(addr, dialTimeout, nil) }

func (t *transport) clusterID() uint64 {
	if t.cluster == nil {
		return 0
	}
	return t.cluster()
}

// serve accepts connections on ln and serves srv on each until stop.
func (t *transport) serve(ln net.Listener, srv *rpc.Server) {
	t.mu.Lock()
	t.ln = ln
	t.mu.Unlock()
	for {
		conn, err := ln.Accept()
		if err != nil {
			select {
			case <-t.stopc:
				return
			default:
			}
			t.logger.Error("accept failed", "addr", ln.Addr(), "err", err)
			time.Sleep(10 * time.Millisecond) // e.g. out of file descriptors: don't spin
			continue
		}
		t.mu.Lock()
		t.conns[conn] = true
		t.mu.Unlock()
		go func() {
			if c := t.handshake(conn); c != nil {
				if codec := t.serverCodec(c); codec != nil {
					srv.ServeCodec(codec)
				}
			}
			t.mu.Lock()
			delete(t.conns, conn)
			t.mu.Unlock()
		}()
	}
}

// send queues messages for their peers, or puts them in the reply of a call of theirs,
// and returns at once. The event loop's only.
func (t *transport) send(msgs []Message) {
	for _, m := range msgs {
		if t.inReply(m) {
			continue
		}
		if m.Type == MsgSnap {
			t.sendSnapshot(m)
			continue
		}
		p := t.peers[m.To]
		if p == nil {
			p = &peer{addr: m.To, t: t, queue: make(chan Message, peerQueueLen)}
			t.peers[m.To] = p
			t.wg.Add(1)
			go p.run()
		}
		select {
		case p.queue <- m:
		default: // the peer is slow or gone: drop, Raft resends
		}
	}
}

// stop closes the listener, every connection and every sender.
func (t *transport) stop() {
	close(t.stopc)
	t.mu.Lock()
	if t.ln != nil {
		t.ln.Close()
	}
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.fwd.stop()
	t.wg.Wait()
}

// peer sends queued messages to one server, one Deliver call at a time.
type peer struct {
	addr  string
	t     *transport
	queue chan Message
	down  bool // last attempt failed; logged once per outage
	old   bool // the peer knows no Raft.Exchange (until the next dial): use Deliver
	// Why the last attempt failed, until one succeeds (nil: it did not fail), and whether
	// the peer answered, refusing the batch: what the leader tells the client of a
	// server it could not add.
	failure atomic.Pointer[peerFailure]
}

// peerFailure is why messages to a peer did not get through.
type peerFailure struct {
	err      error
	answered bool // the peer answered and refused them (else: no answer)
}

func (p *peer) run() {
	defer p.t.wg.Done()
	var client *rpc.Client
	defer func() {
		if client != nil {
			client.Close()
		}
	}()
	wait := minRedialWait
	for {
		var batch []Message
		select {
		case m := <-p.queue:
			batch = p.fill(m)
		case <-p.t.stopc:
			return
		}
		// A connection idle since its peer restarted is found dead only when used; its
		// call fails before sending anything (rpc.ErrShutdown), so redial and resend once.
		// Losing that batch would cost an election its RequestVote.
		for attempt := 0; attempt < 2; attempt++ {
			if client == nil {
				var err error
				p.old = false
				if client, err = p.t.dial(p.addr); err != nil {
					p.failed(err)
					// What is queued is stale by the time we can connect: drop it.
					for len(p.queue) > 0 {
						<-p.queue
					}
					select {
					case <-time.After(wait):
					case <-p.t.stopc:
						return
					}
					wait = min(2*wait, maxRedialWait)
					break
				}
				wait = minRedialWait
			}
			err := p.deliver(client, batch)
			if errors.Is(err, errStopping) {
				return
			}
			if err == nil {
				p.recovered()
				break
			}
			var refused rpc.ServerError
			if errors.As(err, &refused) {
				p.failed(err) // it answered, but refused the batch; the connection is fine
				break
			}
			client.Close()
			client = nil
			if !errors.Is(err, rpc.ErrShutdown) {
				p.failed(err) // the batch may be lost; Raft resends
				break
			}
		}
	}
}

// deliver makes one bounded Exchange call, and hands the loop the responses in its
// reply; or a Deliver call, to a peer from before Exchange.
func (p *peer) deliver(client *rpc.Client, batch []Message) error {
	b := &Batch{Cluster: p.t.clusterID(), Messages: batch}
	if !p.old {
		r := Replies{deliver: p.t.receive}
		err := callWithin(client, "Raft.Exchange", b, &r, deliverTimeout, p.t.stopc, errStopping)
		if !oldPeer(err) {
			// Only a call that ended has its reply written: one given up on may still be
			// being decoded (found in review: a data race).
			if err != nil {
				return err
			}
			if !r.handed && len(r.Messages) > 0 && p.t.receive != nil {
				r.err = p.t.receive(r.Messages) // a codec that does not call arrived
			}
			if r.err != nil {
				p.t.logger.Warn("dropped the responses in a reply", "peer", p.addr, "err", r.err)
			}
			return nil
		}
		p.old = true
	}
	return callWithin(client, "Raft.Deliver", b, &Ack{}, deliverTimeout, p.t.stopc, errStopping)
}

// callWithin makes one call on conn and waits for its answer: at most wait, and not
// once stop is closed (nil: never), which returns stopped. A call given up on is left
// to its connection; the caller decides whether to drop it.
func callWithin(conn *rpc.Client, method string, args, reply any, wait time.Duration, stop <-chan struct{}, stopped error) error {
	call := conn.Go(method, args, reply, make(chan *rpc.Call, 1))
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-call.Done:
		return call.Error
	case <-timer.C:
		return fmt.Errorf("no answer within %v", roundDuration(wait))
	case <-stop:
		return stopped
	}
}

// fill builds a batch from m and whatever else is queued, within bounds.
func (p *peer) fill(m Message) []Message {
	batch, size := []Message{m}, messageBytes(m)
	for len(batch) < maxBatchMsgs && size < maxBatchBytes {
		select {
		case m := <-p.queue:
			batch = append(batch, m)
			size += messageBytes(m)
		default:
			return batch
		}
	}
	return batch
}

func messageBytes(m Message) int {
	n := 64
	for _, e := range m.Entries {
		n += 32 + len(e.Data)
	}
	return n
}

func (p *peer) failed(err error) {
	p.failure.Store(&peerFailure{err: err, answered: errors.As(err, new(rpc.ServerError))})
	if !p.down {
		p.down = true
		p.t.logger.Warn("peer unreachable; will keep retrying", "peer", p.addr, "err", err)
	}
}

func (p *peer) recovered() {
	p.failure.Store(nil)
	if p.down {
		p.down = false
		p.t.logger.Info("peer reachable again", "peer", p.addr)
	}
}

// lastFailure is why messages to addr did not get through the last time, if they have
// not since (nil: they did, or none were sent). Called by the event loop only.
func (t *transport) lastFailure(addr string) *peerFailure {
	if p := t.peers[addr]; p != nil {
		return p.failure.Load()
	}
	return nil
}

// forward sends a command to the leader and waits for its answer, until cancel is
// closed (errCanceled) at the latest. An error wrapping errNotSent means the command
// certainly did not reach the leader.
func (t *transport) forward(leader string, req *CommandRequest, cancel <-chan struct{}) (CommandResponse, error) {
	return t.fwd.call(leader, req, cancel)
}

// serverCodec is net/rpc's gob codec for the server side, with two additions: a request
// larger than maxRPCBytes is refused before it is read, and a request that does not
// decode is logged with where it came from. Either way the connection is closed; the
// node serves on.
type serverCodec struct {
	conn   io.ReadWriteCloser
	remote string
	logger *slog.Logger
	dec    *gob.Decoder
	enc    *gob.Encoder
	out    *bufio.Writer

	closing  sync.Once
	closeErr error
}

func newServerCodec(conn io.ReadWriteCloser, remote string, logger *slog.Logger) *serverCodec {
	out := bufio.NewWriter(conn)
	return &serverCodec{conn: conn, remote: remote, logger: logger,
		dec: gob.NewDecoder(&gobLimit{r: bufio.NewReader(conn), limit: maxRPCBytes}), enc: gob.NewEncoder(out), out: out}
}

func (c *serverCodec) ReadRequestHeader(r *rpc.Request) error {
	return c.refused(c.dec.Decode(r))
}

func (c *serverCodec) ReadRequestBody(body any) error {
	return c.refused(c.dec.Decode(body))
}

// refused closes the connection after a request that could not be read (net/rpc would
// read on, from wherever the refused request left the stream), and logs it, unless the
// connection just ended.
func (c *serverCodec) refused(err error) error {
	return refuseRequest(c.logger, c.remote, err, c.Close)
}

// refuseRequest is a server codec's answer to err reading a request from remote: nil
// passes, else the connection is closed (by close) and the error logged, unless it is
// the connection ending.
func refuseRequest(logger *slog.Logger, remote string, err error, close func() error) error {
	if err == nil {
		return nil
	}
	var netErr net.Error
	if err != io.EOF && !errors.Is(err, net.ErrClosed) && !errors.As(err, &netErr) && !errors.Is(err, syscall.ECONNRESET) {
		logger.Warn("refused a request that does not decode; connection closed", "from", remote, "err", err)
	}
	close()
	return err
}

func (c *serverCodec) WriteResponse(r *rpc.Response, body any) error {
	if err := c.enc.Encode(r); err != nil {
		c.Close()
		return err
	}
	if err := c.enc.Encode(body); err != nil {
		c.Close()
		return err
	}
	return c.out.Flush()
}

// Close closes the connection, once: the reading goroutine (refused), a handler's
// failed response and net/rpc itself may each call it.
func (c *serverCodec) Close() error {
	c.closing.Do(func() { c.closeErr = c.conn.Close() })
	return c.closeErr
}

// gobLimit passes a gob stream through, refusing a message whose length prefix (a gob
// unsigned integer: one byte below 128, else the negated count of big-endian bytes
// that follow) says it is larger than limit. It reads from a buffer (the length
// prefixes come a byte or two at a time: from the socket itself, each would be a
// system call), and is an io.ByteReader, so that gob reads it as it is instead of
// buffering it again.
type gobLimit struct {
	r       io.Reader
	limit   uint64
	pending []byte // the current message's length prefix, not yet passed on
	left    uint64 // bytes of the current message not yet passed on
	err     error  // a refused message: the stream ends there
}

func (g *gobLimit) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if len(g.pending) == 0 && g.left == 0 {
		if g.err = g.next(); g.err != nil {
			return 0, g.err
		}
	}
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	if uint64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, err := g.r.Read(p)
	g.left -= uint64(n)
	return n, err
}

func (g *gobLimit) ReadByte() (byte, error) {
	var b [1]byte
	_, err := io.ReadFull(g, b[:])
	return b[0], err
}

// next reads the length prefix of the next message.
func (g *gobLimit) next() error {
	var b [9]byte
	if _, err := io.ReadFull(g.r, b[:1]); err != nil {
		return err // io.EOF between messages: the stream ended cleanly
	}
	size, k := uint64(b[0]), 1
	if b[0] >= 0x80 {
		k += 256 - int(b[0])
		if k > len(b) {
			return fmt.Errorf("malformed request: a length prefix of %d bytes", k-1)
		}
		if _, err := io.ReadFull(g.r, b[1:k]); err != nil {
			return io.ErrUnexpectedEOF
		}
		size = 0
		for _, c := range b[1:k] {
			size = size<<8 | uint64(c)
		}
	}
	if size > g.limit {
		return fmt.Errorf("a request of %d bytes is over the limit of %d", size, g.limit)
	}
	g.pending, g.left = append(g.pending[:0], b[:k]...), size
	return nil
}
