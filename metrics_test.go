// metrics_test.go: tests of -metrics: the text format, what the loop counts, and a
// running cluster scraped over HTTP.
package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The page follows the text format: HELP and TYPE before the samples, label values and
// help escaped, histogram buckets cumulative up to +Inf, which equals the count.
func TestExpositionFormat(t *testing.T) {
	var h histogram
	h.init([]time.Duration{time.Millisecond, 10 * time.Millisecond, time.Second})
	for _, d := range []time.Duration{500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 10 * time.Millisecond, 3 * time.Second, -time.Second} {
		h.observe(d)
	}
	var x exposition
	x.header("t_lag", "gauge", "Lag, per \"peer\".\nA second line \\ ends.")
	x.sample("t_lag", 3, "peer", "a\"b\\c\nd")
	x.sample("t_lag", 0.5, "peer", "e", "zone", "z")
	x.counter("t_total", "A counter.", 7)
	x.histogram("t_seconds", "Latency.", &h)
	want := `# HELP t_lag Lag, per "peer".\nA second line \\ ends.
# TYPE t_lag gauge
t_lag{peer="a\"b\\c\nd"} 3
t_lag{peer="e",zone="z"} 0.5
# HELP t_total A counter.
# TYPE t_total counter
t_total 7
# HELP t_seconds Latency.
# TYPE t_seconds histogram
t_seconds_bucket{le="0.001"} 3
t_seconds_bucket{le="0.01"} 5
t_seconds_bucket{le="1"} 5
t_seconds_bucket{le="+Inf"} 6
t_seconds_sum 3.0135
t_seconds_count 6
`
	if got := x.buf.String(); got != want {
		t.Fatalf("page:\n%s\nwant:\n%s", got, want)
	}
}

// What the loop reports after each turn counts elections and leader changes.
func TestMetricsTransitions(t *testing.T) {
	cases := []struct {
		was, is          status
		elections, leads uint64
	}{
		{status{Role: follower, Term: 1, Leader: ":2"}, status{Role: preCandidate, Term: 1}, 0, 0},
		{status{Role: preCandidate, Term: 1}, status{Role: candidate, Term: 2}, 1, 0},
		{status{Role: candidate, Term: 2}, status{Role: candidate, Term: 3}, 1, 0}, // a split vote, again
		{status{Role: follower, Term: 3}, status{Role: leader, Term: 4, Leader: ":1"}, 1, 1},
		{status{Role: leader, Term: 4, Leader: ":1"}, status{Role: follower, Term: 5}, 0, 0},
		{status{Role: follower, Term: 5}, status{Role: follower, Term: 5, Leader: ":3"}, 0, 1},
		{status{Role: follower, Term: 5, Leader: ":3"}, status{Role: follower, Term: 7, Leader: ":2"}, 0, 1},
	}
	for _, tc := range cases {
		m := newMetrics()
		m.transition(tc.was, tc.is)
		if m.elections.Load() != tc.elections || m.leaderChanges.Load() != tc.leads {
			t.Errorf("%+v -> %+v: %d elections, %d leader changes; want %d, %d",
				tc.was, tc.is, m.elections.Load(), m.leaderChanges.Load(), tc.elections, tc.leads)
		}
	}
}

// Appends are counted when the leader logs them; a lost one counts as failed and is
// not timed; reads and membership changes are not appends.
func TestMetricsAppends(t *testing.T) {
	m := newMetrics()
	ok := &proposal{req: &CommandRequest{Command: cmdClient}}
	lost := &proposal{req: &CommandRequest{Command: cmdClient}}
	remove := &proposal{req: &CommandRequest{Command: cmdRemoveServer}}
	for _, p := range []*proposal{ok, lost, remove} {
		m.proposed(p)
	}
	ok.taken = ok.taken.Add(-20 * time.Millisecond)
	m.applying(1)
	for p, committed := range map[*proposal]bool{ok: true, lost: false, remove: true} {
		m.appendDone(p, committed)
	}
	var x exposition
	x.histogram("h", "", &m.appendLatency)
	page := x.buf.String()
	if m.proposals.Load() != 2 || m.proposalsFailed.Load() != 1 || !strings.Contains(page, `h_bucket{le="0.01"} 0`) ||
		!strings.Contains(page, `h_bucket{le="0.025"} 1`) || !strings.Contains(page, "h_count 1\n") {
		t.Fatalf("%d proposed, %d failed; latency:\n%s", m.proposals.Load(), m.proposalsFailed.Load(), page)
	}
	var off *metrics // -metrics off: every hook does nothing
	off.proposed(ok)
	off.applying(1)
	off.appendDone(ok, true)
	off.saved(off.saveStarts(1))
	off.transition(status{}, status{Role: leader, Term: 1})
	off.snapshot(1)
}

