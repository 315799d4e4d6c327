// env.go: environment variables for the flags every command repeats: the members to send
// to (-S) and the three TLS files. A flag given on the command line wins over its
// variable; an empty variable counts as unset.
//
// A node takes the TLS variables too (it ignores RAFT_SERVERS, a client flag); -demo
// and -C gencerts ignore them all.
package main

import (
	"flag"
	"fmt"
)

// envFlags are the variables and the flag each stands for.
var envFlags = []struct{ name, flag string }{
	{"RAFT_SERVERS", "S"},
	{"RAFT_TLS_CERT", "tls-cert"},
	{"RAFT_TLS_KEY", "tls-key"},
	{"RAFT_TLS_CA", "tls-ca"},
}

// applyEnv sets each flag not given explicitly (set) whose variable is set, and returns
// the flags it set.
func applyEnv(fs *flag.FlagSet, set map[string]bool, getenv func(string) string) map[string]bool {
	from := map[string]bool{}
	for _, e := range envFlags {
		if v := getenv(e.name); v != "" && !set[e.flag] {
			fs.Set(e.flag, v) // string flags: never fails
			from[e.flag] = true
		}
	}
	return from
}

// envName is the variable that stands for flag.
func envName(flag string) string {
	for _, e := range envFlags {
		if e.flag == flag {
			return e.name
		}
	}
	return ""
}

// given reports whether flag has a value, from the command line or its variable.
func (o options) given(flag string) bool {
	return o.set[flag] || o.env[flag]
}

// serverList parses -S, or RAFT_SERVERS, saying which was wrong.
func (o options) serverList() ([]string, error) {
	servers, err := parseServers(o.servers)
	if err != nil && o.env["S"] {
		err = fmt.Errorf("from %s: %w", envName("S"), err)
	}
	return servers, err
}
