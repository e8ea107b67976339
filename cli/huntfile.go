package cli

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/huntmesh/huntmesh/huntfile"
	"github.com/huntmesh/huntmesh/node"
	"github.com/huntmesh/huntmesh/tasks"
)

func newHuntValidateCmd(g *globals) *cobra.Command {
	var fleet int
	cmd := &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a hunt file without sending it",
		Long: `Read a hunt file (see docs/hunts.md), the YARA and intel files it includes,
and check it the way every node will: known collectors with valid parameters, rules and
chain conditions that compile, chains without loops, a valid selector, a recurrence
shorter than the deadline. A sample given as a count is checked against --fleet-size, or
against the live nodes of the local node when one runs. Nothing is sent.`,
		Example: "  huntmesh hunt validate hunts/cryptominer.yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			if fleet <= 0 {
				fleet = liveFleet(ctx, g)
			}
			f, err := huntfile.Load(args[0])
			if err != nil {
				return err
			}
			h, err := f.Validate(fleet, node.ValidateHunt)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			// Nodes refuse a task over the policy's size: seal it with a
			// throwaway key to measure it as hunt run would send it.
			_, throwaway, err := tasks.GenerateKey()
			if err != nil {
				return err
			}
			if _, err := tasks.SealTask(throwaway, tasks.TypeHunt, h,
				tasks.DefaultPolicy().MaxSize); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			printHuntSummary(f, h)
			if s := h.Selector.Sample; fleet <= 0 && s != "" && !strings.HasSuffix(s, "%") {
				fmt.Fprintf(os.Stderr, "note: sample %s is a node count, not checked against a "+
					"fleet: no local node answered; pass --fleet-size N\n", s)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&fleet, "fleet-size", 0,
		"nodes in the fleet, for a sample given as a count (default: ask the local node)")
	return cmd
}

// liveFleet asks the local node how many nodes it sees; 0 when none runs.
func liveFleet(ctx context.Context, g *globals) int {
	c, err := node.Dial(g.dataDir)
	if err != nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	info, err := c.Info(ctx)
	if err != nil {
		return 0
	}
	return info.LivePeers + 1
}

// describeSel writes a selector for people: its expression, and sample.
func describeSel(s tasks.Selector) string {
	sel := s.Expr
	if sel == "" {
		sel = "all"
	}
	if s.Sample != "" {
		sel += " sample " + s.Sample
	}
	return sel
}

func printHuntSummary(f *huntfile.File, h *tasks.Hunt) {
	sel := describeSel(h.Selector)
	names := huntfile.CollectorNames(h)
	fmt.Printf("ok %s: %d collectors (%s), %d indicators, %d rules, %d chains\n", f.Name,
		len(names), strings.Join(names, ","), len(h.IoCs), len(h.Rules), len(h.Chains))
	fmt.Printf("   selector %s, deadline %s", sel, h.NotAfter.Sub(h.IssuedAt))
	if h.Every > 0 {
		fmt.Printf(", every %s", h.Every)
	}
	fmt.Println()
	fws := f.Forwards()
	for _, c := range f.Chains {
		if c.Forward == "" || len(fws) == 0 {
			continue
		}
		fh := fws[0]
		fws = fws[1:]
		names := huntfile.CollectorNames(fh)
		fmt.Printf("   chain %s forwards %s: %d collectors (%s), selector %s, deadline %s\n",
			c.Name, c.Forward, len(names), strings.Join(names, ","), describeSel(fh.Selector),
			fh.NotAfter.Sub(fh.IssuedAt))
	}
}

// huntFromFile builds the hunt of hunt run FILE for the local node.
func huntFromFile(path string, info *node.Info, analyst string,
	key ed25519.PrivateKey) (*tasks.Hunt, error) {
	f, err := huntfile.Load(path)
	if err != nil {
		return nil, err
	}
	seal := func(fh *tasks.Hunt) ([]byte, error) {
		return tasks.SealTask(key, tasks.TypeHunt, fh, tasks.DefaultPolicy().MaxSize)
	}
	h, err := f.Hunt(huntfile.Options{ReplyTo: info.ID, FleetSize: info.LivePeers + 1,
		Analyst: analyst, Seal: seal})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := node.ValidateHunt(h); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(os.Stderr, "hunt %s from %s\n", f.Name, path)
	for _, fh := range f.Forwards() {
		fmt.Fprintf(os.Stderr, "forwards hunt %s (selector %s) when its chain triggers; "+
			"its answers: huntmesh results %s\n", fh.ID, describeSel(fh.Selector), fh.ID)
	}
	return h, nil
}

func newHuntChangesCmd(g *globals) *cobra.Command {
	var run int
	cmd := &cobra.Command{
		Use:   "changes TASK-ID",
		Short: "Show what changed between runs of a recurring hunt",
		Long: `A recurring hunt (every: in its file) answers each run as its own version:
run 1 under the task ID, run K under TASK-ID/run/K. This compares the detections of the
latest run (or --run K) with the run before it and prints the findings added and removed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			client, err := node.Dial(g.dataDir)
			if err != nil {
				return err
			}
			id := tasks.BaseID(args[0])
			var runs [][]tasks.Result
			for k := 1; run <= 0 || k <= run; k++ {
				rs, err := fetchResults(ctx, client, tasks.RunID(id, k))
				if err != nil || len(rs) == 0 {
					break
				}
				var flat []tasks.Result
				for _, r := range rs {
					flat = append(flat, *r)
				}
				runs = append(runs, flat)
			}
			if len(runs) < 2 {
				return fmt.Errorf("task %s has %d run(s) here; need two to compare", id, len(runs))
			}
			k := len(runs)
			d := node.DiffRuns(tasks.RunID(id, k-1), runs[k-2], tasks.RunID(id, k), runs[k-1])
			fmt.Printf("run %d -> run %d: %d added, %d removed (hosts %d -> %d)\n", k-1, k,
				len(d.Added), len(d.Removed), len(d.FromHosts), len(d.ToHosts))
			for _, f := range d.Added {
				fmt.Println("+ " + f)
			}
			for _, f := range d.Removed {
				fmt.Println("- " + f)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&run, "run", 0, "compare this run with the one before (default: latest)")
	return cmd
}
