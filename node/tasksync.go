package node

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/huntmesh/huntmesh/store"
	"github.com/huntmesh/huntmesh/tasks"
)

// Task catch-up. Hunts, queries and cancels stay active until their
// deadline. A node that was offline, partitioned or restarted when one was
// gossiped asks its peers for the IDs of their active tasks, on every new
// connection and on a timer, and pulls the envelopes it has not seen. Each
// pulled envelope goes through the same validator and handler as one that
// came by gossip, so it is verified again and runs once and only once: the
// seen mark in the store survives restarts.

// ProtoTaskSync is the protocol of task catch-up.
const ProtoTaskSync = "/huntmesh/tasksync/1"

// Bounds of the catch-up protocol: a peer lists at most taskSyncMaxIDs
// active tasks (the newest), and a get returns at most taskSyncMaxGet
// envelopes in at most taskSyncMaxBytes.
const (
	taskSyncMaxIDs   = 1000
	taskSyncMaxGet   = 64
	taskSyncMaxBytes = 2 << 20
)

// DefaultTaskSyncInterval is how often a node pulls active tasks from one
// random connected peer, besides on every new connection.
const DefaultTaskSyncInterval = 15 * time.Second

// taskSyncRequest is one catch-up request: op "active" lists the IDs of
// active tasks, op "get" asks for envelopes by ID.
type taskSyncRequest struct {
	Op  string   `json:"op"`
	IDs []string `json:"ids,omitempty"`
}

// taskSyncResponse answers a taskSyncRequest.
type taskSyncResponse struct {
	IDs       []string `json:"ids,omitempty"`
	Envelopes [][]byte `json:"envelopes,omitempty"`
}

// serveTaskSync answers a peer's catch-up request from the stored tasks.
func (n *Node) serveTaskSync(_ context.Context, from string, raw []byte) ([]byte, error) {
	var req taskSyncRequest
	if len(raw) > 128<<10 || json.Unmarshal(raw, &req) != nil {
		n.count("task-sync/bad-request")
		return nil, errors.New("task sync: bad request")
	}
	var resp taskSyncResponse
	switch req.Op {
	case "active":
		active, err := n.shareableTasks()
		if err != nil {
			return nil, fmt.Errorf("task sync: %w", err)
		}
		for _, t := range active {
			resp.IDs = append(resp.IDs, t.ID)
		}
	case "get":
		if len(req.IDs) > taskSyncMaxGet {
			n.count("task-sync/bad-request")
			return nil, fmt.Errorf("task sync: %d ids asked, at most %d", len(req.IDs),
				taskSyncMaxGet)
		}
		size := 0
		for _, id := range req.IDs {
			t, ok, err := n.store.Task(id)
			if err != nil || !ok || t.Held || !t.NotAfter.After(time.Now()) {
				continue
			}
			if size+len(t.Envelope) > taskSyncMaxBytes {
				break
			}
			size += len(t.Envelope)
			resp.Envelopes = append(resp.Envelopes, t.Envelope)
		}
	default:
		n.count("task-sync/bad-request")
		return nil, fmt.Errorf("task sync: unknown op %q", req.Op)
	}
	n.count("task-sync/served")
	return json.Marshal(resp)
}

// shareableTasks are the active tasks a peer may pull: not held, newest
// taskSyncMaxIDs of them.
func (n *Node) shareableTasks() ([]store.StoredTask, error) {
	active, err := n.store.ActiveTasks(time.Now())
	if err != nil {
		return nil, err
	}
	active = slices.DeleteFunc(active, func(t store.StoredTask) bool { return t.Held })
	if len(active) > taskSyncMaxIDs {
		active = active[len(active)-taskSyncMaxIDs:]
	}
	return active, nil
}

