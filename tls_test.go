// tls_test.go: tests of mutual TLS and gencerts: the files it writes, who the transport
// accepts and refuses (and logs), the flags, and the real binary with TLS.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/rpc"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeCerts runs gencerts into a new dir and returns it.
func writeCerts(t *testing.T, hosts ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "certs")
	if err := gencerts(dir, hosts, io.Discard); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tlsFlags are the flags that give the binary the certificate who ("node" or "client")
// of the CA in dir.
func tlsFlags(dir, who string) []string {
	return []string{"-tls-cert", filepath.Join(dir, who+".crt"), "-tls-key", filepath.Join(dir, who+".key"), "-tls-ca", filepath.Join(dir, "ca.crt")}
}

// loadCerts loads who's certificate in dir, trusting the CA in caDir.
func loadCerts(t *testing.T, dir, who, caDir string) *tlsKeys {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, who+".crt"), filepath.Join(dir, who+".key"))
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(filepath.Join(caDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	ca := x509.NewCertPool()
	ca.AppendCertsFromPEM(pem)
	return &tlsKeys{cert: cert, ca: ca}
}

func TestGencertsWritesFilesThatLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "certs")
	var out bytes.Buffer
	if err := gencerts(dir, []string{"db1.example", "10.0.0.5"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, name := range certFiles {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".key") && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	file := func(name string) string { return filepath.Join(dir, name) }
	node, err := loadTLSKeys(file("node.crt"), file("node.key"), file("ca.crt"), x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	if err != nil {
		t.Fatalf("the node certificate does not load for serving and dialing: %v", err)
	}
	if _, err := loadTLSKeys(file("client.crt"), file("client.key"), file("ca.crt"), x509.ExtKeyUsageClientAuth); err != nil {
		t.Fatalf("the client certificate does not load: %v", err)
	}
	if _, err := loadTLSKeys(file("client.crt"), file("client.key"), file("ca.crt"), x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("the client certificate loads for serving: a member would start with it")
	}
	leaf := node.cert.Leaf
	for _, name := range []string{"localhost", "127.0.0.1", "::1", "db1.example", "10.0.0.5"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("the node certificate is not valid for %s: %v", name, err)
		}
	}
	if d := time.Until(leaf.NotAfter); d < 360*24*time.Hour || d > 370*24*time.Hour {
		t.Errorf("the node certificate expires in %v, want a year", d)
	}
	for _, want := range []string{"-tls-cert " + file("node.crt"), "-tls-key " + file("client.key"), "-tls-ca " + file("ca.crt")} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("gencerts did not print %q:\n%s", want, out.String())
		}
	}
}

func TestGencertsRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	kept := filepath.Join(dir, "node.key")
	if err := os.WriteFile(kept, []byte("someone's key"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := gencerts(dir, nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), kept+" already exists") {
		t.Fatalf("gencerts over an existing node.key: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("gencerts wrote files before refusing: %v", entries)
	}
	if b, _ := os.ReadFile(kept); string(b) != "someone's key" {
		t.Errorf("node.key was changed to %q", b)
	}
}

// serveTLS runs a transport with the node certificate of certs, serving a sink, and
// returns its address, the sink and its log.
func serveTLS(t *testing.T, certs string) (string, *sink, *lines) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := newLines()
	tr := newTransport("a", "", nil, slog.New(slog.NewTextHandler(logs, nil)))
	tr.useTLS(loadCerts(t, certs, "node", certs))
	s := &sink{got: make(chan Message, 100)}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Raft", s); err != nil {
		t.Fatal(err)
	}
	go tr.serve(ln, srv)
	t.Cleanup(tr.stop)
	return ln.Addr().String(), s, logs
}

