package cli

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/huntmesh/huntmesh/node"
)

func newStatusCmd(g *globals) *cobra.Command {
	var (
		addrOnly bool
		output   string
	)
	cmd := &cobra.Command{
		Use:   "status [TASK-ID]",
		Short: "Describe the local node, or one task's outcome on every node",
		Long: `Describe the node on this data directory: identity, addresses, peers and
counters. With --addr, print only its TCP multiaddr, ready to give other nodes as --peer.

With a TASK-ID, show that task's outcome per node instead (as 'task status'): received,
declined, running, finished (rows, detections, digest), failed (reason) or silent.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				return showTaskStatus(cmdContext(cmd), g, args[0], output)
			}
			client, err := node.Dial(g.dataDir)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmdContext(cmd), 10*time.Second)
			defer cancel()
			info, err := client.Info(ctx)
			if err != nil {
				return err
			}
			if addrOnly {
				for _, a := range info.Addrs {
					if strings.Contains(a, "/tcp/") {
						fmt.Println(a)
						return nil
					}
				}
				return fmt.Errorf("node has no TCP address")
			}
			w := os.Stdout
			fmt.Fprintf(w, "node      %s\nhost      %s\nversion   %s\nlabels    %s\nlive peers %d\n",
				info.ID, info.Host, info.Version, labelText(info.Labels), info.LivePeers)
			for _, a := range info.Addrs {
				fmt.Fprintf(w, "addr      %s\n", a)
			}
			keys := make([]string, 0, len(info.Counters))
			for k := range info.Counters {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(w, "counter   %s = %d\n", k, info.Counters[k])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&addrOnly, "addr", false, "print only the node's TCP multiaddr")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "with a TASK-ID: table or ndjson")
	return cmd
}
