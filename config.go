// config.go: the command line: flags, their validation, the help text, and the
// addresses a node and a client are given.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Client commands (-C).
const (
	cmdClient       = "clientcommand"
	cmdAddServer    = "addserver"
	cmdRemoveServer = "removeserver"
	cmdTransfer     = "transfer"
	cmdRead         = "read"
	cmdStatus       = "status"
	cmdBench        = "bench"
	cmdGencerts     = "gencerts" // contacts no server: writes TLS certificates (gencerts.go)
)

var clientCommands = []string{cmdClient, cmdRead, cmdAddServer, cmdRemoveServer, cmdTransfer, cmdStatus, cmdBench, cmdGencerts}

// Exit statuses of the binary.
const (
	exitOK      = 0 // the command committed (client) or the node stopped cleanly
	exitFailed  = 1 // the command did not commit, or the node stopped on an error
	exitUsage   = 2 // bad flags or arguments; nothing was done
	exitUnknown = 3 // the command may or may not have committed (e.g. the leader died mid-way)
)

const defaultPort = "9990"

// options is everything the command line can say.
type options struct {
	// Node.
	cluster  string
	port     string
	dataDir  string
	metrics  string
	election time.Duration
	beat     time.Duration
	snapshot uint64
	demo     bool
	maxMsg   int
	logFmt   string
	token    string
	restore  string
	logLevel string

	// Client.
	command string
	message string
	servers string
	timeout time.Duration
	json    bool
	from, n uint64
	size    int
	mux     bool

	// Node and client.
	tlsCert, tlsKey, tlsCA string

	set map[string]bool // flags given explicitly
}

// nodeConfig is a validated node setup.
type nodeConfig struct {
	ID        string // this node's identity: its address as written in -c
	Bootstrap Config // the first configuration, used only when the data dir is new
	// -c was given: it must agree with the data dir's (checkSeed). Without it, the data
	// dir holds the membership.
	ExplicitMembers bool
	DataDir         string
	Metrics         string // the address to serve /metrics and /debug/pprof/ on ("": none)
	Heartbeat       time.Duration
	Election        time.Duration
	// Take a snapshot and compact the log once this many entries were applied since the
	// last one (0: never).
	SnapshotEntries uint64
	NoHandOff       bool       // on stop, a leader just stops (the demo stops every member at once)
	MaxMessage      int        // bytes in a client message, at most
	ClusterToken    string     // mixed into the cluster id of a new cluster
	Restore         string     // a snapshot file to build a new data dir from (a backup)
	LogFormat       string     // "text" or "json"
	LogLevel        slog.Level // the least important log record written

	TLS *tlsKeys // nil: plain TCP, open to anyone who can reach the port
}

// clientConfig is a validated client invocation.
type clientConfig struct {
	Command string
	Message string
	Stdin   bool     // -m -: one message per line of stdin
	Servers []string // tried in turn; a leader they name is tried first
	Timeout time.Duration
	JSON    bool
	From, N uint64 // read print: messages From.. (1-based), at most N (0: all); bench: N appends
	Conc    int    // bench: appends in flight
	Size    int    // bench: bytes per message
	Mux     bool   // bench: the appends in flight share one connection per member, batched

	TLS   *tlsKeys // nil: plain TCP
	Dir   string   // gencerts: where to write
	Hosts []string // gencerts: more names for the member certificate
}

