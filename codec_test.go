// codec_test.go: the binary codec (codec.go, binbody.go): its bodies decode to what was
// encoded, it writes a call in one write, and it negotiates with servers and dialers of
// older versions, which speak gob only.
package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/rpc"
	"reflect"
	"testing"
	"time"
)

// fillAll sets every field of v, recursively, to a value of its own that is not the
// zero value: two elements in each slice and map, pointers set.
func fillAll(v reflect.Value, next *uint64) {
	*next++
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		v.SetUint(*next % 200)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*next) * 1000003)
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *next))
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fillAll(v.Index(i), next)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fillAll(k, next)
			fillAll(e, next)
			v.SetMapIndex(k, e)
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillAll(v.Elem(), next)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillAll(v.Field(i), next)
			}
		}
	default:
		panic(fmt.Sprintf("fillAll: no value for a %s", v.Type()))
	}
}

// Every field of every hand-encoded body survives the trip: a field added to Message,
// Entry, CommandRequest or CommandResponse and left out of binbody.go fails here. Cut
// short anywhere, a body is refused, not decoded into something else.
func TestBinBodiesRoundTrip(t *testing.T) {
	for _, body := range []binBody{&Batch{}, &Ack{}, &Replies{}, &CommandRequest{}, &CommandResponse{}, &CommandBatch{}, &CommandBatchResponse{}} {
		var next uint64
		fillAll(reflect.ValueOf(body).Elem(), &next)
		enc, err := appendBody(nil, body)
		if err != nil {
			t.Fatal(err)
		}
		got := reflect.New(reflect.TypeOf(body).Elem()).Interface()
		r := binReader{names: map[string]string{}}
		if err := readBody(enc, got, &r); err != nil {
			t.Fatalf("%T: %v", body, err)
		}
		if !reflect.DeepEqual(got, body) {
			t.Fatalf("%T came back otherwise:\n sent %+v\n got  %+v", body, body, got)
		}
		for n := range len(enc) {
			cut := reflect.New(reflect.TypeOf(body).Elem()).Interface()
			if err := readBody(enc[:n], cut, &r); err == nil {
				t.Fatalf("%T cut to %d of %d bytes decoded without an error", body, n, len(enc))
			}
		}
		if err := readBody(append(enc, 0), got, &r); err == nil {
			t.Fatalf("%T with a byte after it decoded without an error", body)
		}
	}
}

// writeCounter is a connection that counts the writes made to it.
type writeCounter struct {
	net.Conn
	writes int
	buf    bytes.Buffer
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.writes++
	return w.buf.Write(p)
}

func (w *writeCounter) Close() error { return nil }

// A call and its answer each leave in one write (one system call), however many
// messages a batch holds, hand-encoded body or gob.
func TestBinCodecWritesOnce(t *testing.T) {
	conn := &writeCounter{}
	client := &binClientCodec{conn: conn}
	server := newBinServerCodec(conn, nil, "test", slog.New(slog.DiscardHandler))
	batch := &Batch{Messages: []Message{{Type: MsgApp, Entries: []Entry{{Data: []byte("a")}, {Data: []byte("b")}}}, {Type: MsgHeartbeat}}}
	for i, write := range []func() error{
		func() error { return client.WriteRequest(&rpc.Request{ServiceMethod: "Raft.Deliver", Seq: 1}, batch) },
		func() error {
			return client.WriteRequest(&rpc.Request{ServiceMethod: "Raft.Status", Seq: 2}, &StatusRequest{})
		},
		func() error {
			return server.WriteResponse(&rpc.Response{Seq: 1}, &CommandBatchResponse{Responses: make([]CommandResponse, 3)})
		},
		func() error { return server.WriteResponse(&rpc.Response{Seq: 2}, &NodeStatus{ID: "a"}) },
	} {
		before := conn.writes
		if err := write(); err != nil {
			t.Fatal(err)
		}
		if n := conn.writes - before; n != 1 {
			t.Fatalf("call %d took %d writes", i, n)
		}
	}
}

