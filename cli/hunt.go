package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/huntmesh/huntmesh/collectors/yarascan"
	"github.com/huntmesh/huntmesh/node"
	"github.com/huntmesh/huntmesh/tasks"
)

func newHuntCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hunt",
		Short: "Broadcast hunts to the mesh",
	}
	cmd.AddCommand(newHuntRunCmd(g), newHuntValidateCmd(g), newHuntChangesCmd(g))
	return cmd
}

// huntFlags are the flags of hunt run.
type huntFlags struct {
	file          string
	keyFile       string
	collect       []string
	params        []string
	iocIP         []string
	iocPort       []string
	iocProcess    []string
	iocSHA256     []string
	iocCmdline    []string
	target        string
	sample        string
	timeout       time.Duration
	lifetime      time.Duration
	root          string
	output        string
	maxRows       int
	returnRecords bool
	analyst       string
	yaraFiles     []string
	readBPS       int64
	maxRecords    int
	wallTime      time.Duration
}

func newHuntRunCmd(g *globals) *cobra.Command {
	f := &huntFlags{}
	cmd := &cobra.Command{
		Use:   "run [FILE]",
		Short: "Sign a hunt, send it through the local node and print the answers",
		Long: `Sign a hunt with your analyst key and hand it to the node on this host, which
publishes it to the mesh. Every selected node runs the collectors, matches what it finds
against the IoCs, keeps the evidence and answers. Rows are printed as they arrive, then one
completeness line: how many of the live nodes answered, and which stayed silent.`,
		Example: `  huntmesh hunt run --key alice.key --collect processes,connections \
    --ioc-port 3333 --ioc-process miner --target all --timeout 30s`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				f.file = args[0] // a hunt file (huntfile.go) replaces the flags
			}
			return runHunt(cmd.Context(), g, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.keyFile, "key", os.Getenv("HUNTMESH_KEY"), "analyst private key file; env HUNTMESH_KEY")
	fl.StringSliceVar(&f.collect, "collect", []string{"processes", "connections"}, "collectors to run")
	fl.StringArrayVar(&f.params, "param", nil, `collector parameters as NAME=JSON, e.g. files={"roots":["/tmp"]}`)
	fl.StringArrayVar(&f.iocIP, "ioc-ip", nil, "IP address or CIDR to look for (repeatable)")
	fl.StringArrayVar(&f.iocPort, "ioc-port", nil, "remote port, or address:port (repeatable)")
	fl.StringArrayVar(&f.iocProcess, "ioc-process", nil, "process name (repeatable)")
	fl.StringArrayVar(&f.iocSHA256, "ioc-sha256", nil, "SHA-256 of a file or executable (repeatable)")
	fl.StringArrayVar(&f.iocCmdline, "ioc-cmdline", nil, "command-line substring (repeatable)")
	fl.StringVar(&f.target, "target", "all", "selector: all, label=value, host=NAME, and/or/not")
	fl.StringVar(&f.sample, "sample", "", "run on a share of the selected nodes: 10% or a count")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for answers")
	fl.DurationVar(&f.lifetime, "lifetime", 0, "how long nodes accept the hunt (default: the timeout)")
	fl.StringVar(&f.root, "root", "", "file system root collectors read under on every node")
	fl.StringVarP(&f.output, "output", "o", "table", "table, ndjson or csv")
	fl.IntVar(&f.maxRows, "max-rows", 0, "cap on rows each node sends back")
	fl.BoolVar(&f.returnRecords, "return-records", false, "send back every record, not only detections")
	fl.StringVar(&f.analyst, "analyst", "", "who is asking, for the nodes' audit logs")
	fl.StringArrayVar(&f.yaraFiles, "yara", nil,
		"YARA rule file for the files and yara-memory collectors (repeatable)")
	fl.Int64Var(&f.readBPS, "read-bps", 0, "ask nodes to read at most this many bytes/s per collector")
	fl.IntVar(&f.maxRecords, "max-records", 0, "ask nodes to stop each collector after this many records")
	fl.DurationVar(&f.wallTime, "wall-time", 0, "ask nodes to stop each collector after this long")
	return cmd
}

func (f *huntFlags) iocs() []tasks.IoC {
	var out []tasks.IoC
	add := func(typ string, vals []string) {
		for _, v := range vals {
			out = append(out, tasks.IoC{Type: typ, Value: v, Severity: "high", Source: "hunt"})
		}
	}
	for _, v := range f.iocIP {
		typ := tasks.IoCIP
		if strings.Contains(v, "/") {
			typ = tasks.IoCCIDR
		}
		out = append(out, tasks.IoC{Type: typ, Value: v, Severity: "high", Source: "hunt"})
	}
	add(tasks.IoCPort, f.iocPort)
	add(tasks.IoCProcess, f.iocProcess)
	add(tasks.IoCSHA256, f.iocSHA256)
	add(tasks.IoCCmdline, f.iocCmdline)
	return out
}

