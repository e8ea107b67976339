package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config describes one simulated mesh. Start from DefaultConfig.
type Config struct {
	// Nodes is how many nodes start.
	Nodes int

	// Degree is the number of links each node opens to random others when
	// it starts, so the average node has about 2*Degree links: a connected
	// random graph, never a full mesh.
	Degree int

	// Latency is the one-way delay of every link.
	Latency time.Duration

	// Jitter varies each link's delay uniformly within Latency±Jitter; the
	// delay of every link is redrawn every JitterEvery.
	Jitter      time.Duration
	JitterEvery time.Duration

	// Loss is the chance, per link and per JitterEvery, that the link loses
	// a segment. Mock links are reliable streams, so loss is modelled as what
	// TCP turns it into: the link stalls for a retransmission timeout (RTO)
	// on top of its delay.
	Loss float64
	RTO  time.Duration

	// Bandwidth limits every link in bytes per second; zero is unlimited.
	Bandwidth float64

	// Scenario is a scenario directory (hosts.yaml, host folders, intel/):
	// its hosts become the first nodes, with their labels, file roots and
	// process and socket snapshots, and its intel/iocs.csv is what the hunt
	// looks for. Empty runs background nodes only.
	Scenario string

	// BackgroundRecords is how many generated records each node keeps in its
	// store before the hunt, so that queries have something to scan.
	BackgroundRecords int

	// PresenceInterval is how often each node announces itself. Every
	// announcement reaches every node, so the cost grows with Nodes²: the
	// daemon's 5 s is tuned up for large simulations.
	PresenceInterval time.Duration

	// Heartbeat is gossipsub's heartbeat interval.
	Heartbeat time.Duration

	// ValidateQueue and PeerQueue size each node's gossipsub validation
	// queue and per-peer outbound queue (pubsub's defaults are 32 and 32).
	// One machine's CPUs run every node's validation, so each node drains
	// its queue N times slower than a host of its own would: with the
	// defaults, a burst of presence announcements overflows the queues and
	// tasks are dropped that a real host would have taken.
	ValidateQueue int
	PeerQueue     int

	// SyncInterval is how often each node pulls missed tasks and intel from
	// one random peer (node.Config.TaskSyncInterval and IntelSyncInterval),
	// besides on every new connection; the daemon's is 15 s.
	SyncInterval time.Duration

	// Seed makes the topology, jitter and loss repeatable.
	Seed int64

	// Logger receives the simulator's events; nodes log at Warn and above
	// only through it. Nil discards everything.
	Logger *slog.Logger
}

// DefaultConfig returns a 50-node mesh with 20 ms links.
func DefaultConfig() Config {
	return Config{
		Nodes: 50,
		// Four links out, about eight per node: connected with high
		// probability and close to gossipsub's mesh degree of 6.
		Degree:  4,
		Latency: 20 * time.Millisecond,
		// Redrawing every 50 ms keeps jitter visible within one hunt.
		JitterEvery: 50 * time.Millisecond,
		// Linux's minimum TCP retransmission timeout.
		RTO:               200 * time.Millisecond,
		BackgroundRecords: 20,
		// 30 s: a node is counted live within the daemon's 15 s window
		// of a kick-started announcement, at a sixth of the daemon's cost.
		PresenceInterval: 30 * time.Second,
		Heartbeat:        time.Second,
		SyncInterval:     2 * time.Second,
		ValidateQueue:    4096,
		PeerQueue:        1024,
		Seed:             1,
	}
}

// validate names the first bad field.
func (c *Config) validate() error {
	switch {
	case c.Nodes < 2:
		return fmt.Errorf("sim config: Nodes %d, want at least 2", c.Nodes)
	case c.Degree < 1:
		return fmt.Errorf("sim config: Degree %d, want at least 1", c.Degree)
	case c.Latency < 0 || c.Jitter < 0:
		return errors.New("sim config: Latency and Jitter must not be negative")
	case c.Jitter > c.Latency:
		return fmt.Errorf("sim config: Jitter %s over Latency %s", c.Jitter, c.Latency)
	case (c.Jitter > 0 || c.Loss > 0) && c.JitterEvery <= 0:
		return errors.New("sim config: JitterEvery must be positive with jitter or loss")
	case c.Loss < 0 || c.Loss >= 1:
		return fmt.Errorf("sim config: Loss %g, want 0 <= loss < 1", c.Loss)
	case c.Bandwidth < 0:
		return errors.New("sim config: Bandwidth must not be negative")
	case c.PresenceInterval < 100*time.Millisecond:
		return fmt.Errorf("sim config: PresenceInterval %s, want at least 100ms",
			c.PresenceInterval)
	case c.Heartbeat < 10*time.Millisecond:
		return fmt.Errorf("sim config: Heartbeat %s, want at least 10ms", c.Heartbeat)
	case c.ValidateQueue < 1 || c.PeerQueue < 1:
		return fmt.Errorf("sim config: ValidateQueue %d and PeerQueue %d must be positive",
			c.ValidateQueue, c.PeerQueue)
	case c.SyncInterval < 100*time.Millisecond:
		return fmt.Errorf("sim config: SyncInterval %s, want at least 100ms", c.SyncInterval)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