// A member accepts peers and clients with a certificate of its CA, and refuses, and
// logs with the remote address and the reason, every other dialer; none of them gets a
// message through.
func TestTLSAcceptsOnlyTheClusterCA(t *testing.T) {
	certs, other := writeCerts(t), writeCerts(t)
	addr, s, logs := serveTLS(t, certs)
	deliver := func(conn net.Conn) error {
		c := rpc.NewClient(conn)
		defer c.Close()
		return c.Call("Raft.Deliver", &Batch{Messages: []Message{{Type: MsgVote, Term: 3}}}, &Ack{})
	}

	for _, who := range []string{"node", "client"} {
		conn, err := dialConn(addr, 5*time.Second, loadCerts(t, certs, who, certs))
		if err != nil {
			t.Fatalf("%s certificate refused: %v", who, err)
		}
		if err := deliver(conn); err != nil {
			t.Fatalf("%s certificate: Deliver: %v", who, err)
		}
		if m := <-s.got; m.Term != 3 {
			t.Fatalf("delivered %+v", m)
		}
	}

	cases := []struct {
		name   string
		dial   func() (net.Conn, error)
		says   string // in the dialer's error
		reason string // in the member's log
	}{
		{"a certificate of another CA", func() (net.Conn, error) {
			keys := loadCerts(t, other, "client", certs) // trusts the member, but the member does not trust it
			return dialConn(addr, 5*time.Second, keys)
		}, "it refused this certificate", "certificate signed by unknown authority"},
		{"no certificate", func() (net.Conn, error) {
			keys := loadCerts(t, certs, "client", certs)
			return dialConn(addr, 5*time.Second, &tlsKeys{ca: keys.ca})
		}, "it refused this certificate", "didn't provide a certificate"},
		{"a member of another CA", func() (net.Conn, error) {
			return dialConn(addr, 5*time.Second, loadCerts(t, other, "node", other))
		}, "refusing its certificate", "remote error: tls: bad certificate"},
	}
	for _, tc := range cases {
		conn, err := tc.dial()
		if err == nil {
			conn.Close()
			t.Fatalf("%s: accepted", tc.name)
		}
		if !errors.As(err, new(certError)) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: dial error %q, want a certError saying %q", tc.name, err, tc.says)
		}
		checkRefusalLogged(t, logs, tc.reason)
	}

	// Plain net/rpc: the member answers in net/rpc's framing why it refuses.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	err = deliver(conn)
	if !errors.As(err, new(rpc.ServerError)) || !strings.Contains(err.Error(), "accepts only TLS") {
		t.Errorf("plain net/rpc: Deliver returned %v, want a server error saying it takes only TLS", err)
	}
	checkRefusalLogged(t, logs, "does not look like a TLS handshake")
	select {
	case m := <-s.got:
		t.Fatalf("a refused dialer delivered %+v", m)
	default:
	}
}

// checkRefusalLogged waits for the member's log to say it refused a connection from
// 127.0.0.1 for reason.
func checkRefusalLogged(t *testing.T, logs *lines, reason string) {
	t.Helper()
	if !logs.waitLine(reason) {
		t.Fatalf("no refusal logged for %q; log:\n%s", reason, logs)
	}
	all, _ := logs.snapshot()
	i := slices.IndexFunc(all, func(s string) bool { return strings.Contains(s, reason) })
	if !strings.Contains(all[i], "refused a connection") || !strings.Contains(all[i], "127.0.0.1:") {
		t.Errorf("refusal logged without saying so or without the remote address: %q", all[i])
	}
}

// A dialer that never starts its handshake holds up no one else, and is cut off after
// handshakeTimeout.
func TestTLSSlowHandshakeDoesNotBlockAccept(t *testing.T) {
	certs := writeCerts(t)
	addr, _, logs := serveTLS(t, certs)
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	conn, err := dialConn(addr, 2*time.Second, loadCerts(t, certs, "client", certs))
	if err != nil {
		t.Fatalf("a silent dialer held up the next one: %v", err)
	}
	conn.Close()
	silent.SetReadDeadline(time.Now().Add(handshakeTimeout + 5*time.Second))
	if _, err := silent.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the silent connection: read %v, want it closed by the member (EOF)", err)
	}
	checkRefusalLogged(t, logs, "i/o timeout")
}

