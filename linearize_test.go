// linearize_test.go: a linearizability checker for the replicated log, as clients see it,
// and its unit tests. jepsen_test.go records a history of client operations against the
// real binary and feeds it, with the final log every node printed, to checkLinearizable.
//
// The model is a log of messages: append(m) adds m; count adds the entry "count" and
// returns how many messages were before it; print adds "print". Because the state is the
// sequence itself, the final log is the only candidate linearization: the order of
// effects is given, and the checker only has to verify that this order is consistent
// with what every client saw and when. That keeps it linear-ish instead of the
// exponential search a general checker needs.
package main

import (
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

type opKind string

const (
	opAppend opKind = "append" // a unique message
	opCount  opKind = "count"
	opPrint  opKind = "print"
)

type opOutcome string

const (
	outcomeOK      opOutcome = "ok"      // exit 0: committed
	outcomeFailed  opOutcome = "failed"  // exit 1: certainly not committed
	outcomeUnknown opOutcome = "unknown" // exit 3 (or the client died): may or may not have committed
)

// histOp is one client operation as a client saw it.
type histOp struct {
	Client  int // -1 for the test's own operations (healing, the final print)
	Kind    opKind
	Msg     string        // what was sent: unique for appends, "count" or "print" otherwise
	Invoke  time.Duration // since the run began, taken before the client process started
	Respond time.Duration // taken after it exited; for unknown ops, when the client gave up
	Outcome opOutcome
	Index   int // the log index the client reported (ok only): informational, it counts every entry
	N       int // what an ok count returned
}

func (o histOp) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", o.Kind)
	if o.Kind == opAppend {
		fmt.Fprintf(&b, " %q", o.Msg)
	}
	fmt.Fprintf(&b, " (client %d, %s, invoked %v, ", o.Client, o.Outcome, o.Invoke.Round(time.Millisecond))
	if o.Outcome == outcomeUnknown {
		fmt.Fprintf(&b, "gave up %v", o.Respond.Round(time.Millisecond))
	} else {
		fmt.Fprintf(&b, "responded %v", o.Respond.Round(time.Millisecond))
	}
	if o.Outcome == outcomeOK {
		if o.Index > 0 {
			fmt.Fprintf(&b, ", index %d", o.Index)
		}
		if o.Kind == opCount {
			fmt.Fprintf(&b, ", returned %d", o.N)
		}
	}
	b.WriteString(")")
	return b.String()
}

// violation is one way a history contradicts the final log.
type violation struct {
	Kind string   // lost, duplicate, phantom, failed-present, count-mismatch, count-same-n, extra-count, extra-print, realtime, bad-history
	What string   // a sentence saying what is wrong
	Ops  []histOp // the operations involved
	Pos  []int    // their 1-based positions in the log, 0 if they are not in it
}

func (v violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", v.Kind, v.What)
	for i, op := range v.Ops {
		where := "not in the log"
		if op.Kind != opAppend {
			where = "position not identified" // counts and prints are told apart only by what they returned
		}
		if v.Pos[i] > 0 {
			where = fmt.Sprintf("at position %d", v.Pos[i])
		}
		fmt.Fprintf(&b, "\n\t%v %s", op, where)
	}
	return b.String()
}

