package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/huntmesh/huntmesh/intel"
	"github.com/huntmesh/huntmesh/node"
	"github.com/huntmesh/huntmesh/tasks"
)

// bundleFormat marks an intel bundle file: the signed updates of one mesh,
// carried across an air gap and imported unchanged on the other side.
const bundleFormat = 1

// intelBundle is the file written by intel export --bundle. Each update
// keeps its analyst's signature; the receiving nodes check it against
// their own trust file, so the bundle itself needs no signature.
type intelBundle struct {
	Format     int       `json:"huntmesh_intel_bundle"`
	ExportedAt time.Time `json:"exported_at"`
	Node       string    `json:"node"`
	Digest     string    `json:"digest"`
	Updates    [][]byte  `json:"updates"`
}

// maxBundleBytes bounds a bundle read by import.
const maxBundleBytes = 1 << 30

// issueBatchBytes keeps one control request under the node's 1 MiB line
// cap after base64.
const issueBatchBytes = 640 << 10

func newIntelCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "intel",
		Short: "Manage the mesh's shared indicator set",
		Long: `The intel set is shared by every node: updates are signed with an analyst key
holding the intel role, gossiped, and pulled by anti-entropy, so nodes that were apart
agree again once they meet. Every node matches what it collects against the set, and
re-matches recently stored records when the set gains indicators.`,
	}
	cmd.AddCommand(newIntelAddCmd(g, tasks.IntelAdd), newIntelAddCmd(g, tasks.IntelRemove),
		newIntelListCmd(g), newIntelImportCmd(g), newIntelExportCmd(g), newIntelStatusCmd(g),
		newIntelDetectionsCmd(g))
	return cmd
}

// intelAddFlags are the flags of intel add and remove.
type intelAddFlags struct {
	keyFile, typ, value, severity, source, expires string
	tags                                           []string
}

func newIntelAddCmd(g *globals, op string) *cobra.Command {
	f := &intelAddFlags{}
	cmd := &cobra.Command{
		Use: op + " --type TYPE --value VALUE",
		Short: "Sign and share one indicator " + map[string]string{"add": "addition",
			"remove": "removal"}[op],
		Example: "  huntmesh intel " + op + " --key alice.key --type ip --value 203.0.113.77",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkSeverity(f.severity); err != nil {
				return err
			}
			ioc := tasks.IoC{Type: f.typ, Value: f.value, Severity: f.severity,
				Source: f.source, Tags: f.tags}
			if op == tasks.IntelAdd {
				ioc.FirstSeen = time.Now().UTC().Truncate(time.Second)
			}
			if f.expires != "" {
				x, err := parseIntelExpiry(f.expires, time.Now())
				if err != nil {
					return err
				}
				ioc.Expires = x
			}
			if _, err := intel.Normalize(ioc, intel.Limits{}); err != nil {
				return err
			}
			return signAndIssue(cmd.Context(), g, f.keyFile, op, []tasks.IoC{ioc})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.keyFile, "key", os.Getenv("HUNTMESH_KEY"), "analyst private key file; env HUNTMESH_KEY")
	fl.StringVar(&f.typ, "type", "", "md5, sha1, sha256, ip, cidr, domain, url, filename, path, "+
		"process, cmdline, cmdline-re, port or yara")
	fl.StringVar(&f.value, "value", "", "the indicator (for yara, @FILE reads the rule file)")
	if op == tasks.IntelAdd {
		fl.StringVar(&f.severity, "severity", "medium", "low, medium, high or critical")
		fl.StringVar(&f.source, "source", "analyst", "where the indicator comes from")
		fl.StringSliceVar(&f.tags, "tag", nil, "threat actor, ATT&CK technique (repeatable)")
		fl.StringVar(&f.expires, "expires", "", "when it stops matching: RFC 3339 or a duration")
	}
	cmd.PreRunE = func(*cobra.Command, []string) error {
		if f.typ == "" || f.value == "" {
			return errors.New("--type and --value are required")
		}
		if rest, ok := strings.CutPrefix(f.value, "@"); ok {
			b, err := readIntelFile(rest, 1<<20)
			if err != nil {
				return err
			}
			f.value = string(b)
		}
		return nil
	}
	return cmd
}

