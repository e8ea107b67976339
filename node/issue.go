package node

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// Completeness says how much of the fleet answered a task.
type Completeness struct {
	TaskID string `json:"task_id"`

	// Expected counts the nodes known live when the task was issued,
	// this one included.
	Expected int `json:"expected"`

	// Answered counts nodes that sent a final result, whatever its status.
	Answered int `json:"answered"`

	// ByStatus counts final results by status.
	ByStatus map[tasks.Status]int `json:"by_status"`

	// Silent names the expected nodes (by host, or ID when unknown) that
	// sent nothing before the wait ended.
	Silent []string `json:"silent,omitempty"`

	// Working names the expected nodes that sent a receipt (received or
	// running) but no final answer before the wait ended; ByStatus counts
	// them under their last receipt's status.
	Working []string `json:"working,omitempty"`

	// OwnOnly says the local node did not issue the task, so it holds its
	// own answer and no other node's (the issuer holds the fleet's).
	OwnOnly bool `json:"own_only,omitempty"`

	// Unexpected counts answers from nodes that were not in the live view
	// when the task was issued (they joined since, or were not yet seen).
	Unexpected int `json:"unexpected,omitempty"`
}

// Await collects results for a task this node issued until every node
// expected to answer has sent its final part or wait runs out, passing
// each part to fn as it arrives. Results that arrived before Await was
// called are read from the store first.
func (n *Node) Await(ctx context.Context, id string, expected []PeerView, wait time.Duration,
	fn func(*tasks.Result)) Completeness {
	ch, stop := n.watch(id)
	defer stop()

	comp := Completeness{TaskID: id, Expected: len(expected), ByStatus: map[tasks.Status]int{}}
	pending := map[string]string{} // node ID -> name
	for _, p := range expected {
		name := p.Host
		if name == "" {
			name = shortID(p.ID)
		}
		pending[p.ID] = name
	}
	seen := map[string]bool{}            // node ID+seq already handed on
	working := map[string]tasks.Status{} // node ID -> last receipt, until final

	take := func(r *tasks.Result) {
		if r.Receipt {
			if _, ok := pending[r.Node]; ok {
				working[r.Node] = r.Status
			}
			fn(r)
			return
		}
		key := r.Node + "/" + strconv.Itoa(r.Seq)
		if seen[key] {
			return
		}
		seen[key] = true
		fn(r)
		if !r.Final {
			return
		}
		comp.Answered++
		comp.ByStatus[r.Status]++
		if _, ok := pending[r.Node]; ok {
			delete(pending, r.Node)
		} else {
			comp.Unexpected++
		}
	}

	// Parts that arrived before we started watching are in the store, and
	// receipts in memory.
	for node, rc := range n.receiptsOf(id) {
		if _, ok := pending[node]; ok {
			working[node] = rc.status
		}
	}
	if stored, err := n.store.Results(id); err == nil {
		for i := range stored {
			take(&stored[i])
		}
	}

	timer := time.NewTimer(wait)
	defer timer.Stop()
	for len(pending) > 0 {
		select {
		case r := <-ch:
			take(r)
		case <-timer.C:
			pending = finishSilent(&comp, pending, working)
		case <-ctx.Done():
			pending = finishSilent(&comp, pending, working)
		}
	}
	sort.Strings(comp.Silent)
	sort.Strings(comp.Working)
	return comp
}

// finishSilent ends the wait: each node still pending is working when it
// sent a receipt, else silent.
func finishSilent(comp *Completeness, pending map[string]string,
	working map[string]tasks.Status) map[string]string {
	for id, name := range pending {
		if st, ok := working[id]; ok {
			comp.Working = append(comp.Working, name)
			comp.ByStatus[st]++
			continue
		}
		comp.Silent = append(comp.Silent, name)
	}
	return nil
}

// LivePeers returns the peers currently counted live plus this node: the
// nodes a task issued now is expected to reach.
func (n *Node) LivePeers() []PeerView {
	self := PeerView{ID: n.ID(), Host: n.cfg.Host, Labels: n.cfg.Labels, Live: true,
		Connected: true, LastSeen: time.Now()}
	out := []PeerView{self}
	for _, p := range n.Peers() {
		if p.Live {
			out = append(out, p)
		}
	}
	return out
}
