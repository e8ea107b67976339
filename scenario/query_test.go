package scenario

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/huntfile"
	"github.com/huntmesh/huntmesh/tasks"
)

// TestStackingQuery stores the scenario's evidence with the library's
// cryptominer hunt (intel from iocs.csv and miner.yar), then asks the fleet a stacking query over connections
// grouped by remote address and port, from two different nodes: each node
// stacks its own records, the issuer merges the partial groups, and
// 192.0.2.25:3333 stands on exactly the two miner VMs (expected.md, 3).
func TestStackingQuery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five nodes")
	}
	ctx := context.Background()
	f := Start(t, scenarioDir, Options{})
	if err := f.LoadIntel(ctx, "web-01", 20*time.Second, scenarioDir+"/intel/iocs.csv",
		scenarioDir+"/intel/miner.yar"); err != nil {
		t.Fatal(err)
	}
	hf, err := huntfile.Load("../hunts/cryptominer.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h, err := hf.Hunt(huntfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hunt(t, f, "web-01", h)

	for _, from := range []string{"app-01", "vm-miner02"} {
		t.Run("from "+from, func(t *testing.T) {
			n := f.Node(from)
			now := time.Now().UTC()
			q := &tasks.Query{
				Header: tasks.Header{ID: tasks.NewID(now), Type: tasks.TypeQuery,
					IssuedAt: now, NotAfter: now.Add(time.Minute), ReplyTo: n.ID()},
				Expr:    `kind == "connection" && remote_address != ""`,
				GroupBy: []string{"remote_address", "remote_port"},
			}
			raw, err := tasks.SealTask(f.Key, tasks.TypeQuery, q, tasks.DefaultPolicy().MaxSize)
			if err != nil {
				t.Fatal(err)
			}
			ans, err := n.RunQuery(ctx, raw, 30*time.Second, nil)
			if err != nil {
				t.Fatal(err)
			}
			c := ans.Completeness
			if c.Answered != len(f.Nodes) || c.ByStatus[tasks.StatusFinished] != len(f.Nodes) {
				t.Fatalf("completeness %+v, want all %d finished", c, len(f.Nodes))
			}
			var pool *tasks.Group
			for i, g := range ans.Groups {
				if slices.Equal(g.Key, []string{"192.0.2.25", "3333"}) {
					pool = &ans.Groups[i]
				}
				if i > 0 && len(g.Hosts) < len(ans.Groups[i-1].Hosts) {
					t.Errorf("groups not least frequent first at %d: %+v", i, ans.Groups)
				}
			}
			if pool == nil || !slices.Equal(pool.Hosts, []string{"vm-miner01", "vm-miner02"}) {
				t.Fatalf("192.0.2.25:3333 group %+v, want exactly the two miner VMs; all %+v",
					pool, ans.Groups)
			}
		})
	}

	// The examples of docs/queries.md, on the same evidence.
	t.Run("cloud writes stacked by caller and region", func(t *testing.T) {
		groups := query(t, f, "web-01", `kind == "cloud-activity" && operation.matches("(?i)/write$")`,
			"caller", "location")
		want := tasks.Group{Key: []string{"cloud-admin", "eastus"}, Count: 3, Hosts: []string{"ops-01"}}
		if len(groups) != 1 || !slices.Equal(groups[0].Key, want.Key) ||
			groups[0].Count != want.Count || !slices.Equal(groups[0].Hosts, want.Hosts) {
			t.Errorf("groups %+v, want only %+v", groups, want)
		}
	})
	t.Run("persistence starting from a hidden directory", func(t *testing.T) {
		groups := query(t, f, "ops-01", `kind == "persistence" && command.matches("/\\.[^/]+/")`,
			"host", "path")
		if len(groups) != 1 || !slices.Equal(groups[0].Key,
			[]string{"vm-miner02", "/etc/systemd/system/dbus-helper.service"}) {
			t.Errorf("groups %+v, want the dbus-helper unit on vm-miner02 only", groups)
		}
	})
	t.Run("files either YARA rule matched", func(t *testing.T) {
		groups := query(t, f, "app-01",
			`kind == "file" && yara.exists(r, r.startsWith("coinminer_"))`, "host")
		if len(groups) != 2 || groups[0].Count+groups[1].Count < 4 {
			t.Errorf("groups %+v, want files on both miner VMs (at least four)", groups)
		}
	})
}

// query sends a stacking query from host from and returns the merged
// groups, after checking every node finished.
func query(t *testing.T, f *Fleet, from, expr string, groupBy ...string) []tasks.Group {
	t.Helper()
	n := f.Node(from)
	now := time.Now().UTC()
	q := &tasks.Query{
		Header: tasks.Header{ID: tasks.NewID(now), Type: tasks.TypeQuery,
			IssuedAt: now, NotAfter: now.Add(time.Minute), ReplyTo: n.ID()},
		Expr: expr, GroupBy: groupBy,
	}
	raw, err := tasks.SealTask(f.Key, tasks.TypeQuery, q, tasks.DefaultPolicy().MaxSize)
	if err != nil {
		t.Fatal(err)
	}
	ans, err := n.RunQuery(context.Background(), raw, 30*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := ans.Completeness; c.ByStatus[tasks.StatusFinished] != len(f.Nodes) {
		t.Fatalf("completeness %+v, want all %d finished", c, len(f.Nodes))
	}
	return ans.Groups
}
