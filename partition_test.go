// partition_test.go: cutting a node of the real binary off the others, on 127.0.0.1.
// Each node process runs as a user id of its own, and a table of nftables rules, made
// for one test run, drops in the output hook (traffic on loopback is all generated on
// this machine, so every packet passes there) every packet that a cut-off node's user
// sends and every packet sent to its port: nobody reaches it and it reaches nobody,
// while the others go on talking. Healing takes it out of the rules again.
//
// That needs root (to run processes as other users and to change the rules) and nft.
// Where either is missing, the tests that cut nodes off say why and skip that part,
// unless RAFT_REQUIRE_PARTITIONS is set (CI sets it): then it is a failure.
package main

import (
	"context"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// requirePartitionsEnv, when set, makes a test fail where partitions cannot run.
const requirePartitionsEnv = "RAFT_REQUIRE_PARTITIONS"

var partitionTables atomic.Int64 // tables made by this test process

// partitions cuts nodes of one e2eCluster off and heals them.
type partitions struct {
	t     testing.TB
	table string            // the nftables table, "inet <table>"
	uids  map[string]uint32 // the user id each node runs as
	cut   map[string]bool
}

// newPartitions prepares cutting off any of ids (the cluster's nodes, started after
// this): each will run as a user of its own. It returns why it cannot, if it cannot.
func newPartitions(t testing.TB, c *e2eCluster, ids []string) (*partitions, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("cutting nodes off needs root (to run each node as a user of its own, and to add nftables rules); this runs as uid %d", os.Geteuid())
	}
	if _, err := nftPath(); err != nil {
		return nil, fmt.Errorf("cutting nodes off needs nft (apt-get install nftables): %v", err)
	}
	removeStaleTables(t)
	p := &partitions{t: t, table: fmt.Sprintf("raft_test_%d_%d", os.Getpid(), partitionTables.Add(1)),
		uids: map[string]uint32{}, cut: map[string]bool{}}
	// Users no account has, unlikely to be another test run's.
	base := uint32(1<<20 + rand.Intn(1<<20)*64)
	for i, id := range ids {
		p.uids[id] = base + uint32(i)
	}
	rules := fmt.Sprintf(`table inet %s {
	set uids { type uid; }
	set ports { type inet_service; }
	chain out {
		type filter hook output priority 0; policy accept;
		meta skuid @uids drop
		tcp dport @ports drop
	}
}
`, p.table)
	if err := nft(rules); err != nil {
		return nil, fmt.Errorf("cannot add nftables rules: %v", err)
	}
	t.Cleanup(func() {
		if err := nft("delete table inet " + p.table + "\n"); err != nil {
			t.Errorf("remove the test's nftables table %s: %v", p.table, err)
		}
	})
	// The binary and each node's data dir must be usable by the node's user.
	if err := os.Chmod(filepath.Dir(c.bin), 0o755); err != nil {
		return nil, err
	}
	c.prepare = func(proc *proc) {
		uid := p.uids[proc.id]
		parent := filepath.Dir(proc.dir) // the node's own temporary dir
		if err := os.Chmod(filepath.Dir(parent), 0o711); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(parent, int(uid), int(uid)); err != nil {
			t.Fatal(err)
		}
		proc.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}
	return p, nil
}

// requirePartitions is newPartitions for a test that is about partitions: where they
// cannot run it skips, saying why, or fails if RAFT_REQUIRE_PARTITIONS is set.
func requirePartitions(t *testing.T, c *e2eCluster, ids []string) *partitions {
	t.Helper()
	p, err := newPartitions(t, c, ids)
	if err != nil {
		partitionsUnavailable(t, err)
		t.SkipNow()
	}
	return p
}

// partitionsUnavailable says loudly that partitions are not tested, and why; with
// RAFT_REQUIRE_PARTITIONS set, the test fails.
func partitionsUnavailable(t *testing.T, why error) {
	t.Helper()
	if os.Getenv(requirePartitionsEnv) != "" {
		t.Fatalf("%s is set, but partitions cannot be tested here: %v", requirePartitionsEnv, why)
	}
	t.Logf("NOT TESTED: cutting nodes off (network partitions): %v", why)
}

// cutOff cuts node id off from every other node and client.
func (p *partitions) cutOff(id string) {
	p.t.Helper()
	p.change("add", id)
	p.cut[id] = true
}

// heal connects node id again.
func (p *partitions) heal(id string) {
	p.t.Helper()
	p.change("delete", id)
	delete(p.cut, id)
}

func (p *partitions) change(verb, id string) {
	p.t.Helper()
	_, port, err := net.SplitHostPort(id)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := strconv.Atoi(port); err != nil {
		p.t.Fatalf("node %s: no port", id)
	}
	script := fmt.Sprintf("%s element inet %s uids { %d }\n%s element inet %s ports { %s }\n", verb, p.table, p.uids[id], verb, p.table, port)
	if err := nft(script); err != nil {
		p.t.Fatalf("%s %s: %v", verb, id, err)
	}
}

// staleTableRE matches the tables newPartitions makes; the number is the test process.
var staleTableRE = regexp.MustCompile(`(?m)^table inet (raft_test_(\d+)_\d+)$`)

// removeStaleTables removes the tables of test processes that are gone without
// cleaning up (killed, or timed out: cleanups do not run after a panic). Their rules
// would go on dropping packets to ports that later tests may be given.
func removeStaleTables(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	path, err := nftPath()
	if err != nil {
		return
	}
	out, err := exec.CommandContext(ctx, path, "list", "tables").Output()
	if err != nil {
		return
	}
	for _, m := range staleTableRE.FindAllStringSubmatch(string(out), -1) {
		pid, _ := strconv.Atoi(m[2])
		if syscall.Kill(pid, 0) != syscall.ESRCH {
			continue // that test process still runs
		}
		if err := nft("delete table inet " + m[1] + "\n"); err != nil {
			t.Logf("remove the stale nftables table %s: %v", m[1], err)
		}
	}
}

// nftPath finds nft: on PATH, or where Debian puts it (a PATH without sbin is common).
func nftPath() (string, error) {
	path, err := exec.LookPath("nft")
	for _, p := range []string{"/usr/sbin/nft", "/sbin/nft"} {
		if err == nil {
			break
		}
		if _, statErr := os.Stat(p); statErr == nil {
			path, err = p, nil
		}
	}
	return path, err
}

// nft runs an nft script, for at most 10 seconds.
func nft(script string) error {
	path, err := nftPath()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
