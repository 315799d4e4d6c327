// metrics.go: the opt-in HTTP listener of -metrics: Prometheus metrics at /metrics (text
// format 0.0.4, written here), the Go profiler at /debug/pprof/, and the probes /health
// and /ready (health.go).
//
// The event loop keeps counters and latency histograms in atomics as it works; nothing
// it does waits for a scrape. What the core knows (term, role, indices, how far each
// follower is) a scrape asks the loop for, as Raft.Status does: one round trip per
// scrape, nothing per append. With -metrics off, node.metrics is nil and every hook
// returns at once.
package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof" // also registers on http.DefaultServeMux, which nothing here serves
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds of the latency histograms: an fsync takes from
// tens of microseconds (a disk that lies) to tens of milliseconds, an append that plus
// a round trip to the followers.
var latencyBuckets = []time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second,
}

// metrics is what the event loop counts for /metrics. The loop writes, scrapes read.
type metrics struct {
	proposals       atomic.Uint64 // client appends this node put in its log as leader
	proposalsFailed atomic.Uint64 // of those, answered "not committed" or "unknown"
	elections       atomic.Uint64 // times this node became candidate in a new term
	leaderChanges   atomic.Uint64 // times this node learned of a new leader (itself included)
	snapshots       atomic.Uint64 // snapshots written or installed from the leader
	snapshotBytes   atomic.Int64  // state machine bytes in the last one
	appendLatency   histogram     // a client append: taken by the loop to answered, applied
	fsyncLatency    histogram     // one write of hard state and entries by the disk writer (a write and an fsync)

	applyStart time.Time // loop only: when it began applying the current Ready's entries
}

func newMetrics() *metrics {
	m := &metrics{}
	m.appendLatency.init(latencyBuckets)
	m.fsyncLatency.init(latencyBuckets)
	return m
}

// histogram counts durations into buckets. Observations come from one goroutine (the
// loop) and cost two atomic adds; a reader may see a sum one observation ahead of the
// counts, which Prometheus tolerates.
type histogram struct {
	bounds []time.Duration // upper bounds, ascending
	counts []atomic.Uint64 // per bucket, not cumulative; the last one is +Inf
	sum    atomic.Int64    // nanoseconds
}

func (h *histogram) init(bounds []time.Duration) {
	h.bounds = bounds
	h.counts = make([]atomic.Uint64, len(bounds)+1)
}

func (h *histogram) observe(d time.Duration) {
	d = max(d, 0)
	i := 0
	for i < len(h.bounds) && d > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// --- Hooks for the event loop. Each is safe on a nil *metrics (-metrics off). ---

// proposed notes a command the core took into its log as leader.
func (m *metrics) proposed(p *proposal) {
	if m == nil || p.req.Command != cmdClient {
		return
	}
	p.taken = time.Now()
	m.proposals.Add(1)
}

// applying notes that the loop starts applying a Ready's committed entries. Their
// clients are answered as they are applied: one clock reading serves the whole batch.
func (m *metrics) applying(entries int) {
	if m != nil && entries > 0 {
		m.applyStart = time.Now()
	}
}

// appendDone notes the answer to a proposed command: committed (and applied), or not.
func (m *metrics) appendDone(p *proposal, committed bool) {
	if m == nil || p.req.Command != cmdClient {
		return
	}
	if !committed {
		m.proposalsFailed.Add(1)
		return
	}
	m.appendLatency.observe(m.applyStart.Sub(p.taken))
}

// saveStarts returns when a write of records starts, or the zero time if metrics are
// off or there is nothing to write (it returns at once, without an fsync).
func (m *metrics) saveStarts(records int) time.Time {
	if m == nil || records == 0 {
		return time.Time{}
	}
	return time.Now()
}

// saved notes the end of a Save that started at start.
func (m *metrics) saved(start time.Time) {
	if m != nil && !start.IsZero() {
		m.fsyncLatency.observe(time.Since(start))
	}
}

// transition notes the core's role, term and leader after a loop turn. The loop looks
// between inputs, so a node that campaigned and lost to a higher term within one turn's
// inputs is not counted; a new term in which it is candidate or leader always is.
func (m *metrics) transition(was, is status) {
	if m == nil {
		return
	}
	if is.Term > was.Term && (is.Role == candidate || is.Role == leader) {
		m.elections.Add(1)
	}
	if is.Leader != was.Leader && is.Leader != noLeader {
		m.leaderChanges.Add(1)
	}
}

// snapshot notes a snapshot written or installed, of size state machine bytes.
func (m *metrics) snapshot(size int) {
	if m != nil {
		m.snapshots.Add(1)
		m.snapshotBytes.Store(int64(size))
	}
}

// --- The listener. ---

// listenMetrics takes the -metrics port, if it is set (nil: off), before the node
// writes anything: a start that fails here leaves nothing behind.
func listenMetrics(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-metrics %s: %w (choose another address, or leave -metrics out)", addr, err)
	}
	return ln, nil
}

