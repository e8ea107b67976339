package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/huntmesh/huntmesh/mesh"
	"github.com/huntmesh/huntmesh/tasks"
)

// ProtoPage is the protocol on which an issuer pulls the parts of a big
// answer from the node that holds them.
const ProtoPage = "/huntmesh/page/1"

// maxPages bounds the parts an issuer pulls for one node's answer, and
// maxPulledBytes their signed bytes together: far above what a node's row
// cap lets an honest answer be, far below what would hurt the issuer.
const (
	maxPages       = 4096
	maxPulledBytes = 256 << 20
)

// pageRequest asks for one stored part of this node's answer.
type pageRequest struct {
	TaskID string `json:"task_id"`
	Seq    int    `json:"seq"`
}

// deliver sends a node's answer to the issuer: a small one whole, a big
// one as a summary (no rows, Pages set) that makes the issuer pull each
// part over ProtoPage. The parts are already stored by sendResults.
func (n *Node) deliver(ctx context.Context, h tasks.Header, parts []*tasks.Result) {
	if len(parts) == 0 {
		return
	}
	send := func(r *tasks.Result) bool {
		raw, err := tasks.SealResult(n.key, r)
		if err != nil {
			n.log.Error("sign result", "task", h.ID, "err", err)
			return false
		}
		// The largest answer pushed whole is one part within the message
		// size of the node's policy (64 KiB by default, as for tasks);
		// anything bigger is announced by a summary and pulled.
		if len(parts) == 1 && len(raw) > n.cfg.Policy.MaxSize && r.Pages == 0 {
			return false
		}
		if _, err := n.mesh.Call(ctx, h.ReplyTo, ProtoResults, raw); err != nil {
			n.log.Warn("send result", "task", h.ID, "peer", shortID(h.ReplyTo), "err", err)
		}
		return true
	}
	if len(parts) == 1 && send(parts[0]) {
		return
	}
	sum := *parts[len(parts)-1]
	sum.Records, sum.Detections, sum.Groups = nil, nil, nil
	sum.Seq, sum.Final, sum.Pages = len(parts), true, len(parts)
	send(&sum)
}

// servePage answers an issuer's pull of one part of this node's answer.
// Only the task's issuer may pull it.
func (n *Node) servePage(_ context.Context, from string, raw []byte) ([]byte, error) {
	var req pageRequest
	if len(raw) > 1024 || json.Unmarshal(raw, &req) != nil || req.TaskID == "" {
		n.count("page/bad-request")
		return nil, errors.New("page: bad request")
	}
	h, ok := n.storedHeader(req.TaskID)
	if !ok || h.ReplyTo != from {
		n.count("page/refused")
		return nil, fmt.Errorf("page: task %s was not issued by the caller", req.TaskID)
	}
	rs, err := n.store.Results(req.TaskID)
	if err != nil {
		return nil, fmt.Errorf("page: %w", err)
	}
	for i := range rs {
		if rs[i].Node == n.ID() && rs[i].Seq == req.Seq {
			n.count("page/served")
			return tasks.SealResult(n.key, &rs[i])
		}
	}
	return nil, fmt.Errorf("page: no part %d of task %s", req.Seq, req.TaskID)
}

// pullPages fetches the parts a summary announces, stores them and hands
// them to watchers in order; the last part is Final. A part that cannot
// be pulled ends the answer as failed, so the issuer never waits on it.
func (n *Node) pullPages(from string, sum *tasks.Result) {
	// One pull per answer at a time: a repeated summary is ignored.
	key := sum.TaskID + "\x00" + from
	n.mu.Lock()
	if n.pulls[key] {
		n.mu.Unlock()
		n.count("page/duplicate-summary")
		return
	}
	n.pulls[key] = true
	n.mu.Unlock()

	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() {
			n.mu.Lock()
			delete(n.pulls, key)
			n.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(n.ctx, 2*time.Minute)
		defer cancel()
		pages := min(sum.Pages, maxPages)
		total := 0
		for seq := range pages {
			r, size, err := n.pullPage(ctx, from, sum.TaskID, seq)
			if total += size; err == nil && total > maxPulledBytes {
				err = fmt.Errorf("answer over %d MiB", maxPulledBytes>>20)
			}
			if err != nil {
				n.count("page/pull-failed")
				n.log.Warn("pull result page", "task", sum.TaskID, "peer", shortID(from),
					"err", err)
				failed := *sum
				failed.Seq, failed.Pages, failed.Final = seq, 0, true
				failed.Status, failed.Reason = tasks.StatusFailed, "pull answer: "+summarizeErr(err)
				r = &failed
			}
			r.Final = r.Final || seq == pages-1
			if err := n.store.PutResult(*r); err != nil {
				n.log.Error("store result", "task", sum.TaskID, "err", err)
			}
			n.notify(r)
			if r.Final {
				return
			}
		}
	}()
}

// pullPage fetches and verifies one part, and says how many bytes came.
func (n *Node) pullPage(ctx context.Context, from, taskID string,
	seq int) (*tasks.Result, int, error) {
	req, _ := json.Marshal(pageRequest{TaskID: taskID, Seq: seq})
	raw, err := n.mesh.Call(ctx, from, ProtoPage, req)
	if err != nil {
		return nil, 0, err
	}
	env, r, err := tasks.OpenResult(raw, resultMaxBytes)
	if err != nil {
		return nil, len(raw), err
	}
	signer, err := mesh.PeerIDOf(env.Signer)
	switch {
	case err != nil || signer != from || r.Node != from:
		return nil, len(raw), errors.New("page signed by another node")
	case r.TaskID != taskID || r.Seq != seq:
		return nil, len(raw), fmt.Errorf("asked part %d of %s, got %d of %s", seq, taskID,
			r.Seq, r.TaskID)
	case r.Receipt || r.Pages > 0:
		return nil, len(raw), fmt.Errorf("part %d of %s is a receipt or a summary", seq, taskID)
	}
	return r, len(raw), nil
}

// storedHeader returns the header of a stored task.
func (n *Node) storedHeader(id string) (tasks.Header, bool) {
	var h tasks.Header
	t, ok, err := n.store.Task(id)
	if err != nil || !ok {
		return h, false
	}
	env, err := tasks.Open(t.Envelope, 0)
	if err != nil || json.Unmarshal(env.Payload, &h) != nil {
		return h, false
	}
	return h, true
}
