// attempts.go: what the client tried for one command, member by member, so that a
// failure names every member it tried and why each failed (not just the last), and so
// that a cluster that refuses every connection is said to the user at once, while the
// client waits on for it until -timeout (a cluster being restarted comes back); and how
// much of -timeout one try at a member may take.
package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// minShare is the least a try at one member gets while others are left to try: enough
// for a leader to confirm a read or commit a message, under load.
const minShare = time.Second

// share is how much of remaining one try may take when members members are left to
// try: an even share, at least minShare. A member that takes the request and never
// answers (SIGSTOPped, wedged) then costs a share, not the whole -timeout, and the
// client still asks the next one. With one member left it gets all that remains.
func share(remaining time.Duration, members int) time.Duration {
	if members <= 1 {
		return remaining
	}
	return min(remaining, max(remaining/time.Duration(members), minShare))
}

// attempts remembers how the last try at each member ended.
type attempts struct {
	order   []string          // members, in the order first tried
	why     map[string]string // member: why its last try failed
	refused map[string]bool   // member: its last try was refused a connection
}

func newAttempts() *attempts {
	return &attempts{why: map[string]string{}, refused: map[string]bool{}}
}

// failed records why the try at server failed. A reason that does not name the server
// (one a member answered with, say) is prefixed with it.
func (a *attempts) failed(server, why string, err error) {
	if _, ok := a.why[server]; !ok {
		a.order = append(a.order, server)
	}
	if !strings.Contains(why, server) {
		why = server + ": " + why
	}
	a.why[server] = why
	a.refused[server] = errors.Is(err, syscall.ECONNREFUSED)
}

// allRefused reports whether every one of servers refused its last connection.
func (a *attempts) allRefused(servers []string) bool {
	for _, s := range servers {
		if !a.refused[s] {
			return false
		}
	}
	return len(servers) > 0
}

// String is every member's last failure, in the order they were tried.
func (a *attempts) String() string {
	if len(a.order) == 0 {
		return "no attempt finished"
	}
	whys := make([]string, len(a.order))
	for i, s := range a.order {
		whys[i] = a.why[s]
	}
	return strings.Join(whys, "; ")
}

// noteRefusals says once on stderr that no member of -S accepts connections, if so:
// otherwise a client waiting for a cluster that is down would show nothing until its
// -timeout is up.
func (c *client) noteRefusals(a *attempts) {
	if a.allRefused(c.cfg.Servers) {
		c.note(fmt.Sprintf("raft: every member refuses connections (%s): is the cluster running? Trying again until -timeout (%v) is up",
			strings.Join(c.cfg.Servers, ", "), roundDuration(c.cfg.Timeout)))
	}
}