const usageText = `raft: a Raft consensus server and its client, in one binary.

Run a node:
  raft [-c MEMBERS] [-p PORT] [-d DIR]

  raft -c ':9990,:9991,:9992' -p 9990      one of three members (start all three, in any order:
                                           a new cluster forms once every one has started)
  raft -c ':9990,:9991,:9992' -p ':9993'   a spare: waits, does not campaign, until added
  raft -p 9990 -metrics 127.0.0.1:9100     also serve Prometheus metrics on /metrics and
                                           Go profiles on /debug/pprof/ (see README)
  raft                                     a one-member cluster on :9990; grow it with addserver
                                           (start the new node as a spare: -c ':9990' -p 9991)
  raft -demo                               three members on :9990-:9992 in one terminal, data in
                                           a temporary dir; Ctrl-C stops them and removes it
  raft -c ':9990,:9991,:9992' -p 9990 -restore backup.snap
                                           a member of a new cluster started from a backup (a copy
                                           of any member's snap-*.snap); give each member the file
  raft -p 9990 -log-format json            node logs as JSON lines (-log-level debug|info|warn|error)

Send a command (to any member; a follower forwards it to the leader):
  raft -C clientcommand -m "I like beer." -S ":9990"   append a message
  raft -C clientcommand -m count -S ":9990"            every server prints "Count N"
  raft -C clientcommand -m print -S ":9990"            every server prints "Logs [...]"
  raft -C addserver -m ":9993" -S ":9990"              add a member (start it as a spare first)
  raft -C removeserver -m ":9993" -S ":9990"           remove a member
  raft -C transfer -m ":9991" -S ":9990"               make :9991 the leader (no -m: the most
                                                       up-to-date member); for planned restarts
  raft -C read -m count -S ":9990"                     "Count N", read without appending anything
  raft -C read -m print -from 10 -n 5 -S ":9990"       "Logs [...]" of messages 10 to 14
  raft -C status -S ":9990"                            role, term, leader, indices, members
  raft -C clientcommand -m - -S ":9990" < file         one message per line, one result per line
  raft -C bench -S ':9990,:9991' -n 20000 -c 64 -size 64
                                                       load: 20000 appends, 64 in flight (each on its
                                                       own connection), 64-byte messages
  raft -C bench -S ':9990,:9991' -n 20000 -c 64 -mux   the same, batched over one connection

-S takes several members (-S ':9990,:9991'): the client tries them in turn and follows
"not the leader" answers; waiting on a leader, it asks the others who leads, and moves
on to a new one. -json prints one JSON object per result. A retried command
is applied once (each client run is a session), so the client retries through leader
changes until -timeout.

Secure it with mutual TLS (without it, anyone who can reach the port can join and send commands):
  raft -C gencerts -d certs                            write a CA and certificates to certs/
  raft -c ':9990,:9991,:9992' -p 9990 -tls-cert certs/node.crt -tls-key certs/node.key -tls-ca certs/ca.crt
  raft -C status -S :9990 -tls-cert certs/client.crt -tls-key certs/client.key -tls-ca certs/ca.crt

Exit status: 0 done (committed), 1 failed (not committed; a reason is on stderr),
2 bad usage, 3 outcome unknown (it may have committed: check with print before retrying).

Flags:
`