func TestTLSFlags(t *testing.T) {
	certs := writeCerts(t)
	node, client := tlsFlags(certs, "node"), tlsFlags(certs, "client")
	usage := []struct {
		args []string
		want string
	}{
		{append([]string{"-p", "9990"}, node[:2]...), "missing -tls-key and -tls-ca"},
		{append([]string{"-C", "status", "-S", "127.0.0.1:1"}, client[:4]...), "missing -tls-ca"},
		{[]string{"-p", "9990", "-tls-cert", "nothere.crt", "-tls-key", node[3], "-tls-ca", node[5]}, "nothere.crt"},
		// A client certificate cannot serve.
		{append([]string{"-p", "9990"}, client...), "server auth"},
		// node.crt is no CA.
		{[]string{"-C", "status", "-S", "127.0.0.1:1", "-tls-cert", client[1], "-tls-key", client[3], "-tls-ca", node[1]}, "cannot be used with -tls-ca"},
		{append([]string{"-demo"}, node...), "-demo takes no other flag"},
		{[]string{"-C", "gencerts"}, "-d DIR"},
		{[]string{"-C", "gencerts", "-d", t.TempDir(), "-m", "host:9990"}, "no port"},
	}
	for _, tc := range usage {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("raft %s: exit %d, %q; want exit %d saying %q", strings.Join(tc.args, " "), code, stderr.String(), exitUsage, tc.want)
		}
	}
	o, err := parseOptions(append([]string{"-p", "9990", "-d", t.TempDir()}, node...))
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := nodeConfigFrom(o); err != nil || cfg.TLS == nil {
		t.Errorf("node with TLS flags: TLS %v, err %v", cfg.TLS, err)
	}
	for _, cmd := range []string{cmdStatus, cmdBench} {
		if o, err = parseOptions(append([]string{"-C", cmd}, client...)); err != nil {
			t.Fatal(err)
		}
		if cfg, err := clientConfigFrom(o); err != nil || cfg.TLS == nil {
			t.Errorf("-C %s with TLS flags: TLS %v, err %v", cmd, cfg.TLS, err)
		}
	}
}

