// config_test.go: tests of the command line: addresses, identities, flag validation,
// help and exit statuses.
package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	cases := []struct {
		in, want string
		barePort bool
		ok       bool
	}{
		{"9990", ":9990", true, true},
		{":9990", ":9990", true, true},
		{"localhost:9990", "localhost:9990", true, true},
		{" 127.0.0.1:9990 ", "127.0.0.1:9990", false, true},
		{"[::1]:9990", "[::1]:9990", false, true},
		{":09990", ":9990", false, true},
		{"9990", "", false, false}, // -m of addserver needs host:port or :port
		{":0", "", true, false},
		{":65536", "", true, false},
		{"host", "", true, false},
		{"a b:1", "", false, false},
		{"", "", true, false},
	}
	for _, tc := range cases {
		got, err := parseAddress(tc.in, tc.barePort)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseAddress(%q, %v) = %q, %v; want %q, ok=%v", tc.in, tc.barePort, got, err, tc.want, tc.ok)
		}
	}
}

func TestNodeIdentity(t *testing.T) {
	cases := []struct {
		cluster, port, want string
	}{
		{":9990,:9991,:9992", "9990", ":9990"},
		{":9990,:9991,:9992", ":9991", ":9991"},
		{":9990,:9991,:9992", ":9993", ":9993"},                           // a spare
		{"127.0.0.1:9990,127.0.0.1:9991", "9991", "127.0.0.1:9991"},       // bare port names its entry
		{"127.0.0.1:9990,127.0.0.1:9991", "9993", "127.0.0.1:9993"},       // a spare takes the members' host
		{"10.0.0.1:9990,127.0.0.1:9990", "9990", "127.0.0.1:9990"},        // several: the local one
		{"10.0.0.1:9990,10.0.0.2:9990", "10.0.0.2:9990", "10.0.0.2:9990"}, // exact
		{"", "9995", ":9995"},                                             // a cluster of one
		{"host-a:9990,host-b:9991", "9992", ":9992"},                      // spare, hosts differ
	}
	for _, tc := range cases {
		args := []string{"-p", tc.port, "-d", t.TempDir()}
		if tc.cluster != "" {
			args = append(args, "-c", tc.cluster)
		}
		o, err := parseOptions(args)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := nodeConfigFrom(o)
		if err != nil {
			t.Errorf("-c %q -p %q: %v", tc.cluster, tc.port, err)
			continue
		}
		if cfg.ID != tc.want {
			t.Errorf("-c %q -p %q: identity %q, want %q", tc.cluster, tc.port, cfg.ID, tc.want)
		}
	}
	// Two remote hosts with the same port and a bare -p: ambiguous.
	o, _ := parseOptions([]string{"-c", "10.9.9.1:9990,10.9.9.2:9990", "-p", "9990"})
	if _, err := nodeConfigFrom(o); err == nil || !strings.Contains(err.Error(), "host:port") {
		t.Errorf("ambiguous -p: err = %v", err)
	}
}

func TestDefaultDataDir(t *testing.T) {
	t.Setenv("HOME", "/home/someone")
	o, _ := parseOptions([]string{"-c", ":9990,:9991", "-p", "9991"})
	cfg, err := nodeConfigFrom(o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cfg.DataDir, "/home/someone/.goraft/") || !strings.HasSuffix(cfg.DataDir, "_9991") {
		t.Fatalf("data dir %q, want ~/.goraft/<hostname>_9991", cfg.DataDir)
	}
}

