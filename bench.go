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
	"fmt"
	"io"
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
}

// runBench runs the load and returns the exit status.
func runBench(cfg benchConfig, stdout, stderr io.Writer) int {
	var shared *batcher
	mode := "rpc"
	if cfg.Mux {
		shared = newBatcher(func(addr string) (*rpc.Client, error) {
			conn, err := dialConn(addr, dialTimeout, cfg.TLS)
			if err != nil {
				return nil, err
			}
			return rpc.NewClient(conn), nil
		}, answerGrace)
		defer shared.stop()
		mode = "mux"
	}
	newClient := func() *client {
		return &client{cfg: clientConfig{Command: cmdClient, Servers: cfg.Servers, Timeout: cfg.Timeout, TLS: cfg.TLS}, stderr: io.Discard,
			session: newSessionID(), conns: map[string]*rpc.Client{}, said: map[string]bool{}, batch: shared}
	}
	finder := newClient()
	lead, err := findLeader(finder, cfg.Timeout)
	finder.close()
	if err != nil {
		fmt.Fprintf(stderr, "raft: bench: %v\n", err)
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
	fmt.Fprintf(stdout, "ops=%d conc=%d size=%d secs=%.2f ops_per_sec=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d mode=%s\n",
		done.Load(), cfg.Conc, cfg.Size, secs, float64(done.Load())/secs, ms(0.50), ms(0.99), failed.Load(), mode)
	if n := failed.Load(); n > 0 {
		fmt.Fprintf(stderr, "raft: bench: %d appends did not commit (first: %v)\n", n, firstErr.Load())
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

// findLeader asks the members for the leader, until one knows.
func findLeader(c *client, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, s := range c.cfg.Servers {
			if st, err := c.nodeStatus(s, time.Until(deadline)); err == nil && st.Leader != noLeader {
				return st.Leader, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("no leader known to %s within %v", strings.Join(c.cfg.Servers, ","), timeout)
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
