// node_e2e_test.go: what a node tells its operator, through the real binary: why a
// leader stepped down, why a server could not be added, what is wrong with a data dir
// it cannot start on, and what it says of itself once removed.
package main

import (
	"net"
	"strings"
	"syscall"
	"testing"
)

// A leader that loses its majority says why it stepped down, naming the members it did
// not hear from.
func TestEndToEndStepDownSaysWhy(t *testing.T) {
	c, members, _ := runningCluster(t)
	lead := c.send(members[0], "x").leader
	var others []string
	for _, id := range members {
		if id != lead {
			others = append(others, id)
			c.procs[id].cmd.Process.Signal(syscall.SIGSTOP)
		}
	}
	defer func() {
		for _, id := range others {
			c.procs[id].cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	p := c.procs[lead]
	if !p.stderr.waitLine(`msg="stepped down"`) {
		t.Fatalf("the leader cut off from the others did not step down:\n%s", p.stderr)
	}
	var line string
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(l, `msg="stepped down"`) {
			line = l
		}
	}
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "no majority heard from within an election timeout") || !strings.Contains(line, "in contact with 1 of 3 members") {
		t.Fatalf("the step-down does not say why: %s", line)
	}
	for _, id := range others {
		if !strings.Contains(line, id) {
			t.Fatalf("the step-down does not name %s, not heard from: %s", id, line)
		}
	}
}

// addserver of a server that refuses the leader's messages says why it refused them,
// not that it did not answer: a running member named by another address than its own,
// and the member of another cluster.
func TestEndToEndAddServerRefusedSaysWhy(t *testing.T) {
	c, members, other := runningCluster(t)
	lead := c.send(members[0], "x").leader
	_, port, _ := net.SplitHostPort(members[1])
	alias := "localhost:" + port
	r := c.client("-C", "addserver", "-m", alias, "-S", lead, "-timeout", "15s")
	if r.code != exitFailed || !strings.Contains(r.stderr, "the new server answered, but took none of the leader's messages") ||
		!strings.Contains(r.stderr, "reached "+members[1]+", which goes by that address") || !strings.Contains(r.stderr, "membership unchanged") {
		t.Fatalf("addserver %s for the member %s: exit %d, %q", alias, members[1], r.code, r.stderr)
	}

	c.startWith(other, "-p", other) // a cluster of its own
	r = c.client("-C", "addserver", "-m", other, "-S", lead, "-timeout", "15s")
	if r.code != exitFailed || !strings.Contains(r.stderr, "the new server answered, but took none of the leader's messages") ||
		!strings.Contains(r.stderr, "it is of cluster "+c.status(lead).Cluster) || !strings.Contains(r.stderr, "membership unchanged") {
		t.Fatalf("addserver of %s, of another cluster: exit %d, %q", other, r.code, r.stderr)
	}
	if st := c.status(lead); len(st.Members) != 3 {
		t.Fatalf("the membership changed: %+v", st.Members)
	}
}