// flagSet declares every flag, bound to o.
func flagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("raft", flag.ContinueOnError)
	fs.StringVar(&o.cluster, "c", "", "comma-separated `members` of the first configuration, e.g. ':9990,:9991,:9992' (default: this node alone); a data dir made with one is started with the same, or with none")
	fs.StringVar(&o.port, "p", defaultPort, "this node's `port`: 9990, :9990 or host:9990; it names the node's entry in -c")
	fs.StringVar(&o.dataDir, "d", "", "data `dir` (default ~/.goraft/<hostname>_<port>); gencerts: the dir to write to")
	fs.DurationVar(&o.election, "election-timeout", 150*time.Millisecond, "minimum election `timeout`; each election waits a random time between it and twice it")
	fs.DurationVar(&o.beat, "heartbeat", 30*time.Millisecond, "leader heartbeat `interval`")
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics at http://`addr`/metrics and profiles at /debug/pprof/ (default: off); e.g. 127.0.0.1:9100")
	fs.IntVar(&o.maxMsg, "max-message", 1<<20, "the largest client message a node takes, in `bytes`")
	fs.StringVar(&o.restore, "restore", "", "start a new data dir from a snapshot `file` (a backup: a copy of any member's snap-*.snap); give every member of the new cluster the same file and its -c")
	fs.StringVar(&o.token, "cluster-token", "", "mixed into the id of a new cluster, which is otherwise named by -c alone: give clusters created on the same addresses different `token`s, and their nodes refuse each other")
	fs.StringVar(&o.logFmt, "log-format", "text", "node log `format` on stderr: text or json (stdout keeps the Logs/Count lines as they are)")
	fs.StringVar(&o.logLevel, "log-level", "info", "the least important node log record written: debug, info, warn or error")
	fs.BoolVar(&o.demo, "demo", false, "run a three-node cluster on :9990-:9992 (or -p and the next two ports) in this process, with its data in a temporary dir (Ctrl-C stops it and removes the data)")
	fs.Uint64Var(&o.snapshot, "snapshot-entries", 100000, "snapshot the state machine and compact the log after this many `entries` (0: never)")
	fs.StringVar(&o.command, "C", "", "client `command`: "+strings.Join(clientCommands, ", "))
	fs.StringVar(&o.message, "m", "", "the command's `message` (the text to append, or the server address to add, remove or transfer to)")
	fs.StringVar(&o.servers, "S", ":"+defaultPort, "`members` to send the command to, comma-separated; tried in turn")
	fs.BoolVar(&o.json, "json", false, "client: print each result as one JSON object")
	fs.Uint64Var(&o.from, "from", 1, "read print: the first `message` to show (1-based)")
	fs.Uint64Var(&o.n, "n", 0, "read print: show at most this many `messages` (0: all); bench: appends to send (default 20000)")
	fs.IntVar(&o.size, "size", 64, "bench: bytes per `message`")
	fs.BoolVar(&o.mux, "mux", false, "bench: the appends in flight share one connection to the leader, sent in batches (Raft.Commands), instead of one connection each")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "client: give up after this `long` (retrying while no leader is known)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS `certificate` (PEM) this node or client presents; with -tls-key and -tls-ca, every connection is mutual TLS")
	fs.StringVar(&o.tlsKey, "tls-key", "", "the private `key` (PEM) of -tls-cert")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "the cluster CA `certificate` (PEM): only members and clients with a certificate it signed may connect")
	return fs
}

// parseOptions parses the command line. It returns flag.ErrHelp for -h.
func parseOptions(args []string) (options, error) {
	var o options
	fs := flagSet(&o)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (flags only; quote a message with spaces: -m \"I like beer.\")", fs.Arg(0))
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	return o, nil
}

// printUsage writes the help text with every flag.
func printUsage(w io.Writer) {
	fmt.Fprint(w, usageText)
	fs := flagSet(&options{})
	fs.SetOutput(w)
	fs.PrintDefaults()
}

var nodeOnlyFlags = []string{"c", "p", "d", "election-timeout", "heartbeat", "snapshot-entries", "max-message", "restore", "cluster-token", "log-format", "log-level", "metrics"}
var clientOnlyFlags = []string{"m", "S", "timeout", "json", "from", "n", "size", "mux"}

// nodeConfigFrom validates the node flags.
func nodeConfigFrom(o options) (nodeConfig, error) {
	for _, f := range clientOnlyFlags {
		if o.set[f] {
			return nodeConfig{}, fmt.Errorf("-%s is a client flag; use it with -C", f)
		}
	}
	if o.maxMsg < 1 || o.maxMsg > maxMsgBytes {
		return nodeConfig{}, fmt.Errorf("-max-message must be from 1 to %d bytes", maxMsgBytes)
	}
	if o.logFmt != "text" && o.logFmt != "json" {
		return nodeConfig{}, fmt.Errorf("-log-format must be text or json, not %q", o.logFmt)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nodeConfig{}, fmt.Errorf("-log-level must be debug, info, warn or error, not %q", o.logLevel)
	}
	if o.beat <= 0 || o.election <= 0 {
		return nodeConfig{}, errors.New("-heartbeat and -election-timeout must be positive")
	}
	if o.election < 3*o.beat {
		return nodeConfig{}, fmt.Errorf("-election-timeout %v must be at least three heartbeats (-heartbeat %v), or followers time out on a healthy leader", o.election, o.beat)
	}
	self, err := parseAddress(o.port, true)
	if err != nil {
		return nodeConfig{}, fmt.Errorf("-p: %w", err)
	}
	var members []string
	if o.cluster != "" {
		if members, err = parseMembers(o.cluster); err != nil {
			return nodeConfig{}, fmt.Errorf("-c: %w", err)
		}
	}
	id := self
	if members == nil {
		members = []string{self}
	} else if id, err = identify(self, members); err != nil {
		return nodeConfig{}, err
	}
	if o.metrics != "" {
		if o.metrics, err = parseAddress(o.metrics, false); err != nil {
			return nodeConfig{}, fmt.Errorf("-metrics: %w", err)
		}
	}
	dir := o.dataDir
	if dir == "" {
		if dir, err = defaultDataDir(id); err != nil {
			return nodeConfig{}, err
		}
	}
	keys, err := nodeTLS(o)
	if err != nil {
		return nodeConfig{}, err
	}
	return nodeConfig{ID: id, Bootstrap: Config{Members: members}, ExplicitMembers: o.set["c"], DataDir: dir, Heartbeat: o.beat, Election: o.election,
		SnapshotEntries: o.snapshot, MaxMessage: o.maxMsg, ClusterToken: o.token, Restore: o.restore, LogFormat: o.logFmt, LogLevel: level, Metrics: o.metrics, TLS: keys}, nil
}

