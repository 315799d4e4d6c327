// client_e2e_test.go: what a user of the real client sees at the edges: its whole wait
// is -timeout, a cluster that is down is reported member by member, input that cannot
// be sent is quoted short and named by its line, and read -m print and bench have
// output a program can parse.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// silentServer listens on 127.0.0.1 and accepts connections but never answers, as a
// stopped (SIGSTOP) or wedged member does once the kernel has accepted for it. It stops
// when the test ends.
func silentServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// rawDuration matches a duration printed to the nanosecond, like 2.999999299s.
var rawDuration = regexp.MustCompile(`\d\.\d{4,}m?s`)

// The client's whole wait is -timeout, also when a member takes a command or a status
// request and never answers; and an addserver whose outcome is unknown points at
// status, which shows the members.
func TestEndToEndClientWaitsTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: runs the binary")
	}
	c := newE2ECluster(t, nil)
	silent := silentServer(t)
	// The client used to wait a second past -timeout for an answer: at least 3 s here.
	const timeout, overrun = 2 * time.Second, 900 * time.Millisecond
	start := time.Now()
	r := c.client("-C", "clientcommand", "-m", "hello", "-S", silent, "-timeout", timeout.String())
	took := time.Since(start)
	if r.code != exitUnknown || !strings.Contains(r.stderr, "no answer within 2s") || rawDuration.MatchString(r.stderr) {
		t.Fatalf("to a member that never answers: exit %d, stderr %q", r.code, r.stderr)
	}
	if took > timeout+overrun {
		t.Fatalf("-timeout %v took %v", timeout, took)
	}

	// status asks one member after another, each for a share of -timeout (at least a
	// second): here the first two take all of it, and the third is not asked.
	start = time.Now()
	r = c.client("-C", "status", "-S", silent+","+silentServer(t)+","+silentServer(t), "-timeout", timeout.String())
	if took := time.Since(start); took > timeout+overrun || r.code != exitFailed || !strings.Contains(r.stderr, "not asked: -timeout (2s) was up") {
		t.Fatalf("status of three members that never answer: exit %d after %v, stderr %q", r.code, took, r.stderr)
	}

	r = c.client("-C", "bench", "-S", silent, "-timeout", "1s")
	if r.code != exitFailed || !strings.Contains(r.stderr, "cannot ask "+silent+" (no answer within 1s)") || rawDuration.MatchString(r.stderr) {
		t.Fatalf("bench against a member that never answers: exit %d, stderr %q", r.code, r.stderr)
	}

	r = c.client("-C", "addserver", "-m", "127.0.0.1:1", "-S", silent, "-timeout", "1s")
	if r.code != exitUnknown || !strings.Contains(r.stderr, "-C status shows the members") || strings.Contains(r.stderr, "read -m print") {
		t.Fatalf("addserver without an answer: exit %d, stderr %q", r.code, r.stderr)
	}
}

// A wedged first member of -S (the kernel accepts for it, nobody answers) costs status
// a share of -timeout, not all of it: the next member is asked, and answers. (When the
// first member took the whole -timeout, status failed with the second "not asked".)
func TestEndToEndStatusSkipsWedgedFirstMember(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	addr := freeAddrs(t, 1)[0]
	c := newE2ECluster(t, []string{addr})
	c.start(addr)
	c.send(addr, "hello") // a leader, and a committed entry
	silent := silentServer(t)
	start := time.Now()
	r := c.client("-C", "status", "-S", silent+","+addr, "-timeout", "2s")
	if r.code != exitOK || !strings.Contains(r.stdout, addr) {
		t.Fatalf("status -S %s,%s (the first wedged, the second well): exit %d after %v, stdout %q, stderr %q",
			silent, addr, r.code, time.Since(start), r.stdout, r.stderr)
	}
}

// A SIGSTOPped member first in -S costs a command that may be sent twice (a read, a
// message) a share of -timeout, not all of it: the client moves on to the next member
// and succeeds there. A read that no member answers fails (exit 1): it changes nothing,
// so its outcome is never unknown. addserver, which is not sent twice, still waits the
// whole -timeout on the member it asked.
func TestEndToEndClientMovesOnFromStoppedMember(t *testing.T) {
	c, members, other := runningCluster(t)
	lead := c.send(members[0], "hello").leader
	var stopped string
	var rest []string
	for _, id := range members {
		if id != lead && stopped == "" {
			stopped = id
		} else {
			rest = append(rest, id)
		}
	}
	if err := c.procs[stopped].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer c.procs[stopped].cmd.Process.Signal(syscall.SIGCONT)
	servers := strings.Join(append([]string{stopped}, rest...), ",")

	if r := c.client("-C", "read", "-m", "count", "-S", servers, "-timeout", "10s"); r.code != exitOK || !strings.HasPrefix(r.stdout, "Count 1\n") {
		t.Fatalf("read -S %s (the first stopped): exit %d, stdout %q, stderr %q", servers, r.code, r.stdout, r.stderr)
	}
	if r := c.client("-C", "clientcommand", "-m", "two", "-S", servers, "-timeout", "10s"); r.code != exitOK || r.index == 0 {
		t.Fatalf("clientcommand -S %s (the first stopped): exit %d, stdout %q, stderr %q", servers, r.code, r.stdout, r.stderr)
	}
	r := c.client("-C", "read", "-m", "count", "-S", stopped, "-timeout", "1s", "-json")
	var j jsonResult
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || r.code != exitFailed || j.Outcome != "failed" ||
		!strings.Contains(r.stderr, "read count: not read within 1s: lost "+stopped) || strings.Contains(r.stderr, "may have committed") {
		t.Fatalf("read -S %s (stopped): exit %d, stdout %q (%v), stderr %q", stopped, r.code, r.stdout, err, r.stderr)
	}
	r = c.client("-C", "addserver", "-m", other, "-S", servers, "-timeout", "2s")
	if r.code != exitUnknown || !strings.Contains(r.stderr, "lost "+stopped+" after sending (no answer within 2s)") {
		t.Fatalf("addserver -S %s (the first stopped): exit %d, stderr %q", servers, r.code, r.stderr)
	}
}

