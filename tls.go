// tls.go: optional mutual TLS for every connection, member to member and client to
// member (-tls-cert, -tls-key, -tls-ca). Each side presents a certificate signed by the
// cluster CA and checks the other's against it; a connection without one is refused and
// the refusal logged. raft -C gencerts (gencerts.go) writes a CA and certificates.
//
// After a successful handshake the member writes one byte, tlsAccepted, before it
// serves the connection, and a dialer waits for it before sending anything. In TLS 1.3
// the client's handshake ends before the server has checked the client's certificate,
// so without it a refusal would surface only when reading the answer to a command
// already sent: "outcome unknown" for something that certainly never ran.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"os"
	"strings"
	"time"
)

const (
	handshakeTimeout = 3 * time.Second // a connection that has not finished its handshake by then is closed
	tlsAccepted      = '+'
)

// tlsKeys is the certificate a node or client presents and the CA it trusts.
// A nil *tlsKeys means plain TCP.
type tlsKeys struct {
	cert tls.Certificate
	ca   *x509.CertPool
}

// certError is a TLS handshake that failed on a certificate: one side does not trust
// the other's. Trying again will not change that.
type certError struct{ error }

// nodeTLS loads a node's TLS flags: its certificate serves, and dials peers.
func nodeTLS(o options) (*tlsKeys, error) {
	return tlsFromFlags(o, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
}

// clientTLS loads a client's TLS flags.
func clientTLS(o options) (*tlsKeys, error) {
	return tlsFromFlags(o, x509.ExtKeyUsageClientAuth)
}

// tlsFromFlags loads -tls-cert, -tls-key and -tls-ca, each given or from its variable
// (env.go): all three, or none (nil, plain TCP). The certificate must be signed by the
// CA and allow every use in uses: a node both serves and dials its peers.
func tlsFromFlags(o options, uses ...x509.ExtKeyUsage) (*tlsKeys, error) {
	var missing, vars []string
	for _, f := range []string{"tls-cert", "tls-key", "tls-ca"} {
		if !o.given(f) {
			missing, vars = append(missing, "-"+f), append(vars, envName(f))
		}
	}
	if len(missing) == 3 {
		return nil, nil
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("TLS needs -tls-cert, -tls-key and -tls-ca together; missing %s (or %s)", strings.Join(missing, " and "), strings.Join(vars, " and "))
	}
	return loadTLSKeys(o.tlsCert, o.tlsKey, o.tlsCA, uses...)
}

// loadTLSKeys reads a certificate, its key and a CA, and checks that the CA signed the
// certificate for uses, so that a mix-up of files fails at start and not at each peer.
func loadTLSKeys(certFile, keyFile, caFile string, uses ...x509.ExtKeyUsage) (*tlsKeys, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert %s, -tls-key %s: %w", certFile, keyFile, err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-ca: %w", err)
	}
	ca := x509.NewCertPool()
	if !ca.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-tls-ca %s: no PEM certificate in it", caFile)
	}
	for _, use := range uses {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: ca, KeyUsages: []x509.ExtKeyUsage{use}}); err != nil {
			return nil, fmt.Errorf("-tls-cert %s cannot be used with -tls-ca %s for %s: %w", certFile, caFile, usageName(use), err)
		}
	}
	return &tlsKeys{cert: cert, ca: ca}, nil
}

func usageName(use x509.ExtKeyUsage) string {
	if use == x509.ExtKeyUsageServerAuth {
		return "a member's side of connections (server auth)"
	}
	return "dialing members (client auth)"
}

// serverConfig is the member's side: a client certificate signed by the CA is required.
func (k *tlsKeys) serverConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{k.cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    k.ca,
		MinVersion:   tls.VersionTLS13,
	}
}

// dialConfig is the dialer's side: it presents its certificate and expects addr's to be
// signed by the CA for the host in addr.
func (k *tlsKeys) dialConfig(addr string) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{k.cert},
		RootCAs:      k.ca,
		ServerName:   serverName(addr),
		MinVersion:   tls.VersionTLS13,
	}
}

// serverName is the name addr's certificate must carry: its host, or localhost for an
// address without one (":9990" listens on every interface, this machine's included).
func serverName(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return "localhost"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "localhost"
	}
	return host
}

