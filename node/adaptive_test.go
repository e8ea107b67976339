package node

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/huntmesh/huntmesh/store"
	"github.com/huntmesh/huntmesh/tasks"
)

// bareNode is a node with a real store and the real collectors but no
// mesh, for the chained-rule guards.
func bareNode(t *testing.T) *Node {
	t.Helper()
	st, err := store.Open(store.DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &Node{store: st, reg: defaultRegistry(), counters: map[string]uint64{}}
}

func poolDetection(step *chainStep) *tasks.Detection {
	return &tasks.Detection{IoCType: "port", IoCValue: "3333", Severity: "medium",
		Tags: []string{"actor:X"}, Record: tasks.Record{Kind: tasks.KindConnection,
			Collector: "connections", Fields: map[string]any{"remote_port": int64(3333),
				"process_exe": "/usr/local/bin/miner"}}}
}

func TestChainGuards(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	chains := []tasks.Chain{
		{Name: "first", When: tasks.ChainWhen{IoCTypes: []string{"port"},
			Expr: "remote_port == 3333"},
			Collect: []tasks.CollectorSpec{{Name: "persistence"}},
			Derive:  []tasks.Derive{{From: "process_exe", As: "cmdline"}}},
		{Name: "second", When: tasks.ChainWhen{After: "first"},
			Collect: []tasks.CollectorSpec{{Name: "accounts"}}},
		{Name: "third", When: tasks.ChainWhen{After: "second"},
			Collect: []tasks.CollectorSpec{{Name: "system"}}},
		{Name: "shallow", When: tasks.ChainWhen{After: "first"},
			Collect: []tasks.CollectorSpec{{Name: "processes"}}, MaxDepth: 1},
	}
	newRun := func(t *testing.T, n *Node, id string) *adaptive {
		h := &tasks.Hunt{Header: tasks.Header{ID: id}, Chains: chains}
		a, err := n.newAdaptive(h, nil, log)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	notAfter := time.Now().Add(time.Minute)

	t.Run("trigger queues once and derives indicators", func(t *testing.T) {
		a := newRun(t, bareNode(t), "T1")
		a.observe(poolDetection(nil), nil)
		a.observe(poolDetection(nil), nil)
		items := a.take(notAfter)
		if len(items) != 1 || items[0].name() != "chain first: persistence" {
			t.Fatalf("items %+v", items)
		}
		if s := items[0].step; len(s.iocs) != 1 || s.iocs[0].Value != "/usr/local/bin/miner" ||
			s.matcher == nil {
			t.Fatalf("derived %+v", s.iocs)
		}
		// A later trigger in the same task does not run the rule again.
		a.observe(poolDetection(nil), nil)
		if items := a.take(notAfter); len(items) != 0 {
			t.Fatalf("rule ran twice in one task: %+v", items)
		}
	})

	t.Run("depth bound stops the cascade", func(t *testing.T) {
		a := newRun(t, bareNode(t), "T2")
		a.observe(poolDetection(nil), nil)
		first := a.take(notAfter)[0].step
		d := poolDetection(first)
		a.observe(d, first)
		if !strings.Contains(strings.Join(d.Tags, ","), "chain:first") {
			t.Errorf("detection of a chained step not tagged: %v", d.Tags)
		}
		second := a.take(notAfter)
		if len(second) != 1 || second[0].step.chain.Name != "second" {
			t.Fatalf("after-rule did not trigger: %+v", second)
		}
		// "shallow" may only run at depth 1, and "third" would run at depth
		// 3, past the default bound of 2: the cascade stops.
		a.observe(poolDetection(second[0].step), second[0].step)
		if items := a.take(notAfter); len(items) != 0 {
			t.Fatalf("cascade passed the depth bound: %+v", items)
		}
	})

	t.Run("once per node across deliveries", func(t *testing.T) {
		n := bareNode(t)
		a := newRun(t, n, "T3")
		a.observe(poolDetection(nil), nil)
		if len(a.take(notAfter)) != 1 {
			t.Fatal("first delivery did not run the rule")
		}
		again := newRun(t, n, "T3")
		again.observe(poolDetection(nil), nil)
		if items := again.take(notAfter); len(items) != 0 {
			t.Fatalf("second delivery ran the rule again: %+v", items)
		}
		if n.counters["chain/repeat"] != 1 {
			t.Errorf("counters %v", n.counters)
		}
	})

	t.Run("rate limit per rule", func(t *testing.T) {
		n := bareNode(t)
		ran := 0
		for i := range 10 {
			a := newRun(t, n, "R"+string(rune('a'+i)))
			a.observe(poolDetection(nil), nil)
			ran += len(a.take(notAfter))
		}
		if ran != 6 || n.counters["chain/rate-limited"] != 4 {
			t.Errorf("ran %d of 10 with the default 6 a minute; counters %v", ran, n.counters)
		}
	})

	t.Run("non-matching detection triggers nothing", func(t *testing.T) {
		a := newRun(t, bareNode(t), "T4")
		d := poolDetection(nil)
		d.Record.Fields["remote_port"] = int64(443)
		a.observe(d, nil)
		if items := a.take(notAfter); len(items) != 0 {
			t.Fatalf("items %+v", items)
		}
	})
}

func TestRulesDetect(t *testing.T) {
	rules, err := compileRules([]tasks.Rule{
		{Name: "deleted", Expr: `kind == "process" && exe_deleted == true`, Severity: "high"},
		{Name: "region", Expr: `kind == "cloud-activity" && !(location in ["westeurope"])`},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rec  tasks.Record
		want string
	}{
		{"deleted exe", tasks.Record{Kind: tasks.KindProcess,
			Fields: map[string]any{"exe_deleted": true}}, "deleted"},
		{"live exe", tasks.Record{Kind: tasks.KindProcess,
			Fields: map[string]any{"exe_deleted": false}}, ""},
		{"missing field", tasks.Record{Kind: tasks.KindProcess, Fields: map[string]any{}}, ""},
		{"other region", tasks.Record{Kind: tasks.KindCloudActivity,
			Fields: map[string]any{"location": "eastus"}}, "region"},
		{"home region", tasks.Record{Kind: tasks.KindCloudActivity,
			Fields: map[string]any{"location": "westeurope"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, d := range ruleDetections(rules, &tc.rec) {
				got = append(got, d.IoCValue)
			}
			if strings.Join(got, ",") != tc.want {
				t.Errorf("got %v, want %q", got, tc.want)
			}
		})
	}
}

// TestRecurringHunt runs a hunt every second on one node and checks that
// each run answers under its own ID and that runs can be compared.
func TestRecurringHunt(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for three runs")
	}
	who := newAnalyst(t)
	n := startNode(t, "solo", writeTrust(t, "hunt", who), nil)
	h := newHunt(n.ID())
	h.Collectors = []tasks.CollectorSpec{{Name: "system"}}
	h.Rules = []tasks.Rule{{Name: "any-system", Expr: `kind == "system"`}}
	h.Every = time.Second
	h.NotAfter = h.IssuedAt.Add(2500 * time.Millisecond)
	if _, err := n.IssueTask(context.Background(), seal(t, who.priv, h)); err != nil {
		t.Fatal(err)
	}
	var runs [][]tasks.Result
	deadline := time.Now().Add(15 * time.Second)
	for k := 1; k <= 3; k++ {
		for {
			rs, err := n.Store().Results(tasks.RunID(h.ID, k))
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) > 0 && rs[len(rs)-1].Final {
				runs = append(runs, rs)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %d never answered", k)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if rs, _ := n.Store().Results(tasks.RunID(h.ID, 4)); len(rs) != 0 {
		t.Errorf("a run after the deadline answered")
	}
	d := DiffRuns("1", runs[0], "2", runs[1])
	if len(d.Added) != 0 || len(d.Removed) != 0 || len(d.ToHosts) != 1 {
		t.Errorf("unchanged host differs between runs: %+v", d)
	}
	// A finding gone from the later run shows as removed.
	runs[1][len(runs[1])-1].Detections = nil
	if d := DiffRuns("2", runs[2], "3", runs[1]); len(d.Removed) != 1 {
		t.Errorf("removed finding not seen: %+v", d)
	}
}

// TestNodesRefuseBadHunts checks that every node refuses each bad hunt of
// the issue's list, with the reason: an unknown collector, a bad selector, a
// chain that refers to itself (by after, by its own collector, or by
// forwarding a hunt that forwards again), and a sample count above the
// fleet size. Hunts whose header is bad are stopped by the gossip validator
// every node runs; the others pass it, and every node answers failed with
// the reason instead of running anything. The bad hunts that the issuing
// node itself refuses are also published from a bare mesh that checks
// nothing, so that each node's own refusal is seen.
func TestNodesRefuseBadHunts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	who := newAnalyst(t)
	a, b, c := threeNodes(t, writeTrust(t, "hunt", who), nil)
	nodes := []*Node{a, b, c}
	attacker := newAttacker(t, a)
	forwarding := func() []byte {
		inner := newHunt(c.ID())
		inner.Chains = []tasks.Chain{{Name: "again", Forward: seal(t, who.priv, newHunt(c.ID())),
			Collect: []tasks.CollectorSpec{{Name: "persistence"}}}}
		return seal(t, who.priv, inner)
	}
	tests := []struct {
		name   string
		edit   func(h *tasks.Hunt)
		reason string
		// header: the gossip validator refuses it (and so the issuer).
		header bool
	}{
		{"unknown collector", func(h *tasks.Hunt) {
			h.Collectors = []tasks.CollectorSpec{{Name: "procs"}}
		}, `unknown collector "procs"`, false},
		{"unknown chain collector", func(h *tasks.Hunt) {
			h.Chains = []tasks.Chain{{Name: "c", Collect: []tasks.CollectorSpec{{Name: "x"}}}}
		}, `unknown collector "x"`, false},
		{"bad selector", func(h *tasks.Hunt) {
			h.Selector = tasks.Selector{Expr: "role=test and ("}
		}, "expression ends early", true},
		{"bad selector term", func(h *tasks.Hunt) {
			h.Selector = tasks.Selector{Expr: "role"}
		}, `term "role"`, true},
		{"chain after itself", func(h *tasks.Hunt) {
			h.Chains = []tasks.Chain{{Name: "loop", When: tasks.ChainWhen{After: "loop"},
				Collect: []tasks.CollectorSpec{{Name: "persistence"}}}}
		}, "triggers after itself", false},
		{"chain on its own collector", func(h *tasks.Hunt) {
			h.Chains = []tasks.Chain{{Name: "loop",
				When:    tasks.ChainWhen{Collectors: []string{"persistence"}},
				Collect: []tasks.CollectorSpec{{Name: "persistence"}}}}
		}, "runs itself", false},
		{"chains in a cycle", func(h *tasks.Hunt) {
			h.Chains = []tasks.Chain{
				{Name: "x", When: tasks.ChainWhen{After: "y"},
					Collect: []tasks.CollectorSpec{{Name: "persistence"}}},
				{Name: "y", When: tasks.ChainWhen{After: "x"},
					Collect: []tasks.CollectorSpec{{Name: "accounts"}}}}
		}, "loop", false},
		{"forwarded hunt forwards again", func(h *tasks.Hunt) {
			h.Chains = []tasks.Chain{{Name: "fwd", Forward: forwarding()}}
		}, "may not forward again", false},
		{"sample above fleet", func(h *tasks.Hunt) {
			h.Selector = tasks.Selector{Sample: "7", FleetSize: 3}
		}, "larger than the fleet of 3", true},
		{"sample count without fleet size", func(h *tasks.Hunt) {
			h.Selector = tasks.Selector{Sample: "2"}
		}, "needs the fleet size", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHunt(c.ID())
			tc.edit(h)
			raw := seal(t, who.priv, h)
			expected := c.LivePeers()
			_, err := c.IssueTask(context.Background(), raw)
			if tc.header {
				if err == nil || !strings.Contains(err.Error(), tc.reason) {
					t.Fatalf("issuer: %v, want a refusal with %q", err, tc.reason)
				}
				// Each node's gossip validator refuses it, with the reason,
				// and one reached from a mesh that checks nothing counts it.
				for _, n := range nodes {
					err := n.validateTask(attacker.ID(), raw)
					if err == nil || !strings.Contains(err.Error(), tc.reason) {
						t.Errorf("%s: validator says %v, want %q", n.cfg.Host, err, tc.reason)
					}
				}
				before := a.Counters()["refused/malformed"]
				publish(t, attacker, raw)
				waitCounter(t, a, "refused/malformed", before+1)
				for _, n := range nodes {
					if rs, _ := n.Store().Results(h.ID); len(rs) != 0 {
						t.Errorf("%s answered a task its validator refused: %+v", n.cfg.Host, rs)
					}
				}
				return
			}
			if err != nil {
				// The issuer checks what it can (forwarded hunts) before
				// publishing; the other nodes must refuse it too.
				if !strings.Contains(err.Error(), tc.reason) {
					t.Fatalf("issuer: %v, want a refusal with %q", err, tc.reason)
				}
				publish(t, attacker, raw)
				for _, n := range nodes {
					r := waitOwnResult(t, n, h.ID)
					if r.Status != tasks.StatusFailed || !strings.Contains(r.Reason, tc.reason) {
						t.Errorf("%s answered %s %q, want failed with %q", n.cfg.Host, r.Status,
							r.Reason, tc.reason)
					}
				}
				return
			}
			refused := map[string]string{}
			c.Await(context.Background(), h.ID, expected, 20*time.Second, func(r *tasks.Result) {
				if r.Final {
					refused[r.Host] = string(r.Status) + ": " + r.Reason
				}
			})
			for _, n := range nodes {
				got := refused[n.cfg.Host]
				if !strings.HasPrefix(got, string(tasks.StatusFailed)+": ") ||
					!strings.Contains(got, tc.reason) {
					t.Errorf("%s answered %q, want failed with %q", n.cfg.Host, got, tc.reason)
				}
			}
		})
	}
}

// waitOwnResult waits for the final result node n stored for task id.
func waitOwnResult(t *testing.T, n *Node, id string) tasks.Result {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rs, err := n.Store().Results(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Final && r.Node == n.ID() {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s stored no final result for %s", n.cfg.Host, id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDiffRuns checks the changes view of a recurring hunt: findings added
// and removed, times ignored, and hosts that declined not counted as ran.
func TestDiffRuns(t *testing.T) {
	det := func(host, path string, at time.Time) tasks.Detection {
		return tasks.Detection{Host: host, IoCType: "rule", IoCValue: "dropped", Time: at,
			Record: tasks.Record{Kind: tasks.KindFile, Host: host, Time: at,
				Fields: map[string]any{"path": path}}}
	}
	t0, t1 := time.Now(), time.Now().Add(time.Minute)
	run1 := []tasks.Result{
		{Host: "a", Final: true, Status: tasks.StatusFinished,
			Detections: []tasks.Detection{det("a", "/tmp/one", t0), det("a", "/tmp/kept", t0)}},
		{Host: "b", Final: true, Status: tasks.StatusFinished},
		{Host: "c", Final: true, Status: tasks.StatusDeclined},
	}
	run2 := []tasks.Result{
		{Host: "a", Final: true, Status: tasks.StatusFinished,
			Detections: []tasks.Detection{det("a", "/tmp/kept", t1)}},
		{Host: "b", Final: true, Status: tasks.StatusFinished,
			Detections: []tasks.Detection{det("b", "/tmp/two", t1)}},
	}
	d := DiffRuns("T", run1, "T/run/2", run2)
	if len(d.Added) != 1 || !strings.Contains(d.Added[0], "b  rule:dropped") ||
		!strings.Contains(d.Added[0], "/tmp/two") {
		t.Errorf("added %q, want b's /tmp/two", d.Added)
	}
	if len(d.Removed) != 1 || !strings.Contains(d.Removed[0], "/tmp/one") {
		t.Errorf("removed %q, want a's /tmp/one", d.Removed)
	}
	if strings.Join(d.FromHosts, ",") != "a,b" || strings.Join(d.ToHosts, ",") != "a,b" {
		t.Errorf("hosts %v -> %v, want a,b both times (c declined)", d.FromHosts, d.ToHosts)
	}
}

// TestChainTriggers checks each field of a chain's trigger on its own: a
// detection triggers the chain exactly when every given field holds.
func TestChainTriggers(t *testing.T) {
	det := func() *tasks.Detection {
		return &tasks.Detection{IoCType: "ip", IoCValue: "192.0.2.25", Severity: "high",
			Tags: []string{"actor:CryptoMinersGroup", "T1496"},
			Record: tasks.Record{Kind: tasks.KindConnection, Collector: "connections",
				Fields: map[string]any{"remote_port": int64(3333)}}}
	}
	prior := &chainStep{chain: &compiledChain{Chain: tasks.Chain{Name: "first"}}}
	tests := []struct {
		name string
		when tasks.ChainWhen
		step *chainStep
		want bool
	}{
		{"empty trigger takes any detection", tasks.ChainWhen{}, nil, true},
		{"tag, any case", tasks.ChainWhen{Tags: []string{"ACTOR:cryptominersgroup"}}, nil, true},
		{"other tag", tasks.ChainWhen{Tags: []string{"actor:Other"}}, nil, false},
		{"ioc type", tasks.ChainWhen{IoCTypes: []string{"sha256", "ip"}}, nil, true},
		{"other ioc type", tasks.ChainWhen{IoCTypes: []string{"yara"}}, nil, false},
		{"collector", tasks.ChainWhen{Collectors: []string{"connections"}}, nil, true},
		{"other collector", tasks.ChainWhen{Collectors: []string{"logs"}}, nil, false},
		{"kind", tasks.ChainWhen{Kinds: []string{"flow", "connection"}}, nil, true},
		{"other kind", tasks.ChainWhen{Kinds: []string{"file"}}, nil, false},
		{"severity at the bound", tasks.ChainWhen{Severity: "high"}, nil, true},
		{"severity below the bound", tasks.ChainWhen{Severity: "critical"}, nil, false},
		{"cel over record and detection", tasks.ChainWhen{
			Expr: `remote_port == 3333 && ioc_value == "192.0.2.25" && "T1496" in tags`},
			nil, true},
		{"cel false", tasks.ChainWhen{Expr: `remote_port == 443`}, nil, false},
		{"after, from the hunt's own collectors", tasks.ChainWhen{After: "first"}, nil, false},
		{"after, from that chain", tasks.ChainWhen{After: "first"}, prior, true},
		{"every field must hold", tasks.ChainWhen{Kinds: []string{"connection"},
			Severity: "critical"}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &compiledChain{Chain: tasks.Chain{Name: "c", When: tc.when}}
			if tc.when.Expr != "" {
				var err error
				if c.cond, err = compileCondition(tc.when.Expr); err != nil {
					t.Fatal(err)
				}
			}
			if got := c.triggers(det(), tc.step); got != tc.want {
				t.Errorf("triggers = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestChainLimitersBounded checks that per-rule limiters do not pile up
// over a node's life: refilled ones are dropped past the bound.
func TestChainLimitersBounded(t *testing.T) {
	var l chainLimits
	now := time.Now()
	l.node = rate.NewLimiter(rate.Inf, 1) // only the per-rule map is under test
	l.perRule = map[string]*rate.Limiter{}
	for i := range maxRuleLimiters + 100 {
		l.allow(&tasks.Chain{Name: fmt.Sprintf("rule-%d", i)}, now)
	}
	if len(l.perRule) <= maxRuleLimiters {
		t.Fatalf("%d limiters while all are fresh: the bound must not drop live ones",
			len(l.perRule))
	}
	// A minute on, every limiter has refilled: the next new rule prunes them.
	if !l.allow(&tasks.Chain{Name: "late"}, now.Add(2*time.Minute)) {
		t.Fatal("new rule refused")
	}
	if len(l.perRule) != 1 {
		t.Errorf("%d limiters kept after pruning, want 1", len(l.perRule))
	}
	// A rule that ran moments ago keeps its limiter and its limit.
	busy := &tasks.Chain{Name: "busy", PerMinute: 1}
	at := now.Add(3 * time.Minute)
	if !l.allow(busy, at) || l.allow(busy, at.Add(time.Second)) {
		t.Error("per-rule limit not kept")
	}
}

// TestRecurringHuntLateNode checks that a node which gets a recurring hunt
// late skips the windows already past and joins the fleet's next run, so
// that run K means the same window on every node.
func TestRecurringHuntLateNode(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for two runs")
	}
	who := newAnalyst(t)
	n := startNode(t, "late", writeTrust(t, "hunt", who), nil)
	h := newHunt(n.ID())
	h.Collectors = []tasks.CollectorSpec{{Name: "system"}}
	h.Every = time.Second
	h.IssuedAt = time.Now().UTC().Add(-2500 * time.Millisecond) // runs 2 and 3 are past
	h.NotAfter = h.IssuedAt.Add(4700 * time.Millisecond)        // runs 4 and 5 are to come
	n.scheduleRuns(h, slog.New(slog.DiscardHandler))
	deadline := time.Now().Add(10 * time.Second)
	for k := 4; k <= 5; k++ {
		for {
			rs, err := n.Store().Results(tasks.RunID(h.ID, k))
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) > 0 && rs[len(rs)-1].Final {
				// Run K ran in its window, not when the node got the hunt.
				due := h.IssuedAt.Add(time.Duration(k-1) * h.Every)
				if sent := rs[len(rs)-1].SentAt; sent.Before(due) {
					t.Errorf("run %d answered at %s, before its window at %s", k, sent, due)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %d never answered", k)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, k := range []int{2, 3, 6} {
		if rs, _ := n.Store().Results(tasks.RunID(h.ID, k)); len(rs) != 0 {
			t.Errorf("run %d answered; its window was past or after the deadline", k)
		}
	}
	if c := n.Counters()["recur/skipped"]; c != 2 {
		t.Errorf("recur/skipped = %d, want 2", c)
	}
}
