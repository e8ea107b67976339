package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/huntmesh/huntmesh/store"
	"github.com/huntmesh/huntmesh/tasks"
)

// TestIntelSyncTimerRepairsLostGossip: an update one node holds but never
// gossiped (as if every copy was lost) reaches a peer that stays connected
// the whole time, by the periodic anti-entropy round alone.
func TestIntelSyncTimerRepairsLostGossip(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two nodes")
	}
	a := newAnalyst(t)
	trust := writeTrust(t, "intel", a)
	fast := func(c *Config) { c.IntelSyncInterval = 300 * time.Millisecond }
	na := startNode(t, "node-a", trust, fast)
	nb := startNode(t, "node-b", trust, func(c *Config) { fast(c); c.Peers = na.Addrs()[:1] })
	waitLive(t, na, nb)
	// Let the syncs of the new connection finish first.
	waitDigests(t, 5*time.Second, na, nb)

	env := sealIntel(t, a, intelOps(a, tasks.IntelAdd, tasks.IoC{Type: tasks.IoCPort, Value: "3333"}))
	if _, changed, err := nb.intel.accept(env[0], "lost"); err != nil || changed != 1 {
		t.Fatalf("accept on node-b: changed %d, err %v", changed, err)
	}
	if na.IntelDigest() == nb.IntelDigest() {
		t.Fatal("node-a has the update without gossip or sync")
	}
	took := waitDigests(t, 5*time.Second, na, nb)
	t.Logf("the sync timer repaired the lost update in %s", took.Round(time.Millisecond))
	if len(na.IntelSet()) != 1 {
		t.Fatalf("node-a holds %v", na.IntelSet())
	}
}

// TestIntelGossipRefusesWrongRole: an update signed by a key that may
// hunt but not issue intel, published onto the intel topic by a hostile
// gossipsub peer that checks nothing, stops at the node: it is refused,
// counted and logged, changes nothing, and is not passed on.
func TestIntelGossipRefusesWrongRole(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two nodes")
	}
	intelKey, huntKey := newAnalyst(t), newAnalyst(t)
	both := filepath.Join(t.TempDir(), "trust")
	lines := "intel " + tasks.FormatPublicKey(intelKey.pub, "intel-analyst") + "\n" +
		"hunt " + tasks.FormatPublicKey(huntKey.pub, "hunter") + "\n"
	if err := os.WriteFile(both, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	na := startNode(t, "node-a", both, nil)
	nb := startNode(t, "node-b", both, func(c *Config) { c.Peers = na.Addrs()[:1] })
	waitLive(t, na, nb)

	// The hostile peer: plain libp2p and gossipsub on loopback, no checks.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	top, err := ps.Join(TopicIntel)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := top.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	info, err := peer.AddrInfoFromString(nb.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, *info); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(top.ListPeers()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("node-b never joined the hostile peer's intel topic")
		}
		time.Sleep(20 * time.Millisecond)
	}

	before := nb.IntelDigest()
	bad := sealIntel(t, huntKey, intelOps(huntKey, tasks.IntelAdd,
		tasks.IoC{Type: tasks.IoCIP, Value: "203.0.113.9"}))
	if err := top.Publish(ctx, bad[0]); err != nil {
		t.Fatal(err)
	}
	for nb.Counters()["intel-refused/role"] == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("node-b did not count a role refusal: %v", nb.Counters())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if nb.IntelDigest() != before {
		t.Fatal("the refused update changed node-b's set")
	}

	// A good update after it arrives everywhere; the bad one never did.
	issue(t, nb, sealIntel(t, intelKey, intelOps(intelKey, tasks.IntelAdd,
		tasks.IoC{Type: tasks.IoCIP, Value: "203.0.113.10"})))
	waitDigests(t, 5*time.Second, na, nb)
	if set := na.IntelSet(); len(set) != 1 || set[0].Value != "203.0.113.10" {
		t.Fatalf("node-a holds %v, want only the intel analyst's address", set)
	}
	if na.Counters()["intel-refused/role"] != 0 {
		t.Fatal("node-b passed the refused update on to node-a")
	}
}

