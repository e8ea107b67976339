package node

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// StatusSilent is the outcome shown for a live node that sent nothing for
// a task: not a status any node sends.
const StatusSilent tasks.Status = "silent"

// NodeOutcome is one node's outcome for one task, as the local node knows
// it: from the node's final answer (signed, stored), from its last receipt,
// or silent.
type NodeOutcome struct {
	Node   string       `json:"node"`
	Host   string       `json:"host"`
	Status tasks.Status `json:"status"`
	Reason string       `json:"reason,omitempty"`

	// Records, Detections and Digest are those of a final answer.
	Records    int    `json:"records,omitempty"`
	Detections int    `json:"detections,omitempty"`
	Digest     string `json:"digest,omitempty"`

	// At is when the node sent its answer or receipt.
	At time.Time `json:"at,omitzero"`
}

// TaskStatus is what the local node knows of one task, per node.
type TaskStatus struct {
	TaskID   string    `json:"task_id"`
	Type     string    `json:"type"`
	Analyst  string    `json:"analyst,omitempty"`
	Selector string    `json:"selector"`
	IssuedAt time.Time `json:"issued_at"`
	NotAfter time.Time `json:"not_after"`

	// Issued says this node issued the task; only then does it hear from
	// other nodes, and only then are live nodes with no word silent.
	Issued bool `json:"issued"`

	// Active says the deadline has not passed.
	Active bool `json:"active"`

	Nodes  []NodeOutcome        `json:"nodes"`
	Counts map[tasks.Status]int `json:"counts"`
}

// TaskStatus reports the outcome of task id on every node this node heard
// from, and, for a task it issued, the live nodes that stayed silent.
func (n *Node) TaskStatus(id string) (*TaskStatus, error) {
	t, ok, err := n.store.Task(id)
	if err != nil {
		return nil, fmt.Errorf("task status: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("task status: no task %s on this node", id)
	}
	h, _ := n.storedHeader(id)
	st := &TaskStatus{TaskID: id, Type: t.Type, Analyst: h.Analyst,
		Selector: describeSelector(h.Selector), IssuedAt: h.IssuedAt, NotAfter: t.NotAfter,
		Issued: t.Issued, Active: time.Now().Before(t.NotAfter),
		Counts: map[tasks.Status]int{}}

	rs, err := n.store.Results(id)
	if err != nil {
		return nil, fmt.Errorf("task status: %w", err)
	}
	byNode := map[string]NodeOutcome{}
	for _, r := range rs {
		if !r.Final {
			continue
		}
		byNode[r.Node] = NodeOutcome{Node: r.Node, Host: r.Host, Status: r.Status,
			Reason: r.Reason, Records: r.TotalRecords, Detections: r.TotalDetections,
			Digest: r.Digest, At: r.SentAt}
	}
	for node, rc := range n.receiptsOf(id) {
		if _, done := byNode[node]; !done {
			byNode[node] = NodeOutcome{Node: node, Host: rc.host, Status: rc.status, At: rc.at}
		}
	}
	if t.Issued {
		for _, p := range n.LivePeers() {
			if _, ok := byNode[p.ID]; !ok {
				byNode[p.ID] = NodeOutcome{Node: p.ID, Host: p.Host, Status: StatusSilent}
			}
		}
	}

	for _, o := range byNode {
		st.Nodes = append(st.Nodes, o)
		st.Counts[o.Status]++
	}
	slices.SortFunc(st.Nodes, func(a, b NodeOutcome) int {
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Node, b.Node))
	})
	return st, nil
}