// checkLinearizable checks a history of operations against the final log (every message
// applied, in order; 1-based positions in reports). It returns nothing if the history
// is linearizable with the log as its order of effects:
//
//   - every ok append is in the log, and no message appears twice;
//   - every message in the log was sent by someone, and no failed append is in it;
//   - every ok count returned its position: the entry at position N+1 is a count, and
//     no two ok counts returned the same N;
//   - real time: if op A completed (ok) before op B was invoked, and both are in the log,
//     A comes before B. An unknown op in the log has no response, so only its
//     invocation bounds it: it may have taken effect any time after;
//   - every other count and print entry (those of unknown-outcome ops, which cannot be
//     told apart) can be given to a distinct op of that kind that may have committed and
//     whose invocation is not after the entry, by the real-time rule above.
func checkLinearizable(history []histOp, log []string) []violation {
	var vs []violation
	report := func(kind, what string, ops []histOp, pos []int) {
		vs = append(vs, violation{Kind: kind, What: what, Ops: ops, Pos: pos})
	}

	where := map[string][]int{} // word -> 0-based positions
	for i, w := range log {
		where[w] = append(where[w], i)
	}
	// pos[i]: the 0-based position of history[i] in the log, or -1: where it took effect.
	pos := make([]int, len(history))
	for i := range pos {
		pos[i] = -1
	}

	// Appends are identified by their unique message.
	sent := map[string]int{}
	for i, op := range history {
		if op.Kind != opAppend {
			continue
		}
		if op.Msg == string(opCount) || op.Msg == string(opPrint) || strings.ContainsAny(op.Msg, " \t\n") {
			report("bad-history", "an append's message must be unique, space-free, not count or print", []histOp{op}, []int{0})
			continue
		}
		if j, dup := sent[op.Msg]; dup {
			report("bad-history", "two appends sent the same message", []histOp{history[j], op}, []int{0, 0})
			continue
		}
		sent[op.Msg] = i
		ps := where[op.Msg]
		if len(ps) > 1 {
			p := make([]int, len(ps))
			ops := make([]histOp, len(ps))
			for k, q := range ps {
				p[k], ops[k] = q+1, op
			}
			report("duplicate", fmt.Sprintf("message %q is in the log %d times", op.Msg, len(ps)), ops, p)
		}
		switch {
		case op.Outcome == outcomeOK && len(ps) == 0:
			report("lost", "an acknowledged append is not in the log", []histOp{op}, []int{0})
		case op.Outcome == outcomeFailed && len(ps) > 0:
			report("failed-present", "an append the client was told did not commit is in the log", []histOp{op}, []int{ps[0] + 1})
		case len(ps) > 0:
			pos[i] = ps[0]
		}
	}
	// Words nobody sent.
	for i, w := range log {
		if _, ok := sent[w]; !ok && w != string(opCount) && w != string(opPrint) && where[w][0] == i {
			report("phantom", fmt.Sprintf("position %d holds %q, which no client sent (%d times in the log)", i+1, w, len(where[w])), nil, nil)
		}
	}

	// Ok counts are identified by what they returned. (If an unknown count happens to
	// sit at that position, the ok count takes its place; they are indistinguishable.)
	byN := map[int]int{}
	for i, op := range history {
		if op.Kind != opCount || op.Outcome != outcomeOK {
			continue
		}
		switch {
		case op.N < 0 || op.N >= len(log):
			report("count-mismatch", fmt.Sprintf("count returned %d, but the log has only %d entries", op.N, len(log)), []histOp{op}, []int{0})
		case log[op.N] != string(opCount):
			report("count-mismatch", fmt.Sprintf("count returned %d, but position %d holds %q, not a count", op.N, op.N+1, log[op.N]), []histOp{op}, []int{0})
		default:
			if j, dup := byN[op.N]; dup {
				report("count-same-n", fmt.Sprintf("two counts returned %d", op.N), []histOp{history[j], op}, []int{op.N + 1, op.N + 1})
				continue
			}
			byN[op.N] = i
			pos[i] = op.N
		}
	}

	// The latest position of an ok op that completed before time t: anything invoked at
	// t or later must come after it.
	type done struct {
		respond time.Duration
		pos, op int
	}
	var oks []done
	for i, op := range history {
		if op.Outcome == outcomeOK && pos[i] >= 0 {
			oks = append(oks, done{op.Respond, pos[i], i})
		}
	}
	sort.Slice(oks, func(a, b int) bool { return oks[a].respond < oks[b].respond })
	latest := make([]done, len(oks)) // latest[k]: the one at the greatest position among oks[:k+1]
	for k, d := range oks {
		latest[k] = d
		if k > 0 && latest[k-1].pos > d.pos {
			latest[k] = latest[k-1]
		}
	}
	boundBefore := func(t time.Duration) (done, bool) {
		k := sort.Search(len(oks), func(k int) bool { return oks[k].respond >= t })
		if k == 0 {
			return done{pos: -1, op: -1}, false
		}
		return latest[k-1], true
	}

	// Real-time order among the ops placed in the log.
	for i, op := range history {
		if pos[i] < 0 {
			continue
		}
		if a, ok := boundBefore(op.Invoke); ok && a.pos > pos[i] {
			report("realtime", "the first op completed before the second was invoked, but comes after it in the log",
				[]histOp{history[a.op], op}, []int{a.pos + 1, pos[i] + 1})
		}
	}

	// Count and print entries not placed above belong to ops that cannot be told apart.
	// Entry at position s can be given to op o if o may have committed and nothing that
	// completed before o was invoked is at or after s. Since an op that fits an entry fits
	// every later one too, a distinct op exists for each entry iff, for the k-th such
	// entry from the start, at least k ops fit it.
	for _, kind := range []opKind{opCount, opPrint} {
		var slots []int
		for _, s := range where[string(kind)] {
			if _, claimed := byN[s]; !claimed || kind != opCount {
				slots = append(slots, s)
			}
		}
		var bounds []int // for each candidate op, the position it must come after
		var okOps int
		for i, op := range history {
			if op.Kind != kind || op.Outcome == outcomeFailed || pos[i] >= 0 {
				continue
			}
			if op.Outcome == outcomeOK {
				okOps++ // an ok print; or an ok count already reported as mismatched
			}
			a, _ := boundBefore(op.Invoke)
			bounds = append(bounds, a.pos)
		}
		slices.Sort(bounds)
		if kind == opPrint && okOps > len(slots) {
			report("lost", fmt.Sprintf("%d acknowledged prints but only %d in the log", okOps, len(slots)), nil, nil)
		}
		fit := 0
		for k, s := range slots {
			for fit < len(bounds) && bounds[fit] < s {
				fit++
			}
			if fit < k+1 {
				report("extra-"+string(kind), fmt.Sprintf("position %d holds a %s, but no %s op that may have committed (%d of them) is left to account for it: too many, or before they were invoked",
					s+1, kind, kind, len(bounds)), nil, nil)
				break
			}
		}
	}
	return vs
}