func parseIntelExpiry(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--expires %q: want RFC 3339 or a duration", s)
	}
	return t, nil
}

// readSmall reads a regular file of at most limit bytes.
func readIntelFile(path string, limit int64) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, over %d", path, fi.Size(), limit)
	}
	return os.ReadFile(path)
}

// checkSeverity refuses a severity other than the four the matcher and
// the risk score rank; empty keeps the indicator's own.
func checkSeverity(s string) error {
	if s != "" && tasks.SeverityRank(s) == 0 {
		return fmt.Errorf("--severity %q: want low, medium, high or critical", s)
	}
	return nil
}

func intelStatus(ctx context.Context, c *node.Client) (*node.IntelStatus, error) {
	var st *node.IntelStatus
	err := c.Intel(ctx, node.IntelRequest{Action: "status"}, func(r *node.IntelResponse) error {
		st = r.Status
		return nil
	})
	if err == nil && st == nil {
		err = errors.New("node sent no intel status")
	}
	return st, err
}

// signAndIssue stamps iocs as ops after the node's clock, signs them as
// one or more updates and hands them to the local node.
func signAndIssue(ctx context.Context, g *globals, keyFile, op string, iocs []tasks.IoC) error {
	if ctx == nil {
		ctx = context.Background()
	}
	key, err := readAnalystKey(keyFile, "intel")
	if err != nil {
		return err
	}
	c, err := dialNode(g)
	if err != nil {
		return err
	}
	st, err := intelStatus(ctx, c)
	if err != nil {
		return fmt.Errorf("ask node: %w", err)
	}
	if op == tasks.IntelAdd {
		if err := checkSetCaps(ctx, c, iocs); err != nil {
			return err
		}
	}

	// Order after everything the node has seen, so a remove made here
	// wins over the add it withdraws wherever that add came from.
	clock := intel.NewClock(nil)
	_ = clock.Observe(st.Clock)
	origin := tasks.KeyID(key.Public().(ed25519.PublicKey))
	ops := make([]tasks.IntelOp, len(iocs))
	for i, ioc := range iocs {
		h := clock.Now()
		ops[i] = tasks.IntelOp{Op: op, IoC: ioc, Origin: origin,
			Clock: tasks.IntelClock{Wall: h.Wall, Logical: h.Logical}}
	}
	envs, err := tasks.SealIntel(key, ops, tasks.DefaultPolicy().MaxSize, func() tasks.Header {
		now := time.Now().UTC()
		return tasks.Header{ID: tasks.NewID(now), IssuedAt: now,
			NotAfter: now.Add(tasks.IntelLifetime)}
	})
	if err != nil {
		return err
	}
	return issueUpdates(ctx, c, envs, len(ops))
}

// checkSetCaps refuses, before anything is signed, adds that would take
// the shared set past the matcher's cap on expressions or the scanners'
// cap on YARA source. The node refuses the update that crosses a cap but
// keeps those before it, so without this check a large import could end
// half done.
func checkSetCaps(ctx context.Context, c *node.Client, iocs []tasks.IoC) error {
	lim := intel.DefaultLimits()
	keys := map[string]bool{}
	regexes, yaraBytes := 0, 0
	count := func(ioc tasks.IoC) {
		if ioc.Type != tasks.IoCCmdlineRE && ioc.Type != tasks.IoCYARA {
			return
		}
		v, err := intel.NormalizeValue(ioc.Type, ioc.Value, intel.Limits{})
		if err != nil || keys[ioc.Type+"\x00"+v] {
			return
		}
		keys[ioc.Type+"\x00"+v] = true
		if ioc.Type == tasks.IoCCmdlineRE {
			regexes++
		} else {
			yaraBytes += len(v)
		}
	}
	for _, typ := range []string{tasks.IoCCmdlineRE, tasks.IoCYARA} {
		err := c.Intel(ctx, node.IntelRequest{Action: "list", Type: typ},
			func(r *node.IntelResponse) error {
				for _, ioc := range r.IoCs {
					count(ioc)
				}
				return nil
			})
		if err != nil {
			return fmt.Errorf("ask node: %w", err)
		}
	}
	for _, ioc := range iocs {
		count(ioc)
	}
	if regexes > lim.MaxRegexes {
		return fmt.Errorf("nothing sent: the set would hold %d command-line expressions, "+
			"over the limit of %d", regexes, lim.MaxRegexes)
	}
	if yaraBytes > lim.MaxYARABytes {
		return fmt.Errorf("nothing sent: the set would hold %d bytes of YARA rules, over the "+
			"limit of %d", yaraBytes, lim.MaxYARABytes)
	}
	return nil
}

