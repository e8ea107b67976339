package node

import "github.com/huntmesh/huntmesh/tasks"

// selects decides whether this node acts on task h. A sample given as a
// count is met with the node's membership view (its live peers with what
// they announced): see tasks.Selector.MatchesView.
func (n *Node) selects(h tasks.Header) (bool, error) {
	live := n.LivePeers()
	view := make([]tasks.NodeInfo, 0, len(live))
	for _, p := range live {
		view = append(view, tasks.NodeInfo{ID: p.ID, Host: p.Host, Labels: p.Labels})
	}
	return h.Selector.MatchesView(h.ID, n.Info(), view)
}
