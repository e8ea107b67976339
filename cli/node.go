package cli

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/huntmesh/huntmesh/collectors/logs"
	"github.com/huntmesh/huntmesh/node"
)

func newNodeCmd(g *globals) *cobra.Command {
	var (
		listen, peers, labels []string
		trust, host, root     string
		pskFile               string
		replayProcs           string
		replayConns           string
		logSources            []string
		mdns                  bool
		readBPS               int64
		maxRecords            int
		wallTime              time.Duration
		nice                  int
		silentAfter, goneFor  time.Duration
		retroWindow           time.Duration
		exclude               []string
		intelSync, taskSync   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run the huntmesh daemon on this host",
		Long: `Run a node: join the mesh, obey hunts signed by trusted analyst keys, triage this
host within the resource budget, keep the evidence, and serve the local control socket.
Stops cleanly on SIGINT or SIGTERM.`,
		Example: `  huntmesh node --data-dir /var/lib/huntmesh --trust /etc/huntmesh/trust \
    --label role=web --label site=dc1 --peer /ip4/10.0.0.5/tcp/4701/p2p/12D3KooW...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			cfg := node.DefaultConfig(g.dataDir)
			if cmd.Flags().Changed("listen") {
				cfg.Listen = listen
			}
			cfg.Peers = peers
			cfg.MDNS = mdns
			cfg.TrustFile = trust
			cfg.Host = host
			cfg.Root = root
			cfg.Logger = log
			cfg.ReplayProcesses = replayProcs
			cfg.ReplayConnections = replayConns
			for _, l := range logSources {
				path, format, _ := strings.Cut(l, ",format=")
				cfg.Logs = append(cfg.Logs, logs.Source{Path: path, Format: format})
			}
			if cfg.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			if cmd.Flags().Changed("read-bps") {
				cfg.Budget.ReadBytesPerSec = readBPS
			}
			if cmd.Flags().Changed("max-records") {
				cfg.Budget.MaxRecords = maxRecords
			}
			if cmd.Flags().Changed("wall-time") {
				cfg.Budget.WallTime = wallTime
			}
			cfg.Budget.Nice = nice
			cfg.SilentAfter, cfg.GoneAfter = silentAfter, goneFor
			cfg.IntelRetroWindow = retroWindow
			cfg.Exclude = exclude
			cfg.IntelSyncInterval, cfg.TaskSyncInterval = intelSync, taskSync
			if pskFile != "" {
				if cfg.PSK, err = readPSK(pskFile); err != nil {
					return err
				}
			}
			return runNode(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&listen, "listen", nil,
		"multiaddr to listen on (repeatable; default TCP and QUIC on port 4701, all interfaces)")
	f.StringArrayVar(&peers, "peer", nil, "static peer multiaddr ending in /p2p/ID (repeatable)")
	f.StringArrayVar(&labels, "label", nil, "node label key=value for selectors (repeatable)")
	f.StringVar(&trust, "trust", "", "trust file naming the analyst keys this node obeys")
	f.StringVar(&host, "host", "", "host name to report (default: the system's)")
	f.StringVar(&root, "root", "/", "file system root the collectors read under")
	f.StringArrayVar(&exclude, "exclude", nil, "a path the collectors never read, such as "+
		"the folder of your intel and rule files (repeatable; the data dir always is)")
	f.StringVar(&pskFile, "psk-file", "", "file with a 64-hex-digit pre-shared key closing the mesh")
	f.StringVar(&replayProcs, "replay-processes", "",
		"answer from this saved process table (JSON) instead of the live host")
	f.StringVar(&replayConns, "replay-connections", "",
		"answer from this saved socket table (JSON) instead of the live host")
	f.StringArrayVar(&logSources, "log", nil, "log export the logs collector reads when a hunt "+
		"names none, as PATH or PATH,format=FORMAT (edr, sysmon, azure-activity, flow, ...)")
	f.BoolVar(&mdns, "mdns", true, "discover peers on the LAN with mDNS")
	f.DurationVar(&silentAfter, "silent-after", 15*time.Second,
		"a peer with no presence for this long is silent")
	f.DurationVar(&goneFor, "gone-after", 10*time.Minute,
		"a peer with no presence for this long is gone")
	f.DurationVar(&retroWindow, "retro-window", 24*time.Hour,
		"when intel gains indicators, match stored records of this far back (by event time)")
	f.DurationVar(&intelSync, "intel-sync", 15*time.Second,
		"compare the intel set with a random peer this often (and on every new connection)")
	f.DurationVar(&taskSync, "task-sync", node.DefaultTaskSyncInterval,
		"ask a random peer for missed active tasks this often (and on every new connection)")
	f.Int64Var(&readBPS, "read-bps", 0, "ceiling on bytes/s a collector may read (default 64 MiB/s)")
	f.IntVar(&maxRecords, "max-records", 0, "ceiling on records per collector run")
	f.DurationVar(&wallTime, "wall-time", 0, "ceiling on one collector run's duration")
	f.IntVar(&nice, "nice", 10, "CPU niceness (0-19) and best-effort I/O priority of the node")
	return cmd
}

func runNode(parent context.Context, cfg node.Config) error {
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := node.LowerPriority(cfg.Budget.Nice); err != nil {
		cfg.Logger.Warn("could not lower the node's priority", "err", err)
	}
	n, err := node.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	err = n.ServeControl(ctx)
	cfg.Logger.Info("shutting down", "reason", context.Cause(ctx))
	return err
}

func parseLabels(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, l := range list {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" || v == "" || strings.ContainsAny(l, " ,()") {
			return nil, fmt.Errorf("--label %q: want key=value without spaces, commas or parentheses", l)
		}
		out[k] = v
	}
	return out, nil
}

func readPSK(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read psk file: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("psk file %s: want 64 hex digits (32 bytes)", path)
	}
	return key, nil
}
