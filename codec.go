// codec.go: the binary codec of net/rpc, in place of gob between servers of this
// version and from its clients. net/rpc stays: rpc.Server and rpc.Client run the
// calls, the codec only reads and writes them. Each request and each response is one
// frame, written with one Write:
//
//	u32 little-endian: the length of what follows
//	u64 little-endian: the call's sequence number
//	uvarint n, n bytes: the method (a request) or the error (a response; empty: none)
//	the body
//
// The bodies of the hot path (Raft.Deliver's Batch and Ack, Raft.Command's and
// Raft.Commands' requests and responses) are encoded by hand (binBody); any other body
// is one gob value of its own inside the frame. Gob read each length prefix and type
// descriptor of the stream and walked every value by reflection; a frame is read in
// one piece and decoded without either.
//
// Mixed versions: a dialer of this version opens its connection with codecPreface,
// which no gob stream starts with (its first byte, read by gob as a length prefix,
// claims 16 bytes of length), and sends its first calls right after it, without waiting.
// A server of this version answers with the preface and serves frames. An older server
// fails to decode the preface and closes the connection having run nothing, so the
// dialer connects again, sends the calls still unanswered again in gob, goes on in gob,
// and keeps to gob with that address for gobRecheck before it offers frames again (the
// server may have been upgraded meanwhile). A dialer that does not open with the
// preface (an older one) is served gob, as before.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/rpc"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// codecPreface opens a connection that offers the binary codec, version 1. Its
	// first byte differs from a gob stream's and from a TLS handshake's (plainOnly).
	codecPreface = "\xf0raft/1\n"
	// gobRecheck: how long a dialer keeps to gob with a server that refused the preface.
	gobRecheck = time.Minute
	// The largest response a client reads (a read of a long log). A request is at most
	// maxRPCBytes.
	maxResponseBytes = 1 << 30
	frameBufSize     = 64 << 10 // what each side of a connection reads at once
)

// gobServers are the servers that refused the preface, until when a dialer keeps to gob
// with them.
var gobServers = struct {
	sync.Mutex
	until map[string]time.Time
}{until: map[string]time.Time{}}

func speaksGobOnly(addr string) bool {
	gobServers.Lock()
	defer gobServers.Unlock()
	until, ok := gobServers.until[addr]
	if ok && time.Now().After(until) {
		delete(gobServers.until, addr)
		return false
	}
	return ok
}

func rememberGobOnly(addr string) {
	gobServers.Lock()
	gobServers.until[addr] = time.Now().Add(gobRecheck)
	gobServers.Unlock()
}

// dialRPCClient connects to addr within timeout (plain TCP if keys is nil, else TLS)
// and returns a client that speaks the binary codec, or gob to a server that does not
// know it. Every dialer of servers (peers, forwarding, clients) comes through here.
func dialRPCClient(addr string, timeout time.Duration, keys *tlsKeys) (*rpc.Client, error) {
	conn, err := dialConn(addr, timeout, keys)
	if err != nil {
		return nil, err
	}
	if speaksGobOnly(addr) {
		return rpc.NewClient(conn), nil
	}
	redial := func() (net.Conn, error) { return dialConn(addr, timeout, keys) }
	return rpc.NewClientWithCodec(&binClientCodec{addr: addr, redial: redial, conn: conn,
		in: bufio.NewReaderSize(conn, frameBufSize), r: binReader{names: map[string]string{}}}), nil
}

// serverCodec is the codec to serve conn with: binary if its dialer opens with the
// preface (answered with the preface), else gob. Nil: conn failed and is closed.
func (t *transport) serverCodec(conn net.Conn) rpc.ServerCodec {
	remote := conn.RemoteAddr().String()
	in := bufio.NewReaderSize(conn, frameBufSize)
	if !offersBinary(in) {
		// An older dialer, or garbage, which gob refuses.
		return newServerCodec(bufferedConn{Reader: in, conn: conn}, remote, t.logger)
	}
	in.Discard(len(codecPreface))
	if _, err := io.WriteString(conn, codecPreface); err != nil {
		conn.Close()
		return nil
	}
	return newBinServerCodec(conn, in, remote, t.logger)
}

// offersBinary reports whether the connection read through in opens with the preface.
// It waits for the rest of the preface only while what came so far is a start of it:
// garbage that begins like it is refused at once, not once its sender hangs up.
func offersBinary(in *bufio.Reader) bool {
	head, err := in.Peek(1)
	if err != nil || head[0] != codecPreface[0] {
		return false
	}
	if head, _ = in.Peek(min(in.Buffered(), len(codecPreface))); !strings.HasPrefix(codecPreface, string(head)) {
		return false
	}
	head, err = in.Peek(len(codecPreface))
	return err == nil && string(head) == codecPreface
}

// bufferedConn is a connection read through a buffer that may hold its first bytes.
type bufferedConn struct {
	*bufio.Reader
	conn net.Conn
}