// issueUpdates hands signed updates to the node in batches and prints the
// outcome.
func issueUpdates(ctx context.Context, c *node.Client, envs [][]byte, ops int) error {
	changed, failed, total := 0, 0, len(envs)
	var firstErr string
	for len(envs) > 0 {
		n, size := 0, 0
		for n < len(envs) && (n == 0 || size+len(envs[n]) <= issueBatchBytes) {
			size += len(envs[n])
			n++
		}
		req := node.IntelRequest{Action: "issue", Envelopes: envs[:n]}
		envs = envs[n:]
		err := c.Intel(ctx, req, func(r *node.IntelResponse) error {
			for _, is := range r.Issued {
				changed += is.Changed
				if is.Error != "" {
					failed++
					if firstErr == "" {
						firstErr = is.Error
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("issue intel: %w", err)
		}
	}
	if ops > 0 {
		fmt.Printf("sent %d ops in %d signed updates; %d changed the set\n", ops, total, changed)
	} else {
		fmt.Printf("sent %d signed updates; %d ops changed the set\n", total, changed)
	}
	if failed > 0 {
		return fmt.Errorf("%d updates refused or not published; first: %s", failed, firstErr)
	}
	return nil
}

func newIntelImportCmd(g *globals) *cobra.Command {
	var keyFile, severity, source string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "import FILE...",
		Short: "Import STIX 2.1, MISP, CSV or YARA files, or an intel bundle",
		Long: `Read each file, print what was taken and what was skipped and why (per pattern
type), then sign the indicators with --key and share them. An intel bundle written by
'intel export --bundle' is handed to the node as it is: its updates keep the signatures of
the analysts who made them, which this mesh's trust files must accept.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var all, withdrawn []tasks.IoC
			for _, path := range args {
				if b, ok, err := readBundle(path); err != nil {
					return err
				} else if ok {
					if dryRun {
						fmt.Printf("%s: bundle of %d signed updates\n", path, len(b.Updates))
						continue
					}
					c, err := dialNode(g)
					if err != nil {
						return err
					}
					fmt.Printf("%s: bundle of %d signed updates from node %s\n", path,
						len(b.Updates), b.Node)
					if err := issueUpdates(cmd.Context(), c, b.Updates, 0); err != nil {
						return err
					}
					if st, err := intelStatus(intelCtx(cmd), c); err == nil {
						same := "the same as the bundle's"
						if st.Digest != b.Digest {
							same = "not the bundle's " + b.Digest[:min(16, len(b.Digest))] +
								" (the node holds other updates too)"
						}
						fmt.Printf("node digest %.16s: %s\n", st.Digest, same)
					}
					continue
				}
				if err := checkSeverity(severity); err != nil {
					return err
				}
				imp, err := intel.ImportFile(path, time.Now())
				if err != nil {
					return err
				}
				printImport(os.Stdout, path, imp)
				withdrawn = append(withdrawn, imp.Withdrawn...)
				for _, ioc := range imp.IoCs {
					if severity != "" {
						ioc.Severity = severity
					}
					if source != "" {
						ioc.Source = source
					}
					all = append(all, ioc)
				}
			}
			all = dedupIoCs(all)
			withdrawn = untaken(withdrawn, all)
			if dryRun {
				if len(withdrawn) > 0 {
					fmt.Printf("would withdraw %d indicators the sources revoked or let expire, "+
						"where the set holds them\n", len(withdrawn))
				}
				return nil
			}
			if len(all) > 0 {
				if err := signAndIssue(cmd.Context(), g, keyFile, tasks.IntelAdd, all); err != nil {
					return err
				}
			}
			return withdraw(cmd, g, keyFile, withdrawn)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&keyFile, "key", os.Getenv("HUNTMESH_KEY"), "analyst private key file; env HUNTMESH_KEY")
	fl.StringVar(&severity, "severity", "", "override every indicator's severity")
	fl.StringVar(&source, "source", "", "override every indicator's source")
	fl.BoolVar(&dryRun, "dry-run", false, "print what would be imported, send nothing")
	return cmd
}

// untaken drops from withdrawn what any imported file still gives, and
// repeats.
func untaken(withdrawn, taken []tasks.IoC) []tasks.IoC {
	keys := map[string]bool{}
	for _, ioc := range taken {
		if k, err := intel.Key(ioc); err == nil {
			keys[k] = true
		}
	}
	var out []tasks.IoC
	for _, ioc := range withdrawn {
		k, err := intel.Key(ioc)
		if err != nil || keys[k] {
			continue
		}
		keys[k] = true
		out = append(out, ioc)
	}
	return out
}

// withdraw removes from the shared set the withdrawn indicators it holds
// active; the others need no tombstone.
func withdraw(cmd *cobra.Command, g *globals, keyFile string, withdrawn []tasks.IoC) error {
	if len(withdrawn) == 0 {
		return nil
	}
	c, err := dialNode(g)
	if err != nil {
		return err
	}
	held := map[string]bool{}
	err = c.Intel(intelCtx(cmd), node.IntelRequest{Action: "list"},
		func(r *node.IntelResponse) error {
			for _, ioc := range r.IoCs {
				if k, err := intel.Key(ioc); err == nil {
					held[k] = true
				}
			}
			return nil
		})
	if err != nil {
		return err
	}
	var remove []tasks.IoC
	for _, ioc := range withdrawn {
		if k, _ := intel.Key(ioc); held[k] {
			remove = append(remove, ioc)
		}
	}
	if len(remove) == 0 {
		return nil
	}
	fmt.Printf("withdrawing %d indicators the sources revoked or let expire\n", len(remove))
	return signAndIssue(intelCtx(cmd), g, keyFile, tasks.IntelRemove, remove)
}

// dedupIoCs merges indicators that several files name: one op per
// indicator, with the union of their tags and the highest severity.
func dedupIoCs(iocs []tasks.IoC) []tasks.IoC {
	rank := map[string]int{"low": 1, "medium": 2, "high": 3, "critical": 4}
	index := map[string]int{}
	var out []tasks.IoC
	for _, ioc := range iocs {
		k, err := intel.Key(ioc)
		if err != nil {
			k = ioc.Type + "\x00" + ioc.Value
		}
		i, ok := index[k]
		if !ok {
			index[k] = len(out)
			out = append(out, ioc)
			continue
		}
		for _, t := range ioc.Tags {
			if !slices.Contains(out[i].Tags, t) {
				out[i].Tags = append(out[i].Tags, t)
			}
		}
		if rank[ioc.Severity] > rank[out[i].Severity] {
			out[i].Severity = ioc.Severity
		}
	}
	return out
}

// readBundle reads path as an intel bundle; ok is false for other files.
// A bundle is known by its content, whatever the file is named, since
// export --bundle writes to any name the analyst gives.
func readBundle(path string) (*intelBundle, bool, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, false, fmt.Errorf("import %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, false, nil // ImportFile names the problem
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	head := make([]byte, 256)
	k, _ := io.ReadFull(f, head)
	if !bytes.HasPrefix(bytes.TrimLeft(head[:k], " \t\r\n"), []byte(`{"huntmesh_intel_bundle"`)) {
		return nil, false, nil
	}
	data, err := readIntelFile(path, maxBundleBytes)
	if err != nil {
		return nil, false, err
	}
	var b intelBundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, false, fmt.Errorf("read bundle %s: %w", path, err)
	}
	if b.Format != bundleFormat {
		return nil, false, fmt.Errorf("bundle %s: format %d, want %d", path, b.Format, bundleFormat)
	}
	return &b, true, nil
}

// printImport prints one file's import: the summary per source type, then
// each distinct skip reason with its count and a first place.
func printImport(w io.Writer, path string, imp intel.Import) {
	fmt.Fprintf(w, "%s: %s\n", path, imp.Meta)
	type group struct {
		n     int
		where string
	}
	groups := map[string]*group{}
	for _, s := range imp.Skipped {
		k := s.What + ": " + s.Reason
		if groups[k] == nil {
			groups[k] = &group{where: s.Where}
		}
		groups[k].n++
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  skipped %d x %s (first at %s)\n", groups[k].n, k, groups[k].where)
	}
}

// intelTypes are the indicator types a set holds.
var intelTypes = []string{tasks.IoCMD5, tasks.IoCSHA1, tasks.IoCSHA256, tasks.IoCIP,
	tasks.IoCCIDR, tasks.IoCDomain, tasks.IoCURL, tasks.IoCFileName, tasks.IoCPath,
	tasks.IoCProcess, tasks.IoCCmdline, tasks.IoCCmdlineRE, tasks.IoCPort, tasks.IoCYARA}

func newIntelListCmd(g *globals) *cobra.Command {
	var typ, output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the active indicators of the shared set",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if typ != "" && !slices.Contains(intelTypes, typ) {
				return fmt.Errorf("--type %q: want one of %s", typ, strings.Join(intelTypes, ", "))
			}
			c, err := dialNode(g)
			if err != nil {
				return err
			}
			var iocs []tasks.IoC
			err = c.Intel(intelCtx(cmd), node.IntelRequest{Action: "list", Type: typ},
				func(r *node.IntelResponse) error {
					iocs = append(iocs, r.IoCs...)
					return nil
				})
			if err != nil {
				return err
			}
			return writeIoCs(os.Stdout, output, iocs)
		},
	}
	cmd.Flags().StringVar(&typ, "type", "", "only this indicator type")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, ndjson or csv")
	return cmd
}

func intelCtx(cmd *cobra.Command) context.Context {
	if c := cmd.Context(); c != nil {
		return c
	}
	return context.Background()
}

// writeIoCs prints indicators; the CSV has the columns intel import reads.
func writeIoCs(w io.Writer, format string, iocs []tasks.IoC) error {
	switch format {
	case "ndjson":
		enc := json.NewEncoder(w)
		for _, ioc := range iocs {
			if err := enc.Encode(ioc); err != nil {
				return err
			}
		}
		return nil
	case "csv":
		cw := csv.NewWriter(w)
		cw.Write([]string{"type", "value", "severity", "tags", "first_seen", "expires", "source"})
		stamp := func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339Nano)
		}
		for _, ioc := range iocs {
			cw.Write([]string{ioc.Type, ioc.Value, ioc.Severity, strings.Join(ioc.Tags, ";"),
				stamp(ioc.FirstSeen), stamp(ioc.Expires), ioc.Source})
		}
		cw.Flush()
		return cw.Error()
	case "table":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TYPE\tVALUE\tSEVERITY\tTAGS\tSOURCE")
		for _, ioc := range iocs {
			v := ioc.Value
			if ioc.Type == tasks.IoCYARA {
				v = fmt.Sprintf("(%d bytes of rules)", len(v))
			} else if len(v) > 70 {
				v = v[:67] + "..."
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ioc.Type, v, ioc.Severity,
				strings.Join(ioc.Tags, ","), ioc.Source)
		}
		fmt.Fprintf(tw, "%d indicators\n", len(iocs))
		return tw.Flush()
	}
	return fmt.Errorf("--output %q: want table, ndjson or csv", format)
}

func newIntelExportCmd(g *globals) *cobra.Command {
	var bundle, output string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the shared set as indicators, or as a signed bundle for an air gap",
		Long: `Without --bundle, print the active indicators (csv by default, which
'intel import' reads back). With --bundle FILE, write every signed update the node holds;
'huntmesh intel import FILE' on a node of another mesh accepts the same updates.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := dialNode(g)
			if err != nil {
				return err
			}
			if bundle == "" {
				var iocs []tasks.IoC
				err := c.Intel(intelCtx(cmd), node.IntelRequest{Action: "list"},
					func(r *node.IntelResponse) error {
						iocs = append(iocs, r.IoCs...)
						return nil
					})
				if err != nil {
					return err
				}
				return writeIoCs(os.Stdout, output, iocs)
			}
			return writeBundle(intelCtx(cmd), c, bundle)
		},
	}
	cmd.Flags().StringVar(&bundle, "bundle", "", "write a signed intel bundle to FILE")
	cmd.Flags().StringVarP(&output, "output", "o", "csv", "csv, ndjson or table")
	return cmd
}

func writeBundle(ctx context.Context, c *node.Client, path string) error {
	st, err := intelStatus(ctx, c)
	if err != nil {
		return err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return err
	}
	b := intelBundle{Format: bundleFormat, ExportedAt: time.Now().UTC(), Node: info.ID,
		Digest: st.Digest}
	err = c.Intel(ctx, node.IntelRequest{Action: "export"}, func(r *node.IntelResponse) error {
		b.Updates = append(b.Updates, r.Envelopes...)
		return nil
	})
	if err != nil {
		return err
	}
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	fmt.Printf("wrote %d signed updates (%d active indicators, digest %.16s) to %s\n",
		len(b.Updates), st.Active, st.Digest, path)
	return nil
}

func newIntelStatusCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the shared set's digest, size, sync and last retro-hunt",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := dialNode(g)
			if err != nil {
				return err
			}
			st, err := intelStatus(intelCtx(cmd), c)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			fmt.Printf("digest      %s\n", st.Digest)
			fmt.Printf("indicators  %d active, %d known (removed included)\n", st.Active,
				st.Identities)
			types := make([]string, 0, len(st.ByType))
			for t, k := range st.ByType {
				types = append(types, fmt.Sprintf("%s %d", t, k))
			}
			sort.Strings(types)
			fmt.Printf("by type     %s\n", strings.Join(types, ", "))
			fmt.Printf("updates     %d held, %d refused\n", st.Updates, st.Refused)
			if st.LeftOut > 0 {
				fmt.Printf("left out    %d indicators the matcher cannot hold; first: %s\n",
					st.LeftOut, st.LeftOutReason)
			}
			for p, t := range st.Synced {
				fmt.Printf("synced      %s at %s\n", p, t.Format(time.RFC3339))
			}
			if r := st.Retro; !r.At.IsZero() {
				fmt.Printf("retro-hunt  %s: %d new indicators over %d records since %s, "+
					"%d detections\n", r.At.Format(time.RFC3339), r.IoCs, r.Records,
					r.Since.Format(time.RFC3339), r.Detections)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func newIntelDetectionsCmd(g *globals) *cobra.Command {
	var since, output string
	var limit int
	cmd := &cobra.Command{
		Use:   "detections",
		Short: "Show what retro-hunts found in this node's stored records",
		Long: `When the shared set gains indicators, the node matches the records it stored
within its retro-hunt window against them and keeps what matches. This prints those
detections, oldest event first.`,
		Example: "  huntmesh intel detections --since 24h -o ndjson",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := node.IntelRequest{Action: "detections", Limit: limit}
			if since != "" {
				t, err := parseIntelSince(since, time.Now())
				if err != nil {
					return err
				}
				req.Since = t
			}
			c, err := dialNode(g)
			if err != nil {
				return err
			}
			var dets []tasks.Detection
			err = c.Intel(intelCtx(cmd), req, func(r *node.IntelResponse) error {
				dets = append(dets, r.Detections...)
				return nil
			})
			if err != nil {
				return err
			}
			return writeRetro(os.Stdout, output, dets)
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only events since: RFC 3339 or a duration back")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many detections (0: all)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or ndjson")
	return cmd
}

func parseIntelSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: want RFC 3339 or a duration", s)
	}
	return t, nil
}

// writeRetro prints retro-hunt detections.
func writeRetro(w io.Writer, format string, dets []tasks.Detection) error {
	switch format {
	case "ndjson":
		enc := json.NewEncoder(w)
		for _, d := range dets {
			if err := enc.Encode(d); err != nil {
				return err
			}
		}
		return nil
	case "table":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tHOST\tKIND\tIOC\tFIELD\tSEVERITY\tTAGS")
		for _, d := range dets {
			v := d.IoCValue
			if len(v) > 60 {
				v = v[:57] + "..."
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s:%s\t%s\t%s\t%s\n", d.Time.UTC().Format(time.RFC3339),
				d.Host, d.Record.Kind, d.IoCType, v, d.Field, d.Severity, strings.Join(d.Tags, ","))
		}
		fmt.Fprintf(tw, "%d detections\n", len(dets))
		return tw.Flush()
	}
	return fmt.Errorf("--output %q: want table or ndjson", format)
}
