package scenario

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/intel"
	"github.com/huntmesh/huntmesh/node"
	"github.com/huntmesh/huntmesh/tasks"
)

// Options tune Start.
type Options struct {
	// Edit, when set, changes each node's config before it starts.
	Edit func(h Host, cfg *node.Config)

	// LiveWait bounds how long Start waits for every node to see all the
	// others; default 20 s.
	LiveWait time.Duration
}

// Fleet is one running node per scenario host, all on 127.0.0.1, trusting
// one analyst key.
type Fleet struct {
	Scenario *Scenario

	// Nodes run in the order of Scenario.Hosts.
	Nodes []*node.Node

	// Key is the analyst key every node trusts with the hunt and query
	// roles; TrustFile is the file that says so.
	Key       ed25519.PrivateKey
	TrustFile string
}

// Start loads the scenario in dir, stages every host under t.TempDir(),
// starts one node per host (the first is the hub the others dial) and
// waits until every node sees every other as live. The nodes stop when
// the test ends. Set HUNTMESH_TEST_LOG to see their logs.
func Start(t testing.TB, dir string, opts Options) *Fleet {
	t.Helper()
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := tasks.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	trust := filepath.Join(work, "trust")
	line := "hunt,query,intel " + tasks.FormatPublicKey(pub, "scenario-analyst") + "\n"
	if err := os.WriteFile(trust, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &Fleet{Scenario: s, Key: priv, TrustFile: trust}

	for i, h := range s.Hosts {
		rep, err := s.Stage(h, filepath.Join(work, "hosts", h.Name))
		if err != nil {
			t.Fatal(err)
		}
		cfg := node.DefaultConfig(filepath.Join(work, "data", h.Name))
		cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
		cfg.MDNS = false
		cfg.TrustFile = trust
		rep.Apply(&cfg, h)
		if i > 0 {
			cfg.Peers = f.Nodes[0].Addrs()[:1]
		}
		if os.Getenv("HUNTMESH_TEST_LOG") != "" {
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr,
				&slog.HandlerOptions{Level: slog.LevelDebug})).With("host", h.Name)
		}
		if opts.Edit != nil {
			opts.Edit(h, &cfg)
		}
		n, err := node.New(context.Background(), cfg)
		if err != nil {
			t.Fatalf("start node %s: %v", h.Name, err)
		}
		t.Cleanup(func() { n.Close() })
		f.Nodes = append(f.Nodes, n)
	}
	wait := opts.LiveWait
	if wait <= 0 {
		wait = 20 * time.Second
	}
	if err := f.WaitLive(wait); err != nil {
		t.Fatal(err)
	}
	return f
}

// WaitLive waits until every node counts every other as live.
func (f *Fleet) WaitLive(wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for _, n := range f.Nodes {
		for len(n.LivePeers()) < len(f.Nodes) {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s sees %d live nodes, want %d", n.Info().Host,
					len(n.LivePeers()), len(f.Nodes))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// Node returns the node replaying host.
func (f *Fleet) Node(host string) *node.Node {
	for _, n := range f.Nodes {
		if n.Info().Host == host {
			return n
		}
	}
	return nil
}

// Answer is everything the issuer received for one task.
type Answer struct {
	Results      []*tasks.Result
	Completeness node.Completeness
}

// Detections returns every detection in the answer.
func (a *Answer) Detections() []tasks.Detection {
	var out []tasks.Detection
	for _, r := range a.Results {
		out = append(out, r.Detections...)
	}
	return out
}

// Hunt signs h with the fleet's key, sets its reply address and fleet
// size for the issuing node (host from), issues it there and waits up to
// wait for every live node to answer.
func (f *Fleet) Hunt(ctx context.Context, from string, h *tasks.Hunt,
	wait time.Duration) (*Answer, error) {
	n := f.Node(from)
	if n == nil {
		return nil, fmt.Errorf("no node for host %q", from)
	}
	expected := n.LivePeers()
	h.ReplyTo = n.ID()
	if h.Selector.FleetSize == 0 {
		h.Selector.FleetSize = len(expected)
	}
	raw, err := tasks.SealTask(f.Key, tasks.TypeHunt, h, tasks.DefaultPolicy().MaxSize)
	if err != nil {
		return nil, err
	}
	c, err := n.IssueTask(ctx, raw)
	if err != nil {
		return nil, err
	}
	a := &Answer{}
	a.Completeness = n.Await(ctx, c.Header.ID, expected, wait, func(r *tasks.Result) {
		a.Results = append(a.Results, r)
	})
	return a, nil
}

// LoadIntel imports intel files (STIX, MISP, CSV, YARA), signs them as
// intel updates with the fleet's key, issues them on the node of host
// from, and waits until every node holds the same set.
func (f *Fleet) LoadIntel(ctx context.Context, from string, wait time.Duration,
	files ...string) error {
	n := f.Node(from)
	if n == nil {
		return fmt.Errorf("no node for host %q", from)
	}
	clock := intel.NewClock(nil)
	origin := tasks.KeyID(f.Key.Public().(ed25519.PublicKey))
	var ops []tasks.IntelOp
	for _, p := range files {
		imp, err := intel.ImportFile(p, time.Now())
		if err != nil {
			return err
		}
		for _, ioc := range imp.IoCs {
			c := clock.Now()
			ops = append(ops, tasks.IntelOp{Op: tasks.IntelAdd, IoC: ioc, Origin: origin,
				Clock: tasks.IntelClock{Wall: c.Wall, Logical: c.Logical}})
		}
	}
	envs, err := tasks.SealIntel(f.Key, ops, tasks.DefaultPolicy().MaxSize,
		func() tasks.Header {
			now := time.Now().UTC()
			return tasks.Header{ID: tasks.NewID(now), IssuedAt: now,
				NotAfter: now.Add(tasks.IntelLifetime)}
		})
	if err != nil {
		return err
	}
	for _, raw := range envs {
		if _, _, err := n.IssueIntel(ctx, raw); err != nil {
			return fmt.Errorf("issue intel: %w", err)
		}
	}
	deadline := time.Now().Add(wait)
	for {
		same := true
		for _, o := range f.Nodes {
			same = same && o.IntelDigest() == n.IntelDigest()
		}
		if same {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("intel sets still differ after %s", wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
