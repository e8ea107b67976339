package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/store"
	"github.com/huntmesh/huntmesh/tasks"
)

// newQuery builds a query from replyTo with a minute to live.
func newQuery(replyTo, expr string, groupBy ...string) *tasks.Query {
	now := time.Now().UTC()
	return &tasks.Query{
		Header: tasks.Header{ID: tasks.NewID(now), Type: tasks.TypeQuery, IssuedAt: now,
			NotAfter: now.Add(time.Minute), ReplyTo: replyTo},
		Expr: expr, GroupBy: groupBy,
	}
}

func sealAny(t *testing.T, key ed25519.PrivateKey, typ string, v any) []byte {
	t.Helper()
	raw, err := tasks.SealTask(key, typ, v, tasks.DefaultPolicy().MaxSize)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// seedConnections stores connection records on n: one to each remote.
func seedConnections(t *testing.T, n *Node, at time.Time, remotes ...string) {
	t.Helper()
	var recs []tasks.Record
	for i, r := range remotes {
		addr, port, _ := strings.Cut(r, ":")
		var p int64
		fmt.Sscan(port, &p)
		recs = append(recs, tasks.Record{Kind: tasks.KindConnection, Host: n.cfg.Host,
			Collector: "connections", Time: at.Add(time.Duration(i) * time.Second),
			Fields: map[string]any{"protocol": "tcp", "remote_address": addr, "remote_port": p,
				"pid": int64(100 + i), "process_name": "proc" + fmt.Sprint(i)}})
	}
	if err := n.Store().PutRecords("seed", recs); err != nil {
		t.Fatal(err)
	}
}

// twoNodes starts node-a and node-b, b knowing only a, both edited by
// edit (may be nil), and waits until each sees the other live.
func twoNodes(t *testing.T, trust string, edit func(*Config)) (a, b *Node) {
	t.Helper()
	if edit == nil {
		edit = func(*Config) {}
	}
	a = startNode(t, "node-a", trust, edit)
	b = startNode(t, "node-b", trust, func(cfg *Config) {
		edit(cfg)
		cfg.Peers = a.Addrs()[:1]
	})
	waitLive(t, a, b)
	return a, b
}

func TestQueryStacksAcrossThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	who := newAnalyst(t)
	trust := writeTrust(t, "query", who)
	a, b, c := threeNodes(t, trust, nil)
	at := time.Date(2026, 5, 3, 8, 0, 0, 0, time.UTC)
	seedConnections(t, a, at, "192.0.2.25:3333", "198.51.100.7:443")
	seedConnections(t, b, at, "192.0.2.25:3333", "198.51.100.7:443", "198.51.100.7:443")
	seedConnections(t, c, at, "198.51.100.7:443", "203.0.113.9:22")

	// Stacking: counts add up, hosts unite, least frequent first.
	q := newQuery(b.ID(), `kind == "connection"`, "remote_address", "remote_port")
	var streamed int
	ans, err := b.RunQuery(context.Background(), sealAny(t, who.priv, tasks.TypeQuery, q),
		30*time.Second, func(r *tasks.Result) { streamed += len(r.Records) })
	if err != nil {
		t.Fatal(err)
	}
	if ans.Completeness.Answered != 3 || ans.Completeness.ByStatus[tasks.StatusFinished] != 3 {
		t.Fatalf("completeness %+v", ans.Completeness)
	}
	if streamed != 0 {
		t.Errorf("a stacking query streamed %d rows, want groups only", streamed)
	}
	// node-c answered node-b over a new connection between live members:
	// neither announced itself to the whole fleet for it.
	if b.mesh.Counters()["presence/kick-skipped"]+c.mesh.Counters()["presence/kick-skipped"] == 0 {
		t.Errorf("a connection between live members kicked a presence announcement: %v",
			b.mesh.Counters())
	}
	want := []tasks.Group{
		{Key: []string{"203.0.113.9", "22"}, Count: 1, Hosts: []string{"node-c"}},
		{Key: []string{"192.0.2.25", "3333"}, Count: 2, Hosts: []string{"node-a", "node-b"}},
		{Key: []string{"198.51.100.7", "443"}, Count: 4,
			Hosts: []string{"node-a", "node-b", "node-c"}},
	}
	if len(ans.Groups) != len(want) {
		t.Fatalf("groups %+v, want %+v", ans.Groups, want)
	}
	for i := range want {
		g, w := ans.Groups[i], want[i]
		if !slices.Equal(g.Key, w.Key) || g.Count != w.Count || !slices.Equal(g.Hosts, w.Hosts) {
			t.Errorf("group %d: %+v, want %+v", i, g, w)
		}
	}

	// Rows with a time range and a per-node limit; finished answers carry
	// a count and a digest, and equal rows give equal digests.
	q = newQuery(a.ID(), `remote_port == 443`)
	q.Since, q.Until, q.Limit = at, at.Add(2*time.Second), 1
	rows := map[string]int{}
	ans, err = a.RunQuery(context.Background(), sealAny(t, who.priv, tasks.TypeQuery, q),
		30*time.Second, func(r *tasks.Result) { rows[r.Host] += len(r.Records) })
	if err != nil {
		t.Fatal(err)
	}
	// a has its 443 row at +1s; b has two at +1s and +2s (the second is
	// outside the range); c has its 443 row at +0s.
	for _, h := range []string{"node-a", "node-b", "node-c"} {
		if rows[h] != 1 {
			t.Errorf("%s returned %d rows, want 1 (limit 1, in range): %v", h, rows[h], rows)
		}
	}
	st, err := a.TaskStatus(q.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Counts[tasks.StatusFinished] != 3 || len(st.Nodes) != 3 {
		t.Fatalf("task status %+v", st)
	}
	for _, o := range st.Nodes {
		if o.Digest == "" || o.Records != 1 {
			t.Errorf("%s: outcome %+v, want one row and a digest", o.Host, o)
		}
	}
}

func TestQueryBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two nodes")
	}
	who := newAnalyst(t)
	trust := writeTrust(t, "query", who)
	a, b := twoNodes(t, trust, nil)
	seedConnections(t, a, time.Now(), "192.0.2.25:3333")
	seedConnections(t, b, time.Now(), "192.0.2.25:3333")

	// Refused before it is sent: with the position, or the unknown field.
	for expr, want := range map[string]string{
		`kind == `:                             "1:9",
		`remote_prot == 3333`:                  "undeclared reference to 'remote_prot'",
		`remote_port == "3333"`:                "no matching overload",
		`remote_port + 1`:                      "want a condition",
		`fields["pid"]`:                        "is a value",
		`pid == 1 ? fields["a"] : fields["b"]`: "is a value",
		`cmdline.matches("[")`:                 "missing closing ]",
		strings.Repeat("x", 5000):              "expression of 5000 bytes",
		`kind == "x" || pid == 1 ||`:           "Syntax error",
	} {
		q := newQuery(a.ID(), expr)
		raw, err := tasks.SealTask(who.priv, tasks.TypeQuery, q, tasks.DefaultPolicy().MaxSize)
		if err == nil {
			_, err = a.RunQuery(context.Background(), raw, time.Second, nil)
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("query %.40q: error %v, want it to say %q", expr, err, want)
		}
	}
	if _, err := CompileQuery(`true`, []string{"no_such"}, false); err == nil ||
		!strings.Contains(err.Error(), `"no_such": unknown field`) {
		t.Errorf("group by an unknown field: %v", err)
	}

	// A key some records lack fails on those records only: the query
	// finishes, says how many, and matches the rest.
	q0 := newQuery(a.ID(), `fields["process_name"] == "proc0"`)
	ans0, err := a.RunQuery(context.Background(), sealAny(t, who.priv, tasks.TypeQuery, q0),
		30*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ans0.Completeness.ByStatus[tasks.StatusFinished] != 2 {
		t.Fatalf("completeness %+v, want both finished", ans0.Completeness)
	}
	if err := a.Store().PutRecords("seed", []tasks.Record{{Kind: tasks.KindLog, Host: "node-a",
		Time: time.Now(), Fields: map[string]any{"message": "no process here"}}}); err != nil {
		t.Fatal(err)
	}
	q0 = newQuery(a.ID(), `fields["process_name"] == "proc0"`)
	if _, err := a.RunQuery(context.Background(), sealAny(t, who.priv, tasks.TypeQuery, q0),
		30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	st0, err := a.TaskStatus(q0.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range st0.Nodes {
		if o.Status != tasks.StatusFinished || o.Records != 1 {
			t.Errorf("%s: %+v, want finished with its one match", o.Host, o)
		}
		if o.Host == "node-a" && !strings.Contains(o.Reason, "1 records could not be evaluated") {
			t.Errorf("node-a's reason %q, want the record that lacked the key counted", o.Reason)
		}
	}

	// One that runs too long is stopped by the cost limit on every node.
	nums := "[" + strings.TrimSuffix(strings.Repeat("1,", 200), ",") + "]"
	expr := fmt.Sprintf(`%s.all(x, %s.all(y, %s.all(z, x + y + z > 0)))`, nums, nums, nums)
	q := newQuery(a.ID(), expr)
	ans, err := a.RunQuery(context.Background(), sealAny(t, who.priv, tasks.TypeQuery, q),
		30*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ans.Completeness.ByStatus[tasks.StatusFailed] != 2 {
		t.Fatalf("completeness %+v, want both nodes failed by the cost limit", ans.Completeness)
	}
	st, err := a.TaskStatus(q.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range st.Nodes {
		if !strings.Contains(o.Reason, "cost limit") {
			t.Errorf("%s: reason %q, want the cost limit", o.Host, o.Reason)
		}
	}
}

// TestBigAnswerIsPulledInPages checks that an answer over the push limit
// travels as a summary and pages the issuer pulls, all rows intact.
func TestBigAnswerIsPulledInPages(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two nodes")
	}
	who := newAnalyst(t)
	trust := writeTrust(t, "query", who)
	a, b := twoNodes(t, trust, nil)
	remotes := make([]string, 4000)
	for i := range remotes {
		remotes[i] = fmt.Sprintf("10.%d.%d.1:%d", i/250, i%250, 1000+i)
	}
	seedConnections(t, b, time.Now().Add(-time.Hour), remotes...)

	q := newQuery(a.ID(), `host == "node-b"`)
	got := 0
	ans, err := a.RunQuery(context.Background(), sealAny(t, who.priv, tasks.TypeQuery, q),
		30*time.Second, func(r *tasks.Result) { got += len(r.Records) })
	if err != nil {
		t.Fatal(err)
	}
	if ans.Completeness.ByStatus[tasks.StatusFinished] != 2 || got != len(remotes) {
		t.Fatalf("completeness %+v, %d rows; want both finished and %d rows",
			ans.Completeness, got, len(remotes))
	}
	if b.Counters()["page/served"] < 2 {
		t.Errorf("answer was not pulled in pages: %v", b.Counters())
	}
	rs, err := a.Store().Results(q.ID)
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for _, r := range rs {
		if r.Node == b.ID() {
			stored += len(r.Records)
		}
	}
	if stored != len(remotes) {
		t.Errorf("issuer stored %d rows of node-b, want %d", stored, len(remotes))
	}
}

// slowHunt is a hunt whose files scan reads a 4 MiB file at 256 KiB/s,
// so it runs for about 16 s unless stopped.
func slowHunt(t *testing.T, replyTo string) *tasks.Hunt {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHunt(replyTo)
	h.Collectors = []tasks.CollectorSpec{{Name: "files",
		Params: []byte(fmt.Sprintf(`{"roots":[%q],"hashes":["sha256"]}`, dir))}}
	h.Budget.ReadBytesPerSec = 256 << 10
	return h
}

func TestCancelStopsRunningHunt(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two nodes")
	}
	who := newAnalyst(t)
	trust := writeTrust(t, "hunt", who)
	fast := func(cfg *Config) { cfg.ReceiptDelay = 200 * time.Millisecond }
	a, _ := twoNodes(t, trust, fast)

	h := slowHunt(t, a.ID())
	expected := a.LivePeers()
	if _, err := a.IssueTask(context.Background(), seal(t, who.priv, h)); err != nil {
		t.Fatal(err)
	}
	// Both nodes say they are running; a short wait sees them working.
	comp := a.Await(context.Background(), h.ID, expected, 2*time.Second, func(*tasks.Result) {})
	if len(comp.Working) != 2 || comp.ByStatus[tasks.StatusRunning] != 2 || len(comp.Silent) != 0 {
		t.Fatalf("completeness while running %+v, want both working", comp)
	}
	if st, err := a.TaskStatus(h.ID); err != nil || st.Counts[tasks.StatusRunning] != 2 {
		t.Fatalf("task status while running %+v, %v", st, err)
	}

	start := time.Now()
	now := time.Now().UTC()
	cn := &tasks.Cancel{Header: tasks.Header{ID: tasks.NewID(now), Type: tasks.TypeCancel,
		IssuedAt: now, NotAfter: now.Add(time.Minute), ReplyTo: a.ID()}, Target: h.ID}
	if _, err := a.IssueTask(context.Background(),
		sealAny(t, who.priv, tasks.TypeCancel, cn)); err != nil {
		t.Fatal(err)
	}
	comp = a.Await(context.Background(), h.ID, expected, 10*time.Second, func(*tasks.Result) {})
	if comp.ByStatus[tasks.StatusFailed] != 2 {
		t.Fatalf("completeness after cancel %+v, want both failed", comp)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("cancel took %s to stop a 16 s scan", d)
	}
	st, err := a.TaskStatus(h.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range st.Nodes {
		if !strings.Contains(o.Reason, "cancelled by") {
			t.Errorf("%s: reason %q, want cancelled", o.Host, o.Reason)
		}
	}
	cst, err := a.TaskStatus(cn.ID)
	if err != nil || cst.Counts[tasks.StatusFinished] != 2 {
		t.Fatalf("cancel's own answers %+v, %v", cst, err)
	}
}

// TestCatchUp checks the three fates of a node that was away: one started
// after a hunt was sent runs it and its answer reaches the issuer; one
// restarted mid-hunt does not run it twice and says it was interrupted;
// one down for the whole deadline is reported silent.
func TestCatchUp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nodes")
	}
	who := newAnalyst(t)
	trust := writeTrust(t, "hunt", who)
	quick := func(cfg *Config) {
		cfg.ReceiptDelay = 200 * time.Millisecond
		cfg.TaskSyncInterval = time.Second
	}
	a := startNode(t, "node-a", trust, quick)
	spoke := func(dir string) func(*Config) {
		return func(cfg *Config) {
			quick(cfg)
			cfg.Peers = a.Addrs()[:1]
			if dir != "" {
				cfg.DataDir = dir
			}
		}
	}

	t.Run("late node runs the hunt", func(t *testing.T) {
		h := newHunt(a.ID(), tasks.IoC{Type: tasks.IoCProcess, Value: "no-such-process"})
		if _, err := a.IssueTask(context.Background(), seal(t, who.priv, h)); err != nil {
			t.Fatal(err)
		}
		late := startNode(t, "late", trust, spoke(""))
		var fromLate *tasks.Result
		a.Await(context.Background(), h.ID, []PeerView{{ID: late.ID(), Host: "late"}},
			20*time.Second, func(r *tasks.Result) {
				if r.Final && r.Node == late.ID() {
					fromLate = r
				}
			})
		if fromLate == nil || fromLate.Status != tasks.StatusFinished {
			t.Fatalf("late node's answer %+v, want finished", fromLate)
		}
		if late.Counters()["task-sync/caught-up"] == 0 {
			t.Errorf("late node did not catch up: %v", late.Counters())
		}
		own, err := late.Store().Results(h.ID)
		if err != nil || len(own) == 0 {
			t.Errorf("late node's own stored answer: %v, %v", own, err)
		}
	})

	t.Run("restarted node does not run twice", func(t *testing.T) {
		dir := t.TempDir()
		b := startNode(t, "node-b", trust, spoke(dir))
		waitLive(t, a, b)
		h := slowHunt(t, a.ID())
		h.Selector = tasks.Selector{Expr: "host=node-b"}
		if _, err := a.IssueTask(context.Background(), seal(t, who.priv, h)); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for a.receiptsOf(h.ID)[b.ID()].status != tasks.StatusRunning {
			if time.Now().After(deadline) {
				t.Fatal("node-b never said it was running")
			}
			time.Sleep(50 * time.Millisecond)
		}
		id := b.ID()
		b.Close()

		b = startNode(t, "node-b", trust, spoke(dir))
		var final *tasks.Result
		a.Await(context.Background(), h.ID, []PeerView{{ID: id, Host: "node-b"}},
			20*time.Second, func(r *tasks.Result) {
				if r.Final && r.Node == id {
					final = r
				}
			})
		if final == nil || final.Status != tasks.StatusFailed ||
			!strings.Contains(final.Reason, "interrupted") {
			t.Fatalf("restarted node's answer %+v, want failed: interrupted", final)
		}
		// Catch-up offers the task again; the seen mark keeps it from running.
		time.Sleep(2500 * time.Millisecond)
		b.mu.Lock()
		_, running := b.running[h.ID]
		b.mu.Unlock()
		own, err := b.Store().Results(h.ID)
		if err != nil {
			t.Fatal(err)
		}
		if running || len(own) != 1 || !strings.Contains(own[0].Reason, "interrupted") {
			t.Fatalf("restarted node ran the hunt again (running %v); its answers %+v",
				running, own)
		}
	})

	t.Run("killed node says the task was interrupted", func(t *testing.T) {
		// What a kill -9 leaves: the task seen and kept, no answer. The
		// issuer holds the task as its own without having published it.
		dir := t.TempDir()
		d := startNode(t, "node-d", trust, spoke(dir))
		h := newHunt(a.ID())
		raw := seal(t, who.priv, h)
		st := store.StoredTask{ID: h.ID, Type: h.Type, NotAfter: h.NotAfter, Envelope: raw}
		if _, err := d.Store().MarkSeen(h.ID, h.NotAfter); err != nil {
			t.Fatal(err)
		}
		if err := d.Store().PutTask(st); err != nil {
			t.Fatal(err)
		}
		st.Issued = true
		if err := a.Store().PutTask(st); err != nil {
			t.Fatal(err)
		}
		id := d.ID()
		d.Close()

		startNode(t, "node-d", trust, spoke(dir))
		var final *tasks.Result
		a.Await(context.Background(), h.ID, []PeerView{{ID: id, Host: "node-d"}},
			20*time.Second, func(r *tasks.Result) {
				if r.Final && r.Node == id {
					final = r
				}
			})
		if final == nil || final.Status != tasks.StatusFailed ||
			!strings.Contains(final.Reason, "interrupted") {
			t.Fatalf("answer after the restart %+v, want failed: interrupted", final)
		}
	})

	t.Run("node down for the deadline is silent", func(t *testing.T) {
		dir := t.TempDir()
		c := startNode(t, "node-c", trust, spoke(dir))
		deadline := time.Now().Add(20 * time.Second)
		for !slices.ContainsFunc(a.LivePeers(), func(p PeerView) bool { return p.ID == c.ID() }) {
			if time.Now().After(deadline) {
				t.Fatal("node-a never saw node-c live")
			}
			time.Sleep(50 * time.Millisecond)
		}
		expected := a.LivePeers()
		c.Close()

		h := newHunt(a.ID())
		now := time.Now().UTC()
		h.IssuedAt, h.NotAfter = now, now.Add(3*time.Second)
		if _, err := a.IssueTask(context.Background(), seal(t, who.priv, h)); err != nil {
			t.Fatal(err)
		}
		comp := a.Await(context.Background(), h.ID, expected, 4*time.Second,
			func(*tasks.Result) {})
		if !slices.Contains(comp.Silent, "node-c") || comp.ByStatus[tasks.StatusFinished] < 1 {
			t.Fatalf("completeness %+v, want node-c silent", comp)
		}

		// Back after the deadline, it does not run the expired hunt.
		c = startNode(t, "node-c", trust, spoke(dir))
		time.Sleep(2500 * time.Millisecond)
		if seen, _ := c.Store().Seen(h.ID); seen {
			t.Fatal("node-c took a hunt past its deadline")
		}
		st, err := a.TaskStatus(h.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range st.Nodes {
			if o.Host == "node-c" && o.Status == tasks.StatusFinished {
				t.Fatalf("node-c reported finished: %+v", o)
			}
		}
	})
}

// TestMembershipStates checks the view's thresholds: a peer is live while
// connected or announcing, silent after SilentAfter without a word, gone
// after GoneAfter, and what it announced (uptime, version) is shown.
func TestMembershipStates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two nodes")
	}
	trust := writeTrust(t, "hunt", newAnalyst(t))
	// Gone well past the 5 s presence interval, so silent always shows first.
	short := func(cfg *Config) { cfg.SilentAfter, cfg.GoneAfter = time.Second, 8*time.Second }
	a, b := twoNodes(t, trust, short)

	stateOf := func() PeerView {
		for _, p := range a.Peers() {
			if p.ID == b.ID() {
				return p
			}
		}
		t.Fatal("node-b left node-a's view")
		return PeerView{}
	}
	if v := stateOf(); v.State != PeerLive || v.Started.IsZero() || v.Version != Version {
		t.Fatalf("node-b as seen by node-a: %+v, want live with its uptime and version", v)
	}
	b.Close()
	for _, want := range []string{PeerSilent, PeerGone} {
		deadline := time.Now().Add(15 * time.Second)
		for stateOf().State != want {
			if time.Now().After(deadline) {
				t.Fatalf("node-b is %s, want %s", stateOf().State, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestExcludedPathsAreNotScanned checks that the files collector never
// reads the paths a node excludes (where its operator keeps rule files),
// and says it passed over them.
func TestExcludedPathsAreNotScanned(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	who := newAnalyst(t)
	root := t.TempDir()
	rules := filepath.Join(root, "rules")
	for dir, text := range map[string]string{rules: "rule r { strings: $a = \"stratum+tcp\" }",
		filepath.Join(root, "bin"): "stratum+tcp://pool.example:3333"} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n := startNode(t, "solo", writeTrust(t, "hunt", who), func(cfg *Config) {
		cfg.Exclude = []string{rules}
	})
	h := newHunt(n.ID(), tasks.IoC{Type: tasks.IoCYARA, Severity: "high", Source: "test",
		Value: "rule miner_string { strings: $a = \"stratum+tcp\" condition: $a }"})
	h.Collectors = []tasks.CollectorSpec{{Name: "files",
		Params: []byte(fmt.Sprintf(`{"roots":[%q]}`, root))}}
	if _, err := n.IssueTask(context.Background(), seal(t, who.priv, h)); err != nil {
		t.Fatal(err)
	}
	var hits []string
	var final *tasks.Result
	n.Await(context.Background(), h.ID, n.LivePeers(), 30*time.Second, func(r *tasks.Result) {
		for _, d := range r.Detections {
			hits = append(hits, d.Record.Str("path"))
		}
		if r.Final {
			final = r
		}
	})
	if len(hits) != 1 || !strings.HasSuffix(hits[0], "/bin/f") {
		t.Fatalf("detections in %v, want only bin/f", hits)
	}
	if final == nil || len(final.Collectors) == 0 || final.Collectors[0].Skipped["excluded"] == 0 {
		t.Fatalf("answer %+v does not say the excluded folder was passed over", final)
	}
}

// TestHuntNiceness checks that a hunt asking for a lower CPU priority than
// the node's gets it while it runs, and that the node goes back after.
func TestHuntNiceness(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	if os.Geteuid() != 0 {
		t.Skip("going back to a higher priority needs CAP_SYS_NICE")
	}
	niceness := func() int {
		b, err := os.ReadFile("/proc/self/stat")
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		var v int
		fmt.Sscan(f[16], &v) // field 19 of stat, counted after the name
		return v
	}
	waitNice := func(want int) {
		deadline := time.Now().Add(10 * time.Second)
		for niceness() != want {
			if time.Now().After(deadline) {
				t.Fatalf("niceness %d, want %d", niceness(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	base := niceness()
	who := newAnalyst(t)
	n := startNode(t, "solo", writeTrust(t, "hunt", who), func(cfg *Config) {
		cfg.Budget.Nice = base
	})
	h := slowHunt(t, n.ID())
	h.Budget.Nice = base + 5
	if _, err := n.IssueTask(context.Background(), seal(t, who.priv, h)); err != nil {
		t.Fatal(err)
	}
	waitNice(base + 5)

	now := time.Now().UTC()
	cn := &tasks.Cancel{Header: tasks.Header{ID: tasks.NewID(now), Type: tasks.TypeCancel,
		IssuedAt: now, NotAfter: now.Add(time.Minute), ReplyTo: n.ID()}, Target: h.ID}
	if _, err := n.IssueTask(context.Background(),
		sealAny(t, who.priv, tasks.TypeCancel, cn)); err != nil {
		t.Fatal(err)
	}
	waitNice(base)
}