// startMetrics serves /metrics and /debug/pprof/ on ln (from listenMetrics; nil: off)
// until stop is called.
func (n *node) startMetrics(ln net.Listener) (stop func()) {
	if ln == nil {
		return func() {}
	}
	n.metrics = newMetrics()
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", n.serveMetrics)
	mux.HandleFunc("/health", n.serveHealth) // health.go
	mux.HandleFunc("/ready", n.serveReady)
	// pprof.Index also serves the named profiles: /debug/pprof/heap, goroutine, ...
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No write timeout: a CPU profile streams for as long as it was asked to run.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln) // returns once Close is called
	}()
	url := "http://" + ln.Addr().String()
	n.logger.Info("serving metrics and profiles", "metrics", url+"/metrics", "pprof", url+"/debug/pprof/", "ready", url+"/ready")
	return func() {
		// Close also ends the requests in flight: a scrape waiting on the loop sees it
		// stopped, a profile sees its connection closed.
		srv.Close()
		<-done
	}
}

// serveMetrics answers a scrape: the core's state, asked of the loop, then the counters.
func (n *node) serveMetrics(w http.ResponseWriter, r *http.Request) {
	st, err := n.status()
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	var x exposition
	n.metrics.write(&x, st)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(x.buf.Bytes())
}

// write writes every series: the node's state st, then what the loop counted.
func (m *metrics) write(x *exposition, st NodeStatus) {
	x.gauge("raft_term", "The current term.", float64(st.Term))
	x.header("raft_role", "gauge", "The node's role: 1 for the role it has, 0 for the others.")
	for r := follower; r <= leader; r++ {
		x.sample("raft_role", b2f(st.Role == r.String()), "role", r.String())
	}
	x.gauge("raft_commit_index", "The highest log index known to be committed.", float64(st.Commit))
	x.gauge("raft_applied_index", "The highest log index applied to the state machine.", float64(st.Applied))
	x.gauge("raft_last_log_index", "The index of the last entry in the log.", float64(st.LastIndex))
	x.gauge("raft_snapshot_index", "The index the log starts after (0: no snapshot yet).", float64(st.SnapshotIndex))
	x.header("raft_peer_replication_lag_entries", "gauge", "Leader only: entries in the leader's log that a server has not acknowledged.")
	if st.Role == leader.String() {
		for _, p := range st.Members {
			if p.Tracked && p.ID != st.ID {
				x.sample("raft_peer_replication_lag_entries", float64(st.LastIndex-min(p.Match, st.LastIndex)), "peer", p.ID)
			}
		}
	}
	x.counter("raft_proposals_total", "Client appends this node put in its log as leader.", m.proposals.Load())
	x.counter("raft_proposals_failed_total", "Client appends put in the log here whose client was told they did not commit, or might not have.", m.proposalsFailed.Load())
	x.histogram("raft_append_latency_seconds", "Client appends, from reaching the leader's event loop to their answer once committed and applied.", &m.appendLatency)
	x.histogram("raft_fsync_latency_seconds", "Writes of the log and hard state by the disk writer, each ending with an fsync.", &m.fsyncLatency)
	x.counter("raft_elections_total", "Elections this node started (became candidate in a new term).", m.elections.Load())
	x.counter("raft_leader_changes_total", "Times this node learned of a new leader, itself included.", m.leaderChanges.Load())
	x.counter("raft_snapshots_total", "Snapshots this node wrote, or installed from the leader.", m.snapshots.Load())
	x.gauge("raft_snapshot_bytes", "State machine bytes in the last snapshot written or installed.", float64(m.snapshotBytes.Load()))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// exposition is a page in the Prometheus text format, version 0.0.4: per metric family
// a # HELP and a # TYPE line, then its samples, "name{label="value",...} value".
type exposition struct {
	buf bytes.Buffer
}

// header starts a metric family of type typ (counter, gauge, histogram).
func (x *exposition) header(name, typ, help string) {
	fmt.Fprintf(&x.buf, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
}

// sample writes one sample; labels are name, value pairs.
func (x *exposition) sample(name string, v float64, labels ...string) {
	x.buf.WriteString(name)
	for i := 0; i+1 < len(labels); i += 2 {
		if i == 0 {
			x.buf.WriteByte('{')
		} else {
			x.buf.WriteByte(',')
		}
		x.buf.WriteString(labels[i] + `="` + escapeLabel(labels[i+1]) + `"`)
	}
	if len(labels) > 1 {
		x.buf.WriteByte('}')
	}
	x.buf.WriteString(" " + formatFloat(v) + "\n")
}

func (x *exposition) gauge(name, help string, v float64) {
	x.header(name, "gauge", help)
	x.sample(name, v)
}

func (x *exposition) counter(name, help string, v uint64) {
	x.header(name, "counter", help)
	x.buf.WriteString(name + " " + strconv.FormatUint(v, 10) + "\n")
}

// histogram writes h in seconds: cumulative buckets up to +Inf, then the sum and the
// count, which is the +Inf bucket's (so they agree however the loop raced the reader).
func (x *exposition) histogram(name, help string, h *histogram) {
	x.header(name, "histogram", help)
	var count uint64
	for i := range h.counts {
		count += h.counts[i].Load()
		le := "+Inf"
		if i < len(h.bounds) {
			le = formatFloat(h.bounds[i].Seconds())
		}
		x.buf.WriteString(name + `_bucket{le="` + le + `"} ` + strconv.FormatUint(count, 10) + "\n")
	}
	x.sample(name+"_sum", time.Duration(h.sum.Load()).Seconds())
	x.buf.WriteString(name + "_count " + strconv.FormatUint(count, 10) + "\n")
}

func formatFloat(v float64) string {
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// escapeLabel escapes a label value: backslash, double quote and newline.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// escapeHelp escapes a help text: backslash and newline.
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}
