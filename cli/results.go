package cli

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/huntmesh/huntmesh/node"
	"github.com/huntmesh/huntmesh/tasks"
)

func newResultsCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "results TASK-ID",
		Short: "Show the stored answers to a task",
		Long: `Show the answers the local node holds for a task: those it received as the
issuer, and its own answer as a participant. They survive restarts.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := newPrinter(output, os.Stdout)
			if err != nil {
				return err
			}
			client, err := node.Dial(g.dataDir)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmdContext(cmd), time.Minute)
			defer cancel()
			// A query's answers are worded as matching rows.
			_ = client.Call(ctx, node.Request{Op: "task", TaskID: args[0]},
				func(r node.Response) error {
					out.query = r.Task != nil && r.Task.Type == tasks.TypeQuery
					return nil
				})
			var (
				parts [][]tasks.Group
				comp  *node.Completeness
			)
			err = client.Call(ctx, node.Request{Op: "results", TaskID: args[0]},
				func(r node.Response) error {
					if r.Result != nil {
						out.result(r.Result)
						if len(r.Result.Groups) > 0 {
							parts = append(parts, r.Result.Groups)
						}
					}
					if r.Completeness != nil {
						comp = r.Completeness
					}
					return nil
				})
			out.flush()
			if err != nil {
				return err
			}
			// A stacking query's answers hold partial groups: merge them again.
			if groups := node.MergeGroups(parts...); len(groups) > 0 {
				if err := writeGroups(os.Stdout, output, nil, groups); err != nil {
					return err
				}
			}
			if comp != nil {
				out.completeness(comp)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, ndjson or csv")
	return cmd
}

func newPeersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List the peers the local node knows: state, last seen, uptime, load, labels",
		Long: `List the membership view of the local node. A peer is live while it announces
itself (every 5 s) or is connected, silent after --silent-after without a word (tasks still
count it, and report it silent), and gone after --gone-after.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := node.Dial(g.dataDir)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmdContext(cmd), 10*time.Second)
			defer cancel()
			peers, err := client.Peers(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOST\tSTATE\tLAST SEEN\tUPTIME\tLOAD\tTASKS\tVERSION\tLABELS\tPEER ID")
			for _, p := range peers {
				state := p.State
				if p.Host == "" && p.Connected {
					state = "connecting" // linked, not yet announced
				}
				seen, up := "never", "-"
				if !p.LastSeen.IsZero() {
					seen = time.Since(p.LastSeen).Round(time.Second).String() + " ago"
				}
				if !p.Started.IsZero() {
					up = time.Since(p.Started).Round(time.Second).String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f\t%d\t%s\t%s\t%s\n", orDash(p.Host), state,
					seen, up, p.Load, p.Tasks, orDash(p.Version), labelText(p.Labels), p.ID)
			}
			return tw.Flush()
		},
	}
	return cmd
}

func cmdContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func labelText(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	if len(parts) == 0 {
		return "-"
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