func (c bufferedConn) Write(p []byte) (int, error) { return c.conn.Write(p) }
func (c bufferedConn) Close() error                { return c.conn.Close() }

// readRPCFrame reads one frame (without its length) into buf, grown if need be, refusing
// one whose length is over limit before reading it.
func readRPCFrame(in *bufio.Reader, buf []byte, limit int) ([]byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(in, head[:]); err != nil {
		return nil, err // io.EOF between frames: the connection ended cleanly
	}
	size := int(binary.LittleEndian.Uint32(head[:]))
	if size > limit {
		return nil, fmt.Errorf("a frame of %d bytes is over the limit of %d", size, limit)
	}
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := io.ReadFull(in, buf); err != nil {
		return nil, io.ErrUnexpectedEOF
	}
	return buf, nil
}

// appendFrameHead starts a frame in b: room for the length (putFrameLength fills it
// in), the sequence number and the method or error.
func appendFrameHead(b []byte, seq uint64, name string) []byte {
	b = append(b, 0, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = binary.AppendUvarint(b, uint64(len(name)))
	return append(b, name...)
}

func putFrameLength(b []byte) { binary.LittleEndian.PutUint32(b, uint32(len(b)-4)) }

// splitFrame is the inverse of appendFrameHead: the sequence number, the method or
// error, and the body.
func splitFrame(f []byte, names *binReader) (seq uint64, name string, body []byte, err error) {
	if len(f) < 8 {
		return 0, "", nil, errors.New("malformed frame: shorter than its header")
	}
	names.b, names.err = f[8:], nil
	name = names.name()
	if names.err != nil {
		return 0, "", nil, errors.New("malformed frame: its method or error is cut short")
	}
	return binary.LittleEndian.Uint64(f), name, names.b, nil
}

// appendBody encodes x after b: by hand if it is a binBody, else as one gob value.
func appendBody(b []byte, x any) ([]byte, error) {
	if m, ok := x.(binBody); ok {
		return m.appendBin(b), nil
	}
	w := sliceWriter{b}
	err := gob.NewEncoder(&w).Encode(x)
	return w.b, err
}

// readBody decodes body into x (nil: skip it). r carries the interned names of the
// connection.
func readBody(body []byte, x any, r *binReader) error {
	if x == nil {
		return nil
	}
	m, ok := x.(binBody)
	if !ok {
		// gobLimit: gob would allocate whatever length a message inside claims.
		return gob.NewDecoder(&gobLimit{r: bytes.NewReader(body), limit: uint64(len(body))}).Decode(x)
	}
	r.b, r.err = body, nil
	m.readBin(r)
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("malformed %T: %d bytes after it", x, len(r.b))
	}
	return r.err
}

// sliceWriter appends what is written to it to b.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// binServerCodec is the server's side of the binary codec. Like the gob one
// (serverCodec), it refuses a request over maxRPCBytes before reading it and one that
// does not decode, logging either with where it came from and closing the connection.
type binServerCodec struct {
	conn   io.ReadWriteCloser
	in     *bufio.Reader
	remote string
	logger *slog.Logger
	r      binReader // read by net/rpc's one reading goroutine
	body   []byte    // of the request whose header was read last
	wbuf   []byte    // net/rpc writes responses one at a time

	closing  sync.Once
	closeErr error
}

func newBinServerCodec(conn io.ReadWriteCloser, in *bufio.Reader, remote string, logger *slog.Logger) *binServerCodec {
	return &binServerCodec{conn: conn, in: in, remote: remote, logger: logger, r: binReader{names: map[string]string{}}}
}

func (c *binServerCodec) ReadRequestHeader(req *rpc.Request) error {
	// A new buffer for each request: a Batch's entries keep pointing into it, in a
	// handler that runs while the next request is read.
	f, err := readRPCFrame(c.in, nil, maxRPCBytes)
	if err == nil {
		req.Seq, req.ServiceMethod, c.body, err = splitFrame(f, &c.r)
	}
	return refuseRequest(c.logger, c.remote, err, c.Close)
}

func (c *binServerCodec) ReadRequestBody(x any) error {
	body := c.body
	c.body = nil
	return refuseRequest(c.logger, c.remote, readBody(body, x, &c.r), c.Close)
}

func (c *binServerCodec) WriteResponse(resp *rpc.Response, x any) error {
	b := appendFrameHead(c.wbuf[:0], resp.Seq, resp.Error)
	var err error
	if resp.Error == "" { // else x is a placeholder, and the client reads no body
		b, err = appendBody(b, x)
	}
	if err == nil {
		putFrameLength(b)
		_, err = c.conn.Write(b)
	}
	if cap(b) <= frameBufSize {
		c.wbuf = b // a large response's buffer is not kept
	}
	if err != nil {
		c.Close()
	}
	return err
}