// clientConfigFrom validates the client flags.
func clientConfigFrom(o options) (clientConfig, error) {
	if o.command == cmdGencerts {
		return gencertsConfigFrom(o)
	}
	for _, f := range nodeOnlyFlags {
		if o.set[f] && !(f == "c" && o.command == cmdBench) {
			return clientConfig{}, fmt.Errorf("-%s is a node flag; it has no meaning with -C", f)
		}
	}
	if o.command == cmdBench {
		return benchConfigFrom(o)
	}
	if o.set["size"] || o.set["mux"] {
		return clientConfig{}, errors.New("-size and -mux go with -C bench")
	}
	if !slices.Contains(clientCommands, o.command) {
		return clientConfig{}, fmt.Errorf("unknown client command -C %q; want one of %s", o.command, strings.Join(clientCommands, ", "))
	}
	optionalM := o.command == cmdTransfer || o.command == cmdStatus
	if (!o.set["m"] || o.message == "") && !optionalM {
		return clientConfig{}, fmt.Errorf("-C %s needs a message: -m", o.command)
	}
	if o.command == cmdStatus && o.set["m"] {
		return clientConfig{}, errors.New("-C status takes no -m")
	}
	if o.timeout <= 0 {
		return clientConfig{}, errors.New("-timeout must be positive")
	}
	if (o.set["from"] || o.set["n"]) && !(o.command == cmdRead && o.message == "print") {
		return clientConfig{}, errors.New("-from and -n go with -C read -m print")
	}
	if o.from == 0 {
		return clientConfig{}, errors.New("-from counts from 1")
	}
	cfg := clientConfig{Command: o.command, Message: o.message, Timeout: o.timeout, JSON: o.json, From: o.from, N: o.n}
	switch {
	case o.command == cmdClient && o.message == "-":
		cfg.Stdin, cfg.Message = true, ""
	case o.command == cmdRead && o.message != "print" && o.message != "count":
		return clientConfig{}, fmt.Errorf("-C read: -m is print or count, not %q", o.message)
	case o.command != cmdClient && o.command != cmdRead && o.message != "":
		addr, err := parseAddress(o.message, false)
		if err != nil {
			return clientConfig{}, fmt.Errorf("-m: %w", err)
		}
		cfg.Message = addr
	}
	servers, err := parseServers(o.servers)
	if err != nil {
		return clientConfig{}, err
	}
	cfg.Servers = servers
	cfg.TLS, err = clientTLS(o)
	return cfg, err
}

// benchConfigFrom validates -C bench: there -c is the number of appends in flight.
func benchConfigFrom(o options) (clientConfig, error) {
	cfg := clientConfig{Command: cmdBench, Timeout: o.timeout, N: 20000, Conc: 64, Size: o.size, Mux: o.mux}
	if o.set["m"] || o.set["from"] || o.set["json"] {
		return cfg, errors.New("-C bench takes -S, -n, -c, -size, -mux and -timeout")
	}
	if o.set["n"] {
		cfg.N = o.n
	}
	if o.set["c"] {
		c, err := strconv.Atoi(o.cluster)
		if err != nil || c < 1 || c > 10000 {
			return cfg, fmt.Errorf("-C bench: -c is the number of appends in flight (1 to 10000), not %q", o.cluster)
		}
		cfg.Conc = c
	}
	if cfg.N < 1 || cfg.Size < 1 || cfg.Size > 1<<20 || o.timeout <= 0 {
		return cfg, errors.New("-C bench: -n, -size (up to 1 MiB) and -timeout must be positive")
	}
	servers, err := parseServers(o.servers)
	if err != nil {
		return cfg, err
	}
	cfg.Servers = servers
	cfg.TLS, err = clientTLS(o)
	return cfg, err
}

