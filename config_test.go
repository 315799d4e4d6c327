// config_test.go: tests of the command line: addresses, identities, flag validation,
// help and exit statuses.
package main

import (
	"bytes"
	"strings"
	"testing"
)

// One rule for every address on the command line: a port, :port or host:port.
func TestParseAddress(t *testing.T) {
	cases := []struct {
		in, want string // want "": refused
	}{
		{"9990", ":9990"},
		{":9990", ":9990"},
		{"localhost:9990", "localhost:9990"},
		{" 127.0.0.1:9990 ", "127.0.0.1:9990"},
		{"[::1]:9990", "[::1]:9990"},
		{":09990", ":9990"},
		{":0", ""},
		{":65536", ""},
		{"65536", ""},
		{"host", ""},
		{"::1", ""},
		{"a b:1", ""},
		{"", ""},
	}
	for _, tc := range cases {
		got, err := parseAddress(tc.in)
		if (err == nil) != (tc.want != "") || got != tc.want {
			t.Errorf("parseAddress(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), "want a port (9990), :port (:9990) or host:port") {
			t.Errorf("parseAddress(%q): error %q does not show the accepted forms", tc.in, err)
		}
	}
}

// Every command that takes an address takes it the same way, and a list with an
// empty entry is refused, naming the entry.
func TestAddressesEverywhere(t *testing.T) {
	for _, args := range [][]string{
		{"-C", "addserver", "-m", "9993"},
		{"-C", "removeserver", "-m", "9993"},
		{"-C", "transfer", "-m", "9993"},
	} {
		o, err := parseOptions(args)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := clientConfigFrom(o)
		if err != nil || cfg.Message != ":9993" {
			t.Errorf("%q: message %q, %v; want :9993", args, cfg.Message, err)
		}
	}
	o, _ := parseOptions([]string{"-C", "status", "-S", "9990, :9991,127.0.0.1:9992,:9990"})
	if cfg, err := clientConfigFrom(o); err != nil || strings.Join(cfg.Servers, ",") != ":9990,:9991,127.0.0.1:9992" {
		t.Errorf("-S: %q, %v", cfg.Servers, err)
	}
	o, _ = parseOptions([]string{"-c", "9990,9991", "-p", "9991", "-d", t.TempDir()})
	if cfg, err := nodeConfigFrom(o); err != nil || cfg.ID != ":9991" || strings.Join(cfg.Bootstrap.Members, ",") != ":9990,:9991" {
		t.Errorf("-c 9990,9991 -p 9991: %+v, %v", cfg, err)
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
		{[]string{"-metrics", "localhost"}, "-metrics: bad address \"localhost\": no port; want a port (9990)"},
		{[]string{"-C", "status", "-S", "nohost"}, "-S: bad address \"nohost\": no port"},
		{[]string{"-C", "status", "-S", ":1,"}, "-S: entry 2 of \":1,\" is empty"},
		{[]string{"-c", ":7980,,:7981"}, "-c: entry 2 of \":7980,,:7981\" is empty"},
		{[]string{"-c", ",:7980"}, "-c: entry 1 of"},
		{[]string{"-C", "addserver", "-m", "host"}, "-m: bad address \"host\": no port"},
		{[]string{"-C", "status", "-metrics", ":9100"}, "-metrics is a node flag"},
		{[]string{"-C", "clientcommand", "-m", "I", "like", "beer."}, `unexpected argument "like"`},
		{[]string{"-C", "read", "-m", "everything"}, "-m is print or count"},
		{[]string{"-C", "read"}, "needs a message"},
		{[]string{"-C", "clientcommand", "-m", "x", "-from", "2"}, "-from and -n go with -C read -m print"},
		{[]string{"-C", "read", "-m", "print", "-from", "0"}, "-from counts from 1"},
		{[]string{"-C", "status", "-m", ":1"}, "takes no -m"},
		{[]string{"-C", "status", "-S", ":1,bad:x"}, "-S: bad address"},
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
		{[]string{"-C", "status", "-timeout", "1"}, `-timeout "1": want a duration such as 500ms, 5s or 1m`},
		{[]string{"-heartbeat", "fast"}, `-heartbeat "fast": want a duration such as 500ms, 5s or 1m`},
		{[]string{"-C", "status", "-timeout", strings.Repeat("9", 1000)}, `-timeout "` + strings.Repeat("9", quoteBytes) + `"... (1000 bytes): want a duration`},
		{[]string{"-C", "read", "-m", strings.Repeat("p", 5000)}, `not "` + strings.Repeat("p", quoteBytes) + `"... (5000 bytes)`},
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
	wants := []string{"-c", "-p", "-d", "-S", "-m", "-timeout", "Exit status",
		"at most 1 MiB", "bench: the number of appends in flight", "-C bench -S ':9990' -json",
		"read -m print -json", "or for addserver and removeserver with status"}
	for _, want := range append(clientCommands, wants...) {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help does not mention %q", want)
		}
	}
	// -n has no default of 20000 for read print, which prints everything without it.
	if strings.Contains(stdout.String(), "(default 20000)") {
		t.Errorf("help says (default 20000)")
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
