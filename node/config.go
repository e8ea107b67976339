// Package node is the huntmesh daemon. It wires the mesh, the store, the
// intel matcher and the collectors together, runs the life of every task
// (verify, select, collect, match, store, answer), and serves the local
// control socket that the CLI talks to.
package node

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/collectors/logs"
	"github.com/huntmesh/huntmesh/tasks"
)

// Config describes one node.
type Config struct {
	// DataDir holds the identity, the store and the control socket.
	DataDir string

	// Listen are the multiaddrs to listen on.
	Listen []string

	// Peers are static peers to dial, as multiaddrs ending in /p2p/ID.
	Peers []string

	// MDNS enables LAN discovery.
	MDNS bool

	// PSK closes the mesh to nodes without the same 32-byte key.
	PSK []byte

	// Host is the host name the node reports; default os.Hostname.
	Host string

	// Labels describe the node for selectors ("role=web").
	Labels map[string]string

	// TrustFile lists the analyst keys the node obeys. A node without one
	// obeys nobody, and says so at start.
	TrustFile string

	// Root is the file system root collectors read under; "/" by default.
	Root string

	// Exclude are paths the collectors never read, besides the data
	// directory: where the operator keeps intel and rule files, which
	// broad rules would match.
	Exclude []string

	// ReplayProcesses and ReplayConnections, when set, make the node
	// answer from saved process and socket tables (JSON snapshots) instead
	// of the live host: for replaying a host under investigation, and for
	// demos where several nodes share one machine.
	ReplayProcesses   string
	ReplayConnections string

	// Logs are the log files the logs collector reads (under Root) when a
	// hunt names no sources: the EDR, Sysmon, cloud or flow exports an
	// operator points this node at.
	Logs []logs.Source

	// Budget is the ceiling for every collector run; a hunt may ask for
	// less, never more.
	Budget collectors.Budget

	// Policy bounds incoming tasks.
	Policy tasks.Policy

	// MaxRows caps the rows one node streams back for one task, so a noisy
	// host cannot swamp the issuer; everything stays in the local store.
	MaxRows int

	// Concurrency is how many tasks run at once; more wait their turn.
	Concurrency int

	// Logger receives operator events.
	Logger *slog.Logger

	// IntelRetroWindow is how far back stored records are matched again
	// when the intel set gains indicators; zero means 24 hours.
	IntelRetroWindow time.Duration

	// IntelSyncInterval is how often the node compares its intel set with
	// a random peer's; zero means 15 s. New connections sync at once.
	IntelSyncInterval time.Duration

	// SilentAfter is how long a peer may go without a presence
	// announcement (every 5 s) before it counts as silent rather than
	// live; GoneAfter, before it counts as gone. Defaults: 15 s (three
	// missed rounds) and 10 minutes.
	SilentAfter time.Duration
	GoneAfter   time.Duration

	// TaskSyncInterval is how often the node asks a random peer for the
	// active tasks it missed; zero means DefaultTaskSyncInterval. New
	// connections catch up at once.
	TaskSyncInterval time.Duration

	// ReceiptDelay is how long a task may wait for a slot, or run, before
	// the node sends its issuer a signed receipt saying so; quick answers
	// need none. Zero means one second.
	ReceiptDelay time.Duration

	// Sim holds the simulator's hooks; zero for a real node.
	Sim SimHooks
}

// DefaultConfig returns a config for a node keeping its state in dataDir.
func DefaultConfig(dataDir string) Config {
	return Config{
		DataDir: dataDir,
		Listen: []string{
			"/ip4/0.0.0.0/tcp/4701",
			"/ip4/0.0.0.0/udp/4701/quic-v1",
		},
		MDNS:   true,
		Root:   "/",
		Labels: map[string]string{},
		Budget: collectors.Budget{
			// A triage scan should never starve the host: 64 MiB/s of reads,
			// a million records and ten minutes per collector are far above
			// what a hunt needs and far below what hurts a server.
			ReadBytesPerSec: 64 << 20,
			MaxRecords:      1_000_000,
			WallTime:        10 * time.Minute,
		},
		Policy: tasks.DefaultPolicy(),
		// 10,000 rows of a few hundred bytes stay within a few MiB per node.
		MaxRows:     10_000,
		Concurrency: 2,
	}
}

func (c *Config) validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("node config: DataDir is required")
	case len(c.Listen) == 0:
		return errors.New("node config: Listen needs at least one address")
	case c.Concurrency < 1:
		return fmt.Errorf("node config: Concurrency %d, want at least 1", c.Concurrency)
	case c.Policy.MaxSize <= 0:
		return errors.New("node config: Policy.MaxSize must be positive")
	}
	if c.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node config: host name: %w", err)
		}
		c.Host = h
	}
	if c.Root == "" {
		c.Root = "/"
	}
	if c.SilentAfter <= 0 {
		c.SilentAfter = 15 * time.Second
	}
	if c.GoneAfter <= 0 {
		c.GoneAfter = 10 * time.Minute
	}
	if c.GoneAfter < c.SilentAfter {
		return fmt.Errorf("node config: GoneAfter %s is shorter than SilentAfter %s",
			c.GoneAfter, c.SilentAfter)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("node config: data dir: %w", err)
	}
	c.DataDir = abs
	for i, p := range c.Exclude {
		if c.Exclude[i], err = filepath.Abs(p); err != nil {
			return fmt.Errorf("node config: exclude %q: %w", p, err)
		}
	}
	return nil
}

// SocketPath is where the control socket of a node with this data
// directory lives.
func SocketPath(dataDir string) string {
	return filepath.Join(dataDir, "control.sock")
}
