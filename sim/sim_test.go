package sim

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestFiftyNodes runs one 50-node mesh through a hunt, churn and a
// partition, in that order, on the cryptominer scenario.
func TestFiftyNodes(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Nodes = 50
	cfg.Scenario = "../testdata/cryptominer"
	// A cut-off node with no link across the cut catches up on its timer,
	// from a neighbour that already has: within 5 s of the heal takes a
	// timer well under 5 s.
	cfg.SyncInterval = time.Second
	if os.Getenv("HUNTMESH_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start sim: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close sim: %v", err)
		}
	})
	ctx := context.Background()

	t.Run("hunt reaches every node", func(t *testing.T) {
		rep, err := s.Hunt(ctx, HuntOptions{From: 7, Wait: 60 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		logReport(t, rep)
		if rep.Delivery.Missed != 0 || rep.Delivery.Count != 49 {
			t.Errorf("delivery: %+v, want 49 reached and none missed", rep.Delivery)
		}
		c := rep.Completeness
		if c.Answered != 50 || len(c.Silent) != 0 {
			t.Errorf("completeness: %d answered, silent %v; want all 50", c.Answered, c.Silent)
		}
		if c.ByStatus["finished"] != 50 {
			t.Errorf("answers by status %v, want 50 finished", c.ByStatus)
		}
		if rep.Setup.HeapPerNode == 0 || rep.Traffic.TaskMsgsMean == 0 {
			t.Errorf("setup %+v traffic %+v: cost not measured", rep.Setup, rep.Traffic)
		}
		if len(rep.Curve) == 0 || rep.Curve[len(rep.Curve)-1].Delivered != 1 {
			t.Errorf("curve does not end at full delivery: %v", rep.Curve)
		}
		png := filepath.Join(t.TempDir(), "curve.png")
		if err := rep.WritePlot(png); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(png); err != nil || fi.Size() < 1000 {
			t.Errorf("plot %s: %v, %v", png, fi, err)
		}
	})

	t.Run("query is answered by every node and stacked", func(t *testing.T) {
		rep, err := s.Query(ctx, QueryOptions{
			HuntOptions: HuntOptions{From: 3, Wait: 60 * time.Second, Hold: true},
			// The seeded records only: the hunt before stored more.
			Expr:    `kind == "process" && name == "sshd" && source == "sim"`,
			GroupBy: []string{"host"},
		})
		if err != nil {
			t.Fatal(err)
		}
		logReport(t, rep)
		if rep.Delivery.Missed != 0 || rep.Completeness.Answered != 50 {
			t.Errorf("delivery %+v, %d answered; want all 50", rep.Delivery,
				rep.Completeness.Answered)
		}
		// Each node holds cfg.BackgroundRecords seeded processes whose names
		// cycle through six, sshd first.
		perNode := (cfg.BackgroundRecords + 5) / 6
		q := rep.Query
		if q == nil || q.Rows != 50*perNode || q.Groups != 50 {
			t.Fatalf("query report %+v, want %d rows in 50 host groups", q, 50*perNode)
		}
		for _, g := range q.Rarest {
			if g.Count != perNode || len(g.Hosts) != 1 {
				t.Errorf("group %+v, want %d rows on one host", g, perNode)
			}
		}
		if rep.Traffic.MaxMsg == 0 || rep.Traffic.MaxMsg > 64<<10 {
			t.Errorf("largest gossip message %d B, want 1 to 64 KiB", rep.Traffic.MaxMsg)
		}
	})

	t.Run("churned-out nodes are silent, joiners answer", func(t *testing.T) {
		gone := []int{11, 12, 13}
		for _, i := range gone {
			if err := s.Leave(i); err != nil {
				t.Fatal(err)
			}
		}
		var joined []string
		for range 2 {
			n, err := s.Join(ctx)
			if err != nil {
				t.Fatal(err)
			}
			joined = append(joined, n.Name)
		}
		// The wait ends once every running node answered; it is long only
		// for a loaded machine.
		rep, err := s.Hunt(ctx, HuntOptions{From: 7, Wait: 60 * time.Second,
			ExpectDeparted: true})
		if err != nil {
			t.Fatal(err)
		}
		logReport(t, rep)
		if rep.Nodes != 49 || rep.Delivery.Missed != 0 {
			t.Errorf("%d running, delivery %+v; want 49 running, all reached",
				rep.Nodes, rep.Delivery)
		}
		want := []string{"node-0011", "node-0012", "node-0013"}
		if !slices.Equal(rep.Completeness.Silent, want) {
			t.Errorf("silent = %v, want %v", rep.Completeness.Silent, want)
		}
		if rep.Completeness.Answered != 49 {
			t.Errorf("answered = %d, want 49 (joiners %v included)",
				rep.Completeness.Answered, joined)
		}
	})

	t.Run("partition heals", func(t *testing.T) {
		rep, err := s.PartitionHunt(ctx, PartitionOptions{
			From: 0, Fraction: 0.3, CutFor: 4 * time.Second, CatchUp: 5 * time.Second,
			Wait: 60 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		logReport(t, rep)
		p := rep.Partition
		if p.Minority != 15 {
			t.Errorf("minority = %d, want 15 (30%% of 49 running)", p.Minority)
		}
		if p.Majority.Missed != 0 {
			t.Errorf("majority while cut: %+v, want every node reached", p.Majority)
		}
		if p.DuringCut != 0 {
			t.Errorf("%d cut-off nodes got the task while cut: the partition leaks", p.DuringCut)
		}
		if p.Healed.Missed != 0 || time.Duration(p.Healed.Max) > 5*time.Second {
			t.Errorf("task after heal: %+v, want every cut-off node within 5 s", p.Healed)
		}
		if p.Intel.Missed != 0 || time.Duration(p.Intel.Max) > 5*time.Second {
			t.Errorf("intel after heal: %+v, want every cut-off node within 5 s", p.Intel)
		}
		if c := rep.Completeness; c.Answered != c.Expected {
			t.Errorf("after the heal %d of %d answered (silent %v)", c.Answered, c.Expected,
				c.Silent)
		}
	})
}

func logReport(t *testing.T, r *Report) {
	t.Helper()
	var b testWriter
	r.WriteText(&b)
	t.Log("\n" + string(b))
}

type testWriter []byte

func (w *testWriter) Write(p []byte) (int, error) {
	*w = append(*w, p...)
	return len(p), nil
}
