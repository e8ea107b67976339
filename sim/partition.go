package sim

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/huntmesh/huntmesh/intel"
	"github.com/huntmesh/huntmesh/tasks"
)

// PartitionOptions shape a hunt issued while part of the mesh is cut off.
type PartitionOptions struct {
	// From is the index of the issuing node; it stays on the majority side.
	From int

	// Fraction of the running nodes, chosen at random, cut off from the rest.
	Fraction float64

	// CutFor is how long the cut lasts after the hunt and an intel update
	// were issued: longer than gossipsub's few seconds of message history,
	// so that only catch-up can bring them across.
	CutFor time.Duration

	// CatchUp bounds the wait for the minority after the heal.
	CatchUp time.Duration

	// Wait bounds how long answers are awaited after the heal.
	Wait time.Duration

	// Settle is how long the mesh is left alone before the cut, so that a
	// run just before (answers dialling the issuer, the catch-up and
	// presence they set off) is over; zero is two heartbeats. A cut made
	// while that traffic is in flight was seen to leak the next task.
	Settle time.Duration
}

// PartitionHunt cuts a fraction of the nodes off, issues a hunt and an
// intel update on the majority side, heals the cut, and measures how soon
// the minority gets both. The hunt's report carries a Partition section.
func (s *Sim) PartitionHunt(ctx context.Context, opt PartitionOptions) (*Report, error) {
	up := s.UpNodes()
	nodes := s.Nodes()
	if opt.From < 0 || opt.From >= len(nodes) || !nodes[opt.From].Up() {
		return nil, fmt.Errorf("partition hunt: node %d is not running", opt.From)
	}
	if opt.Fraction <= 0 || opt.Fraction >= 1 {
		return nil, fmt.Errorf("partition hunt: fraction %g, want 0 < f < 1", opt.Fraction)
	}

	// Choose the minority at random among the nodes other than the issuer.
	src := nodes[opt.From]
	var others []int
	for _, n := range up {
		if n != src {
			others = append(others, n.Index)
		}
	}
	s.mu.Lock()
	s.rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	s.mu.Unlock()
	k := max(1, int(opt.Fraction*float64(len(up))+0.5))
	minorIdx := others[:min(k, len(others))]
	inMinor := map[int]bool{}
	var minority, majority []*Node
	for _, i := range minorIdx {
		inMinor[i] = true
		minority = append(minority, nodes[i])
	}
	var majorIdx []int
	for _, n := range up {
		if !inMinor[n.Index] {
			majorIdx = append(majorIdx, n.Index)
			if n != src {
				majority = append(majority, n)
			}
		}
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(cmp.Or(opt.Settle, 2*s.cfg.Heartbeat)):
	}
	if err := s.Partition([][]int{majorIdx, minorIdx}); err != nil {
		return nil, err
	}

	// Issue a hunt and an intel update while cut.
	ih, err := s.issue(ctx, opt.From, opt.CutFor+opt.CatchUp+opt.Wait, false, false, s.sealHunt)
	if err != nil {
		return nil, err
	}
	digest, err := s.issueIntel(ctx, src)
	if err != nil {
		return nil, err
	}
	waitDelivered(ctx, ih.id, majority, opt.CutFor)
	majorDelays, majorMissed := delays(ih.id, majority, ih.at)
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(time.Until(ih.at.Add(opt.CutFor))):
	}
	_, notYet := delays(ih.id, minority, ih.at)
	duringCut := len(minority) - notYet

	// Heal and time the minority's catch-up of the task and the intel.
	healed := time.Now()
	if err := s.Heal(); err != nil {
		return nil, err
	}
	if err := s.linkTo(src, s.UpNodes()); err != nil {
		return nil, err
	}
	intelAt := waitIntel(ctx, digest, minority, opt.CatchUp)
	waitDelivered(ctx, ih.id, minority, time.Until(healed.Add(opt.CatchUp)))
	minorDelays, minorMissed := delays(ih.id, minority, healed)
	var intelDelays []time.Duration
	for _, t := range intelAt {
		intelDelays = append(intelDelays, t.Sub(healed))
	}

	rep := s.report(ih, ih.wait())
	rep.Partition = &PartitionReport{
		Minority:   len(minority),
		Majority:   summarize(majorDelays, majorMissed),
		DuringCut:  duringCut,
		Healed:     summarize(minorDelays, minorMissed),
		Intel:      summarize(intelDelays, len(minority)-len(intelDelays)),
		IntelBound: Millis(3*s.cfg.Heartbeat + 2*s.cfg.Latency),
	}
	return rep, nil
}

// issueIntel publishes one new indicator from n and returns the intel
// digest the whole mesh should reach.
func (s *Sim) issueIntel(ctx context.Context, n *Node) (string, error) {
	c := intel.NewClock(nil).Now()
	op := tasks.IntelOp{
		Op:     tasks.IntelAdd,
		IoC:    tasks.IoC{Type: tasks.IoCIP, Value: "203.0.113.99", Severity: "high", Source: "sim"},
		Origin: tasks.KeyID(s.analystPub()),
		Clock:  tasks.IntelClock{Wall: c.Wall, Logical: c.Logical},
	}
	envs, err := tasks.SealIntel(s.analyst, []tasks.IntelOp{op}, tasks.DefaultPolicy().MaxSize,
		func() tasks.Header {
			now := time.Now().UTC()
			return tasks.Header{ID: tasks.NewID(now), IssuedAt: now,
				NotAfter: now.Add(tasks.IntelLifetime)}
		})
	if err != nil {
		return "", fmt.Errorf("seal intel: %w", err)
	}
	for _, raw := range envs {
		if _, _, err := n.node.IssueIntel(ctx, raw); err != nil {
			return "", fmt.Errorf("issue intel: %w", err)
		}
	}
	return n.node.IntelDigest(), nil
}

// waitIntel waits until every node in want holds digest or timeout ends,
// and returns when each got there.
func waitIntel(ctx context.Context, digest string, want []*Node,
	timeout time.Duration) map[*Node]time.Time {
	got := map[*Node]time.Time{}
	deadline := time.Now().Add(timeout)
	for len(got) < len(want) && time.Now().Before(deadline) && ctx.Err() == nil {
		for _, n := range want {
			if _, ok := got[n]; !ok && n.Up() && n.node.IntelDigest() == digest {
				got[n] = time.Now()
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return got
}
