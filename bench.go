// bench.go: the load generator, raft -C bench. It finds the leader among -S, then runs
// -c workers, each with its own client session (and its own connection, or with -mux one
// shared, batched connection per member: batch.go), that append -size-byte unique
// messages one after another until -n have been sent, waiting for each to be committed.
// It prints one summary line, in a format other tools share:
//
//	ops=20000 conc=64 size=64 secs=1.18 ops_per_sec=17012 p50_ms=3.34 p99_ms=9.33 errors=0 mode=rpc
//
// Only committed appends count as done; failed or unknown ones are counted in errors and
// make the exit status non-zero.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/rpc"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// benchConfig is a validated -C bench invocation.
type benchConfig struct {
	Servers []string
	N, Conc int
	Size    int
	Mux     bool          // workers share a batcher (one connection per member) instead of a connection each
	Timeout time.Duration // per append
	TLS     *tlsKeys      // nil: plain TCP
	JSON    bool          // print the summary as one JSON object
}

// benchSummary is what -C bench -json prints: the fields of the summary line, with the
// outcome and error of other -json results.
type benchSummary struct {
	Command   string  `json:"command"` // bench
	Outcome   string  `json:"outcome"` // ok or failed
	Ops       int64   `json:"ops"`     // appends committed
	Conc      int     `json:"conc"`
	Size      int     `json:"size"`
	Secs      float64 `json:"secs"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	Errors    int64   `json:"errors"` // appends that did not commit
	Mode      string  `json:"mode"`   // rpc or mux
	Error     string  `json:"error,omitempty"`
}

// print writes the summary: one line of key=value pairs, or with -json one JSON object.
func (s benchSummary) print(stdout io.Writer, asJSON bool) {
	if asJSON {
		out, _ := json.Marshal(s)
		fmt.Fprintf(stdout, "%s\n", out)
		return
	}
	fmt.Fprintf(stdout, "ops=%d conc=%d size=%d secs=%.2f ops_per_sec=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d mode=%s\n",
		s.Ops, s.Conc, s.Size, s.Secs, s.OpsPerSec, s.P50Ms, s.P99Ms, s.Errors, s.Mode)
}

// runBench runs the load and returns the exit status.
func runBench(cfg benchConfig, stdout, stderr io.Writer) int {
	var shared *batcher
	mode := "rpc"
	if cfg.Mux {
		shared = newBatcher(func(addr string) (*rpc.Client, error) { return dialRPCClient(addr, dialTimeout, cfg.TLS) },
			maxAnswerReserve) // so an append waits its -timeout, or up to 250 ms more when under 2.5 s are left
		defer shared.stop()
		mode = "mux"
	}
	newClient := func() *client {
		return &client{cfg: clientConfig{Command: cmdClient, Servers: cfg.Servers, Timeout: cfg.Timeout, TLS: cfg.TLS}, stderr: io.Discard,
			session: newSessionID(), conns: map[string]*rpc.Client{}, said: map[string]bool{}, batch: shared}
	}
	summary := benchSummary{Command: cmdBench, Outcome: "ok", Conc: cfg.Conc, Size: cfg.Size, Mode: mode}
	finder := newClient()
	finder.stderr = stderr // for the note that every member refuses connections
	lead, err := findLeader(finder, cfg.Timeout)
	finder.close()
	if err != nil {
		fmt.Fprintf(stderr, "raft: bench: %v\n", err)
		if cfg.JSON {
			summary.Outcome, summary.Error = "failed", err.Error()
			summary.print(stdout, true)
		}
		return exitFailed
	}
	var next, done, failed atomic.Int64
	latencies := make([][]time.Duration, cfg.Conc)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	stopProgress := showProgress(stderr, &done, int64(cfg.N))
	for w := range cfg.Conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Its own connection and session; retries (after a lost answer, a leader
			// change) are safe, and counted once.
			c := newClient()
			c.leader = lead
			defer c.close()
			for {
				i := next.Add(1)
				if i > int64(cfg.N) {
					return
				}
				msg := benchMessage(w, i, cfg.Size)
				t0 := time.Now()
				if o := c.do(msg, time.Now().Add(cfg.Timeout)); o.code != exitOK {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, o.why)
					continue
				}
				latencies[w] = append(latencies[w], time.Since(t0))
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	stopProgress()
	all := slices.Concat(latencies...)
	slices.Sort(all)
	ms := func(q float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(int(q*float64(len(all))), len(all)-1)].Microseconds()) / 1000
	}
	// Rounded as the summary line has them: nobody reads nanoseconds of a run.
	summary.Ops, summary.Secs, summary.OpsPerSec = done.Load(), math.Round(secs*1000)/1000, math.Round(float64(done.Load())/secs)
	summary.P50Ms, summary.P99Ms, summary.Errors = ms(0.50), ms(0.99), failed.Load()
	if summary.Errors > 0 {
		summary.Outcome = "failed"
		summary.Error = fmt.Sprintf("%d appends did not commit (first: %v)", summary.Errors, firstErr.Load())
	}
	summary.print(stdout, cfg.JSON)
	if summary.Errors > 0 {
		fmt.Fprintf(stderr, "raft: bench: %s\n", summary.Error)
		return exitFailed
	}
	return exitOK
}

// benchMessage is a unique message of size bytes (at least as long as its number).
func benchMessage(worker int, i int64, size int) string {
	id := fmt.Sprintf("b%d-%d-", worker, i)
	if len(id) >= size {
		return id
	}
	return id + strings.Repeat("x", size-len(id))
}

// findLeader asks the members for the leader, until one knows. If none does within
// timeout, the error says what each member answered, or why it could not be asked.
func findLeader(c *client, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	tries := newAttempts()
	for time.Now().Before(deadline) {
		for _, s := range c.cfg.Servers {
			st, err := c.nodeStatus(s, time.Until(deadline))
			switch {
			case err != nil:
				tries.failed(s, fmt.Sprintf("cannot ask %s (%v)", s, err), err)
			case st.Leader == noLeader:
				tries.failed(s, fmt.Sprintf("%s knows no leader (%s, term %d)", s, st.Role, st.Term), nil)
			default:
				return st.Leader, nil
			}
		}
		c.noteRefusals(tries)
		time.Sleep(min(50*time.Millisecond, time.Until(deadline)))
	}
	return "", fmt.Errorf("no leader found within %v: %v", roundDuration(timeout), tries)
}

// showProgress writes a line on stderr every second while the bench runs, if stderr is a
// terminal; the returned function stops it.
func showProgress(stderr io.Writer, done *atomic.Int64, total int64) func() {
	f, ok := stderr.(*os.File)
	if !ok {
		return func() {}
	}
	if info, err := f.Stat(); err != nil || info.Mode()&os.ModeCharDevice == 0 {
		return func() {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		start := time.Now()
		for {
			select {
			case <-stop:
				fmt.Fprint(f, "\r\033[K")
				return
			case <-tick.C:
				n := done.Load()
				fmt.Fprintf(f, "\r\033[K%d/%d committed, %.0f ops/s", n, total, float64(n)/time.Since(start).Seconds())
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}
