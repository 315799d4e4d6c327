// metrics_test.go: tests of -metrics: the text format, what the loop counts, and a
// running cluster scraped over HTTP.
package main

import (
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