// parseServers parses -S: members, comma-separated.
func parseServers(s string) ([]string, error) {
	var servers []string
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		server, err := parseAddress(part, true)
		if err != nil {
			return nil, fmt.Errorf("-S: %w", err)
		}
		if !slices.Contains(servers, server) {
			servers = append(servers, server)
		}
	}
	if len(servers) == 0 {
		return nil, errors.New("-S: no member to send to")
	}
	return servers, nil
}

// parseAddress accepts "host:port" or ":port" and, if barePort, "port" alone
// (returned as ":port"). The host is kept as written: it is part of the identity.
func parseAddress(s string, barePort bool) (string, error) {
	s = strings.TrimSpace(s)
	if barePort && !strings.Contains(s, ":") {
		s = ":" + s
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("bad address %q: want host:port or :port", s)
	}
	if strings.ContainsAny(host, " ,\t\n") {
		return "", fmt.Errorf("bad address %q: the host contains a space or comma", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("bad address %q: port must be a number from 1 to 65535", s)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// parseMembers parses -c: comma-separated addresses, no duplicates.
func parseMembers(s string) ([]string, error) {
	var members []string
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		addr, err := parseAddress(part, false)
		if err != nil {
			return nil, err
		}
		if slices.Contains(members, addr) {
			return nil, fmt.Errorf("%s is listed twice", addr)
		}
		members = append(members, addr)
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("no members in %q", s)
	}
	return members, nil
}

// identify finds this node's entry in -c. -p with a host must match an entry exactly;
// a bare port matches the one entry with that port, or, if several have it, the one
// whose host is this machine. A node not in -c is a spare: its identity is -p, with the
// members' host if they all share one (so -c '127.0.0.1:9990' -p 9993 is 127.0.0.1:9993).
func identify(self string, members []string) (string, error) {
	host, port, _ := net.SplitHostPort(self)
	var same []string
	for _, m := range members {
		mh, mp, _ := net.SplitHostPort(m)
		if mp == port && (host == "" || mh == host) {
			same = append(same, m)
		}
	}
	if len(same) > 1 {
		var local []string
		for _, m := range same {
			if mh, _, _ := net.SplitHostPort(m); isLocalHost(mh) {
				local = append(local, m)
			}
		}
		if len(local) != 1 {
			return "", fmt.Errorf("-p %s matches several members of -c (%s); name this node's entry exactly: -p host:port", self, strings.Join(same, ", "))
		}
		return local[0], nil
	}
	if len(same) == 1 {
		return same[0], nil
	}
	if host == "" {
		if h, ok := sharedHost(members); ok {
			return net.JoinHostPort(h, port), nil
		}
	}
	return self, nil
}

// sharedHost returns the host every member is written with, if there is one.
func sharedHost(members []string) (string, bool) {
	first, _, _ := net.SplitHostPort(members[0])
	for _, m := range members[1:] {
		if h, _, _ := net.SplitHostPort(m); h != first {
			return "", false
		}
	}
	return first, true
}

// isLocalHost reports whether host names this machine without asking DNS.
func isLocalHost(host string) bool {
	switch host {
	case "", "localhost", "127.0.0.1", "::1":
		return true
	}
	if name, err := os.Hostname(); err == nil && strings.EqualFold(name, host) {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// defaultDataDir is ~/.goraft/<hostname>_<port>.
func defaultDataDir(id string) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory for the default data dir (%v); give one with -d", err)
	}
	hostname, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("no hostname for the default data dir (%v); give one with -d", err)
	}
	_, port, _ := net.SplitHostPort(id)
	return filepath.Join(home, ".goraft", hostname+"_"+port), nil
}