// A three-member cluster with TLS: clients with the cluster's certificate get through;
// one without TLS, or with another CA's certificate, is refused at once (exit 1), the
// member logs it, and nothing of theirs is appended.
func TestEndToEndTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	ids := freeAddrs(t, 3)
	c := newE2ECluster(t, ids)
	certs, other := filepath.Join(t.TempDir(), "certs"), filepath.Join(t.TempDir(), "other")
	for _, dir := range []string{certs, other} {
		r := c.client("-C", "gencerts", "-d", dir)
		if r.code != 0 || !strings.Contains(r.stdout, "-tls-cert "+filepath.Join(dir, "node.crt")) {
			t.Fatalf("gencerts: exit %d, %q %q", r.code, r.stdout, r.stderr)
		}
	}
	c.extra = tlsFlags(certs, "node")
	for _, id := range ids {
		if p := c.start(id); strings.Contains(p.stderr.String(), "no TLS") {
			t.Fatalf("%s warns it has no TLS:\n%s", id, p.stderr)
		}
	}
	withTLS := func(args ...string) clientResult {
		return c.client(append(args, tlsFlags(certs, "client")...)...)
	}
	if r := withTLS("-C", "clientcommand", "-m", "secret", "-S", ids[0], "-timeout", "10s"); r.code != 0 || r.leader == "" {
		t.Fatalf("TLS client: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}

	// Both CAs: this client trusts the members, but they do not trust its certificate.
	both := filepath.Join(t.TempDir(), "both.crt")
	var pems []byte
	for _, dir := range []string{certs, other} {
		b, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		pems = append(pems, b...)
	}
	if err := os.WriteFile(both, pems, 0o644); err != nil {
		t.Fatal(err)
	}
	refused := []struct {
		name   string
		flags  []string
		says   string // on the client's stderr
		reason string // in the member's log
	}{
		{"no TLS", nil, "accepts only TLS", "does not look like a TLS handshake"},
		{"another cluster's CA", tlsFlags(other, "client"), "refusing its certificate", "remote error: tls: bad certificate"},
		{"another CA's certificate", append(tlsFlags(other, "client")[:4], "-tls-ca", both), "it refused this certificate", "certificate signed by unknown authority"},
	}
	for _, tc := range refused {
		start := time.Now()
		r := c.client(append([]string{"-C", "clientcommand", "-m", "intruder", "-S", ids[1], "-timeout", "15s"}, tc.flags...)...)
		if r.code != exitFailed || !strings.Contains(r.stderr, tc.says) {
			t.Errorf("client with %s: exit %d, %q; want exit %d saying %q", tc.name, r.code, r.stderr, exitFailed, tc.says)
		}
		if took := time.Since(start); took > 7*time.Second {
			t.Errorf("client with %s took %v to give up: it retried a refusal", tc.name, took)
		}
		checkRefusalLogged(t, c.procs[ids[1]].stderr, tc.reason)
	}

	// bench and read work with TLS too, and the refused clients appended nothing.
	if r := withTLS("-C", "bench", "-S", strings.Join(ids, ","), "-n", "20", "-c", "2"); r.code != 0 || !strings.Contains(r.stdout, "ops=20 ") {
		t.Fatalf("TLS bench: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r := withTLS("-C", "clientcommand", "-m", "count", "-S", ids[2]); r.code != 0 || !strings.HasPrefix(r.stdout, "Count 21\n") {
		t.Fatalf("count: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	c.waitAll(ids, " Count 21", 1)
	if r := withTLS("-C", "read", "-m", "print", "-n", "1", "-S", ids[1]); r.code != 0 || !strings.HasPrefix(r.stdout, "Logs [secret]\n") {
		t.Fatalf("read print: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
}

// A member that comes back with another CA's certificate is refused by the others (and
// refuses them): it gets no more entries, while the two that trust each other go on as
// a majority.
func TestEndToEndTLSRefusesForeignMember(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	ids := freeAddrs(t, 3)
	c := newE2ECluster(t, ids)
	certs, other := writeCerts(t), writeCerts(t)
	c.extra = tlsFlags(certs, "node")
	for _, id := range ids {
		c.start(id)
	}
	count := func(want string) {
		t.Helper()
		r := c.client(append([]string{"-C", "clientcommand", "-m", "count", "-S", ids[0], "-timeout", "10s"}, tlsFlags(certs, "client")...)...)
		if r.code != 0 {
			t.Fatalf("count: exit %d, %q %q", r.code, r.stdout, r.stderr)
		}
		c.waitAll(ids[:2], want, 1)
	}
	count(" Count 0")
	c.stop(ids[2], syscall.SIGKILL)
	count(" Count 1") // the two elect a leader of their own, if it was the third
	c.extra = tlsFlags(other, "node")
	foreign := c.start(ids[2])
	count(" Count 2")
	checkRefusalLogged(t, c.procs[ids[0]].stderr, "remote error: tls: bad certificate") // its votes
	if !foreign.stderr.waitLine("refusing its certificate") {
		t.Fatalf("the foreign member does not say it refuses the others:\n%s", foreign.stderr)
	}
	if foreign.stdout.count(" Count 2") != 0 {
		t.Fatalf("the foreign member applied the cluster's entry:\n%s", foreign.stdout)
	}
}

// Without TLS a node warns, once, that anyone who can reach it can use it.
func TestEndToEndWarnsWithoutTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	a := freeAddrs(t, 1)[0]
	c := newE2ECluster(t, nil)
	p := c.startWith(a, "-p", a)
	c.send(a, "hello")
	all, _ := p.stderr.snapshot()
	var warnings []string
	for _, s := range all {
		if strings.Contains(s, "no TLS: anyone who can reach") {
			warnings = append(warnings, s)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], a) {
		t.Fatalf("want one warning naming %s; log:\n%s", a, p.stderr)
	}

	// A client with TLS is turned away, and the node says why (not "gob: duplicate type
	// received"), once for all the client's attempts.
	certs := writeCerts(t, "localhost", "127.0.0.1")
	for range 2 {
		r := c.client(append([]string{"-C", "clientcommand", "-m", "over TLS", "-S", a, "-timeout", "1s"}, tlsFlags(certs, "client")...)...)
		if r.code == 0 || !strings.Contains(r.stderr, "is it running with TLS?") {
			t.Fatalf("TLS client of a node without TLS: exit %d, %q", r.code, r.stderr)
		}
	}
	checkRefusalLogged(t, p.stderr, "it opened a TLS handshake, and this node runs without TLS")
	if n := strings.Count(p.stderr.String(), "opened a TLS handshake"); n != 1 || strings.Contains(p.stderr.String(), "gob:") {
		t.Fatalf("want the TLS client logged once, and no gob error; log:\n%s", p.stderr)
	}
}
