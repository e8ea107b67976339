package node

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Anti-entropy: a node pulls from a peer by sending its set digest. Equal
// digests end the round at once. Otherwise the peer lists its update IDs in
// pages, the node asks for the updates it neither holds nor refused, and
// accepts each one exactly as if it had come by gossip: signature, trust,
// role and content are checked again. Both ends of a new connection pull,
// and every node also pulls from one random connected peer on a timer, so
// a node that was offline or partitioned converges once it reconnects.

// Paging bounds of the sync protocol. A page of IDs is about 35 bytes an
// ID; a page of updates is capped in bytes below the mesh's 4 MiB stream
// limit, with room for the base64 of JSON.
const (
	syncIDsPerPage   = 50_000
	syncMaxIDsPerGet = 1_000
	syncMaxGetBytes  = 2 << 20
	syncMaxPages     = 100

	// syncMaxMissing bounds the IDs one round asks for, so that a peer
	// listing millions of IDs cannot make this node hold them all; the
	// next round fetches the rest.
	syncMaxMissing = 200_000
)

// syncRequest is one anti-entropy request.
type syncRequest struct {
	// Op is "ids" (list update IDs after After) or "get" (send IDs).
	Op     string   `json:"op"`
	Digest string   `json:"digest,omitempty"`
	After  string   `json:"after,omitempty"`
	IDs    []string `json:"ids,omitempty"`
}

// syncResponse answers a syncRequest.
type syncResponse struct {
	Digest    string   `json:"digest"`
	Equal     bool     `json:"equal,omitempty"`
	IDs       []string `json:"ids,omitempty"`
	More      bool     `json:"more,omitempty"`
	Envelopes [][]byte `json:"envelopes,omitempty"`
}

// serveSync answers a peer's anti-entropy request.
func (in *intelNode) serveSync(_ context.Context, from string, raw []byte) ([]byte, error) {
	var req syncRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		in.n.count("intel-sync/bad-request")
		return nil, fmt.Errorf("intel sync: bad request: %w", err)
	}
	resp := syncResponse{Digest: in.digest()}
	switch req.Op {
	case "ids":
		if req.Digest == resp.Digest {
			resp.Equal = true
			break
		}
		ids := in.heldIDs()
		i, _ := slices.BinarySearch(ids, req.After)
		for i < len(ids) && ids[i] <= req.After {
			i++
		}
		end := min(len(ids), i+syncIDsPerPage)
		resp.IDs, resp.More = ids[i:end], end < len(ids)
	case "nudge":
		// The peer learnt updates by a sync; pull them unless equal. A
		// peer nudging faster than nudgeEvery is not followed each time.
		if !in.nudgeDue(from) {
			in.n.count("intel-sync/nudge-dropped")
			break
		}
		if req.Digest != resp.Digest {
			in.goSync(from)
		}
	case "get":
		if len(req.IDs) > syncMaxIDsPerGet {
			return nil, fmt.Errorf("intel sync: %d ids asked, at most %d", len(req.IDs),
				syncMaxIDsPerGet)
		}
		size := 0
		for _, id := range req.IDs {
			if !in.holds(id) {
				continue
			}
			env, ok, err := in.n.store.GetMeta(metaIntelPrefix + id)
			if err != nil {
				return nil, fmt.Errorf("intel sync: read update: %w", err)
			}
			if !ok {
				continue
			}
			if size > 0 && size+len(env) > syncMaxGetBytes {
				break // the caller asks again for the rest
			}
			size += len(env)
			resp.Envelopes = append(resp.Envelopes, env)
		}
	default:
		return nil, fmt.Errorf("intel sync: unknown op %q", req.Op)
	}
	in.n.count("intel-sync/served")
	return json.Marshal(resp)
}

// heldIDs returns the IDs of the updates held, sorted.
func (in *intelNode) heldIDs() []string {
	in.mu.Lock()
	ids := slices.Clone(in.order)
	in.mu.Unlock()
	slices.Sort(ids)
	return ids
}

// call sends one sync request to peer.
func (in *intelNode) call(ctx context.Context, peer string, req syncRequest) (*syncResponse, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode sync request: %w", err)
	}
	out, err := in.n.mesh.Call(ctx, peer, ProtoIntelSync, b)
	if err != nil {
		return nil, err
	}
	var resp syncResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("decode sync response: %w", err)
	}
	return &resp, nil
}

