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
	cmdWatch        = "watch"
	cmdBench        = "bench"
	cmdBackup       = "backup"   // writes the leader's state to a file (backup.go)
	cmdHealth       = "health"   // every member's status at once (health.go)
	cmdGencerts     = "gencerts" // contacts no server: writes TLS certificates (gencerts.go)
)

var clientCommands = []string{cmdClient, cmdRead, cmdWatch, cmdAddServer, cmdRemoveServer, cmdTransfer, cmdStatus, cmdHealth, cmdBackup, cmdBench, cmdGencerts}

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
	serial  bool

	// Node and client.
	tlsCert, tlsKey, tlsCA string

	version bool

	set     map[string]bool // flags given explicitly
	env     map[string]bool // flags not given, whose value came from the environment (env.go)
	flagErr error           // why a flag's value was refused, said better than the flag package does
}

// durationValue is a duration flag whose error shows what a duration looks like (the
// flag package says "parse error", and quotes the whole value).
type durationValue struct {
	d    *time.Duration
	name string
	err  *error // where Set records why it refused a value
}

func (v durationValue) String() string {
	if v.d == nil {
		return ""
	}
	return v.d.String()
}

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		*v.err = fmt.Errorf("-%s %s: want a duration such as 500ms, 5s or 1m", v.name, quote(s))
		return *v.err
	}
	*v.d = d
	return nil
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
	Listening       func()     // if set, called once the node listens on its data dir (-demo waits for it)

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
	From, N uint64 // read print: messages From.. (1-based), at most N (0: all); bench: N appends; watch: From (0: the next)
	// watch: each member serves what it has applied, without asking the leader
	Serializable bool
	Conc         int  // bench: appends in flight
	Size         int  // bench: bytes per message
	Mux          bool // bench: the appends in flight share one connection per member, batched

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
  raft -p 9990 -metrics 127.0.0.1:9100     also serve Prometheus metrics on /metrics, Go profiles
                                           on /debug/pprof/, and /health (200: the node runs) and
                                           /ready (200: a member, with a leader, caught up; else 503)
  raft                                     a one-member cluster on :9990; grow it with addserver
                                           (start the new node as a spare: -c ':9990' -p 9991)
  raft -demo                               three members on :9990-:9992 in one terminal, data in
                                           a temporary dir; Ctrl-C stops them and removes it
  raft -c ':9990,:9991,:9992' -p 9990 -restore backup.snap
                                           a member of a new cluster started from a backup (written
                                           by -C backup); give each member the file; restarted
                                           with the same file, it starts as it was
  raft -p 9990 -log-format json            node logs as JSON lines (-log-level debug|info|warn|error)
  raft -version                            the version: module version, VCS revision and time, Go

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
  raft -C read -m print -json -S ":9990"               {"messages":[...]}: one string per message (all
                                                       base64, with "encoding":"base64", if one is not UTF-8)
  raft -C status -S ":9990"                            role, term, leader, indices, members
  raft -C watch -S ':9990,:9991,:9992'                 print each message as it commits, from the
                                                       next one (-from 1: the whole log; -json);
                                                       survives leader changes; Ctrl-C ends it
  raft -C health -S ":9990"                            every member, asked at once: role, term, indices,
                                                       lag behind the leader, who did not answer
  raft -C backup -m backup.snap -S ":9990"             write the leader's state to a new file (after a
                                                       read barrier, as read); -restore takes it
  raft -C clientcommand -m - -S ":9990" < file         one message per line, one result per line (an
                                                       empty line is skipped, said on stderr; a failure
                                                       names its line, and the client stops there)
  raft -C bench -S ':9990,:9991' -n 20000 -c 64 -size 64
                                                       load: 20000 appends, 64 in flight (each on its
                                                       own connection), 64-byte messages
  raft -C bench -S ':9990,:9991' -n 20000 -c 64 -mux   the same, batched over one connection
  raft -C bench -S ':9990' -json                       the summary as one JSON object

-S takes several members (-S ':9990,:9991'): the client tries them in turn and follows
"not the leader" answers; waiting on a leader, it asks the others who leads, and moves
on to a new one. A member that does not answer gets a share of -timeout (at least 1s)
before the client asks the next (addserver and removeserver wait all of it).
An address is a port (9990), :port or host:port, in every flag.
-json prints one JSON object per result. A retried command is applied once (each client
run is a session), so the client retries through leader changes, and while every member
refuses connections (a cluster being restarted), until -timeout: its whole wait.

