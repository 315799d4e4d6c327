// forward.go: a follower forwarding a client's command to the leader. It waits for the
// answer only while that server is the leader it knows. A leader cut off by a partition
// answers nothing until the partition heals, while the others elect a new leader within
// about an election timeout; so once the event loop knows another leader (or leads
// itself), it closes the channel the forward waits on (noteLeader), and the command
// moves on at once:
//
//   - a command that certainly never reached the old leader, a read (it changes
//     nothing), and a message of a client session (applied once however often it
//     arrives, and answered as the first time: machine.go) go through the loop again:
//     to the new leader, or into this node's log if it now leads;
//   - anything else may have taken effect at the old leader, and a second copy could
//     not be told from a new command (a membership change, a message without a
//     session, a transfer): the client hears at once what is known, and decides.
package main

import (
	"errors"
	"fmt"
	"time"
)

// noteLeader closes leaderc, waking the forwards waiting on the leader the node knew,
// once it knows another one: a new leader, or itself. Losing contact with the leader
// closes nothing: it may still answer. Only the loop calls it: after every turn, and
// before handing out leaderc.
func (n *node) noteLeader() {
	lead := n.core.leader
	if lead == noLeader || lead == n.watched {
		return
	}
	if n.leaderc != nil {
		close(n.leaderc)
	}
	n.leaderc, n.watched = make(chan struct{}), lead
}

// refuse answers p with a core error. A refusal for not leading that names the leader
// carries the channel that is closed once another one leads. Only the loop calls it.
func (n *node) refuse(p *proposal, err error) {
	resp := n.refusal(err)
	if resp.NotLeader && resp.Leader != noLeader {
		n.noteLeader()
		p.leaderChanged = n.leaderc
	}
	p.done <- resp
}

// resendable says whether a command may safely reach the cluster twice: a read changes
// nothing, and a message of a session is applied once.
func resendable(req *CommandRequest) bool {
	return req.Command == cmdRead || (req.Command == cmdClient && req.Session != 0)
}

// forward sends a client's command, which the loop refused in p for not leading, to the
// leader lead, and returns the answer. If the node learns of another leader meanwhile,
// the command goes on as the top of this file says.
func (n *node) forward(lead string, p *proposal) CommandResponse {
	sentTo := "" // the last leader a copy may have reached
	for {
		wait := time.Until(p.deadline)
		if wait <= 0 {
			return n.settle(CommandResponse{Status: StatusRetry, Leader: lead,
				Error: fmt.Sprintf("%s had no answer from a leader within %v", n.id, p.req.Wait)}, sentTo)
		}
		fwd := *p.req
		fwd.Forwarded, fwd.Cluster, fwd.Wait = true, n.trans.clusterID(), wait
		resp, err := n.trans.forward(lead, &fwd, p.leaderChanged)
		switch {
		case err == nil:
			resp.ForwardedTo = lead
			return n.settle(resp, sentTo)
		case errors.Is(err, errCanceled):
			// Another leader is known: go on below.
		case errors.Is(err, errNotSent):
			return n.settle(CommandResponse{Status: StatusRetry, Leader: lead,
				Error: fmt.Sprintf("%s could not reach the leader %s: %v", n.id, lead, err)}, sentTo)
		default:
			return CommandResponse{Status: StatusUnknown, Leader: lead, ForwardedTo: lead,
				Error: fmt.Sprintf("%s forwarded the command to the leader %s but got no answer (%v); it may have committed", n.id, lead, err)}
		}
		if !errors.Is(err, errNotSent) {
			if !resendable(p.req) {
				return n.leaderLost(lead, p.req)
			}
			sentTo = lead
		}
		q := &proposal{req: p.req, deadline: p.deadline, done: make(chan CommandResponse, 1)}
		if resp, ok := n.submit(q); !ok {
			return n.settle(resp, sentTo)
		}
		resp = n.await(q)
		if !resp.NotLeader || resp.Leader == noLeader {
			return n.settle(resp, sentTo) // answered here, as the leader, or no leader known
		}
		lead, p = resp.Leader, q
	}
}

// settle is the answer to a forwarded command, given that a copy of it may have reached
// sentTo (if not empty): "not committed" is then no longer known, since that copy may
// still commit.
func (n *node) settle(resp CommandResponse, sentTo string) CommandResponse {
	if sentTo != "" && resp.Status == StatusRetry {
		resp.Status = StatusUnknown
		resp.Error += fmt.Sprintf("; the copy %s forwarded to %s before that one lost the leadership may still commit", n.id, sentTo)
	}
	return resp
}

// leaderLost answers a command that may have reached lead before it lost the
// leadership, and that is not sent again.
func (n *node) leaderLost(lead string, req *CommandRequest) CommandResponse {
	s, err := n.view()
	if err != nil {
		return CommandResponse{Status: StatusUnknown, ForwardedTo: lead, Error: err.Error() + "; the command may have taken effect"}
	}
	if req.Command == cmdTransfer {
		// It moved: by the transfer, or because lead was cut off; either way, what the
		// leader itself would have answered.
		if s.Leader != noLeader && s.Leader != lead {
			resp := transferred(lead, req.Message, s)
			resp.ForwardedTo = lead
			return resp
		}
		return CommandResponse{Status: StatusRetry, Leader: s.Leader, ForwardedTo: lead,
			Error: fmt.Sprintf("the leader %s lost the leadership before it answered, and %s knows no new leader yet", lead, n.id)}
	}
	return CommandResponse{Status: StatusUnknown, Leader: s.Leader, ForwardedTo: lead,
		Error: fmt.Sprintf("%s forwarded the command to the leader %s, which lost the leadership to %s before it answered; it may have taken effect there (it is not sent again: a second copy could not be told from a new command)", n.id, lead, orDash(s.Leader))}
}
