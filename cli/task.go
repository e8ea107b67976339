package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/huntmesh/huntmesh/node"
	"github.com/huntmesh/huntmesh/tasks"
)

func newTaskCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "task",
		Short: "List, inspect and cancel tasks",
	}
	cmd.AddCommand(newTaskListCmd(g), newTaskStatusCmd(g, "status TASK-ID"),
		newTaskCancelCmd(g))
	return cmd
}

func newTaskListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the active tasks the local node holds (issued here or received)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := dialNode(g)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmdContext(cmd), 10*time.Second)
			defer cancel()
			var list []node.TaskBrief
			err = client.Call(ctx, node.Request{Op: "tasks"}, func(r node.Response) error {
				list = append(list, r.Tasks...)
				return nil
			})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TASK\tTYPE\tISSUED HERE\tDEADLINE")
			for _, t := range list {
				fmt.Fprintf(tw, "%s\t%s\t%v\tin %s\n", t.ID, t.Type, t.Issued,
					time.Until(t.NotAfter).Round(time.Second))
			}
			return tw.Flush()
		},
	}
}

// newTaskStatusCmd is 'task status' and, under another use line, the
// TASK-ID form of 'status'.
func newTaskStatusCmd(g *globals, use string) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   use,
		Short: "Show a task's outcome on every node: received, declined, running, finished, failed or silent",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return showTaskStatus(cmdContext(cmd), g, args[0], output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or ndjson")
	return cmd
}

func showTaskStatus(ctx context.Context, g *globals, id, output string) error {
	client, err := dialNode(g)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var st *node.TaskStatus
	err = client.Call(ctx, node.Request{Op: "task", TaskID: id}, func(r node.Response) error {
		st = r.Task
		return nil
	})
	if err != nil {
		return err
	}
	if st == nil {
		return fmt.Errorf("task %s: the node sent no status", id)
	}
	return writeTaskStatus(os.Stdout, output, st)
}

func writeTaskStatus(w io.Writer, output string, st *node.TaskStatus) error {
	if output == "ndjson" {
		return json.NewEncoder(w).Encode(st)
	}
	state := "ended"
	if st.Active {
		state = "active, " + time.Until(st.NotAfter).Round(time.Second).String() + " left"
	}
	fmt.Fprintf(w, "task %s  %s  %s  selector %s  issued here: %v\n", st.TaskID, st.Type,
		state, st.Selector, st.Issued)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSTATUS\tROWS\tDETECTIONS\tDIGEST\tAT\tREASON\tNODE")
	for _, o := range st.Nodes {
		digest := o.Digest
		if len(digest) > 12 {
			digest = digest[:12]
		}
		at := "-"
		if !o.At.IsZero() {
			at = o.At.UTC().Format(time.TimeOnly)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", orDash(o.Host), o.Status, o.Records,
			o.Detections, orDash(digest), at, orDash(clip(o.Reason, 60)), shortNode(o.Node))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	order := []tasks.Status{tasks.StatusReceived, tasks.StatusDeclined, tasks.StatusRunning,
		tasks.StatusFinished, tasks.StatusFailed, node.StatusSilent}
	line := ""
	for _, s := range order {
		if line != "" {
			line += ", "
		}
		line += fmt.Sprintf("%s %d", s, st.Counts[s])
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

func shortNode(id string) string {
	if len(id) > 16 {
		return id[:8] + ".." + id[len(id)-6:]
	}
	return id
}

func newTaskCancelCmd(g *globals) *cobra.Command {
	var (
		keyFile string
		timeout time.Duration
		analyst string
	)
	cmd := &cobra.Command{
		Use:   "cancel TASK-ID",
		Short: "Sign a cancel: every node stops the task's running work and never starts it",
		Long: `Sign a cancel with your analyst key (hunt role) and send it through the local
node. Every node that holds the task stops its running work (what it found so far is kept and
sent, marked failed: cancelled), stops later runs of a recurring hunt, and refuses the task if it
arrives later. Each node says what it stopped; the last line counts them.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := tasks.CheckID(args[0]); err != nil {
				return err
			}
			key, err := readAnalystKey(keyFile, "hunt")
			if err != nil {
				return err
			}
			client, err := dialNode(g)
			if err != nil {
				return err
			}
			ctx := cmdContext(cmd)
			info, err := client.Info(ctx)
			if err != nil {
				return fmt.Errorf("ask node: %w", err)
			}
			now := time.Now().UTC()
			c := &tasks.Cancel{Header: tasks.Header{ID: tasks.NewID(now), Type: tasks.TypeCancel,
				IssuedAt: now, NotAfter: now.Add(max(timeout, time.Minute)),
				Selector: tasks.Selector{Expr: "all"}, ReplyTo: info.ID, Analyst: analyst},
				Target: args[0]}
			raw, err := tasks.SealTask(key, tasks.TypeCancel, c, tasks.DefaultPolicy().MaxSize)
			if err != nil {
				return err
			}
			out, _ := newPrinter("table", os.Stdout)
			done, err := issueTask(ctx, client, raw, timeout, out, nil)
			if err == nil && done.comp != nil {
				out.completeness(done.comp)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", os.Getenv("HUNTMESH_KEY"),
		"analyst private key file (hunt role); env HUNTMESH_KEY")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the nodes")
	cmd.Flags().StringVar(&analyst, "analyst", "", "who is asking, for the nodes' audit logs")
	return cmd
}
