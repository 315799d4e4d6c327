// client.go: the command-line client. It sends one command to a member (which forwards
// it to the leader), retries while that is certainly safe (no leader yet, a change in
// progress), and reports one of three outcomes: committed, not committed, or unknown.
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"time"
)

const (
	minRetryWait = 10 * time.Millisecond
	maxRetryWait = 50 * time.Millisecond
	answerGrace  = time.Second // how much longer than its own wait the server may take to answer
)

// runClient runs one client command and returns the exit status.
func runClient(cfg clientConfig, stdout, stderr io.Writer) int {
	deadline := time.Now().Add(cfg.Timeout)
	wait := minRetryWait
	why := "no attempt finished"
	for {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			fmt.Fprintf(stderr, "raft: %s not committed after %v: %s\n", describe(cfg), cfg.Timeout, why)
			return exitFailed
		}
		req := &CommandRequest{Command: cfg.Command, Message: cfg.Message, Wait: remaining}
		resp, err := call(cfg.Server, req)
		if err != nil {
			if !errors.Is(err, errNotSent) {
				fmt.Fprintf(stderr, "raft: outcome unknown: %s: lost %s after sending (%v); it may have committed: look before retrying (-m print)\n", describe(cfg), cfg.Server, err)
				return exitUnknown
			}
			why = fmt.Sprintf("cannot reach %s: %v", cfg.Server, errors.Unwrap(err))
		} else {
			if resp.ForwardedTo != "" {
				fmt.Fprintf(stderr, "raft: %s is not the leader; it forwarded the command to the leader %s\n", cfg.Server, resp.ForwardedTo)
			}
			switch resp.Status {
			case StatusOK:
				if resp.Result != "" {
					fmt.Fprintln(stdout, resp.Result)
				}
				if resp.Index > 0 { // a transfer appends nothing
					fmt.Fprintf(stdout, "committed at index %d (term %d, leader %s)\n", resp.Index, resp.Term, resp.Leader)
				}
				return exitOK
			case StatusRetry:
				why = resp.Error
			case StatusRejected:
				fmt.Fprintf(stderr, "raft: %s refused: %s\n", describe(cfg), resp.Error)
				return exitFailed
			case StatusUnknown:
				fmt.Fprintf(stderr, "raft: outcome unknown: %s: %s; look before retrying (-m print)\n", describe(cfg), resp.Error)
				return exitUnknown
			default:
				fmt.Fprintf(stderr, "raft: outcome unknown: %s: %s answered with status %d\n", describe(cfg), cfg.Server, resp.Status)
				return exitUnknown
			}
		}
		// Certainly not committed: wait a little and try again.
		time.Sleep(min(wait, time.Until(deadline)))
		wait = min(2*wait, maxRetryWait)
	}
}

func describe(cfg clientConfig) string {
	switch cfg.Command {
	case cmdClient:
		return fmt.Sprintf("message %q", cfg.Message)
	case cmdAddServer:
		return "adding " + cfg.Message
	case cmdTransfer:
		if cfg.Message == "" {
			return "leadership transfer"
		}
		return "leadership transfer to " + cfg.Message
	}
	return "removing " + cfg.Message
}

// call sends one command and waits for the answer. An error wrapping errNotSent means
// the command certainly never reached the server.
func call(server string, req *CommandRequest) (CommandResponse, error) {
	var resp CommandResponse
	conn, err := net.DialTimeout("tcp", server, min(req.Wait, dialTimeout))
	if err != nil {
		return resp, fmt.Errorf("%w: %w", errNotSent, err)
	}
	client := rpc.NewClient(conn)
	defer client.Close()
	c := client.Go("Raft.Command", req, &resp, make(chan *rpc.Call, 1))
	timer := time.NewTimer(req.Wait + answerGrace)
	defer timer.Stop()
	select {
	case <-c.Done:
		return resp, c.Error
	case <-timer.C:
		return resp, fmt.Errorf("no answer within %v", req.Wait+answerGrace)
	}
}