// yaraIoCs reads the --yara files and compiles them here first, so a rule
// that does not compile is refused with the compiler's line before any node
// sees it.
func (f *huntFlags) yaraIoCs() ([]tasks.IoC, error) {
	var out []tasks.IoC
	for _, path := range f.yaraFiles {
		text, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read --yara file: %w", err)
		}
		rules, err := yarascan.Compile([]yarascan.Source{{Name: filepath.Base(path), Text: string(text)}})
		if err != nil {
			return nil, fmt.Errorf("--yara %s: %w", path, err)
		}
		rules.Destroy()
		out = append(out, tasks.IoC{Type: tasks.IoCYARA, Value: string(text), Severity: "high",
			Source: filepath.Base(path)})
	}
	return out, nil
}

func (f *huntFlags) collectorSpecs() ([]tasks.CollectorSpec, error) {
	params := map[string]json.RawMessage{}
	for _, p := range f.params {
		name, js, ok := strings.Cut(p, "=")
		if !ok || !json.Valid([]byte(js)) {
			return nil, fmt.Errorf("--param %q: want NAME=JSON", p)
		}
		params[name] = json.RawMessage(js)
	}
	var specs []tasks.CollectorSpec
	for _, name := range f.collect {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		specs = append(specs, tasks.CollectorSpec{Name: name, Params: params[name]})
		delete(params, name)
	}
	for name := range params {
		return nil, fmt.Errorf("--param names %q, which is not in --collect", name)
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("--collect names no collector")
	}
	return specs, nil
}

func runHunt(ctx context.Context, g *globals, f *huntFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	out, err := newPrinter(f.output, os.Stdout)
	if err != nil {
		return err
	}
	if f.keyFile == "" {
		return fmt.Errorf("--key is required: the analyst key that signs the hunt (see huntmesh keygen)")
	}
	keyPEM, err := os.ReadFile(f.keyFile)
	if err != nil {
		return fmt.Errorf("read analyst key: %w", err)
	}
	key, err := tasks.ParsePrivateKey(keyPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", f.keyFile, err)
	}
	specs, err := f.collectorSpecs()
	if err != nil {
		return err
	}
	yaraIoCs, err := f.yaraIoCs()
	if err != nil {
		return err
	}

	client, err := node.Dial(g.dataDir)
	if err != nil {
		return fmt.Errorf("%w; start one with 'huntmesh node --data-dir %s'", err, g.dataDir)
	}
	info, err := client.Info(ctx)
	if err != nil {
		return fmt.Errorf("ask node: %w", err)
	}

	now := time.Now().UTC()
	lifetime := f.lifetime
	if lifetime <= 0 {
		lifetime = f.timeout
	}
	hunt := &tasks.Hunt{
		Header: tasks.Header{
			ID:       tasks.NewID(now),
			Type:     tasks.TypeHunt,
			IssuedAt: now,
			NotAfter: now.Add(lifetime),
			Selector: tasks.Selector{Expr: f.target, Sample: f.sample, FleetSize: info.LivePeers + 1},
			ReplyTo:  info.ID,
			Analyst:  f.analyst,
		},
		Collectors:    specs,
		IoCs:          append(f.iocs(), yaraIoCs...),
		Root:          f.root,
		MaxRows:       f.maxRows,
		ReturnRecords: f.returnRecords,
		Budget: tasks.Budget{ReadBytesPerSec: f.readBPS, MaxRecords: f.maxRecords,
			WallTime: f.wallTime},
	}
	if f.file != "" {
		if hunt, err = huntFromFile(f.file, info, f.analyst, key); err != nil {
			return err
		}
	}
	if err := hunt.Selector.Validate(); err != nil {
		return fmt.Errorf("--target: %w", err)
	}
	// Every check a node would make, here, before anything is signed.
	if err := node.ValidateHunt(hunt); err != nil {
		return fmt.Errorf("hunt refused before sending: %w", err)
	}
	raw, err := tasks.SealTask(key, tasks.TypeHunt, hunt, tasks.DefaultPolicy().MaxSize)
	if err != nil {
		return err
	}

	done, err := issueTask(ctx, client, raw, f.timeout, out, nil)
	if err != nil {
		return err
	}
	if done.comp != nil {
		out.completeness(done.comp)
	}
	return completionError(done.comp)
}

// completionError turns an answer in which nodes failed and none finished
// into an error, so that scripts see it in the exit code.
func completionError(c *node.Completeness) error {
	if c == nil {
		return nil
	}
	if failed := c.ByStatus[tasks.StatusFailed]; failed > 0 && c.ByStatus[tasks.StatusFinished] == 0 {
		return exitError{code: 3, msg: fmt.Sprintf("no node finished: %d failed (see the reasons above)",
			failed)}
	}
	return nil
}