// A cluster that is down: every member is named with why it failed, the user is told
// at once (and once) that every member refuses connections, and bench says so too.
func TestEndToEndClusterDown(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: runs the binary")
	}
	c := newE2ECluster(t, nil)
	dead := freeAddrs(t, 2)
	servers := strings.Join(dead, ",")
	const note = "every member refuses connections (" + "%s, %s): is the cluster running? Trying again until -timeout (1s) is up"
	wantNote := fmt.Sprintf(note, dead[0], dead[1])
	named := func(out string) bool {
		for _, d := range dead {
			if !strings.Contains(out, "cannot reach "+d+" (dial tcp "+d+": connect: connection refused)") &&
				!strings.Contains(out, "cannot ask "+d+" (dial tcp "+d+": connect: connection refused)") {
				return false
			}
		}
		return true
	}

	r := c.client("-C", "clientcommand", "-m", "hello", "-S", servers, "-timeout", "1s")
	if r.code != exitFailed || !named(r.stderr) || strings.Count(r.stderr, wantNote) != 1 {
		t.Fatalf("to a dead cluster: exit %d, stderr %q", r.code, r.stderr)
	}

	r = c.client("-C", "bench", "-S", servers, "-n", "10", "-timeout", "1s", "-json")
	var sum benchSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || r.code != exitFailed || sum.Outcome != "failed" || !named(sum.Error) ||
		strings.Contains(r.stderr, "no leader known") || strings.Count(r.stderr, wantNote) != 1 {
		t.Fatalf("bench against a dead cluster: exit %d, stdout %q (%v), stderr %q", r.code, r.stdout, err, r.stderr)
	}
}

