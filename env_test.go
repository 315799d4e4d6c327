// env_test.go: tests of the environment variables that stand for -S and the TLS flags.
package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The tests run with none of the variables set, whatever the shell that runs them has
// exported: otherwise every node and client they start would take them.
func init() {
	for _, e := range envFlags {
		os.Unsetenv(e.name)
	}
}

func TestEnvironmentStandsForFlags(t *testing.T) {
	clientFrom := func(args ...string) (clientConfig, error) {
		t.Helper()
		o, err := parseOptions(args)
		if err != nil {
			t.Fatal(err)
		}
		return clientConfigFrom(o)
	}
	t.Setenv("RAFT_SERVERS", "127.0.0.1:7001, 7002")
	if cfg, err := clientFrom("-C", "status"); err != nil || !slices.Equal(cfg.Servers, []string{"127.0.0.1:7001", ":7002"}) {
		t.Errorf("RAFT_SERVERS: servers %v, err %v", cfg.Servers, err)
	}
	if cfg, err := clientFrom("-C", "bench", "-n", "1"); err != nil || len(cfg.Servers) != 2 {
		t.Errorf("RAFT_SERVERS with bench: servers %v, err %v", cfg.Servers, err)
	}
	if cfg, err := clientFrom("-C", "status", "-S", ":7003"); err != nil || !slices.Equal(cfg.Servers, []string{":7003"}) {
		t.Errorf("-S with RAFT_SERVERS set: servers %v, err %v; want -S to win", cfg.Servers, err)
	}
	// A node ignores RAFT_SERVERS, a client flag; -S given to a node is still refused.
	o, _ := parseOptions([]string{"-p", "9990", "-d", t.TempDir()})
	if _, err := nodeConfigFrom(o); err != nil {
		t.Errorf("a node with RAFT_SERVERS set: %v", err)
	}
	t.Setenv("RAFT_SERVERS", "nohost:x")
	if _, err := clientFrom("-C", "status"); err == nil || !strings.Contains(err.Error(), "from RAFT_SERVERS: -S: bad address") {
		t.Errorf("a bad RAFT_SERVERS: err %v; want it named", err)
	}
	t.Setenv("RAFT_SERVERS", "")
	if cfg, err := clientFrom("-C", "status"); err != nil || !slices.Equal(cfg.Servers, []string{":9990"}) {
		t.Errorf("an empty RAFT_SERVERS: servers %v, err %v; want the default", cfg.Servers, err)
	}

	certs := writeCerts(t)
	node, client := tlsFlags(certs, "node"), tlsFlags(certs, "client")
	t.Setenv("RAFT_TLS_CERT", node[1])
	t.Setenv("RAFT_TLS_KEY", node[3])
	t.Setenv("RAFT_TLS_CA", node[5])
	o, _ = parseOptions([]string{"-p", "9990", "-d", t.TempDir()})
	if cfg, err := nodeConfigFrom(o); err != nil || cfg.TLS == nil {
		t.Errorf("a node with the TLS variables: TLS %v, err %v", cfg.TLS, err)
	}
	if cfg, err := clientFrom("-C", "status"); err != nil || cfg.TLS == nil {
		t.Errorf("a client with the TLS variables: TLS %v, err %v", cfg.TLS, err)
	}
	// A flag wins over its variable: a client certificate cannot serve, so the node's
	// start fails only if -tls-cert and -tls-key beat the variables.
	o, _ = parseOptions(append([]string{"-p", "9990", "-d", t.TempDir()}, client[:4]...))
	if _, err := nodeConfigFrom(o); err == nil || !strings.Contains(err.Error(), "server auth") {
		t.Errorf("-tls-cert and -tls-key over the variables: err %v; want the flags' client certificate refused", err)
	}
	// Variables and flags add up; what neither gives is missing.
	t.Setenv("RAFT_TLS_KEY", "")
	t.Setenv("RAFT_TLS_CA", "")
	if _, err := clientFrom("-C", "status", "-tls-ca", node[5]); err == nil || !strings.Contains(err.Error(), "missing -tls-key (or RAFT_TLS_KEY)") {
		t.Errorf("RAFT_TLS_CERT and -tls-ca: err %v; want -tls-key missing", err)
	}
	// -demo and gencerts take no flag from the environment.
	t.Setenv("RAFT_TLS_KEY", node[3])
	t.Setenv("RAFT_TLS_CA", node[5])
	if o, _ = parseOptions([]string{"-demo"}); len(o.set) != 1 {
		t.Errorf("-demo with the TLS variables: flags given %v", o.set)
	}
	if _, err := clientFrom("-C", "gencerts", "-d", filepath.Join(t.TempDir(), "c")); err != nil {
		t.Errorf("gencerts with the TLS variables: %v", err)
	}
}

// A node and a client given only the variables: the node serves TLS, the client reaches
// it at RAFT_SERVERS, with TLS; an explicit -S wins over RAFT_SERVERS, and a client
// without TLS is turned away.
func TestEndToEndEnvironment(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: starts real processes")
	}
	certs := writeCerts(t)
	node := tlsFlags(certs, "node")
	t.Setenv("RAFT_TLS_CERT", node[1])
	t.Setenv("RAFT_TLS_KEY", node[3])
	t.Setenv("RAFT_TLS_CA", node[5])
	addrs := freeAddrs(t, 2)
	a, dead := addrs[0], addrs[1]
	c := newE2ECluster(t, nil)
	p := c.startWith(a, "-p", a) // its environment is the test's
	if strings.Contains(p.stderr.String(), "no TLS") {
		t.Fatalf("the node took no TLS from the environment:\n%s", p.stderr)
	}
	t.Setenv("RAFT_SERVERS", a)
	if r := c.client("-C", "clientcommand", "-m", "by the environment"); r.code != exitOK || r.leader != a {
		t.Fatalf("a client given only the variables: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r := c.client("-C", "status", "-S", dead, "-timeout", "1s"); r.code != exitFailed || !strings.Contains(r.stderr, dead) {
		t.Fatalf("-S %s with RAFT_SERVERS=%s: exit %d, %q; want -S to win", dead, a, r.code, r.stderr)
	}
	for _, e := range envFlags[1:] {
		t.Setenv(e.name, "")
	}
	if r := c.client("-C", "status"); r.code != exitFailed || !strings.Contains(r.stderr, "accepts only TLS") {
		t.Fatalf("a client without the TLS variables: exit %d, %q", r.code, r.stderr)
	}
}