Secure it with mutual TLS (without it, anyone who can reach the port can join and send commands):
  raft -C gencerts -d certs                            write a CA and certificates to certs/
  raft -c ':9990,:9991,:9992' -p 9990 -tls-cert certs/node.crt -tls-key certs/node.key -tls-ca certs/ca.crt
  raft -C status -S :9990 -tls-cert certs/client.crt -tls-key certs/client.key -tls-ca certs/ca.crt

Environment: RAFT_SERVERS stands for -S, RAFT_TLS_CERT, RAFT_TLS_KEY and RAFT_TLS_CA for
the TLS flags (a node takes these too); a flag given on the command line wins.

Exit status: 0 done (committed), 1 failed (not committed; a reason is on stderr),
2 bad usage, 3 outcome unknown (it may have committed: before retrying, check with
read -m print, or for addserver and removeserver with status; never for read, which
fails with 1 when no member answered in time).
health: 0 when exactly one member leads and every member answered and follows it, else 1.
backup: 0 written, 1 not written (FILE exists, no leader, Ctrl-C, ...); never 3.
watch: 0 when stopped (Ctrl-C), 1 when no member answered for -timeout.

Flags:
`

// flagSet declares every flag, bound to o.
func flagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("raft", flag.ContinueOnError)
	durationVar := func(p *time.Duration, name string, value time.Duration, usage string) {
		*p = value
		fs.Var(durationValue{d: p, name: name, err: &o.flagErr}, name, usage)
	}
	fs.StringVar(&o.cluster, "c", "", "comma-separated `members` of the first configuration, e.g. ':9990,:9991,:9992' (default: this node alone); a data dir made with one is started with the same, or with none. bench: the number of appends in flight (64 if not given)")
	fs.StringVar(&o.port, "p", defaultPort, "this node's `port`: 9990, :9990 or host:9990; it names the node's entry in -c")
	fs.StringVar(&o.dataDir, "d", "", "data `dir` (default ~/.goraft/<hostname>_<port>); gencerts: the dir to write to")
	durationVar(&o.election, "election-timeout", 150*time.Millisecond, "minimum election `timeout`; each election waits a random time between it and twice it")
	durationVar(&o.beat, "heartbeat", 30*time.Millisecond, "leader heartbeat `interval`")
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics at http://`addr`/metrics, profiles at /debug/pprof/, and /health and /ready for load balancers (default: off); e.g. 127.0.0.1:9100")
	fs.IntVar(&o.maxMsg, "max-message", 1<<20, "the largest client message a node takes, in `bytes`; at most 1 MiB (1048576): a message travels in one AppendEntries, which carries up to 1 MiB of entries, so every request a node reads stays well under its 16 MiB limit")
	fs.StringVar(&o.restore, "restore", "", "start a new data dir from a snapshot `file` (a backup, written by -C backup); give every member of the new cluster the same file and its -c")
	fs.StringVar(&o.token, "cluster-token", "", "mixed into the id of a new cluster, which is otherwise named by -c alone: give clusters created on the same addresses different `token`s, and their nodes refuse each other")
	fs.StringVar(&o.logFmt, "log-format", "text", "node log `format` on stderr: text or json (stdout keeps the Logs/Count lines as they are)")
	fs.StringVar(&o.logLevel, "log-level", "info", "the least important node log record written: debug, info, warn or error")
	fs.BoolVar(&o.demo, "demo", false, "run a three-node cluster on :9990-:9992 (or -p and the next two ports) in this process, with its data in a temporary dir (Ctrl-C stops it and removes the data)")
	fs.Uint64Var(&o.snapshot, "snapshot-entries", 100000, "snapshot the state machine and compact the log after this many `entries` (0: never)")
	fs.StringVar(&o.command, "C", "", "client `command`: "+strings.Join(clientCommands, ", "))
	fs.StringVar(&o.message, "m", "", "the command's `message`: the text to append (- for one per line of stdin), print or count for read, the address to add, remove or transfer to, or the file backup writes")
	fs.StringVar(&o.servers, "S", ":"+defaultPort, "`members` to send the command to, comma-separated; tried in turn (env RAFT_SERVERS)")
	fs.BoolVar(&o.json, "json", false, "client: print each result as one JSON object (with every command; see README for the fields)")
	fs.Uint64Var(&o.from, "from", 1, "read print, watch: the first `message` to show (1-based; watch's default: the next one committed)")
	fs.BoolVar(&o.serial, "serializable", false, "watch: each member serves the messages it has applied, without asking the leader how far the log is committed (faster, works without a leader, but a member cut off from the others stops delivering)")
	fs.Uint64Var(&o.n, "n", 0, "read print: show at most this many `messages` (0 or not given: all); bench: the number of appends to send (20000 if not given)")
	fs.IntVar(&o.size, "size", 64, "bench: `bytes` per message")
	fs.BoolVar(&o.mux, "mux", false, "bench: the appends in flight share one connection to the leader, sent in batches (Raft.Commands), instead of one connection each")
	durationVar(&o.timeout, "timeout", 5*time.Second, "client: the whole `time` to wait for the outcome, retrying meanwhile (per message with -m -); durations are written like 500ms, 5s or 1m")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS `certificate` (PEM) this node or client presents; with -tls-key and -tls-ca, every connection is mutual TLS (env RAFT_TLS_CERT)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "the private `key` (PEM) of -tls-cert (env RAFT_TLS_KEY)")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "the cluster CA `certificate` (PEM): only members and clients with a certificate it signed may connect (env RAFT_TLS_CA)")
	fs.BoolVar(&o.version, "version", false, "print the version (module version, VCS revision and time, Go) and exit")
	return fs
}

// parseOptions parses the command line. It returns flag.ErrHelp for -h.
func parseOptions(args []string) (options, error) {
	var o options
	fs := flagSet(&o)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if o.flagErr != nil {
			return o, o.flagErr
		}
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %s (flags only; quote a message with spaces: -m \"I like beer.\")", quote(fs.Arg(0)))
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	o.env = applyEnv(fs, o.set, os.Getenv)
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
var clientOnlyFlags = []string{"m", "S", "timeout", "json", "from", "n", "size", "mux", "serializable"}

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
		return nodeConfig{}, fmt.Errorf("-log-format must be text or json, not %s", quote(o.logFmt))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nodeConfig{}, fmt.Errorf("-log-level must be debug, info, warn or error, not %s", quote(o.logLevel))
	}
	if o.beat <= 0 || o.election <= 0 {
		return nodeConfig{}, errors.New("-heartbeat and -election-timeout must be positive")
	}
	if o.election < 3*o.beat {
		return nodeConfig{}, fmt.Errorf("-election-timeout %v must be at least three heartbeats (-heartbeat %v), or followers time out on a healthy leader", o.election, o.beat)
	}
	self, err := parseAddress(o.port)
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
		if o.metrics, err = parseAddress(o.metrics); err != nil {
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
		return clientConfig{}, fmt.Errorf("unknown client command -C %s; want one of %s", quote(o.command), strings.Join(clientCommands, ", "))
	}
	optionalM := o.command == cmdTransfer || o.command == cmdStatus || o.command == cmdHealth || o.command == cmdWatch
	if o.command == cmdBackup && (!o.set["m"] || o.message == "") {
		return clientConfig{}, errors.New("-C backup needs the file to write: -m FILE")
	}
	if (!o.set["m"] || o.message == "") && !optionalM {
		return clientConfig{}, fmt.Errorf("-C %s needs a message: -m", o.command)
	}
	if (o.command == cmdStatus || o.command == cmdHealth || o.command == cmdWatch) && o.set["m"] {
		return clientConfig{}, fmt.Errorf("-C %s takes no -m", o.command)
	}
	if o.set["serializable"] && o.command != cmdWatch {
		return clientConfig{}, errors.New("-serializable goes with -C watch")
	}
	if o.timeout <= 0 {
		return clientConfig{}, errors.New("-timeout must be positive")
	}
	if (o.set["from"] || o.set["n"]) && !(o.command == cmdRead && o.message == "print") && !(o.command == cmdWatch && !o.set["n"]) {
		return clientConfig{}, errors.New("-from and -n go with -C read -m print; -from also with -C watch")
	}
	if o.from == 0 {
		return clientConfig{}, errors.New("-from counts from 1")
	}
	cfg := clientConfig{Command: o.command, Message: o.message, Timeout: o.timeout, JSON: o.json, From: o.from, N: o.n, Serializable: o.serial}
	if o.command == cmdWatch && !o.set["from"] {
		cfg.From = 0 // the next message committed
	}
	switch {
	case o.command == cmdClient && o.message == "-":
		cfg.Stdin, cfg.Message = true, ""
	case o.command == cmdRead && o.message != "print" && o.message != "count":
		return clientConfig{}, fmt.Errorf("-C read: -m is print or count, not %s", quote(o.message))
	case o.command != cmdClient && o.command != cmdRead && o.command != cmdBackup && o.message != "":
		addr, err := parseAddress(o.message)
		if err != nil {
			return clientConfig{}, fmt.Errorf("-m: %w", err)
		}
		cfg.Message = addr
	}
	servers, err := o.serverList()
	if err != nil {
		return clientConfig{}, err
	}
	cfg.Servers = servers
	cfg.TLS, err = clientTLS(o)
	return cfg, err
}

// benchConfigFrom validates -C bench: there -c is the number of appends in flight.
func benchConfigFrom(o options) (clientConfig, error) {
	cfg := clientConfig{Command: cmdBench, Timeout: o.timeout, N: 20000, Conc: 64, Size: o.size, Mux: o.mux, JSON: o.json}
	if o.set["m"] || o.set["from"] {
		return cfg, errors.New("-C bench takes -S, -n, -c, -size, -mux, -timeout and -json")
	}
	if o.set["n"] {
		cfg.N = o.n
	}
	if o.set["c"] {
		c, err := strconv.Atoi(o.cluster)
		if err != nil || c < 1 || c > 10000 {
			return cfg, fmt.Errorf("-C bench: -c is the number of appends in flight (1 to 10000), not %s", quote(o.cluster))
		}
		cfg.Conc = c
	}
	if cfg.N < 1 || cfg.Size < 1 || cfg.Size > 1<<20 || o.timeout <= 0 {
		return cfg, errors.New("-C bench: -n, -size (up to 1 MiB) and -timeout must be positive")
	}
	servers, err := o.serverList()
	if err != nil {
		return cfg, err
	}
	cfg.Servers = servers
	cfg.TLS, err = clientTLS(o)
	return cfg, err
}

// parseServers parses -S: members, comma-separated; one named twice is tried once.
func parseServers(s string) ([]string, error) {
	addrs, err := parseAddressList(s)
	if err != nil {
		return nil, fmt.Errorf("-S: %w", err)
	}
	var servers []string
	for _, a := range addrs {
		if !slices.Contains(servers, a) {
			servers = append(servers, a)
		}
	}
	return servers, nil
}

// addressForms is how an address may be written, wherever the command line takes one.
const addressForms = "want a port (9990), :port (:9990) or host:port (127.0.0.1:9990)"

// parseAddress accepts "port", ":port" or "host:port", and returns "host:port" or
// ":port" (a bare port is ":port"). The host is kept as written: it is part of the
// identity. The same rule holds for -p, -c, -S, -metrics and the addresses of
// addserver, removeserver and transfer.
func parseAddress(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("empty address: %s", addressForms)
	}
	withPort := s
	if !strings.Contains(s, ":") {
		if strings.Trim(s, "0123456789") != "" {
			return "", fmt.Errorf("bad address %s: no port; %s", quote(s), addressForms)
		}
		withPort = ":" + s
	}
	host, port, err := net.SplitHostPort(withPort)
	if err != nil {
		return "", fmt.Errorf("bad address %s: %s", quote(s), addressForms)
	}
	if strings.ContainsAny(host, " ,\t\n") {
		return "", fmt.Errorf("bad address %s: the host contains a space or comma; %s", quote(s), addressForms)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("bad address %s: the port must be a number from 1 to 65535; %s", quote(s), addressForms)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// parseAddressList parses comma-separated addresses. An empty entry (",," or a comma
// at either end) is an error: it is a typo more often than not.
func parseAddressList(s string) ([]string, error) {
	var addrs []string
	for i, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			return nil, fmt.Errorf("entry %d of %s is empty: give addresses separated by single commas, e.g. ':9990,:9991'", i+1, quote(s))
		}
		addr, err := parseAddress(part)
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, addr)
	}
	return addrs, nil
}

// parseMembers parses -c: comma-separated addresses, no duplicates.
func parseMembers(s string) ([]string, error) {
	members, err := parseAddressList(s)
	if err != nil {
		return nil, err
	}
	for i, m := range members {
		if slices.Contains(members[:i], m) {
			return nil, fmt.Errorf("%s is listed twice", m)
		}
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
