// rpc_test.go: tests of the transport, over real connections on 127.0.0.1.
package main

import (
	"bytes"
	"encoding/gob"
	"io"
	"log"
	"log/slog"
	"net"
	"net/rpc"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// sink is a Raft service that records the messages delivered to it.
type sink struct{ got chan Message }

func (s *sink) Deliver(b *Batch, _ *Ack) error {
	for _, m := range b.Messages {
		s.got <- m
	}
	return nil
}

func serveSink(t *testing.T) (addr string, s *sink) {
	s = &sink{got: make(chan Message, 100)}
	return serveRaft(t, s), s
}

// serveRaft serves service as "Raft" on 127.0.0.1 until the test ends, and returns its
// address.
func serveRaft(t *testing.T, service any) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	srv := rpc.NewServer()
	if err := srv.RegisterName("Raft", service); err != nil {
		t.Fatal(err)
	}
	go serveListener(ln, srv)
	return ln.Addr().String()
}

// serveListener serves srv on ln until ln is closed. rpc.Server.Accept would do the
// same but log the error that ends it ("rpc.Serve: accept ... use of closed network
// connection") into every test's output: a listener closed as its test ends is normal.
func serveListener(ln net.Listener, srv *rpc.Server) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go srv.ServeConn(conn)
	}
}

// The test servers stop without a word when their listener closes: net/rpc's own accept
// loop logged "rpc.Serve: accept ... use of closed network connection" into the output of
// every test that used one.
func TestServeListenerStopsQuietly(t *testing.T) {
	var out bytes.Buffer
	log.SetOutput(&out)
	defer log.SetOutput(os.Stderr)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer()
	srv.RegisterName("Raft", &sink{})
	done := make(chan struct{})
	go func() {
		serveListener(ln, srv)
		close(done)
	}()
	ln.Close()
	<-done
	if out.Len() != 0 {
		t.Fatalf("serving stopped with a log line: %q", out.String())
	}
}

// A connection found dead when first used (its peer restarted while it sat idle) fails
// before sending anything; the batch must go out on a new connection, not be lost.
// Losing it cost elections their RequestVote and doubled failover time.
func TestPeerResendsOverDeadIdleConnection(t *testing.T) {
	addr, s := serveSink(t)
	tr := newTransport("a", "", nil, slog.New(slog.DiscardHandler))
	defer tr.stop()
	var dials atomic.Int32
	tr.dial = func(addr string) (*rpc.Client, error) {
		n := dials.Add(1)
		c, err := dialRPC(addr)
		if err == nil && n == 1 {
			c.Close() // the first connection is already dead when used
		}
		return c, err
	}
	tr.send([]Message{{Type: MsgVote, From: "a", To: addr, Term: 7}})
	select {
	case m := <-s.got:
		if m.Type != MsgVote || m.Term != 7 {
			t.Fatalf("delivered %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the message was lost with the dead connection")
	}
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d dials, want 2 (the dead connection, then one redial)", n)
	}
}

