package sim

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/huntmesh/huntmesh/node"
	"github.com/huntmesh/huntmesh/tasks"
)

// taskTTL is how long a simulated hunt stays valid: long enough for a
// partition to heal within it.
const taskTTL = 10 * time.Minute

// HuntOptions shape one measured hunt.
type HuntOptions struct {
	// From is the index of the issuing node.
	From int

	// Wait bounds how long answers are awaited.
	Wait time.Duration

	// ExpectDeparted adds the nodes that left to those expected to answer,
	// as an issuer whose membership view has not caught up with churn would:
	// they must be reported silent.
	ExpectDeparted bool

	// Hold keeps every node from running the hunt until the task reached
	// all running nodes (or HoldMax passed). On one machine, the nodes
	// already reached would otherwise collect, answer and dial the issuer
	// on the CPUs that forward the task to the rest, which on real hosts
	// are other machines' CPUs. Answers are then timed from the release.
	Hold    bool
	HoldMax time.Duration
}

// Hunt issues a hunt from one node and measures it until every running
// node has answered or Wait ends.
func (s *Sim) Hunt(ctx context.Context, opt HuntOptions) (*Report, error) {
	return s.run(ctx, opt, "hunt", s.sealHunt)
}

// sealHunt signs the sim's hunt with src as its reply-to.
func (s *Sim) sealHunt(src *Node) (string, []byte, error) {
	h := s.scen.hunt(src.ID(), taskTTL)
	raw, err := tasks.SealTask(s.analyst, tasks.TypeHunt, h, tasks.DefaultPolicy().MaxSize)
	if err != nil {
		return "", nil, fmt.Errorf("seal hunt: %w", err)
	}
	return h.ID, raw, nil
}

// run issues the task seal makes, holds the work if asked, and reports.
func (s *Sim) run(ctx context.Context, opt HuntOptions, kind string,
	seal func(src *Node) (string, []byte, error)) (*Report, error) {
	issued, err := s.issue(ctx, opt.From, opt.Wait, opt.ExpectDeparted, opt.Hold, seal)
	if err != nil {
		return nil, err
	}
	if opt.Hold {
		var others []*Node
		for _, n := range issued.up {
			if n != issued.from {
				others = append(others, n)
			}
		}
		waitDelivered(ctx, issued.id, others, cmp.Or(opt.HoldMax, 10*time.Second))
		issued.released = time.Now()
		s.release(issued.id)
	}
	rep := s.report(issued, issued.wait())
	rep.Kind = kind
	if kind == "query" {
		rep.Query = issued.queryReport()
	}
	return rep, nil
}

// issuedHunt is a hunt in flight and what was known when it left.
type issuedHunt struct {
	id       string
	at       time.Time
	released time.Time // when held work was let run; zero if not held
	from     *Node
	up       []*Node          // running nodes when issued
	before   map[*Node]counts // traffic when issued
	expected []node.PeerView

	done chan struct{}     // closed when Await returned
	comp node.Completeness // set before done is closed

	mu      sync.Mutex
	answers map[string]time.Time // node ID → final answer arrival
	rows    int                  // matching rows the final answers count
	groups  [][]tasks.Group      // stacking groups of every answer part
}

// issue seals a task with seal, publishes it from node from, and awaits
// answers in the background for at most wait.
func (s *Sim) issue(ctx context.Context, from int, wait time.Duration,
	expectDeparted, hold bool, seal func(src *Node) (string, []byte, error)) (*issuedHunt, error) {
	nodes := s.Nodes()
	if from < 0 || from >= len(nodes) || !nodes[from].Up() {
		return nil, fmt.Errorf("issue: node %d is not running", from)
	}
	src := nodes[from]
	id, raw, err := seal(src)
	if err != nil {
		return nil, err
	}
	ih := &issuedHunt{id: id, from: src, up: s.UpNodes(), before: map[*Node]counts{},
		answers: map[string]time.Time{}, done: make(chan struct{})}
	for _, n := range ih.up {
		ih.before[n] = n.traffic.snapshot()
	}
	for _, n := range nodes {
		if n.Up() || expectDeparted {
			ih.expected = append(ih.expected, node.PeerView{ID: n.ID(), Host: n.Name, Live: true})
		}
	}
	if err := s.linkTo(src, ih.up); err != nil {
		return nil, err
	}
	if hold {
		s.shut(id)
	}
	ih.at = time.Now()
	if _, err := src.node.IssueTask(ctx, raw); err != nil {
		return nil, fmt.Errorf("issue task: %w", err)
	}
	s.log.Info("task issued", "task", id, "from", src.Name, "expected", len(ih.expected))
	go func() {
		defer close(ih.done)
		ih.comp = ih.await(ctx, wait)
	}()
	return ih, nil
}

// wait returns the completeness once the background Await has returned.
func (ih *issuedHunt) wait() node.Completeness {
	<-ih.done
	return ih.comp
}

// await collects answers until every expected node answered or wait ends.
// Once every node that was running has answered, nodes that left are
// reported silent at once rather than at the end of wait.
func (ih *issuedHunt) await(ctx context.Context, wait time.Duration) node.Completeness {
	running := map[string]bool{}
	for _, n := range ih.up {
		running[n.ID()] = true
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	upAnswered := 0
	return ih.from.node.Await(ctx, ih.id, ih.expected, wait, func(r *tasks.Result) {
		now := time.Now()
		ih.mu.Lock()
		defer ih.mu.Unlock()
		if len(r.Groups) > 0 {
			ih.groups = append(ih.groups, r.Groups)
		}
		if !r.Final {
			return
		}
		if _, ok := ih.answers[r.Node]; !ok {
			ih.answers[r.Node] = now
			ih.rows += r.TotalRecords + r.TotalDetections
			if running[r.Node] {
				upAnswered++
			}
		}
		if upAnswered == len(running) {
			cancel()
		}
	})
}

// waitDelivered waits until every node in want has the task or until
// timeout, and returns how many have it.
func waitDelivered(ctx context.Context, id string, want []*Node, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		got := 0
		for _, n := range want {
			if _, ok := n.arrivedAt(id); ok {
				got++
			}
		}
		if got == len(want) || time.Now().After(deadline) || ctx.Err() != nil {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// delays returns, for each node in ns, how long after since the task
// arrived, and how many never got it.
func delays(id string, ns []*Node, since time.Time) (got []time.Duration, missed int) {
	for _, n := range ns {
		t, ok := n.arrivedAt(id)
		if !ok {
			missed++
			continue
		}
		got = append(got, max(t.Sub(since), 0))
	}
	return got, missed
}