// syncWith pulls from peer the updates this node lacks and returns how
// many it accepted.
func (in *intelNode) syncWith(ctx context.Context, peer string) (int, error) {
	start := time.Now()
	var missing []string
	after := ""
	for page := 0; ; page++ {
		if page == syncMaxPages {
			return 0, fmt.Errorf("intel sync: more than %d pages of ids", syncMaxPages)
		}
		resp, err := in.call(ctx, peer, syncRequest{Op: "ids", Digest: in.digest(), After: after})
		if err != nil {
			return 0, err
		}
		if resp.Equal {
			in.markSynced(peer)
			return 0, nil
		}
		for _, id := range resp.IDs {
			if len(id) <= 64 && !in.holds(id) && !in.isRefused(id) {
				missing = append(missing, id)
			}
		}
		if !resp.More || len(resp.IDs) == 0 || len(missing) >= syncMaxMissing {
			break
		}
		after = resp.IDs[len(resp.IDs)-1]
	}

	var accepted [][]byte
	for len(missing) > 0 {
		batch := missing[:min(len(missing), syncMaxIDsPerGet)]
		resp, err := in.call(ctx, peer, syncRequest{Op: "get", IDs: batch})
		if err != nil {
			in.spread(ctx, peer, accepted)
			return len(accepted), err
		}
		if len(resp.Envelopes) == 0 {
			break // the peer no longer has them
		}
		got := map[string]bool{}
		for _, env := range resp.Envelopes {
			id, changed, err := in.accept(env, peer)
			got[id] = true
			if err == nil && changed > 0 {
				accepted = append(accepted, env)
			}
		}
		// Keep asking for what this page did not carry.
		rest := missing[len(batch):]
		var again []string
		for _, id := range batch {
			if !got[id] && !in.holds(id) && !in.isRefused(id) {
				again = append(again, id)
			}
		}
		if len(again) == len(batch) {
			break // nothing of the batch came: stop rather than loop
		}
		missing = append(again, rest...)
	}
	in.markSynced(peer)
	in.n.count("intel-sync/rounds")
	if len(accepted) > 0 {
		in.log.Info("intel synced", "peer", shortID(peer), "updates", len(accepted),
			"digest", in.digest()[:16], "dur", time.Since(start).Round(time.Millisecond))
		in.spread(ctx, peer, accepted)
	}
	return len(accepted), nil
}

// spreadPublishMax is how many updates learnt by a sync are published
// again on gossip; past it, peers are asked to pull instead, which costs
// one round trip but no flood.
const spreadPublishMax = 64

// spread passes on what a sync with src brought: the rest of the mesh did
// not see it either (src was on the other side of the partition). A few
// updates are published on gossip; for more, every other connected peer
// is nudged to pull from this node.
func (in *intelNode) spread(ctx context.Context, src string, envs [][]byte) {
	if len(envs) == 0 {
		return
	}
	if len(envs) <= spreadPublishMax {
		for _, env := range envs {
			if err := in.n.mesh.Publish(ctx, TopicIntel, env); err != nil {
				in.log.Debug("republish intel update", "err", err)
			}
		}
		return
	}
	b, err := json.Marshal(syncRequest{Op: "nudge", Digest: in.digest()})
	if err != nil {
		return
	}
	for _, p := range in.n.mesh.Peers() {
		if !p.Connected || p.ID == src {
			continue
		}
		if _, err := in.n.mesh.Call(ctx, p.ID, ProtoIntelSync, b); err != nil {
			in.log.Debug("nudge intel sync", "peer", shortID(p.ID), "err", err)
		}
	}
}

// goSync pulls from peer in the background unless a pull from it runs.
func (in *intelNode) goSync(peer string) {
	in.mu.Lock()
	if in.syncing[peer] || in.n.ctx.Err() != nil {
		in.mu.Unlock()
		return
	}
	in.syncing[peer] = true
	in.n.wg.Add(1)
	in.mu.Unlock()
	go func() {
		defer in.n.wg.Done()
		defer func() {
			in.mu.Lock()
			delete(in.syncing, peer)
			in.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(in.n.ctx, 30*time.Second)
		defer cancel()
		if _, err := in.syncWith(ctx, peer); err != nil {
			in.log.Debug("intel sync on nudge", "peer", shortID(peer), "err", err)
		}
	}()
}

// nudgeEvery is the least time between two nudges of one peer that this
// node follows; a sync round takes longer than that anyway.
const nudgeEvery = 200 * time.Millisecond

// nudgeDue reports whether a nudge from peer is to be followed, and if so
// notes when.
func (in *intelNode) nudgeDue(peer string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := time.Now()
	if last, ok := in.nudged[peer]; ok && now.Sub(last) < nudgeEvery {
		return false
	}
	if len(in.nudged) >= maxNudgePeers {
		clear(in.nudged)
	}
	in.nudged[peer] = now
	return true
}

// maxNudgePeers bounds the memory of who nudged when.
const maxNudgePeers = 4096

func (in *intelNode) isRefused(id string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	_, ok := in.refused[id]
	return ok
}

func (in *intelNode) markSynced(peer string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.synced[peer] = time.Now()
}

// pullWith is intel sync as an anti-entropy pull (peerpull.go).
func (in *intelNode) pullWith(ctx context.Context, peer string) error {
	_, err := in.syncWith(ctx, peer)
	return err
}