// Bad command lines exit 2 with a reason on stderr, and do nothing.
func TestBadCommandLines(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-x"}, "not defined: -x"},
		{[]string{"-p", "99999"}, "-p: bad address"},
		{[]string{"-c", ":1,:1"}, "listed twice"},
		{[]string{"-c", ":1,nonsense"}, "-c: bad address"},
		{[]string{"-m", "hi"}, "-m is a client flag"},
		{[]string{"-C", "clientcommand"}, "needs a message"},
		{[]string{"-C", "fly", "-m", "x"}, "unknown client command"},
		{[]string{"-C", "addserver", "-m", "notanaddress"}, "-m: bad address"},
		{[]string{"-C", "clientcommand", "-m", "x", "-p", "1"}, "-p is a node flag"},
		{[]string{"-C", "clientcommand", "-m", "x", "-S", "a:b"}, "-S: bad address"},
		{[]string{"-C", "clientcommand", "-m", "x", "-timeout", "0s"}, "-timeout must be positive"},
		{[]string{"-election-timeout", "50ms", "-heartbeat", "30ms"}, "at least three heartbeats"},
		{[]string{"-metrics", "9100"}, "-metrics: bad address"},
		{[]string{"-C", "status", "-metrics", ":9100"}, "-metrics is a node flag"},
		{[]string{"-C", "clientcommand", "-m", "I", "like", "beer."}, `unexpected argument "like"`},
		{[]string{"-C", "read", "-m", "everything"}, "-m is print or count"},
		{[]string{"-C", "read"}, "needs a message"},
		{[]string{"-C", "clientcommand", "-m", "x", "-from", "2"}, "-from and -n go with -C read -m print"},
		{[]string{"-C", "read", "-m", "print", "-from", "0"}, "-from counts from 1"},
		{[]string{"-C", "status", "-m", ":1"}, "takes no -m"},
		{[]string{"-C", "status", "-S", ":1,,bad:x"}, "-S: bad address"},
		{[]string{"-json"}, "-json is a client flag"},
		{[]string{"-C", "bench", "-c", "many"}, "-c is the number of appends in flight"},
		{[]string{"-C", "bench", "-size", "0"}, "must be positive"},
		{[]string{"-C", "bench", "-m", "x"}, "-C bench takes"},
		{[]string{"-C", "clientcommand", "-m", "x", "-size", "8"}, "-size and -mux go with -C bench"},
		{[]string{"-C", "read", "-m", "count", "-mux"}, "-size and -mux go with -C bench"},
		{[]string{"-C", "clientcommand", "-m", "x", "-c", "8"}, "-c is a node flag"},
		{[]string{"-log-format", "xml"}, "-log-format must be text or json"},
		{[]string{"-log-level", "loud"}, "-log-level must be debug, info, warn or error"},
		{[]string{"-C", "status", "-log-level", "debug"}, "-log-level is a node flag"},
		{[]string{"-C", "watch", "-m", "x"}, "-C watch takes no -m"},
		{[]string{"-C", "watch", "-n", "5"}, "-from also with -C watch"},
		{[]string{"-C", "watch", "-from", "0"}, "-from counts from 1"},
		{[]string{"-C", "read", "-m", "count", "-serializable"}, "-serializable goes with -C watch"},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", tc.args, code, exitUsage)
		}
		if !strings.Contains(stderr.String(), tc.want) || stdout.Len() > 0 {
			t.Errorf("%q: stderr %q (want %q), stdout %q", tc.args, stderr.String(), tc.want, stdout.String())
		}
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-h"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("-h exit %d", code)
	}
	for _, want := range append(clientCommands, "-c", "-p", "-d", "-S", "-m", "-timeout", "Exit status") {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help does not mention %q", want)
		}
	}
}

func TestConfChangeEncoding(t *testing.T) {
	cc := ConfChange{Op: confRemove, Server: ":2", Config: Config{Members: []string{":1", ":3"}}}
	got, err := decodeConfChange(encodeConfChange(cc))
	if err != nil || got.Op != cc.Op || got.Server != cc.Server || len(got.Config.Members) != 2 {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, []byte("addserver :4"), encodeConfChange(ConfChange{Op: 9, Config: Config{Members: []string{":1"}}})} {
		if _, err := decodeConfChange(bad); err == nil {
			t.Errorf("decoded %q", bad)
		}
	}
}

// Every member of a first configuration names the cluster alike, whatever the order of
// -c; another configuration or another token names another cluster.
func TestClusterID(t *testing.T) {
	abc := newClusterID(Config{Members: []string{":1", ":2", ":3"}}, "")
	if cba := newClusterID(Config{Members: []string{":3", ":2", ":1"}}, ""); cba != abc || abc == 0 {
		t.Fatalf("ids %x and %x for the same members", abc, cba)
	}
	if ab := newClusterID(Config{Members: []string{":1", ":2"}}, ""); ab == abc {
		t.Fatal("two configurations, one id")
	}
	if tok := newClusterID(Config{Members: []string{":1", ":2", ":3"}}, "blue"); tok == abc {
		t.Fatal("a token did not change the id")
	}
}
