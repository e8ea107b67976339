package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/intel"
	"github.com/huntmesh/huntmesh/store"
	"github.com/huntmesh/huntmesh/tasks"
)

// intelOps stamps ops with a fresh clock as the analyst's tool would.
func intelOps(a analyst, op string, iocs ...tasks.IoC) []tasks.IntelOp {
	clock := intel.NewClock(nil)
	out := make([]tasks.IntelOp, len(iocs))
	for i, ioc := range iocs {
		c := clock.Now()
		out[i] = tasks.IntelOp{Op: op, IoC: ioc, Origin: tasks.KeyID(a.pub),
			Clock: tasks.IntelClock{Wall: c.Wall, Logical: c.Logical}}
	}
	return out
}

// sealIntel signs ops as intel updates of at most 64 KiB each.
func sealIntel(t *testing.T, a analyst, ops []tasks.IntelOp) [][]byte {
	t.Helper()
	envs, err := tasks.SealIntel(a.priv, ops, tasks.DefaultPolicy().MaxSize, func() tasks.Header {
		now := time.Now().UTC()
		return tasks.Header{ID: tasks.NewID(now), IssuedAt: now,
			NotAfter: now.Add(tasks.IntelLifetime)}
	})
	if err != nil {
		t.Fatal(err)
	}
	return envs
}

// issue hands updates to n and fails the test on a refusal.
func issue(t *testing.T, n *Node, envs [][]byte) {
	t.Helper()
	for _, raw := range envs {
		if _, _, err := n.IssueIntel(context.Background(), raw); err != nil {
			t.Fatalf("issue intel on %s: %v", n.cfg.Host, err)
		}
	}
}