// A cluster of three nodes with -metrics serves every series at /metrics, with values
// that fit what was done to it, and the profiler at /debug/pprof/; stopping the nodes
// stops their listeners.
func TestMetricsOfRunningCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	addrs := freeAddrs(t, 6)
	members, scrapes := addrs[:3], addrs[3:]
	stop := make(chan struct{})
	errs := make(chan error, len(members))
	logs := map[string]*lines{}
	for i, id := range members {
		cfg := nodeConfig{ID: id, Bootstrap: Config{Members: members}, DataDir: filepath.Join(t.TempDir(), "data"),
			Heartbeat: 50 * time.Millisecond, Election: 500 * time.Millisecond, SnapshotEntries: 5, NoHandOff: true,
			MaxMessage: 1 << 20, Metrics: scrapes[i]}
		stderr := newLines()
		logs[id] = stderr
		go func() { errs <- runNode(cfg, io.Discard, newLogger(stderr, "text", slog.LevelInfo), stop) }()
	}
	stopped := false
	stopAll := func() {
		if stopped {
			return
		}
		stopped = true
		close(stop)
		for range members {
			select {
			case err := <-errs:
				if err != nil {
					t.Errorf("a node stopped with %v", err)
				}
			case <-time.After(e2eWait):
				t.Fatal("a node did not stop")
			}
		}
	}
	t.Cleanup(func() {
		stopAll()
		if t.Failed() {
			for id, l := range logs {
				t.Logf("== %s stderr:\n%s", id, l)
			}
		}
	})
	for i, id := range members {
		if !logs[id].waitLine("metrics=http://" + scrapes[i] + "/metrics pprof=http://" + scrapes[i] + "/debug/pprof/") {
			t.Fatalf("%s did not log its metrics URL", id)
		}
	}

	// Appends, through whichever member leads.
	const appends = 12
	lead, done := "", 0
	for deadline := time.Now().Add(e2eWait); done < appends; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d appends committed in %v", done, appends, e2eWait)
		}
		to := members[0]
		if lead != "" {
			to = lead
		}
		resp, err := rawCommand(to, &CommandRequest{Command: cmdClient, Message: "m" + strconv.Itoa(done)})
		if err != nil || resp.Status != StatusOK {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		lead = resp.Leader
		done++
	}
	var leadScrape string
	for i, id := range members {
		if id == lead {
			leadScrape = scrapes[i]
		}
	}

	// The leader's page, once its snapshot (written in the background) is in: the loop
	// counts it before it logs it.
	if !logs[lead].waitLine("log compacted") {
		t.Fatalf("the leader %s took no snapshot after %d appends with -snapshot-entries 5:\n%s", lead, appends, logs[lead])
	}
	page := scrape(t, leadScrape)
	for _, name := range []string{"raft_term", "raft_role", "raft_commit_index", "raft_applied_index", "raft_last_log_index",
		"raft_snapshot_index", "raft_peer_replication_lag_entries", "raft_proposals_total", "raft_proposals_failed_total",
		"raft_append_latency_seconds", "raft_fsync_latency_seconds", "raft_elections_total", "raft_leader_changes_total",
		"raft_snapshots_total", "raft_snapshot_bytes"} {
		if _, ok := page["# TYPE "+name]; !ok {
			t.Errorf("no # TYPE line for %s", name)
		}
	}
	atLeast := map[string]float64{
		"raft_term":                                    1,
		`raft_role{role="leader"}`:                     1,
		"raft_commit_index":                            appends,
		"raft_applied_index":                           appends,
		"raft_last_log_index":                          page["raft_commit_index"],
		"raft_snapshot_index":                          5,
		"raft_snapshots_total":                         1,
		"raft_snapshot_bytes":                          1,
		"raft_proposals_total":                         appends,
		"raft_append_latency_seconds_count":            appends,
		"raft_append_latency_seconds_sum":              1e-9,
		"raft_fsync_latency_seconds_count":             1,
		"raft_fsync_latency_seconds_sum":               1e-9,
		`raft_fsync_latency_seconds_bucket{le="+Inf"}`: page["raft_fsync_latency_seconds_count"],
		"raft_elections_total":                         1,
		"raft_leader_changes_total":                    1,
	}
	for series, low := range atLeast {
		if v, ok := page[series]; !ok || v < low {
			t.Errorf("%s = %v (present: %v); want at least %v", series, v, ok, low)
		}
	}
	if page[`raft_append_latency_seconds_bucket{le="+Inf"}`] != page["raft_append_latency_seconds_count"] {
		t.Errorf("append latency: +Inf bucket %v, count %v", page[`raft_append_latency_seconds_bucket{le="+Inf"}`], page["raft_append_latency_seconds_count"])
	}
	for _, r := range []string{"follower", "pre-candidate", "candidate"} {
		if v, ok := page[`raft_role{role="`+r+`"}`]; !ok || v != 0 {
			t.Errorf(`raft_role{role=%q} = %v (present: %v) on the leader`, r, v, ok)
		}
	}
	for _, id := range members {
		lag, ok := page[`raft_peer_replication_lag_entries{peer="`+id+`"}`]
		if id == lead && ok {
			t.Errorf("the leader reports a lag for itself")
		}
		if id != lead && (!ok || lag < 0 || lag > page["raft_last_log_index"]) {
			t.Errorf("lag of %s: %v (present: %v)", id, lag, ok)
		}
	}
	// A follower's page: not the leader, and no lag (it does not know it).
	for i, id := range members {
		if id == lead {
			continue
		}
		p := scrape(t, scrapes[i])
		if p[`raft_role{role="leader"}`] != 0 || p[`raft_role{role="follower"}`]+p[`raft_role{role="pre-candidate"}`]+p[`raft_role{role="candidate"}`] != 1 {
			t.Errorf("%s, a follower, reports roles %v", id, p)
		}
		for series := range p {
			if strings.HasPrefix(series, "raft_peer_replication_lag_entries{") {
				t.Errorf("%s, a follower, reports %s", id, series)
			}
		}
		break
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		if code, body := get(t, "http://"+leadScrape+path); code != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s: %d, %d bytes", path, code, len(body))
		}
	}

	// Stopped, the nodes leave no listener and no server goroutine behind.
	stopAll()
	for _, addr := range scrapes {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("the metrics address %s is still taken after the node stopped: %v", addr, err)
		}
		ln.Close()
	}
	var stacks string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "net/http.(*Server).Serve") && !strings.Contains(stacks, "net/http.(*conn).serve") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("HTTP server goroutines left after the nodes stopped:\n%s", stacks)
		}
	}
}

// A node whose -metrics address is taken does not start: exit 1, it says why, and it
// leaves no data dir behind.
func TestMetricsAddressTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	id := freeAddrs(t, 1)[0]
	_, port, _ := net.SplitHostPort(id)
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "data")
	cmd := exec.CommandContext(ctx, raftBinary(t), "-c", id, "-p", port, "-d", dir, "-metrics", busy.Addr().String())
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != exitFailed || !strings.Contains(string(out), "-metrics "+busy.Addr().String()) ||
		!strings.Contains(string(out), "address already in use") {
		t.Fatalf("node with a taken -metrics address: %v\n%s", err, out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a failed start left %s (%v)", dir, err)
	}
}

// scrape gets addr's /metrics and returns its samples by series (name and labels), and
// a "# TYPE name" key per TYPE line.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	code, body := get(t, "http://"+addr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics of %s: %d %s", addr, code, body)
	}
	page := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if typ, ok := strings.CutPrefix(line, "# TYPE "); ok {
			page["# TYPE "+strings.Fields(typ)[0]] = 1
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("/metrics of %s: bad line %q", addr, line)
		}
		page[line[:i]] = v
	}
	return page
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: e2eWait, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}
