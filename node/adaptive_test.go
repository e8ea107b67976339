package node

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

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

// TestNodesRefuseBadHunts checks that every node refuses a hunt with a
// self-triggering chain or a sample larger than the fleet, with the reason.
func TestNodesRefuseBadHunts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	who := newAnalyst(t)
	a, _, c := threeNodes(t, writeTrust(t, "hunt", who), nil)
	tests := []struct {
		name   string
		edit   func(h *tasks.Hunt)
		reason string
	}{
		{"chain after itself", func(h *tasks.Hunt) {
			h.Chains = []tasks.Chain{{Name: "loop", When: tasks.ChainWhen{After: "loop"},
				Collect: []tasks.CollectorSpec{{Name: "persistence"}}}}
		}, "triggers after itself"},
		{"sample above fleet", func(h *tasks.Hunt) {
			h.Selector = tasks.Selector{Sample: "7", FleetSize: 3}
		}, "larger than the fleet"}, // refused by the issuer's own gossip check
		{"unknown chain collector", func(h *tasks.Hunt) {
			h.Chains = []tasks.Chain{{Name: "c", Collect: []tasks.CollectorSpec{{Name: "x"}}}}
		}, `unknown collector "x"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHunt(c.ID())
			tc.edit(h)
			expected := c.LivePeers()
			_, err := c.IssueTask(context.Background(), seal(t, who.priv, h))
			if err != nil {
				// The policy check every node's gossip validator runs
				// refused it before it left the issuer.
				if !strings.Contains(err.Error(), tc.reason) {
					t.Fatalf("refused with %v, want %q", err, tc.reason)
				}
				return
			}
			refused := 0
			c.Await(context.Background(), h.ID, expected, 20*time.Second, func(r *tasks.Result) {
				if r.Final && r.Status != tasks.StatusFinished &&
					strings.Contains(r.Reason, tc.reason) {
					refused++
				}
			})
			if refused != 3 {
				t.Errorf("%d of 3 nodes refused with %q", refused, tc.reason)
			}
		})
	}
	_ = a
}