// TestIntelRetroWindow: records older than the retro-hunt window are not
// matched again; newer ones are.
func TestIntelRetroWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	a := newAnalyst(t)
	n := startNode(t, "node-w", writeTrust(t, "intel", a), func(c *Config) {
		c.IntelRetroWindow = 30 * time.Minute
	})
	now := time.Now().UTC()
	rec := func(at time.Time) tasks.Record {
		return tasks.Record{Kind: tasks.KindConnection, Time: at, Host: "node-w",
			Collector: "connections", Fields: map[string]any{"remote_address": "192.0.2.44",
				"remote_port": int64(443)}}
	}
	recs := []tasks.Record{rec(now.Add(-time.Hour)), rec(now.Add(-10 * time.Minute))}
	if err := n.store.PutRecords("01EARLIER", recs); err != nil {
		t.Fatal(err)
	}
	issue(t, n, sealIntel(t, a, intelOps(a, tasks.IntelAdd,
		tasks.IoC{Type: tasks.IoCIP, Value: "192.0.2.44"})))
	deadline := time.Now().Add(10 * time.Second)
	for n.IntelStatus().Retro.At.IsZero() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	var dets []tasks.Detection
	err := n.store.Detections(context.Background(), store.Filter{TaskID: RetroTaskID},
		func(d tasks.Detection) error {
			dets = append(dets, d)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(dets) != 1 || dets[0].Time.Before(now.Add(-30*time.Minute)) {
		t.Fatalf("retro detections %+v, want only the record inside the window", dets)
	}
	if st := n.IntelStatus().Retro; st.Records != 1 {
		t.Fatalf("retro report %+v, want 1 record scanned", st)
	}
}

// TestIntelIndexPages: the index of held updates spans several pages,
// survives restarts, and an index in the first single-value format is
// read and moved to pages.
func TestIntelIndexPages(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nodes")
	}
	defer func(p int) { intelIndexPage = p }(intelIndexPage)
	intelIndexPage = 3
	a := newAnalyst(t)
	trust := writeTrust(t, "intel", a)
	var envs [][]byte
	for i := range 8 {
		envs = append(envs, sealIntel(t, a, intelOps(a, tasks.IntelAdd, tasks.IoC{
			Type: tasks.IoCPort, Value: fmt.Sprint(1000 + i)}))...)
	}

	dir := t.TempDir()
	onDir := func(d string) func(*Config) { return func(c *Config) { c.DataDir = d } }
	n := startNode(t, "node-p", trust, onDir(dir))
	issue(t, n, envs)
	digest := n.IntelDigest()
	n.Close()
	n = startNode(t, "node-p", trust, onDir(dir))
	if st := n.IntelStatus(); st.Updates != 8 || n.IntelDigest() != digest {
		t.Fatalf("after restart: %d updates, digest %.12s, want 8 and %.12s", st.Updates,
			n.IntelDigest(), digest)
	}
	n.Close()

	// The first format: one value listing every ID.
	legacy := t.TempDir()
	st, err := store.Open(store.DefaultConfig(legacy + "/store"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, raw := range envs {
		id := updateID(raw)
		ids = append(ids, id)
		if err := st.PutMeta(metaIntelPrefix+id, raw); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.PutMeta(metaIntelIndex, []byte(strings.Join(ids, "\n"))); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 { // read from the old value, then from the pages it was moved to
		n = startNode(t, "node-l", trust, onDir(legacy))
		if got := n.IntelStatus().Updates; got != 8 || n.IntelDigest() != digest {
			t.Fatalf("legacy index: %d updates, digest %.12s, want 8 and %.12s", got,
				n.IntelDigest(), digest)
		}
		n.Close()
	}
}

// TestIntelNudgeRate: a peer nudging over and over is followed at most
// once per nudgeEvery; the rest are counted and dropped.
func TestIntelNudgeRate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	n := startNode(t, "node-n", writeTrust(t, "intel", newAnalyst(t)), nil)
	req := []byte(`{"op":"nudge","digest":"x"}`)
	for range 50 {
		if _, err := n.intel.serveSync(context.Background(), "peer-1", req); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.Counters()["intel-sync/nudge-dropped"]; got < 45 {
		t.Fatalf("%d of 50 quick nudges dropped, want nearly all", got)
	}
	time.Sleep(nudgeEvery)
	before := n.Counters()["intel-sync/nudge-dropped"]
	if _, err := n.intel.serveSync(context.Background(), "peer-1", req); err != nil {
		t.Fatal(err)
	}
	if n.Counters()["intel-sync/nudge-dropped"] != before {
		t.Fatal("a nudge after the interval was dropped")
	}
}

// TestIntelChecksOncePerHop: an update is verified and compiled once on
// the node it is issued on and once on each node it reaches by gossip,
// not again between the gossip validator and the handler.
func TestIntelChecksOncePerHop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two nodes")
	}
	a := newAnalyst(t)
	trust := writeTrust(t, "intel", a)
	slow := func(c *Config) { c.IntelSyncInterval = time.Hour }
	na := startNode(t, "node-a", trust, slow)
	nb := startNode(t, "node-b", trust, func(c *Config) { slow(c); c.Peers = na.Addrs()[:1] })
	waitLive(t, na, nb)
	for na.TopicPeers(TopicIntel) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	ca, cb := na.Counters()["intel/checks"], nb.Counters()["intel/checks"]
	issue(t, na, sealIntel(t, a, intelOps(a, tasks.IntelAdd,
		tasks.IoC{Type: tasks.IoCPort, Value: "3333"})))
	waitDigests(t, 5*time.Second, na, nb)
	time.Sleep(200 * time.Millisecond) // let any second check show
	if da, db := na.Counters()["intel/checks"]-ca, nb.Counters()["intel/checks"]-cb; da != 1 ||
		db != 1 {
		t.Fatalf("checks: %d on the issuer, %d on the receiver; want 1 each", da, db)
	}
}
