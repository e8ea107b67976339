package cli

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"github.com/huntmesh/huntmesh/node"
	"github.com/huntmesh/huntmesh/sim"
)

// simFlags are the flags of huntmesh sim.
type simFlags struct {
	cfg       sim.Config
	from      int
	wait      time.Duration
	format    string
	plot      string
	partition float64
	cutFor    time.Duration
	catchUp   time.Duration
	leave     int
	join      int
	repeat    int
	hold      bool
	cpuProf   string
	query     string
	groupBy   []string
	runs      []string
}

// defaultSimQuery is the query --runs query sends when --query is not set:
// every node holds some seeded sshd records.
const defaultSimQuery = `kind == "process" && name == "sshd"`

func newSimCmd(g *globals) *cobra.Command {
	f := &simFlags{cfg: sim.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run N real nodes in this process on a simulated network and measure a hunt",
		Long: `Start N real huntmesh nodes in this process on libp2p's mock network, linked
as a random graph (--degree links out per node), with link latency, jitter, loss and
bandwidth. Seed the first nodes from a scenario directory, then issue a hunt from one
node and report how fast it reached every node (p50, p90, p99, max), completeness over
time, answers, gossip messages and bytes per node, and heap per node.

--leave and --join churn nodes before the hunt; the nodes that left must be reported
silent. --partition cuts that fraction of the nodes off, issues the hunt and an intel
update on the other side, heals after --cut-for, and reports how soon the cut-off nodes
caught up. --query sends a signed query (a CEL expression over the nodes' stored records,
--group-by stacks them) instead of the hunt and reports its answers the same way. --runs
measures several of these on one mesh, since start-up is the slow part. --plot writes
the completeness curve as a PNG.

Every node handles every other node's presence announcements, so the cost of a sim grows
with N squared; past a few hundred nodes, announce rarely (--presence 5m). docs/scale.md
has what one 2-core machine runs.`,
		Example: `  huntmesh sim --nodes 300 --presence 5m --runs hunt,query,partition --plot curve.png
  huntmesh sim --nodes 200 --jitter 5ms --loss 0.01 -o json
  huntmesh sim --nodes 300 --partition 0.3 --cut-for 10s
  huntmesh sim --nodes 500 --query 'name == "sshd"' --group-by host
  huntmesh sim --nodes 100 --leave 10 --join 5 --scenario testdata/cryptominer`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			f.cfg.Logger = log
			return runSim(cmdContext(cmd), f)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.cfg.Nodes, "nodes", f.cfg.Nodes, "nodes to start")
	fl.IntVar(&f.cfg.Degree, "degree", f.cfg.Degree, "links each node opens to random others")
	fl.DurationVar(&f.cfg.Latency, "latency", f.cfg.Latency, "one-way delay of every link")
	fl.DurationVar(&f.cfg.Jitter, "jitter", 0, "links vary within latency±jitter")
	fl.Float64Var(&f.cfg.Loss, "loss", 0,
		"chance per link and 50 ms of a lost segment, which stalls the link one RTO (200ms)")
	fl.Float64Var(&f.cfg.Bandwidth, "bandwidth", 0, "bytes per second per link; 0 is unlimited")
	fl.StringVar(&f.cfg.Scenario, "scenario", "", "scenario directory (hosts.yaml, intel/iocs.csv)")
	fl.IntVar(&f.cfg.BackgroundRecords, "records", f.cfg.BackgroundRecords,
		"generated records stored on every node")
	fl.DurationVar(&f.cfg.PresenceInterval, "presence", f.cfg.PresenceInterval,
		"presence announcement interval (the daemon's is 5s)")
	fl.DurationVar(&f.cfg.Heartbeat, "heartbeat", f.cfg.Heartbeat, "gossipsub heartbeat interval")
	fl.IntVar(&f.cfg.ValidateQueue, "validate-queue", f.cfg.ValidateQueue,
		"each node's gossipsub validation queue (pubsub's default is 32)")
	fl.IntVar(&f.cfg.PeerQueue, "peer-queue", f.cfg.PeerQueue,
		"each node's gossipsub outbound queue per peer (pubsub's default is 32)")
	fl.DurationVar(&f.cfg.SyncInterval, "sync", f.cfg.SyncInterval,
		"task and intel catch-up interval of every node (the daemon's is 15s)")
	fl.StringVar(&f.query, "query", "", "send this query (CEL over stored records) instead of a hunt")
	fl.StringSliceVar(&f.groupBy, "group-by", nil, "stack the query's rows by these fields")
	fl.StringSliceVar(&f.runs, "runs", nil, "measure these in turn on one mesh: hunt, query, "+
		"partition (default: the one --query or --partition asks for, else hunt)")
	fl.Int64Var(&f.cfg.Seed, "seed", f.cfg.Seed, "seed for the topology, jitter and loss")
	fl.IntVar(&f.from, "from", 0, "index of the node that issues the hunt")
	fl.DurationVar(&f.wait, "wait", 30*time.Second, "how long to wait for answers")
	fl.BoolVar(&f.hold, "hold", true, "hold the nodes' work until every node has the task "+
		"(one machine's CPUs stand for many), then time the answers")
	fl.IntVar(&f.repeat, "repeat", 1, "hunts to run one after another (each is reported)")
	fl.StringVarP(&f.format, "output", "o", "text", "text or json")
	fl.StringVar(&f.format, "format", "text", "the same as --output")
	_ = fl.MarkDeprecated("format", "use -o/--output, as the other commands do")
	fl.StringVar(&f.plot, "plot", "", "write the completeness curve of the last hunt to this PNG")
	fl.Float64Var(&f.partition, "partition", 0,
		"fraction of nodes to cut off during the hunt (0.3 cuts 30%)")
	fl.DurationVar(&f.cutFor, "cut-for", 10*time.Second, "how long the partition lasts")
	fl.DurationVar(&f.catchUp, "catch-up", 10*time.Second, "how long to wait for catch-up after the heal")
	fl.IntVar(&f.leave, "leave", 0, "nodes that leave before the hunt")
	fl.IntVar(&f.join, "join", 0, "new nodes that join before the hunt")
	fl.StringVar(&f.cpuProf, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	return cmd
}

// runSim starts the mesh, runs the hunts and writes the reports.
func runSim(ctx context.Context, f *simFlags) error {
	if f.format != "text" && f.format != "json" {
		return fmt.Errorf("--output %q: want text or json", f.format)
	}
	if len(f.runs) == 0 {
		switch {
		case f.query != "" && f.partition > 0:
			return fmt.Errorf("--query and --partition: the partition case runs a hunt; " +
				"ask for both with --runs query,partition")
		case f.partition > 0:
			f.runs = []string{"partition"}
		case f.query != "":
			f.runs = []string{"query"}
		default:
			f.runs = []string{"hunt"}
		}
	}
	for _, r := range f.runs {
		switch r {
		case "hunt":
		case "query":
			if f.query == "" {
				f.query = defaultSimQuery
			}
		case "partition":
			if f.partition <= 0 {
				f.partition = 0.3
			}
		default:
			return fmt.Errorf("--runs %q: want hunt, query or partition", r)
		}
	}
	if len(f.groupBy) > 0 && f.query == "" {
		return fmt.Errorf("--group-by needs --query")
	}
	if f.query != "" {
		// Before the mesh starts, which takes a while at scale.
		if _, err := node.CompileQuery(f.query, f.groupBy, false); err != nil {
			return fmt.Errorf("--query: %w", err)
		}
	}
	if f.leave < 0 || f.leave >= f.cfg.Nodes-1 {
		return fmt.Errorf("--leave %d: want 0 to %d", f.leave, f.cfg.Nodes-2)
	}
	if f.cpuProf != "" {
		pf, err := os.Create(f.cpuProf)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	s, err := sim.New(ctx, f.cfg)
	if err != nil {
		return err
	}
	defer s.Close()

	// Churn: the last --leave nodes go (never the issuer), then new ones come.
	for i := range f.leave {
		idx := f.cfg.Nodes - 1 - i
		if idx == f.from {
			idx = f.cfg.Nodes - 1 - f.leave
		}
		if err := s.Leave(idx); err != nil {
			return err
		}
	}
	for range f.join {
		if _, err := s.Join(ctx); err != nil {
			return err
		}
	}

	var last *sim.Report
	for i := range max(f.repeat, 1) * len(f.runs) {
		var rep *sim.Report
		opt := sim.HuntOptions{From: f.from, Wait: f.wait, ExpectDeparted: f.leave > 0,
			Hold: f.hold}
		switch f.runs[i%len(f.runs)] {
		case "partition":
			rep, err = s.PartitionHunt(ctx, sim.PartitionOptions{From: f.from,
				Fraction: f.partition, CutFor: f.cutFor, CatchUp: f.catchUp, Wait: f.wait})
		case "query":
			rep, err = s.Query(ctx, sim.QueryOptions{HuntOptions: opt, Expr: f.query,
				GroupBy: f.groupBy})
		default:
			rep, err = s.Hunt(ctx, opt)
		}
		if err != nil {
			return err
		}
		if f.format == "json" {
			err = rep.WriteJSON(os.Stdout)
		} else {
			err = rep.WriteText(os.Stdout)
		}
		if err != nil {
			return err
		}
		last = rep
	}
	if f.plot != "" {
		if err := last.WritePlot(f.plot); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "plot written to %s\n", f.plot)
	}
	return nil
}
