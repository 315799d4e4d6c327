// leaderwatch.go: the client's watch on a leader it waits for. A leader cut off by a
// partition answers nothing, and the client's connection to it stays open in silence
// until -timeout: nothing tells a slow answer from one that will never come. So while
// the client waits on a member that has led, it asks the other members of -S now and
// then who leads; once one names another leader, it stops waiting and sends the
// command there. (A follower it waits on does the same for the commands it forwards:
// forward.go.) Only commands that may be sent twice are watched: a message of the
// client's session is applied once however often it arrives, a read changes nothing,
// and a transfer to the leader is a no-op.
package main

import (
	"net/rpc"
	"time"
)

const (
	watchAfter = 200 * time.Millisecond // an answer slower than this starts the watch
	watchEvery = 100 * time.Millisecond // how often it asks one of the other members
)

// leaderWatch asks the other members of -S who leads, while the client waits on server.
type leaderWatch struct {
	server  string
	others  []string
	keys    *tlsKeys
	led     bool          // server is known to have led: named by an answer, or by a member asked here
	changed chan struct{} // closed once a member names another leader, after server led
	leader  string        // that leader, and the member that named it (set before changed is closed)
	by      string
	timer   *time.Timer // starts run after watchAfter
	stop    chan struct{}
}

// watch starts watching server for a command that may be sent twice. It returns nil
// if -S names no other member to ask.
func (c *client) watch(server string) *leaderWatch {
	w := &leaderWatch{server: server, keys: c.cfg.TLS, led: server == c.leader || server == c.known,
		changed: make(chan struct{}), stop: make(chan struct{})}
	for _, s := range c.cfg.Servers {
		if s != server {
			w.others = append(w.others, s)
		}
	}
	if len(w.others) == 0 {
		return nil
	}
	w.timer = time.AfterFunc(watchAfter, w.run)
	return w
}

// cancel is closed once the client should stop waiting on the server (nil: never).
func (w *leaderWatch) cancel() <-chan struct{} {
	if w == nil {
		return nil
	}
	return w.changed
}

// end stops the watch. One under way ends by itself within about watchEvery: the
// command's answer need not wait for it.
func (w *leaderWatch) end() {
	if w != nil && !w.timer.Stop() {
		close(w.stop)
	}
}

// run asks the other members in turn, one every watchEvery, until one names a leader
// other than the server after it led, or the watch ends.
func (w *leaderWatch) run() {
	conns := map[string]*rpc.Client{}
	defer func() {
		for addr := range conns {
			dropConn(conns, addr)
		}
	}()
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-w.stop:
			return
		default:
		}
		member := w.others[i%len(w.others)]
		st, err := askStatus(conns, member, watchEvery, w.keys)
		switch {
		case err != nil:
		case st.Leader == w.server:
			w.led = true
		case st.Leader != noLeader && w.led:
			w.leader, w.by = st.Leader, member
			close(w.changed)
			return
		}
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
	}
}
