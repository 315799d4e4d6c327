// forming_test.go: new data dirs forming a new cluster (decideForming, Raft.Form,
// takeFormStep), on real data dirs, without the network: each round, a member asks the
// others as formCluster does and records what it decides.
package main

import (
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// formingMember is a member of -c on a data dir of its own.
type formingMember struct {
	id      string
	store   *storage
	svc     *rpcService
	started bool
	spare   bool
}

func openFormingMember(t *testing.T, id, dir string, members []string) *formingMember {
	t.Helper()
	store, _, _, _, err := openNodeStorage(dir, id, Config{Members: members}, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return &formingMember{id: id, store: store, svc: &rpcService{store: store, logger: slog.New(slog.DiscardHandler)}}
}

// round is one turn of formCluster's loop on f, asking the members in others.
func (f *formingMember) round(t *testing.T, others map[string]*formingMember) {
	t.Helper()
	meta := f.store.Meta()
	if meta.Forming == 0 {
		return
	}
	var accepted *Config
	if meta.Forming == formAccepted {
		accepted = &meta.Bootstrap
	}
	answers := map[string]FormReply{}
	for _, peer := range meta.Bootstrap.Members {
		if o := others[peer]; peer != f.id && o != nil {
			var reply FormReply
			if err := o.svc.Form(&FormRequest{From: f.id, Formation: meta.Formation, Incarnation: meta.Incarnation}, &reply); err == nil && reply.Error == "" {
				answers[peer] = reply
			}
		}
	}
	step := decideForming(f.id, meta.Incarnation, meta.Bootstrap.Members, accepted, answers)
	if _, done, err := takeFormStep(f.store, f.id, "", step); err != nil {
		t.Fatal(err)
	} else if done {
		f.started, f.spare = step.kind == formStart, step.kind == formSpare
	}
}

// A member's fresh data dir replaced while the others form (its first start died and
// the dir was cleared) is just a member that lost its disk: the others form the
// cluster without it, and it waits as a spare. (Found in review: every member became a
// spare of no cluster, and none ever formed.)
func TestFormingSurvivesADataDirReplacedMidway(t *testing.T) {
	members := []string{"a", "b", "c"}
	base := t.TempDir()
	all := map[string]*formingMember{}
	for _, id := range members {
		all[id] = openFormingMember(t, id, filepath.Join(base, id), members)
	}
	all["a"].round(t, all) // a accepts a first configuration with c's first data dir
	if all["a"].store.Meta().Forming != formAccepted {
		t.Fatal("a did not accept a first configuration")
	}
	all["c"].store.Close()
	all["c"] = openFormingMember(t, "c", filepath.Join(base, "c-again"), members)
	for range 10 {
		for _, id := range members {
			all[id].round(t, all)
		}
	}
	if !all["a"].started || !all["b"].started || !all["c"].spare {
		t.Fatalf("a started %v, b started %v, c a spare %v", all["a"].started, all["b"].started, all["c"].spare)
	}
	first := all["a"].store.Meta().Bootstrap
	if !sameConfig(first, all["b"].store.Meta().Bootstrap) || first.incarnation("c") == all["c"].store.Incarnation() {
		t.Fatalf("a and b formed %+v and %+v; c's data dir is %016x", first, all["b"].store.Meta().Bootstrap, all["c"].store.Incarnation())
	}
}

// Fresh members that all answer form one cluster, with every data dir in its first
// configuration, whatever order they ask in; one that starts after the others formed
// (its dir new) finds the cluster running and is a spare.
func TestFormingAllFresh(t *testing.T) {
	members := []string{"a", "b", "c"}
	base := t.TempDir()
	all := map[string]*formingMember{}
	for _, id := range members {
		all[id] = openFormingMember(t, id, filepath.Join(base, id), members)
	}
	for range 3 {
		for _, id := range []string{"c", "a", "b"} {
			all[id].round(t, all)
		}
	}
	for _, id := range members {
		if !all[id].started {
			t.Fatalf("%s did not start", id)
		}
		if first := all[id].store.Meta().Bootstrap; len(first.Incarnations) != 3 || first.incarnation(id) != all[id].store.Incarnation() {
			t.Fatalf("%s formed %+v", id, first)
		}
	}
	all["b"].store.Close()
	all["b"] = openFormingMember(t, "b", filepath.Join(base, "b-wiped"), members)
	all["b"].round(t, all)
	if !all["b"].spare {
		t.Fatal("a wiped member formed the cluster again")
	}
}

// A cluster restored from a backup (-restore on every member) knows its members by
// their data dirs too: its snapshot holds -c without incarnations, and the first
// configuration it formed stands in for it. (Found in review: none of its members was
// known by its data dir, and a wiped one voted as the member it was.)
func TestRestoredClusterKnowsItsDataDirs(t *testing.T) {
	meta := SnapshotMeta{Index: 10, Term: 2, Config: Config{Members: []string{"old:1"}}, Machine: machineFormat}
	backup := filepath.Join(t.TempDir(), "backup.snap")
	if err := os.WriteFile(backup, encodeSnapshotFile(meta, encodeMachine(viewOf([]string{"x"}))), 0o600); err != nil {
		t.Fatal(err)
	}
	members := []string{"a", "b", "c"}
	base := t.TempDir()
	all := map[string]*formingMember{}
	for _, id := range members {
		if _, err := restoreSnapshot(backup, filepath.Join(base, id), id, Config{Members: members}); err != nil {
			t.Fatal(err)
		}
		all[id] = openFormingMember(t, id, filepath.Join(base, id), members)
	}
	for range 3 {
		for _, id := range members {
			all[id].round(t, all)
		}
	}
	for _, id := range members {
		all[id].store.Close()
		store, st, _, _, err := openStorage(filepath.Join(base, id), id, Config{Members: members})
		if err != nil {
			t.Fatal(err)
		}
		restoredConfig(store.Meta(), &st.Snapshot) // as runNode does
		st.Bootstrap = store.Meta().Bootstrap
		r := newRaft(coreConfig{ID: id, Incarnation: store.Incarnation(), ElectionTicks: 10, HeartbeatTicks: 1, MaxMsgBytes: 1 << 20, MaxInflight: 4, Rand: rand.New(rand.NewSource(1))}, st)
		store.Close()
		if !all[id].started || !sameConfig(r.config(), st.Bootstrap) || len(r.config().Incarnations) != 3 {
			t.Fatalf("%s (started %v): the configuration in effect is %+v, the first one formed %+v", id, all[id].started, r.config(), st.Bootstrap)
		}
	}
}