// --- unit tests of the checker ---

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func app(client int, msg string, inv, resp int, out opOutcome) histOp {
	return histOp{Client: client, Kind: opAppend, Msg: msg, Invoke: ms(inv), Respond: ms(resp), Outcome: out}
}

func cnt(client, inv, resp int, out opOutcome, n int) histOp {
	return histOp{Client: client, Kind: opCount, Msg: "count", Invoke: ms(inv), Respond: ms(resp), Outcome: out, N: n}
}

func prt(inv, resp int, out opOutcome) histOp {
	return histOp{Client: -1, Kind: opPrint, Msg: "print", Invoke: ms(inv), Respond: ms(resp), Outcome: out}
}

// validHistory: three clients, overlapping ops, unknowns that did and did not commit,
// a failed append, counts of every outcome, a final print.
func validHistory() ([]histOp, []string) {
	h := []histOp{
		app(1, "a", 0, 100, outcomeOK),
		app(2, "b", 50, 150, outcomeOK), // concurrent with a: either order
		app(3, "c", 60, 5000, outcomeUnknown),
		cnt(1, 200, 300, outcomeOK, 2),
		app(2, "d", 200, 3200, outcomeFailed),
		app(1, "e", 400, 500, outcomeOK),
		cnt(2, 3300, 6300, outcomeUnknown, 0),   // committed: the count at position 7
		app(3, "f", 5100, 8100, outcomeUnknown), // never committed
		cnt(1, 600, 600, outcomeFailed, 0),
		app(1, "g", 700, 800, outcomeOK),
		app(3, "h", 8200, 8300, outcomeOK),
		cnt(2, 8250, 8400, outcomeOK, 8),
		prt(9000, 9100, outcomeOK),
	}
	// c took effect late (its invocation is its only bound), after g.
	return h, []string{"b", "a", "count", "e", "g", "c", "count", "h", "count", "print"}
}

func TestLinearizableValidHistory(t *testing.T) {
	h, log := validHistory()
	if vs := checkLinearizable(h, log); len(vs) != 0 {
		t.Fatalf("a valid history failed:\n%v", vs)
	}
	// The same log with a and b the other way round is just as valid: they overlap.
	log[0], log[1] = log[1], log[0]
	if vs := checkLinearizable(h, log); len(vs) != 0 {
		t.Fatalf("a valid history failed:\n%v", vs)
	}
}