// A one-member cluster, through the real client: read -m print -json returns the
// messages as they are stored, bench -json one object, and stdin mode names the lines it
// skips and the one that failed, quoting only the start of a message that is too large.
func TestEndToEndClientOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	addr := freeAddrs(t, 1)[0]
	c := newE2ECluster(t, []string{addr})
	c.start(addr)
	_, port, _ := net.SplitHostPort(addr)
	c.send(port, "a b") // a bare port for -S
	stored := []string{"a b", "x\ny", "\xff\xfe not UTF-8"}
	for _, m := range stored[1:] {
		if resp, err := rawCommand(addr, &CommandRequest{Command: cmdClient, Message: m}); err != nil || resp.Status != StatusOK {
			t.Fatalf("append %q: %+v, %v", m, resp, err)
		}
	}

	t.Run("read -m print -json", func(t *testing.T) { checkReadJSON(t, c, addr, stored) })
	t.Run("read print answers once", func(t *testing.T) { checkReadForms(t, c, addr, stored) })
	t.Run("stdin mode", func(t *testing.T) { checkStdinMode(t, c, addr) })
	t.Run("bench -json", func(t *testing.T) {
		r := c.client("-C", "bench", "-S", addr, "-n", "20", "-c", "2", "-json")
		var sum benchSummary
		if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || r.code != exitOK || sum.Command != "bench" || sum.Outcome != "ok" ||
			sum.Ops != 20 || sum.Conc != 2 || sum.Errors != 0 || sum.Mode != "rpc" || sum.OpsPerSec <= 0 ||
			!regexp.MustCompile(`"secs":\d+(\.\d{1,3})?,"ops_per_sec":\d+,`).MatchString(r.stdout) {
			t.Fatalf("bench -json: exit %d, %q (%v), %q", r.code, r.stdout, err, r.stderr)
		}
	})
	// An addserver whose outcome is unknown from the leader itself (it is still trying
	// to catch the new server up), with the new server given as a bare port.
	t.Run("addserver unknown", func(t *testing.T) {
		spare := freePorts(t, 1)[0]
		r := c.client("-C", "addserver", "-m", fmt.Sprint(spare), "-S", addr, "-timeout", "1s")
		if r.code != exitUnknown || !strings.Contains(r.stderr, fmt.Sprintf("adding :%d", spare)) || !strings.Contains(r.stderr, "-C status shows the members") ||
			rawDuration.MatchString(r.stderr) {
			t.Fatalf("addserver of a server that is not running: exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

// checkReadJSON reads the messages stored, which are the cluster's first, with -json.
func checkReadJSON(t *testing.T, c *e2eCluster, addr string, stored []string) {
	read := func(args ...string) jsonResult {
		t.Helper()
		r := c.client(append([]string{"-C", "read", "-m", "print", "-json", "-S", addr}, args...)...)
		var j jsonResult
		if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || r.code != exitOK || j.Outcome != "ok" || j.Result != "" {
			t.Fatalf("read -m print -json %q: exit %d, %q (%v), %q", args, r.code, r.stdout, err, r.stderr)
		}
		return j
	}
	if j := read("-n", "2"); j.Encoding != "" || len(j.Messages) != 2 || j.Messages[0] != stored[0] || j.Messages[1] != stored[1] {
		t.Fatalf("read -n 2: %+v, want %q as they are", j, stored[:2])
	}
	j := read()
	if j.Encoding != "base64" || len(j.Messages) != len(stored) {
		t.Fatalf("read with a message that is not UTF-8: %+v, want %d messages in base64", j, len(stored))
	}
	for i, m := range j.Messages {
		if b, err := base64.StdEncoding.DecodeString(m); err != nil || string(b) != stored[i] {
			t.Fatalf("message %d: %q decodes to %q (%v), want %q", i+1, m, b, err, stored[i])
		}
	}
	if j := read("-from", "9"); j.Messages == nil || len(j.Messages) != 0 {
		t.Fatalf("read past the end: %+v, want an empty array", j)
	}
}

// checkReadForms checks that a read of the messages answers them in one form only: the
// "Logs [...]" text, or with AsList (what -json asks for) the list. Both at once cost the
// leader twice the log in memory, and the wire twice its size, for one of them unused.
func checkReadForms(t *testing.T, c *e2eCluster, addr string, stored []string) {
	text, err := rawCommand(addr, &CommandRequest{Command: cmdRead, Message: "print"})
	if err != nil || text.Status != StatusOK || text.Result != "Logs ["+strings.Join(stored, " ")+"]" || text.Messages != nil {
		t.Fatalf("read print: %+v, %v; want only the Logs [...] text", text, err)
	}
	list, err := rawCommand(addr, &CommandRequest{Command: cmdRead, Message: "print", AsList: true})
	if err != nil || list.Status != StatusOK || list.Result != "" || !slices.Equal(list.Messages, stored) {
		t.Fatalf("read print as a list: %+v, %v; want only the messages %q", list, err, stored)
	}
	r := c.client("-C", "read", "-m", "print", "-S", addr)
	if want := "Logs [" + strings.Join(stored, " ") + "]\nread at index "; r.code != exitOK || !strings.HasPrefix(r.stdout, want) {
		t.Fatalf("read -m print: exit %d, stdout %q, stderr %q; want it to start with %q", r.code, r.stdout, r.stderr, want)
	}
}

// checkStdinMode sends lines through stdin mode, in text and in -json. An empty line is skipped and said so; a message over -max-message (1 MiB) stops it,
// named by its line and quoted by its first 40 bytes and its size.
func checkStdinMode(t *testing.T, c *e2eCluster, addr string) {
	huge := strings.Repeat("h", 2<<20)
	in := "one\n\ntwo\n" + huge + "\nthree\n"
	quoted := `line 4: message "` + strings.Repeat("h", quoteBytes) + `"... (2097152 bytes): refused: the message is 2097152 bytes`
	r := c.clientIn(in, "-C", "clientcommand", "-m", "-", "-S", addr)
	if r.code != exitFailed || strings.Count(r.stdout, "committed at index") != 2 || !strings.Contains(r.stderr, "line 2 is empty: skipped") ||
		!strings.Contains(r.stderr, quoted) || len(r.stderr) > 1000 {
		t.Fatalf("stdin mode: exit %d, stdout %q, stderr %.2000q", r.code, r.stdout, r.stderr)
	}
	r = c.clientIn(in, "-C", "clientcommand", "-m", "-", "-S", addr, "-json")
	var results []jsonResult
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var j jsonResult
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Fatalf("stdin -json: %.200q: %v", l, err)
		}
		results = append(results, j)
	}
	if r.code != exitFailed || len(results) != 3 || results[0].Line != 1 || results[1].Line != 3 || results[2].Line != 4 ||
		results[2].Outcome != "failed" || results[2].Message != strings.Repeat("h", quoteBytes)+"..." || results[2].MessageBytes != len(huge) ||
		len(r.stdout)+len(r.stderr) > 2000 {
		t.Fatalf("stdin -json: exit %d, stdout %.2000q, stderr %.2000q", r.code, r.stdout, r.stderr)
	}
}