// A dialer of this version and a server of this version speak the binary codec; either
// with a peer of an older version (gob only: net/rpc's own client and server stand in
// for it) speaks gob, both ways, and the dialer remembers that server.
func TestCodecNegotiation(t *testing.T) {
	// This version's server: it answers the preface with the preface, and serves an
	// older dialer gob.
	s := &sink{got: make(chan Message, 10)}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Raft", s); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := newTransport("a", "", nil, slog.New(slog.DiscardHandler))
	go tr.serve(ln, srv)
	defer tr.stop()
	newAddr := ln.Addr().String()

	raw, err := net.Dial("tcp", newAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	offerPreface(t, raw)
	oldClient := func(addr string) *rpc.Client {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return rpc.NewClient(conn)
	}
	// An older server: net/rpc's gob server, which cannot read the preface.
	oldAddr, old := serveSink(t)

	for _, tc := range []struct {
		name   string
		client func() (*rpc.Client, error)
		s      *sink
		gob    bool // the dialer then keeps to gob with that address
	}{
		{"new to new", func() (*rpc.Client, error) { return dialRPC(newAddr) }, s, false},
		{"old to new", func() (*rpc.Client, error) { return oldClient(newAddr), nil }, s, false},
		{"new to old", func() (*rpc.Client, error) { return dialRPC(oldAddr) }, old, true},
		{"new to old, remembered", func() (*rpc.Client, error) { return dialRPC(oldAddr) }, old, true},
	} {
		c, err := tc.client()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		// Several calls out before the server's answer to the preface: to an older
		// server, each goes again in gob, once.
		var calls []*rpc.Call
		for term := uint64(1); term <= 3; term++ {
			calls = append(calls, c.Go("Raft.Deliver", &Batch{Messages: []Message{{Type: MsgVote, From: "b", To: "a", Term: term}}}, &Ack{}, nil))
		}
		got := map[uint64]bool{}
		for _, call := range calls {
			select {
			case <-call.Done:
				if call.Error != nil {
					t.Fatalf("%s: %v", tc.name, call.Error)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: no answer to call %d", tc.name, call.Args.(*Batch).Messages[0].Term)
			}
			got[(<-tc.s.got).Term] = true
		}
		c.Close()
		if len(got) != 3 || len(tc.s.got) != 0 {
			t.Fatalf("%s: delivered %v and %d more, want terms 1-3 once each", tc.name, got, len(tc.s.got))
		}
		if speaksGobOnly(oldAddr) != tc.gob || speaksGobOnly(newAddr) {
			t.Fatalf("%s: gob remembered for the old server: %v, for the new one: %v", tc.name, speaksGobOnly(oldAddr), speaksGobOnly(newAddr))
		}
	}
	// Once the time to recheck has come, the dialer offers the binary codec again.
	gobServers.Lock()
	gobServers.until[oldAddr] = time.Now().Add(-time.Second)
	gobServers.Unlock()
	if speaksGobOnly(oldAddr) {
		t.Fatal("gob still remembered for the old server after gobRecheck")
	}
}

// binRequest is a request as this version's dialer writes it, after the preface.
func binRequest(method string, seq uint64, body any) []byte {
	b, err := appendBody(appendFrameHead(nil, seq, method), body)
	if err != nil {
		panic(err)
	}
	putFrameLength(b)
	return b
}

// offerPreface opens conn in the binary codec, as dialRPCClient does, and waits for the
// server to accept it.
func offerPreface(t *testing.T, conn net.Conn) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer conn.SetDeadline(time.Time{})
	answer := make([]byte, len(codecPreface))
	if _, err := io.WriteString(conn, codecPreface); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, answer); err != nil || string(answer) != codecPreface {
		t.Fatalf("the server did not accept the binary codec: answered %q, %v", answer, err)
	}
}