// expectViolation checks that the checker reports exactly one violation, of the given
// kind, and that its report names every op given in names (by message or "count"/"print").
func expectViolation(t *testing.T, h []histOp, log []string, kind string, names ...string) {
	t.Helper()
	vs := checkLinearizable(h, log)
	if len(vs) != 1 || vs[0].Kind != kind {
		t.Fatalf("want one %s violation, got %d:\n%v", kind, len(vs), vs)
	}
	report := vs[0].String()
	for _, n := range names {
		if !strings.Contains(report, n) {
			t.Errorf("the report does not name %s:\n%s", n, report)
		}
	}
	t.Logf("reported as expected:\n%s", report)
}

func TestLinearizableStaleCount(t *testing.T) {
	h, log := validHistory()
	// The count at position 9 returned 7: it saw the log without h, which had committed
	// before it was invoked (e.g. a deposed leader answering).
	h[11].N = 7
	expectViolation(t, h, log, "count-mismatch", `count (client 2, ok`, "returned 7", `position 8 holds "h"`)
}

func TestLinearizableStaleCountInOrder(t *testing.T) {
	// A count that returned its own position, but the position is before an append that
	// completed before the count was invoked: a stale read in real time.
	h := []histOp{
		app(1, "a", 0, 100, outcomeOK),
		cnt(2, 200, 300, outcomeOK, 0),
	}
	expectViolation(t, h, []string{"count", "a"}, "realtime", `append "a"`, "at position 2", "returned 0", "at position 1")
}

func TestLinearizableRealTimeInversion(t *testing.T) {
	h, log := validHistory()
	// e completed (500ms) before g was invoked (700ms); g before e is an inversion.
	log[3], log[4] = log[4], log[3]
	expectViolation(t, h, log, "realtime", `append "e"`, `append "g"`, "at position 5", "at position 4")
}

func TestLinearizableUnknownBoundedByInvocation(t *testing.T) {
	// An unknown op may take effect long after its client gave up, but not before it was
	// invoked: nothing that completed before its invocation may follow it.
	h := []histOp{
		app(1, "a", 0, 100, outcomeOK),
		app(2, "b", 200, 3000, outcomeUnknown),
	}
	if vs := checkLinearizable(h, []string{"a", "b"}); len(vs) != 0 {
		t.Fatalf("valid: %v", vs)
	}
	expectViolation(t, h, []string{"b", "a"}, "realtime", `append "a"`, `append "b"`)
}

func TestLinearizableLostAck(t *testing.T) {
	h, log := validHistory()
	log = slices.Delete(log, 4, 5) // g
	// Without g the count that returned 8 would no longer match: make its outcome
	// unknown, to isolate the lost ack.
	h[11] = cnt(2, 8250, 8400, outcomeUnknown, 0)
	expectViolation(t, h, log, "lost", `append "g" (client 1, ok`, "not in the log")
}

func TestLinearizableDuplicate(t *testing.T) {
	h := []histOp{
		app(1, "a", 0, 100, outcomeOK),
		app(2, "b", 0, 100, outcomeOK),
	}
	expectViolation(t, h, []string{"a", "b", "a"}, "duplicate", `"a" is in the log 2 times`, "at position 1", "at position 3")
}

func TestLinearizablePhantomAndFailed(t *testing.T) {
	h := []histOp{
		app(1, "a", 0, 100, outcomeOK),
		app(2, "b", 0, 100, outcomeFailed),
	}
	expectViolation(t, h, []string{"a", "zzz"}, "phantom", `position 2 holds "zzz"`)
	expectViolation(t, h, []string{"a", "b"}, "failed-present", `append "b" (client 2, failed`, "at position 2")
}

