package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/huntmesh/huntmesh/node"
	"github.com/huntmesh/huntmesh/tasks"
)

func newHostsCmd(g *globals) *cobra.Command {
	var (
		rank           bool
		target, output string
	)
	cmd := &cobra.Command{
		Use:   "hosts TASK-ID...",
		Short: "List the hosts that answered hunts, ranked by risk with --rank",
		Long: `Read the answers this node holds for the given hunts and list every host
that answered, with its detections. With --rank, hosts are ordered by a risk score: each
distinct indicator or rule a host matched counts once at its severity's weight (low 1,
medium 3, high 6, critical 10), times 0.75 for a rule, times 1.5 when the intel
ties it to a threat actor and 1.2 when to an ATT&CK technique; repeats add a little.
The top three reasons are shown. Hosts without findings are listed last with score 0.`,
		Example: "  huntmesh hosts --rank 01J8...",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			results, err := resultsOf(cmd.Context(), g, args, target)
			if err != nil {
				return err
			}
			var dets []tasks.Detection
			var hosts []string
			for _, r := range results {
				dets = append(dets, r.Detections...)
				if !slices.Contains(hosts, r.Host) {
					hosts = append(hosts, r.Host)
				}
			}
			ranked := node.RankHosts(dets, hosts)
			if !rank {
				slices.SortFunc(ranked, func(a, b node.HostRisk) int {
					return strings.Compare(a.Host, b.Host)
				})
			}
			if output == "json" {
				return json.NewEncoder(os.Stdout).Encode(ranked)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOST\tSCORE\tDETECTIONS\tTOP REASONS")
			for _, h := range ranked {
				fmt.Fprintf(tw, "%s\t%.1f\t%d\t%s\n", h.Host, h.Score, h.Detections,
					strings.Join(h.Reasons, "; "))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&rank, "rank", false, "order by risk score")
	cmd.Flags().StringVar(&target, "target", "all", "selector over the answering hosts")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}