func (c *binServerCodec) Close() error {
	c.closing.Do(func() { c.closeErr = c.conn.Close() })
	return c.closeErr
}

// binClientCodec is the client's side of the binary codec. Until the server has
// answered the preface it keeps the calls it wrote (early): if the server turns out not
// to know the codec, it falls back to gob on a new connection and writes them again.
type binClientCodec struct {
	addr   string
	redial func() (net.Conn, error)
	r      binReader // read by rpc.Client's reading goroutine
	in     *bufio.Reader
	rbuf   []byte // responses decode into values of their own (no binBody response keeps bytes of it)
	body   []byte

	mu       sync.Mutex // rpc.Client writes requests one at a time, but the reader may switch to gob
	conn     net.Conn
	offered  bool // the preface went out
	accepted bool // the server answered it
	early    []earlyCall
	gob      *gobClientCodec // the server refused the preface: everything goes through gob
	wbuf     []byte
}

// earlyCall is a request written before the server accepted the codec.
type earlyCall struct {
	req  rpc.Request
	body any
}

func (c *binClientCodec) WriteRequest(req *rpc.Request, x any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gob != nil {
		return c.gob.WriteRequest(req, x)
	}
	b := c.wbuf[:0]
	if !c.offered {
		b, c.offered = append(b, codecPreface...), true
	}
	start := len(b)
	b, err := appendBody(appendFrameHead(b, req.Seq, req.ServiceMethod), x)
	if err != nil {
		return err
	}
	putFrameLength(b[start:])
	if cap(b) <= frameBufSize {
		c.wbuf = b
	}
	_, err = c.conn.Write(b)
	if !c.accepted {
		// An older server may have closed the connection on the preface already:
		// the reader finds out, and writes this again in gob.
		c.early = append(c.early, earlyCall{*req, x})
		return nil
	}
	return err
}

func (c *binClientCodec) ReadResponseHeader(resp *rpc.Response) error {
	if c.gob == nil && !c.accepted { // only this goroutine sets either
		if err := c.awaitAnswer(); err != nil {
			return err
		}
	}
	if c.gob != nil {
		return c.gob.ReadResponseHeader(resp)
	}
	f, err := readRPCFrame(c.in, c.rbuf, maxResponseBytes)
	if err != nil {
		return err
	}
	if cap(f) <= frameBufSize {
		c.rbuf = f
	}
	resp.Seq, resp.Error, c.body, err = splitFrame(f, &c.r)
	return err
}

// awaitAnswer reads the server's answer to the preface: the preface, or else (the
// connection closed, or something else) a server that speaks gob only, to which the
// calls written so far go again in gob, on a new connection. The old server decoded
// none of them: it stopped at the preface.
func (c *binClientCodec) awaitAnswer() error {
	var answer [len(codecPreface)]byte
	_, err := io.ReadFull(c.in, answer[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && string(answer[:]) == codecPreface {
		c.accepted, c.early = true, nil
		return nil
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) {
		return err // the connection failed (closed by this side, ...): not a refusal
	}
	rememberGobOnly(c.addr)
	c.conn.Close()
	conn, err := c.redial()
	if err != nil {
		// What was written never ran: net/rpc's word for a call that was not sent.
		return rpc.ErrShutdown
	}
	c.conn, c.gob = conn, newGobClientCodec(conn)
	for _, e := range c.early {
		if err := c.gob.WriteRequest(&e.req, e.body); err != nil {
			return rpc.ErrShutdown
		}
	}
	c.early = nil
	return nil
}

func (c *binClientCodec) ReadResponseBody(x any) error {
	var err error
	if c.gob != nil {
		err = c.gob.ReadResponseBody(x)
	} else {
		body := c.body
		c.body = nil
		err = readBody(body, x, &c.r)
	}
	if a, ok := x.(arrival); ok && err == nil {
		a.arrived()
	}
	return err
}

func (c *binClientCodec) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn.Close()
}

// gobClientCodec is net/rpc's own client codec (which it does not export), for a
// binClientCodec that falls back to gob.
type gobClientCodec struct {
	dec *gob.Decoder
	enc *gob.Encoder
	out *bufio.Writer
}

func newGobClientCodec(conn net.Conn) *gobClientCodec {
	out := bufio.NewWriter(conn)
	return &gobClientCodec{dec: gob.NewDecoder(bufio.NewReader(conn)), enc: gob.NewEncoder(out), out: out}
}

func (c *gobClientCodec) WriteRequest(req *rpc.Request, x any) error {
	if err := c.enc.Encode(req); err != nil {
		return err
	}
	if err := c.enc.Encode(x); err != nil {
		return err
	}
	return c.out.Flush()
}

func (c *gobClientCodec) ReadResponseHeader(resp *rpc.Response) error { return c.dec.Decode(resp) }
func (c *gobClientCodec) ReadResponseBody(x any) error                { return c.dec.Decode(x) }
