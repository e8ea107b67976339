package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/huntmesh/huntmesh/node"
	"github.com/huntmesh/huntmesh/tasks"
)

// queryFlags are the flags of huntmesh query.
type queryFlags struct {
	keyFile    string
	since      string
	until      string
	target     string
	sample     string
	limit      int
	groupBy    []string
	detections bool
	timeout    time.Duration
	output     string
	analyst    string
	fields     bool
}

func newQueryCmd(g *globals) *cobra.Command {
	f := &queryFlags{}
	cmd := &cobra.Command{
		Use:   "query EXPR",
		Short: "Ask every node a CEL question over the evidence it stored",
		Long: `Sign a query and send it through the local node. Every selected node evaluates the
CEL expression over the records it stored (or its detections, with --detections) in the time
range, with a cost limit, and answers with the matching rows, or with --group-by, with counts
and distinct hosts per group, which this command merges across the fleet and prints least
frequent first (stacking). Rows stream as they arrive; the last line says how many of the live
nodes answered, and names the silent ones.

Fields are those of the record schema, plus kind, host, time, collector and source; a field a
record lacks reads as empty, so no has() guard is needed. Others are fields["name"].
'huntmesh query --fields' lists them.`,
		Example: `  huntmesh query --key alice.key 'kind == "connection" && remote_port == 3333'
  huntmesh query --key alice.key --group-by remote_address,remote_port 'kind == "connection"'
  huntmesh query --key alice.key --group-by exe_sha256,exe --since 24h 'kind == "process"'
  huntmesh query --key alice.key --detections 'severity == "high"' --output ndjson`,
		Args: func(cmd *cobra.Command, args []string) error {
			if f.fields {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.fields {
				fmt.Println(strings.Join(node.QueryFields(f.detections), "\n"))
				return nil
			}
			return runQuery(cmdContext(cmd), g, f, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.keyFile, "key", os.Getenv("HUNTMESH_KEY"),
		"analyst private key file (query role); env HUNTMESH_KEY")
	fl.StringVar(&f.since, "since", "", "from this time: RFC 3339, a date, or a duration ago (24h)")
	fl.StringVar(&f.until, "until", "", "before this time: RFC 3339, a date, or a duration ago")
	fl.StringVar(&f.target, "target", "all", "selector: all, label=value, host=NAME, and/or/not")
	fl.StringVar(&f.sample, "sample", "", "ask a share of the selected nodes: 10% or a count")
	fl.IntVar(&f.limit, "limit", 0, "rows per node (the node's own cap applies too)")
	fl.StringSliceVar(&f.groupBy, "group-by", nil, "stack by these fields (counts and hosts)")
	fl.BoolVar(&f.detections, "detections", false, "query stored detections, not records")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for answers")
	fl.StringVarP(&f.output, "output", "o", "table", "table, ndjson or csv")
	fl.StringVar(&f.analyst, "analyst", "", "who is asking, for the nodes' audit logs")
	fl.BoolVar(&f.fields, "fields", false, "list the fields a query may name, and exit")
	return cmd
}

func runQuery(ctx context.Context, g *globals, f *queryFlags, expr string) error {
	// Everything that can be checked here is, before anything is signed.
	if _, err := node.CompileQuery(expr, f.groupBy, f.detections); err != nil {
		return err
	}
	now := time.Now().UTC()
	since, err := parseWhen(f.since, now)
	if err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	until, err := parseWhen(f.until, now)
	if err != nil {
		return fmt.Errorf("--until: %w", err)
	}
	if !until.IsZero() && !until.After(since) {
		return fmt.Errorf("--until %s is not after --since %s", timeText(until), timeText(since))
	}
	out, err := newPrinter(f.output, os.Stdout)
	if err != nil {
		return err
	}
	out.query = true
	key, err := readAnalystKey(f.keyFile, "query")
	if err != nil {
		return err
	}
	client, err := dialNode(g)
	if err != nil {
		return err
	}
	info, err := client.Info(ctx)
	if err != nil {
		return fmt.Errorf("ask node: %w", err)
	}

	q := &tasks.Query{
		Header: tasks.Header{ID: tasks.NewID(now), Type: tasks.TypeQuery, IssuedAt: now,
			NotAfter: now.Add(f.timeout),
			Selector: tasks.Selector{Expr: f.target, Sample: f.sample,
				FleetSize: info.LivePeers + 1},
			ReplyTo: info.ID, Analyst: f.analyst},
		Expr: expr, Since: since, Until: until, Limit: f.limit, GroupBy: f.groupBy,
		Detections: f.detections,
	}
	if err := q.Selector.Validate(); err != nil {
		return fmt.Errorf("--target: %w", err)
	}
	if err := q.Validate(); err != nil {
		return err
	}
	raw, err := tasks.SealTask(key, tasks.TypeQuery, q, tasks.DefaultPolicy().MaxSize)
	if err != nil {
		return err
	}

	done, err := issueTask(ctx, client, raw, f.timeout, out, func(r *tasks.Result) {
		// Stacked, the rows are the groups; a CSV holds one table.
		if len(f.groupBy) == 0 || (r.Final && f.output != "csv") {
			out.result(r)
		}
	})
	if err != nil {
		return err
	}
	if len(f.groupBy) > 0 {
		if err := writeGroups(os.Stdout, f.output, f.groupBy, done.groups); err != nil {
			return err
		}
	}
	if done.comp != nil {
		out.completeness(done.comp)
	}
	return completionError(done.comp)
}

// writeGroups prints merged stacking groups, least frequent first.
func writeGroups(w io.Writer, format string, by []string, groups []tasks.Group) error {
	switch format {
	case "ndjson":
		enc := json.NewEncoder(w)
		for _, g := range groups {
			if err := enc.Encode(map[string]any{"type": "group", "group_by": by, "key": g.Key,
				"count": g.Count, "hosts": g.Hosts}); err != nil {
				return err
			}
		}
		return nil
	case "csv":
		cw := csv.NewWriter(w)
		key := func(g tasks.Group) []string { return g.Key }
		if len(by) == 0 {
			by = []string{"group"}
			key = func(g tasks.Group) []string { return []string{strings.Join(g.Key, " | ")} }
		}
		cw.Write(append(append([]string{}, by...), "count", "host_count", "hosts"))
		for _, g := range groups {
			cw.Write(append(key(g), fmt.Sprint(g.Count), fmt.Sprint(len(g.Hosts)),
				strings.Join(g.Hosts, " ")))
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := strings.ToUpper(strings.Join(by, "\t"))
	if len(by) == 0 {
		head = "GROUP" // read back from stored answers, which keep no field names
	}
	fmt.Fprintf(tw, "%s\tCOUNT\tHOSTS\tON\n", head)
	sep := "\t"
	if len(by) == 0 {
		sep = " | "
	}
	for _, g := range groups {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", strings.Join(g.Key, sep), g.Count, len(g.Hosts),
			clip(strings.Join(g.Hosts, ","), 80))
	}
	if len(groups) == 0 {
		fmt.Fprintln(tw, "(no matching rows)")
	}
	return tw.Flush()
}

// parseWhen reads a time flag: empty, RFC 3339, a date, or a duration
// before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-05-03T08:00:00Z), a date "+
		"(2026-05-03) or a duration ago (24h)", s)
}

// readAnalystKey reads the analyst private key that signs a task.
func readAnalystKey(path, role string) (ed25519.PrivateKey, error) {
	if path == "" {
		return nil, fmt.Errorf("--key is required: the analyst key (%s role) that signs "+
			"the task (see huntmesh keygen)", role)
	}
	b, err := readIntelFile(path, 64<<10)
	if err != nil {
		return nil, fmt.Errorf("read analyst key: %w", err)
	}
	k, err := tasks.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// dialNode connects to the node on this data directory.
func dialNode(g *globals) (*node.Client, error) {
	c, err := node.Dial(g.dataDir)
	if err != nil {
		return nil, fmt.Errorf("%w; start one with 'huntmesh node --data-dir %s'", err, g.dataDir)
	}
	return c, nil
}
