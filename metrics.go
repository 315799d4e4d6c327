// metrics.go: the opt-in HTTP listener of -metrics: Prometheus metrics at /metrics (text
// format 0.0.4, written here) and the Go profiler at /debug/pprof/.
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