func TestLinearizableCounts(t *testing.T) {
	a := app(1, "a", 0, 100, outcomeOK)
	// Two ok counts claiming the same position.
	expectViolation(t, []histOp{a, cnt(2, 0, 50, outcomeOK, 1), cnt(3, 0, 50, outcomeOK, 1)},
		[]string{"a", "count", "count"}, "count-same-n", "two counts returned 1")
	// A count entry with no count op that might have committed.
	expectViolation(t, []histOp{a, cnt(2, 0, 50, outcomeFailed, 0)}, []string{"a", "count"}, "extra-count", "position 2 holds a count")
	// An unknown count placed before an append that completed before it was invoked.
	expectViolation(t, []histOp{a, cnt(2, 200, 300, outcomeUnknown, 0)}, []string{"count", "a"}, "extra-count", "position 1")
	// ... and after it, it is fine.
	if vs := checkLinearizable([]histOp{a, cnt(2, 200, 300, outcomeUnknown, 0)}, []string{"a", "count"}); len(vs) != 0 {
		t.Fatalf("valid: %v", vs)
	}
	// A count that returned more than the log holds.
	expectViolation(t, []histOp{a, cnt(2, 0, 50, outcomeOK, 5)}, []string{"a", "count"}, "count-mismatch", "only 2 entries")
	// An acknowledged print missing.
	expectViolation(t, []histOp{a, prt(200, 300, outcomeOK)}, []string{"a"}, "lost", "1 acknowledged prints but only 0")
}

// Random histories of a correct system: each op takes effect at a random moment in its
// interval (an unknown one possibly later, or never; a failed one never), the log is
// the order of those moments. The checker must accept every one; and reject it once an
// ok append is lost or two entries that real time orders are swapped.
func TestLinearizableRandomHistories(t *testing.T) {
	for seed := int64(1); seed <= 300; seed++ {
		rng := rand.New(rand.NewSource(seed))
		type effect struct {
			at  time.Duration
			op  int
			msg string
		}
		var h []histOp
		var effects []effect
		for c := 0; c < 4; c++ {
			now := time.Duration(rng.Intn(50)) * time.Millisecond
			for k := 0; k < 30; k++ {
				op := histOp{Client: c, Kind: opAppend, Msg: fmt.Sprintf("c%d-%d", c, k), Invoke: now}
				if rng.Intn(6) == 0 {
					op.Kind, op.Msg = opCount, "count"
				}
				op.Respond = now + time.Duration(1+rng.Intn(200))*time.Millisecond
				at := op.Invoke + time.Duration(rng.Int63n(int64(op.Respond-op.Invoke)))
				switch rng.Intn(10) {
				case 0:
					op.Outcome = outcomeFailed
				case 1, 2:
					op.Outcome = outcomeUnknown
					if rng.Intn(2) == 0 {
						at += time.Duration(rng.Intn(1000)) * time.Millisecond // committed late
					} else {
						at = -1 // never
					}
				default:
					op.Outcome = outcomeOK
				}
				if op.Outcome != outcomeFailed && at >= 0 {
					effects = append(effects, effect{at, len(h), op.Msg})
				}
				h = append(h, op)
				now = op.Respond + time.Duration(rng.Intn(20))*time.Millisecond
			}
		}
		sort.Slice(effects, func(i, j int) bool { return effects[i].at < effects[j].at })
		var log []string
		for i, e := range effects {
			log = append(log, e.msg)
			if h[e.op].Kind == opCount {
				h[e.op].N = i
			}
		}
		if vs := checkLinearizable(h, log); len(vs) != 0 {
			t.Fatalf("seed %d: a correct history failed:\n%v", seed, vs)
		}

		// Swap two appends that real time orders: the checker must notice.
		for tries := 0; tries < 100; tries++ {
			i, j := rng.Intn(len(effects)), rng.Intn(len(effects))
			a, b := h[effects[i].op], h[effects[j].op]
			if i < j && a.Kind == opAppend && b.Kind == opAppend && a.Outcome == outcomeOK && a.Respond < b.Invoke {
				bad := slices.Clone(log)
				bad[i], bad[j] = bad[j], bad[i]
				if vs := checkLinearizable(h, bad); len(vs) == 0 {
					t.Fatalf("seed %d: swapping %v and %v went unnoticed", seed, a, b)
				}
				break
			}
		}
		// Lose an ok append.
		for i, e := range effects {
			if op := h[e.op]; op.Kind == opAppend && op.Outcome == outcomeOK {
				bad := slices.Delete(slices.Clone(log), i, i+1)
				vs := checkLinearizable(h, bad)
				if !slices.ContainsFunc(vs, func(v violation) bool { return v.Kind == "lost" }) {
					t.Fatalf("seed %d: losing %v went unnoticed: %v", seed, op, vs)
				}
				break
			}
		}
	}
}
