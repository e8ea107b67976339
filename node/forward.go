package node

import (
	"context"
	"fmt"
	"time"

	"github.com/huntmesh/huntmesh/store"
	"github.com/huntmesh/huntmesh/tasks"
)

// Forwarded hunts. A chained rule may carry a second hunt that the analyst
// signed together with the first (tasks.Chain.Forward). The issuing node
// records it as its own, so that the answers of the peers that run it are
// accepted; the node where the rule triggers publishes it on the task
// topic, where every node verifies it like any task. Replay protection
// makes it run once per node however many nodes trigger the rule.

// forwardPublishTimeout bounds one publish of a forwarded hunt.
const forwardPublishTimeout = 10 * time.Second

// checkForward verifies a forwarded hunt against the hunt that carries it.
func (n *Node) checkForward(outer tasks.Header, c *tasks.Chain) (*tasks.Checked, error) {
	fc, err := n.cfg.Policy.Check(c.Forward, n.trust, time.Now())
	if err != nil {
		return nil, fmt.Errorf("chain %s: forward: %w", c.Name, err)
	}
	if fc.Header.Type != tasks.TypeHunt || fc.Header.ReplyTo != outer.ReplyTo {
		return nil, fmt.Errorf("chain %s: forward must be a hunt replying to the same node",
			c.Name)
	}
	fh, err := tasks.DecodeHunt(fc.Envelope.Payload)
	if err != nil {
		return nil, fmt.Errorf("chain %s: forward: %w", c.Name, err)
	}
	for _, ch := range fh.Chains {
		if len(ch.Forward) > 0 {
			return nil, fmt.Errorf("chain %s: a forwarded hunt may not forward again", c.Name)
		}
	}
	return fc, nil
}

// keepForwards records the forwarded hunts of an issued hunt as issued
// here, so their answers are accepted.
func (n *Node) keepForwards(c *tasks.Checked) error {
	if c.Header.Type != tasks.TypeHunt {
		return nil
	}
	h, err := tasks.DecodeHunt(c.Envelope.Payload)
	if err != nil {
		return err
	}
	for i := range h.Chains {
		if len(h.Chains[i].Forward) == 0 {
			continue
		}
		fc, err := n.checkForward(h.Header, &h.Chains[i])
		if err != nil {
			return err
		}
		if err := n.store.PutTask(store.StoredTask{ID: fc.Header.ID, Type: fc.Header.Type,
			NotAfter: fc.Header.NotAfter, Envelope: h.Chains[i].Forward,
			Issued: true, Held: true}); err != nil {
			return fmt.Errorf("keep forwarded hunt: %w", err)
		}
	}
	return nil
}

// forward publishes a triggered rule's forwarded hunt, once per node.
func (a *adaptive) forward(c *tasks.Chain) {
	fc, err := a.n.checkForward(a.header, c)
	if err != nil {
		a.n.count("chain/forward-refused")
		a.log.Warn("forwarded hunt refused", "chain", c.Name, "err", err)
		return
	}
	fresh, err := a.n.store.MarkSeen(fc.Header.ID+"/forwarded", fc.Header.NotAfter)
	if err != nil {
		a.log.Error("mark forwarded hunt", "chain", c.Name, "err", err)
		return
	}
	if !fresh {
		return
	}
	// Another node where the rule triggered may have spread it already:
	// this node holds it then, and its own validator would refuse a replay.
	if seen, err := a.n.store.Seen(fc.Header.ID); err == nil && seen {
		a.n.count("chain/forward-spread")
		a.log.Debug("forwarded hunt already on the mesh", "chain", c.Name,
			"forward", fc.Header.ID)
		return
	}
	ctx, cancel := context.WithTimeout(a.n.ctx, forwardPublishTimeout)
	defer cancel()
	if err := a.n.mesh.Publish(ctx, TopicTasks, c.Forward); err != nil {
		a.n.count("chain/forward-failed")
		a.log.Warn("publish forwarded hunt", "chain", c.Name, "err", err)
		return
	}
	a.n.count("chain/forward")
	a.log.Info("forwarded hunt published", "chain", c.Name, "forward", fc.Header.ID)
}