// dialConn connects to addr within timeout: plain TCP if keys is nil, else TLS, and
// returns once the member has accepted this side's certificate.
func dialConn(addr string, timeout time.Duration, keys *tlsKeys) (net.Conn, error) {
	deadline := time.Now().Add(timeout)
	raw, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil || keys == nil {
		return raw, err
	}
	conn := tls.Client(raw, keys.dialConfig(addr))
	conn.SetDeadline(deadline)
	if err := conn.Handshake(); err != nil {
		raw.Close()
		if errors.As(err, new(*tls.CertificateVerificationError)) {
			return nil, certError{fmt.Errorf("TLS with %s: refusing its certificate: %w", addr, err)}
		}
		return nil, fmt.Errorf("TLS with %s: %w (is it running with TLS?)", addr, err)
	}
	var ack [1]byte
	if _, err = io.ReadFull(conn, ack[:]); err == nil && ack[0] != tlsAccepted {
		err = fmt.Errorf("it answered %q, not the TLS acceptance", ack[0])
	}
	if err != nil {
		raw.Close()
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "remote error" {
			return nil, certError{fmt.Errorf("TLS with %s: it refused this certificate (%v); it takes only certificates signed by the cluster CA", addr, err)}
		}
		return nil, fmt.Errorf("TLS with %s: no answer after the handshake: %v", addr, err)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// useTLS makes the transport accept only TLS connections that present a certificate
// signed by the CA, and dial peers and leaders with TLS. With nil it stays plain TCP.
func (t *transport) useTLS(keys *tlsKeys) {
	if keys == nil {
		return
	}
	t.tls = keys
	t.dial = func(addr string) (*rpc.Client, error) { return dialRPCClient(addr, dialTimeout, keys) }
}

// handshake runs the member's side of the TLS handshake on an accepted connection and
// returns the connection to serve, or nil if it was refused: then the refusal is logged
// with the remote address and the reason, and the connection closed. Without TLS it
// returns conn as it is. It runs in the connection's goroutine, bounded by
// handshakeTimeout, so a slow or silent dialer holds up no one else.
func (t *transport) handshake(conn net.Conn) net.Conn {
	if t.tls == nil {
		return t.plainOnly(conn)
	}
	tc := tls.Server(conn, t.tls.serverConfig())
	tc.SetDeadline(time.Now().Add(handshakeTimeout))
	err := tc.Handshake()
	if err == nil {
		_, err = tc.Write([]byte{tlsAccepted})
	}
	if err != nil {
		var plain tls.RecordHeaderError
		if errors.As(err, &plain) && plain.Conn != nil {
			answerPlain(plain.Conn)
		}
		select {
		case <-t.stopc: // closed by stop
		default:
			t.logger.Warn("refused a connection", "from", conn.RemoteAddr().String(), "err", err)
		}
		conn.Close()
		return nil
	}
	tc.SetDeadline(time.Time{})
	return tc
}

// plainOnly returns a connection to a member without TLS, to serve, or nil if its
// dialer opened with a TLS handshake: then that is logged (once per remote host: a
// member given TLS flags redials all the time) and the connection closed. Served as it
// is, the handshake would be read as gob and refused as "gob: duplicate type received".
// A TLS connection starts with a handshake record: type 22, version 3.x; the first
// message of net/rpc, a gob type definition, never does.
func (t *transport) plainOnly(conn net.Conn) net.Conn {
	var head [3]byte
	n, err := io.ReadFull(conn, head[:])
	if err == nil && head[0] == 0x16 && head[1] == 3 && head[2] <= 4 {
		host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
		t.tlsWarned.warn(t.logger, host, fmt.Sprintf("refused a connection from %s: it opened a TLS handshake, and this node runs without TLS (a client or member given -tls-cert, -tls-key and -tls-ca: give them to every member, or to none)", conn.RemoteAddr()))
		conn.Close()
		return nil
	}
	return &replayConn{Conn: conn, r: io.MultiReader(bytes.NewReader(head[:n]), conn)}
}

// replayConn is a connection whose first bytes were read already: it reads them again.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// answerPlain answers a dialer that spoke plain net/rpc to a TLS member, in net/rpc's
// own framing (a Response, then an empty body) for its first request (sequence number
// 0), so that it fails at once saying why, instead of seeing its connection closed after
// sending: for a client, "outcome unknown".
func answerPlain(conn net.Conn) {
	enc := gob.NewEncoder(conn)
	resp := rpc.Response{Error: "this member accepts only TLS connections: run with -tls-cert, -tls-key and -tls-ca (raft -C gencerts writes them)"}
	if enc.Encode(&resp) == nil {
		enc.Encode(struct{}{})
	}
}