// waitDigests waits until every node holds the same intel digest and
// returns how long that took.
func waitDigests(t *testing.T, limit time.Duration, nodes ...*Node) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		same := true
		for _, n := range nodes[1:] {
			if n.IntelDigest() != nodes[0].IntelDigest() {
				same = false
			}
		}
		if same {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			var ds []string
			for _, n := range nodes {
				ds = append(ds, n.cfg.Host+"="+n.IntelDigest()[:12])
			}
			t.Fatalf("digests differ after %s: %s", limit, strings.Join(ds, " "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIntelConvergesAfterPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	a := newAnalyst(t)
	trust := writeTrust(t, "intel", a)
	// The sync timer is far off: convergence must come from the new
	// connection, not from a lucky tick.
	slow := func(c *Config) { c.IntelSyncInterval = time.Hour }
	na := startNode(t, "node-a", trust, slow)
	nb := startNode(t, "node-b", trust, func(c *Config) { slow(c); c.Peers = na.Addrs()[:1] })
	cDir := t.TempDir()
	nc := startNode(t, "node-c", trust, func(c *Config) { slow(c); c.DataDir = cDir })
	waitLive(t, na, nb)

	pool := tasks.IoC{Type: tasks.IoCIP, Value: "192.0.2.25", Severity: "high"}
	issue(t, na, sealIntel(t, a, intelOps(a, tasks.IntelAdd, pool)))
	issue(t, nb, sealIntel(t, a, intelOps(a, tasks.IntelAdd,
		tasks.IoC{Type: tasks.IoCDomain, Value: "pool.example.net"})))
	// Made on the cut-off node: a later remove of A's address and an add.
	issue(t, nc, sealIntel(t, a, intelOps(a, tasks.IntelRemove, pool)))
	issue(t, nc, sealIntel(t, a, intelOps(a, tasks.IntelAdd,
		tasks.IoC{Type: tasks.IoCPort, Value: "3333"})))

	// Enough single updates that the node which pulls them asks its other
	// peers to pull too, instead of publishing them all again.
	for i := range spreadPublishMax + 6 {
		issue(t, nc, sealIntel(t, a, intelOps(a, tasks.IntelAdd, tasks.IoC{
			Type: tasks.IoCMD5, Value: strings.Repeat("0", 28) + hex4(i)})))
	}

	waitDigests(t, 10*time.Second, na, nb)
	if nc.IntelDigest() == na.IntelDigest() {
		t.Fatal("the cut-off node already holds the others' set")
	}

	// The link returns.
	if err := nc.mesh.Connect(context.Background(), na.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	took := waitDigests(t, 5*time.Second, na, nb, nc)
	t.Logf("three nodes converged %s after the link returned", took)

	got := map[string]bool{}
	for _, ioc := range nb.IntelSet() {
		got[ioc.Type+" "+ioc.Value] = true
	}
	want := map[string]bool{"domain pool.example.net": true, "port 3333": true}
	if len(got) != len(want)+spreadPublishMax+6 || !got["domain pool.example.net"] ||
		!got["port 3333"] || got["ip 192.0.2.25"] {
		t.Fatalf("set on node-b = %v, want %v (the later remove wins)", got, want)
	}

	// The set survives a restart on the same data dir.
	digest := nc.IntelDigest()
	nc.Close()
	nc = startNode(t, "node-c", trust, func(c *Config) { slow(c); c.DataDir = cDir })
	if nc.IntelDigest() != digest {
		t.Fatalf("digest after restart %s, want %s", nc.IntelDigest(), digest)
	}
}

func TestIntelRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	intelKey, huntKey := newAnalyst(t), newAnalyst(t)
	// Both keys in one trust file, each with its own role.
	both := filepath.Join(t.TempDir(), "trust")
	lines := "intel " + tasks.FormatPublicKey(intelKey.pub, "intel-analyst") + "\n" +
		"hunt " + tasks.FormatPublicKey(huntKey.pub, "hunter") + "\n"
	if err := os.WriteFile(both, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, "node-r", both, nil)

	issue(t, n, sealIntel(t, intelKey, intelOps(intelKey, tasks.IntelAdd,
		tasks.IoC{Type: tasks.IoCPort, Value: "3333"})))
	before := n.IntelDigest()

	yaraBomb := "rule broken { strings: $a = \"x\" condition: $a and }"
	cases := []struct {
		name   string
		key    analyst
		ioc    tasks.IoC
		reason string
	}{
		{"key without the intel role", huntKey,
			tasks.IoC{Type: tasks.IoCIP, Value: "203.0.113.77"}, "role"},
		{"catastrophic expression", intelKey,
			tasks.IoC{Type: tasks.IoCCmdlineRE, Value: "((a{1000}){1000}){1000}"}, "content"},
		{"expression past the program cap", intelKey, tasks.IoC{Type: tasks.IoCCmdlineRE,
			Value: "(?:ab|cd){1000}(?:ef|gh){1000}(?:ij|kl){1000}"}, "content"},
		{"yara that does not compile", intelKey,
			tasks.IoC{Type: tasks.IoCYARA, Value: yaraBomb}, "content"},
		{"malformed address", intelKey,
			tasks.IoC{Type: tasks.IoCIP, Value: "999.1.1.1"}, "content"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			envs := sealIntel(t, tc.key, intelOps(tc.key, tasks.IntelAdd, tc.ioc))
			_, _, err := n.IssueIntel(context.Background(), envs[0])
			if err == nil {
				t.Fatal("update accepted")
			}
			t.Logf("refused: %v", err)
			if got := n.Counters()["intel-refused/"+tc.reason]; got == 0 {
				t.Fatalf("no intel-refused/%s counted: %v (err %v)", tc.reason, n.Counters(), err)
			}
			if n.IntelDigest() != before {
				t.Fatal("a refused update changed the set")
			}
		})
	}
	t.Run("origin other than the signer", func(t *testing.T) {
		ops := intelOps(intelKey, tasks.IntelAdd, tasks.IoC{Type: tasks.IoCPort, Value: "4444"})
		ops[0].Origin = "someone-else"
		_, _, err := n.IssueIntel(context.Background(), sealIntel(t, intelKey, ops)[0])
		if !errors.Is(err, errIntelRefused) {
			t.Fatalf("err %v, want a content refusal", err)
		}
	})
	// The node kept its previous set and still matches with it.
	m, err := n.huntMatcher(nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := tasks.Record{Kind: tasks.KindConnection, Fields: map[string]any{"remote_port": int64(3333)}}
	if len(m.Match(&rec)) != 1 {
		t.Fatal("the previous set no longer matches")
	}
}

func TestIntelRetroHuntAndHuntMerge(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	a := newAnalyst(t)
	n := startNode(t, "node-retro", writeTrust(t, "intel", a), nil)

	// Records stored an hour before the indicator exists.
	old := time.Now().Add(-time.Hour).UTC()
	recs := []tasks.Record{
		{Kind: tasks.KindConnection, Time: old, Host: "node-retro", Collector: "connections",
			Fields: map[string]any{"remote_address": "203.0.113.77", "remote_port": int64(443)}},
		{Kind: tasks.KindConnection, Time: old, Host: "node-retro", Collector: "connections",
			Fields: map[string]any{"remote_address": "198.51.100.1", "remote_port": int64(443)}},
	}
	if err := n.store.PutRecords("01EARLIERHUNT", recs); err != nil {
		t.Fatal(err)
	}
	c2 := tasks.IoC{Type: tasks.IoCIP, Value: "203.0.113.77", Severity: "critical",
		Tags: []string{"cryptominersgroup"}}
	issue(t, n, sealIntel(t, a, intelOps(a, tasks.IntelAdd, c2)))

	var dets []tasks.Detection
	deadline := time.Now().Add(10 * time.Second)
	for len(dets) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		err := n.store.Detections(context.Background(), store.Filter{TaskID: RetroTaskID},
			func(d tasks.Detection) error {
				dets = append(dets, d)
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(dets) != 1 || dets[0].IoCValue != "203.0.113.77" || dets[0].Severity != "critical" {
		t.Fatalf("retro detections = %+v, want one for 203.0.113.77", dets)
	}
	// The report is kept once the pass has stored its detections.
	for n.IntelStatus().Retro.At.IsZero() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := n.IntelStatus(); st.Retro.Detections != 1 || st.Retro.Records != 2 {
		t.Fatalf("retro report %+v, want 2 records and 1 detection", st.Retro)
	}
	// The same indicator sent again with other tags (a feed re-imported)
	// is an edit: the next pass does not flag the record again.
	first := n.IntelStatus().Retro.At
	again := c2
	again.Tags = []string{"cryptominersgroup", "resent"}
	issue(t, n, sealIntel(t, a, intelOps(a, tasks.IntelAdd, again,
		tasks.IoC{Type: tasks.IoCIP, Value: "198.51.100.1"})))
	for n.IntelStatus().Retro.At.Equal(first) && time.Now().Before(deadline.Add(10*time.Second)) {
		time.Sleep(50 * time.Millisecond)
	}
	if st := n.IntelStatus().Retro; st.IoCs != 1 || st.Detections != 1 {
		t.Fatalf("second retro report %+v, want the new address alone, 1 detection", st)
	}
	dets = nil
	err := n.store.Detections(context.Background(), store.Filter{TaskID: RetroTaskID},
		func(d tasks.Detection) error {
			dets = append(dets, d)
			return nil
		})
	if err != nil || len(dets) != 2 {
		t.Fatalf("%d retro detections after the re-send (err %v), want 2", len(dets), err)
	}

	// The control socket serves them, bounded by event time.
	served := func(req IntelRequest) []tasks.Detection {
		var out []tasks.Detection
		n.serveIntel(context.Background(), &req, func(r Response) bool {
			if r.Error != "" {
				t.Fatal(r.Error)
			}
			out = append(out, r.Intel.Detections...)
			return true
		})
		return out
	}
	if got := served(IntelRequest{Action: "detections"}); len(got) != 2 {
		t.Fatalf("served %+v, want the two retro detections", got)
	}
	if got := served(IntelRequest{Action: "detections", Limit: 1}); len(got) != 1 {
		t.Fatalf("served %d with limit 1", len(got))
	}
	if got := served(IntelRequest{Action: "detections", Since: old.Add(time.Minute)}); len(got) != 0 {
		t.Fatalf("served %d detections older than since", len(got))
	}

	// A hunt's own IoCs are merged with the shared set for that hunt.
	m, err := n.huntMatcher([]tasks.IoC{{Type: tasks.IoCPort, Value: "3333"}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != 3 {
		t.Fatalf("merged matcher holds %d IoCs, want 3", m.Len())
	}
	if _, err := n.huntMatcher([]tasks.IoC{{Type: tasks.IoCIP, Value: "nope"}}); err == nil {
		t.Fatal("a hunt's invalid IoC was accepted")
	}
	if shared := n.intel.sharedMatcher(); shared != n.intel.sharedMatcher() {
		t.Fatal("the shared matcher is compiled again without a change")
	}
}

func TestIntelBundleAcrossMeshes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two nodes")
	}
	a := newAnalyst(t)
	trust := writeTrust(t, "intel", a)
	src := startNode(t, "enclave-a", trust, nil)
	dst := startNode(t, "enclave-b", trust, nil) // never connected to src
	var iocs []tasks.IoC
	for i := range 2000 {
		iocs = append(iocs, tasks.IoC{Type: tasks.IoCSHA256,
			Value: strings.Repeat("0", 60) + hex4(i), Source: "feed"})
	}
	envs := sealIntel(t, a, intelOps(a, tasks.IntelAdd, iocs...))
	if len(envs) < 2 {
		t.Fatalf("2000 hashes sealed into %d update, want several", len(envs))
	}
	issue(t, src, envs)

	var bundle [][]byte
	src.exportIntel(func(r Response) bool {
		bundle = append(bundle, r.Intel.Envelopes...)
		return true
	})
	if len(bundle) != len(envs) {
		t.Fatalf("export holds %d updates, want %d", len(bundle), len(envs))
	}
	issue(t, dst, bundle)
	issue(t, dst, bundle) // a second import changes nothing
	if dst.IntelDigest() != src.IntelDigest() {
		t.Fatal("the bundle did not give the same set")
	}
	if st := dst.IntelStatus(); st.Active != 2000 || st.Updates != len(envs) {
		t.Fatalf("status %+v, want 2000 active in %d updates", st, len(envs))
	}
}

func hex4(i int) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[i>>12&15], digits[i>>8&15], digits[i>>4&15], digits[i&15]})
}

func TestWithIntelRules(t *testing.T) {
	rule := "rule stratum_url { strings: $a = \"stratum+tcp://\" condition: $a }"
	m, err := intel.Compile([]tasks.IoC{{Type: tasks.IoCYARA, Value: rule}}, intel.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	specs := []tasks.CollectorSpec{
		{Name: "files", Params: []byte(`{"roots":["/tmp"]}`)},
		{Name: "yara-memory"},
		{Name: "files", Params: []byte(`{"yara":[{"name":"own","text":"rule own { condition: true }"}]}`)},
		{Name: "processes"},
	}
	got := withIntelRules(specs, m)
	for _, tc := range []struct {
		name string
		i    int
		want string
	}{
		{"files without rules gets the shared rules", 0, "stratum_url"},
		{"yara-memory without rules gets the shared rules", 1, "stratum_url"},
		{"a hunt's own rules are kept", 2, "rule own"},
		{"other collectors are untouched", 3, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := string(got[tc.i].Params)
			if tc.want == "" && p != "" || !strings.Contains(p, tc.want) {
				t.Fatalf("params %s, want %q", p, tc.want)
			}
			if tc.i == 2 && strings.Contains(p, "stratum_url") {
				t.Fatal("shared rules added beside the hunt's own")
			}
		})
	}
	if string(specs[0].Params) != `{"roots":["/tmp"]}` {
		t.Fatal("the hunt's specs were changed")
	}
}

// regexIoCs makes n distinct command-line expressions starting at from.
func regexIoCs(from, n int) []tasks.IoC {
	out := make([]tasks.IoC, n)
	for i := range out {
		out[i] = tasks.IoC{Type: tasks.IoCCmdlineRE, Value: fmt.Sprintf(`-o \S+:%d\b`, from+i)}
	}
	return out
}

func TestIntelRefusesSetPastItsCaps(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	a := newAnalyst(t)
	n := startNode(t, "node-caps", writeTrust(t, "intel", a), nil)
	lim := intel.DefaultLimits()

	// Most of the expression budget, in several updates that each pass.
	issue(t, n, sealIntel(t, a, intelOps(a, tasks.IntelAdd, regexIoCs(0, lim.MaxRegexes-100)...)))
	before, st := n.IntelDigest(), n.IntelStatus()
	if st.ByType[tasks.IoCCmdlineRE] != lim.MaxRegexes-100 || st.LeftOut != 0 {
		t.Fatalf("status %+v", st)
	}

	// One more update that fits alone but not with the rest.
	over := sealIntel(t, a, intelOps(a, tasks.IntelAdd, regexIoCs(100_000, 200)...))
	if len(over) != 1 {
		t.Fatalf("200 expressions sealed into %d updates, want 1", len(over))
	}
	_, _, err := n.IssueIntel(context.Background(), over[0])
	want := fmt.Sprintf("%d command-line expressions, over the limit of %d",
		lim.MaxRegexes+100, lim.MaxRegexes)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err %v, want one saying %q", err, want)
	}
	if n.IntelDigest() != before || n.Counters()["intel-refused/set-cap"] == 0 {
		t.Fatal("the refused update changed the set or was not counted")
	}
	// Not remembered for good: it depends on this set, and the same
	// update may come back from a peer.
	if n.intel.isRefused(updateID(over[0])) {
		t.Fatal("a set-cap refusal was remembered as final")
	}
	// The previous set still matches.
	m, err := n.huntMatcher(nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := tasks.Record{Kind: tasks.KindProcess, Fields: map[string]any{
		"cmdline": "xmrig -o pool.example:42 -k"}}
	if len(m.Match(&rec)) != 1 {
		t.Fatalf("the previous set no longer matches: %v", m.Match(&rec))
	}

	// Removing some makes room: a remove and an add in one update are
	// counted together.
	ops := append(intelOps(a, tasks.IntelRemove, regexIoCs(0, 150)...),
		intelOps(a, tasks.IntelAdd, regexIoCs(100_000, 200)...)...)
	issue(t, n, sealIntel(t, a, ops))
	if got := n.IntelStatus().ByType[tasks.IoCCmdlineRE]; got != lim.MaxRegexes-50 {
		t.Fatalf("%d expressions after the swap, want %d", got, lim.MaxRegexes-50)
	}

	// The same update arriving from a peer is taken, so that the set
	// converges whatever order nodes heard updates in; the matcher leaves
	// out what is past its cap, deterministically, and says so.
	more := sealIntel(t, a, intelOps(a, tasks.IntelAdd, regexIoCs(200_000, 100)...))
	if _, changed, err := n.intel.accept(more[0], "peer"); err != nil || changed != 100 {
		t.Fatalf("update from a peer: changed %d, err %v", changed, err)
	}
	st = n.IntelStatus()
	if st.LeftOut != 50 || !strings.Contains(st.LeftOutReason, "over 1000 expressions") {
		t.Fatalf("left out %d (%q), want 50 past the cap", st.LeftOut, st.LeftOutReason)
	}
}
