package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/huntmesh/huntmesh/node"
	"github.com/huntmesh/huntmesh/tasks"
)

func newTimelineCmd(g *globals) *cobra.Command {
	var (
		target, from, to, output string
		detectionsOnly           bool
	)
	cmd := &cobra.Command{
		Use:   "timeline TASK-ID...",
		Short: "Merge records and detections of hunts across hosts into one timeline",
		Long: `Read the answers this node holds for the given hunts (run a hunt with
return_records to have every record, not only detections), keep the hosts the selector
picks and the events inside the time range, and print one line per event ordered by event
time, with the host and the source of each. Processes are placed at their start time.
-o jsonl and -o csv write Timesketch imports (message, datetime, timestamp_desc, plus host,
kind, collector, source, detection, severity, tags).`,
		Example: `  huntmesh timeline 01J8... --target 'site=cloud-eastus or role=app' \
    --from 2024-08-05T08:00:00Z --to 2024-08-05T09:00:00Z -o jsonl > story.jsonl`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := node.TimelineFilter{DetectionsOnly: detectionsOnly}
			var err error
			if f.From, err = parseTimeFlag("--from", from); err != nil {
				return err
			}
			if f.To, err = parseTimeFlag("--to", to); err != nil {
				return err
			}
			results, err := resultsOf(cmd.Context(), g, args, target)
			if err != nil {
				return err
			}
			return writeTimeline(os.Stdout, output, node.BuildTimeline(results, f))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&target, "target", "all", "selector over the answering hosts")
	fl.StringVar(&from, "from", "", "earliest event time (RFC 3339)")
	fl.StringVar(&to, "to", "", "latest event time (RFC 3339)")
	fl.BoolVar(&detectionsOnly, "detections-only", false, "only events that matched")
	fl.StringVarP(&output, "output", "o", "table", "table, jsonl (Timesketch) or csv (Timesketch)")
	return cmd
}

func parseTimeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want RFC 3339, e.g. 2024-08-05T08:00:00Z", name, v)
	}
	return t, nil
}

// resultsOf reads the stored answers of the given tasks from the local
// node, keeping those of hosts the selector picks.
func resultsOf(ctx context.Context, g *globals, ids []string,
	target string) ([]*tasks.Result, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	sel := tasks.Selector{Expr: target}
	if err := sel.Validate(); err != nil {
		return nil, fmt.Errorf("--target: %w", err)
	}
	client, err := node.Dial(g.dataDir)
	if err != nil {
		return nil, fmt.Errorf("%w; start one with 'huntmesh node --data-dir %s'", err, g.dataDir)
	}
	var out []*tasks.Result
	for _, id := range ids {
		rs, err := fetchResults(ctx, client, id)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return node.SelectResults(out, sel)
}

// fetchResults reads the stored result parts of one task.
func fetchResults(ctx context.Context, c *node.Client, id string) ([]*tasks.Result, error) {
	var out []*tasks.Result
	err := c.Call(ctx, node.Request{Op: "results", TaskID: id}, func(r node.Response) error {
		if r.Result != nil {
			out = append(out, r.Result)
		}
		return nil
	})
	return out, err
}

// timelineColumns are the CSV columns, Timesketch's first.
var timelineColumns = []string{"message", "datetime", "timestamp_desc", "timestamp", "host",
	"kind", "collector", "source", "detection", "severity", "tags"}

func writeTimeline(w io.Writer, format string, evs []node.TimelineEvent) error {
	switch format {
	case "jsonl", "ndjson":
		enc := json.NewEncoder(w)
		for _, e := range evs {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	case "csv":
		cw := csv.NewWriter(w)
		cw.Write(timelineColumns)
		for _, e := range evs {
			cw.Write([]string{e.Message, e.Datetime, e.TimestampDesc,
				strconv.FormatInt(e.Timestamp, 10), e.Host, e.Kind, e.Collector, e.Source,
				strings.Join(e.Detection, ";"), e.Severity, strings.Join(e.Tags, ";")})
		}
		cw.Flush()
		return cw.Error()
	case "table":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		// The table is for reading: the match goes first, the event is cut
		// at 120 columns, and the log path at its base name; -o jsonl and csv
		// keep everything.
		fmt.Fprintln(tw, "TIME\tHOST\tSOURCE\tMATCH\tEVENT")
		for _, e := range evs {
			src := e.Collector
			if e.Source != "" && e.Collector == "logs" {
				src = filepath.Base(e.Source)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Time.Format("2006-01-02 15:04:05"), e.Host,
				src, orDash(strings.Join(e.Detection, ",")),
				clip(strings.TrimPrefix(e.Message, "["+e.Host+"] "), 120))
		}
		return tw.Flush()
	}
	return fmt.Errorf("--output %q: want table, jsonl or csv", format)
}
