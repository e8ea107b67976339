package node

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// Cancels. A signed cancel (hunt role) reaches every node like any task,
// and every node obeys it whatever the cancel's selector: it stops the
// runs of the target that are going, keeps later runs of a recurring hunt
// from starting, and marks the target seen so that neither gossip nor
// catch-up can start it afterwards. Each node answers the cancel itself
// with what it stopped, so the analyst sees how far the cancel reached.

// cancelMark remembers a cancelled task until its deadline.
type cancelMark struct {
	reason string
	until  time.Time
}

// maxCancelMarks bounds the cancel marks held at once; the oldest
// deadlines go first past it.
const maxCancelMarks = 10_000

// handleCancel obeys a cancel that passed validation.
func (n *Node) handleCancel(h tasks.Header, c *tasks.Checked, log *slog.Logger) {
	cn, err := tasks.DecodeCancel(c.Envelope.Payload)
	if err != nil {
		log.Warn("task refused", "reason", "malformed", "err", err)
		n.sendResults(h, []*tasks.Result{n.newResult(h.ID, tasks.StatusFailed, err.Error())})
		return
	}
	target := tasks.BaseID(cn.Target)

	// The mark lasts as long as the target can still arrive.
	until := h.NotAfter
	if th, ok := n.storedHeader(target); ok && th.NotAfter.After(until) {
		until = th.NotAfter
	}
	reason := "cancelled by " + c.Signer.Name
	n.mu.Lock()
	n.pruneCancelsLocked(time.Now())
	n.cancelled[target] = cancelMark{reason: reason, until: until}
	stopped := 0
	for id, stop := range n.running {
		if tasks.BaseID(id) == target {
			stop()
			stopped++
		}
	}
	n.mu.Unlock()

	fresh, err := n.store.MarkSeen(target, until)
	if err != nil {
		log.Error("mark cancelled task seen", "target", target, "err", err)
	}
	n.count("cancel/obeyed")
	log.Info("task cancelled", "target", target, "stopped_runs", stopped, "before_start", fresh)

	what := fmt.Sprintf("stopped %d running run(s) of %s", stopped, target)
	switch {
	case fresh:
		what = target + " had not reached this node; it will not start"
	case stopped == 0:
		what = target + " was not running here; no later run will start"
	}
	n.sendResults(h, []*tasks.Result{n.newResult(h.ID, tasks.StatusFinished, what)})
}

// cancelReason says whether the task (or the recurring hunt a run belongs
// to) was cancelled, and by whom.
func (n *Node) cancelReason(id string) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	m, ok := n.cancelled[tasks.BaseID(id)]
	return m.reason, ok
}

// pruneCancelsLocked drops marks past their deadline, and the oldest past
// maxCancelMarks. n.mu must be held.
func (n *Node) pruneCancelsLocked(now time.Time) {
	for id, m := range n.cancelled {
		if now.After(m.until) {
			delete(n.cancelled, id)
		}
	}
	for len(n.cancelled) >= maxCancelMarks {
		var oldest string
		for id, m := range n.cancelled {
			if oldest == "" || m.until.Before(n.cancelled[oldest].until) {
				oldest = id
			}
		}
		delete(n.cancelled, oldest)
	}
}

// receipt is the last progress note a node sent for a task issued here.
type receipt struct {
	status tasks.Status
	host   string
	at     time.Time
}

// Bounds of the receipts kept for status views: tasks, and nodes per task.
const (
	maxReceiptTasks = 1000
	maxReceiptNodes = 100_000
	receiptKeep     = 24 * time.Hour
)

// keepReceipt records a node's receipt for the task status view.
func (n *Node) keepReceipt(r *tasks.Result) {
	n.mu.Lock()
	defer n.mu.Unlock()
	byNode := n.receipts[r.TaskID]
	if byNode == nil {
		if len(n.receipts) >= maxReceiptTasks {
			n.pruneReceiptsLocked()
		}
		byNode = map[string]receipt{}
		n.receipts[r.TaskID] = byNode
	}
	if len(byNode) >= maxReceiptNodes {
		return
	}
	byNode[r.Node] = receipt{status: r.Status, host: r.Host, at: time.Now()}
}

// pruneReceiptsLocked drops the receipts of tasks whose last receipt is
// older than receiptKeep, or, if none is, of one task. n.mu must be held.
func (n *Node) pruneReceiptsLocked() {
	cut := time.Now().Add(-receiptKeep)
	var any string
	for id, byNode := range n.receipts {
		any = id
		newest := time.Time{}
		for _, rc := range byNode {
			if rc.at.After(newest) {
				newest = rc.at
			}
		}
		if newest.Before(cut) {
			delete(n.receipts, id)
		}
	}
	if len(n.receipts) >= maxReceiptTasks {
		delete(n.receipts, any)
	}
}

// receiptsOf copies the receipts held for a task.
func (n *Node) receiptsOf(id string) map[string]receipt {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]receipt, len(n.receipts[id]))
	for k, v := range n.receipts[id] {
		out[k] = v
	}
	return out
}
