// Package cli holds huntmesh's commands: the node daemon and the analyst
// commands that talk to a local node over its control socket. It formats
// output (table, NDJSON, CSV) and never touches libp2p or Badger itself.
package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// exitError carries an exit code through cobra, and a message to print
// (none when the command already said why).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string {
	if e.msg != "" {
		return e.msg
	}
	return fmt.Sprintf("exit %d", e.code)
}

// Execute runs the command line and returns the process exit code.
func Execute() int {
	root := newRootCmd()
	err := root.Execute()
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "huntmesh:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "huntmesh:", err)
	return 1
}

// globals are flags every command shares.
type globals struct {
	dataDir   string
	logLevel  string
	logFormat string
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "huntmesh",
		Short: "A peer-to-peer threat-hunting mesh",
		Long: `huntmesh runs a node on every host. Nodes gossip signed hunts and indicator
updates, triage their own host, keep the evidence locally, and answer any analyst
on any node. There is no central server.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.dataDir, "data-dir", defaultDataDir(),
		"node data directory (identity, store, control socket); env HUNTMESH_DATA_DIR")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "text or json")

	root.AddCommand(
		newNodeCmd(g),
		newKeygenCmd(),
		newHuntCmd(g),
		newResultsCmd(g),
		newPeersCmd(g),
		newStatusCmd(g),
		newQueryCmd(g),
		newTaskCmd(g),
		newSimCmd(g),
		newIntelCmd(g),
		newTimelineCmd(g),
		newHostsCmd(g),
		newEvidenceCmd(g),
	)
	return root
}

func defaultDataDir() string {
	if d := os.Getenv("HUNTMESH_DATA_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/huntmesh"
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".huntmesh")
	}
	return ".huntmesh"
}

func (g *globals) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(g.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", g.logFormat)
}