// callTaskSync sends one catch-up request to peer.
func (n *Node) callTaskSync(ctx context.Context, peer string,
	req taskSyncRequest) (*taskSyncResponse, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode task sync request: %w", err)
	}
	out, err := n.mesh.Call(ctx, peer, ProtoTaskSync, b)
	if err != nil {
		return nil, err
	}
	var resp taskSyncResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("decode task sync response: %w", err)
	}
	if len(resp.IDs) > taskSyncMaxIDs || len(resp.Envelopes) > taskSyncMaxGet {
		return nil, fmt.Errorf("task sync: peer sent %d ids and %d envelopes, over the bounds",
			len(resp.IDs), len(resp.Envelopes))
	}
	return &resp, nil
}

// catchUp pulls from peer the active tasks this node has not seen and
// handles each as if it had come by gossip. Cancels are handled first, so
// a task cancelled while this node was away never starts here. It returns
// how many tasks it took.
func (n *Node) catchUp(ctx context.Context, peer string) (int, error) {
	resp, err := n.callTaskSync(ctx, peer, taskSyncRequest{Op: "active"})
	if err != nil {
		return 0, err
	}
	var missing []string
	for _, id := range resp.IDs {
		if len(id) > 64 || tasks.CheckID(id) != nil {
			continue
		}
		if seen, err := n.store.Seen(id); err == nil && !seen {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return 0, nil
	}

	var envs [][]byte
	for len(missing) > 0 {
		batch := missing[:min(len(missing), taskSyncMaxGet)]
		missing = missing[len(batch):]
		got, err := n.callTaskSync(ctx, peer, taskSyncRequest{Op: "get", IDs: batch})
		if err != nil {
			return 0, err
		}
		envs = append(envs, got.Envelopes...)
	}

	// Cancels first, then the rest in issue order.
	type pulled struct {
		raw    []byte
		cancel bool
		id     string
	}
	var ps []pulled
	for _, raw := range envs {
		env, err := tasks.Open(raw, n.cfg.Policy.MaxSize)
		if err != nil {
			n.count("task-sync/malformed")
			continue
		}
		var h tasks.Header
		if json.Unmarshal(env.Payload, &h) != nil {
			n.count("task-sync/malformed")
			continue
		}
		ps = append(ps, pulled{raw: raw, cancel: env.Type == tasks.TypeCancel, id: h.ID})
	}
	slices.SortStableFunc(ps, func(a, b pulled) int {
		if a.cancel != b.cancel {
			if a.cancel {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.id, b.id)
	})
	took := 0
	for _, p := range ps {
		if err := n.validateTask(peer, p.raw); err != nil {
			continue // counted and logged by the validator
		}
		n.handleTask(peer, p.raw)
		took++
	}
	if took > 0 {
		n.count("task-sync/caught-up")
		n.log.Info("tasks caught up", "peer", shortID(peer), "tasks", took)
	}
	return took, nil
}

// pullTasks is catch-up as an anti-entropy pull (peerpull.go).
func (n *Node) pullTasks(ctx context.Context, peer string) error {
	_, err := n.catchUp(ctx, peer)
	return err
}

// reportInterrupted runs at start: a task this node took before it stopped
// and never finished is not run again (its seen mark stands), but its
// issuer is told it failed, so the answer is not mistaken for silence.
func (n *Node) reportInterrupted() {
	active, err := n.store.ActiveTasks(time.Now())
	if err != nil {
		n.log.Error("look for interrupted tasks", "err", err)
		return
	}
	for _, t := range active {
		if t.Held || t.Type == tasks.TypeCancel {
			continue
		}
		if seen, err := n.store.Seen(t.ID); err != nil || !seen {
			continue
		}
		rs, err := n.store.Results(t.ID)
		if err != nil {
			continue
		}
		answered := slices.ContainsFunc(rs, func(r tasks.Result) bool {
			return r.Node == n.ID() && r.Final
		})
		if answered {
			continue
		}
		h, ok := n.storedHeader(t.ID)
		if !ok {
			continue
		}
		n.count("task/interrupted")
		n.log.Warn("task interrupted by a restart, not run again", "task", t.ID)
		res := n.newResult(t.ID, tasks.StatusFailed,
			"interrupted: the node stopped during the task; it is not run twice")
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.sendResults(h, []*tasks.Result{res})
		}()
	}
}