// Messages to one peer arrive in the order they were sent.
func TestPeerKeepsOrder(t *testing.T) {
	addr, s := serveSink(t)
	tr := newTransport("a", "", nil, slog.New(slog.DiscardHandler))
	defer tr.stop()
	for i := 1; i <= 100; i++ {
		tr.send([]Message{{Type: MsgApp, From: "a", To: addr, Term: uint64(i)}})
	}
	for i := 1; i <= 100; i++ {
		select {
		case m := <-s.got:
			if m.Term != uint64(i) {
				t.Fatalf("message %d arrived in place %d", m.Term, i)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d never arrived", i)
		}
	}
}

// A request claiming to be larger than maxRPCBytes is refused before it is read, and a
// request that does not decode, or is cut short, is refused: each closes its connection, is logged with
// the sender's address, and the server serves the next connection as before.
func TestBadRequestsRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := newLines()
	s := &sink{got: make(chan Message, 100)}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Raft", s); err != nil {
		t.Fatal(err)
	}
	tr := newTransport("a", "", nil, slog.New(slog.NewTextHandler(logs, nil)))
	go tr.serve(ln, srv)
	defer tr.stop()

	var good bytes.Buffer // a whole Deliver request, as a client writes it
	enc := gob.NewEncoder(&good)
	enc.Encode(&rpc.Request{ServiceMethod: "Raft.Deliver", Seq: 1})
	enc.Encode(&Batch{Messages: []Message{{Type: MsgVote, From: "b", To: "a", Term: 2}}})
	goodBin := binRequest("Raft.Deliver", 1, &Batch{Messages: []Message{{Type: MsgVote, From: "b", To: "a", Term: 2}}})
	cases := []struct {
		name  string
		offer bool // in the binary codec (codec.go): the preface first
		send  []byte
		log   string
	}{
		{"1 GiB length prefix", false, []byte{0xfc, 0x40, 0, 0, 0, 'x'}, "over the limit"},
		{"garbage", false, bytes.Repeat([]byte("garbage "), 20), "does not decode"},
		{"9-byte length prefix", false, []byte{0xf0, 1, 2, 3}, "malformed request"},
		{"truncated", false, good.Bytes()[:good.Len()-3], "unexpected EOF"},
		{"binary: a 1 GiB frame", true, []byte{0, 0, 0, 0x40, 'x'}, "a frame of 1073741824 bytes is over the limit"},
		{"binary: a garbage body", true, binRequest("Raft.Deliver", 1, &CommandRequest{Message: "not a batch"}), "malformed body"},
		{"binary: a garbage header", true, []byte{2, 0, 0, 0, 1, 2}, "shorter than its header"},
		{"binary: a method past the frame's end", true, []byte{10, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x7f, 'x'}, "its method or error is cut short"},
		{"binary: truncated", true, goodBin[:len(goodBin)-3], "unexpected EOF"},
	}
	for _, tc := range cases {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if tc.offer {
			offerPreface(t, conn)
		}
		conn.Write(tc.send)
		if strings.HasSuffix(tc.name, "truncated") {
			conn.(*net.TCPConn).CloseWrite() // the rest never comes
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := conn.Read(make([]byte, 1)); err == nil || n != 0 {
			t.Errorf("%s: the server answered (%d bytes) instead of closing the connection", tc.name, n)
		}
		conn.Close()
		if !logs.waitLine(tc.log) {
			t.Errorf("%s: nothing logged about it:\n%s", tc.name, logs)
		}
	}
	if all, _ := logs.snapshot(); len(all) != len(cases) {
		t.Errorf("want one log line per bad request:\n%s", logs)
	}
	// A body refused as oversized ends the connection: what follows it is never read as
	// a request of its own. (Found in review: it was, from inside the refused body.)
	var smuggle bytes.Buffer
	enc = gob.NewEncoder(&smuggle)
	enc.Encode(&rpc.Request{ServiceMethod: "Raft.Deliver", Seq: 1})
	smuggle.Write([]byte{0xfc, 0x01, 0x40, 0, 0}) // a body of 20 MiB, it says
	inner := good.Bytes()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Write(append(smuggle.Bytes(), inner...))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); err == nil || n != 0 {
		t.Errorf("oversized body: the server answered (%d bytes) instead of closing the connection", n)
	}
	conn.Close()
	select {
	case m := <-s.got:
		t.Fatalf("a request inside a refused body was delivered: %+v", m)
	default:
	}
	c, err := dialRPC(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Call("Raft.Deliver", &Batch{Messages: []Message{{Type: MsgVote, From: "b", To: "a", Term: 2}}}, &Ack{}); err != nil {
		t.Fatalf("a good request after the bad ones: %v", err)
	}
	if m := <-s.got; m.Type != MsgVote || m.Term != 2 {
		t.Fatalf("delivered %+v", m)
	}
}

// countingReader counts the reads made of it.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

// The server reads requests from the connection in buffer-sized reads, not a few bytes
// at a time: each read of a socket is a system call, and gob reads each message's
// length prefix a byte or two at a time.
func TestServerCodecReadsInBulk(t *testing.T) {
	var stream bytes.Buffer
	enc := gob.NewEncoder(&stream)
	const requests = 200
	for i := range requests {
		enc.Encode(&rpc.Request{ServiceMethod: "Raft.Deliver", Seq: uint64(i)})
		enc.Encode(&Batch{Messages: []Message{{Type: MsgAppResp, From: "b", To: "a", Term: 2, MatchIndex: uint64(i), Success: true}}})
	}
	conn := &countingReader{r: bytes.NewReader(stream.Bytes())}
	c := newServerCodec(nopCloser{conn}, "test", slog.New(slog.DiscardHandler))
	for i := range requests {
		var req rpc.Request
		var b Batch
		if err := c.ReadRequestHeader(&req); err != nil || req.Seq != uint64(i) {
			t.Fatalf("request %d: %v, seq %d", i, err, req.Seq)
		}
		if err := c.ReadRequestBody(&b); err != nil || b.Messages[0].MatchIndex != uint64(i) {
			t.Fatalf("request %d body: %v", i, err)
		}
	}
	if most := stream.Len()/4096 + 2; conn.reads > most {
		t.Fatalf("%d requests (%d bytes) took %d reads of the connection; want at most %d", requests, stream.Len(), conn.reads, most)
	}
}
