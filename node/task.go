package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/mesh"
	"github.com/huntmesh/huntmesh/store"
	"github.com/huntmesh/huntmesh/tasks"
)

// validateTask is the task topic's gossip validator. It runs on every
// node a task passes through, so a bad task is stopped at the first hop
// and never spreads. Each refusal is logged once, with its reason.
func (n *Node) validateTask(from string, raw []byte) error {
	c, err := n.cfg.Policy.Check(raw, n.trust, time.Now())
	if err == nil {
		seen, serr := n.store.Seen(c.Header.ID)
		switch {
		case serr != nil:
			// A store we cannot read must not turn into a replay hole.
			err = fmt.Errorf("check seen tasks: %w", serr)
		case seen:
			err = fmt.Errorf("%w: %s", tasks.ErrReplay, c.Header.ID)
		}
	}
	if err != nil {
		reason := refusalReason(err)
		n.count("refused/" + reason)
		level := slog.LevelWarn
		if reason == "replay" {
			// A task this node already took, again: gossip after a heal
			// and catch-up bring those by the hundred, and they are
			// harmless; the counter still counts them.
			level = slog.LevelDebug
		}
		n.log.Log(n.ctx, level, "task refused", "peer", shortID(from), "reason", reason, "err", err)
		return err
	}
	return nil
}

// refusalReason names a refusal for counters and logs.
func refusalReason(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{
		{tasks.ErrTooLarge, "too-large"},
		{tasks.ErrBadSignature, "bad-signature"},
		{tasks.ErrUntrusted, "untrusted"},
		{tasks.ErrRole, "role"},
		{tasks.ErrExpired, "expired"},
		{tasks.ErrNotYetValid, "not-yet-valid"},
		{tasks.ErrLifetime, "lifetime"},
		{tasks.ErrReplay, "replay"},
		{tasks.ErrWrongType, "wrong-type"},
		{tasks.ErrMalformed, "malformed"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "other"
}

// handleTask takes a task that passed validation. It records the task as
// seen (only the first delivery acts), keeps it for catch-up, and starts it
// when this node is selected; otherwise it tells the issuer it declined.
func (n *Node) handleTask(from string, raw []byte) {
	c, err := n.cfg.Policy.Check(raw, n.trust, time.Now())
	if err != nil {
		// Validation passed moments ago; the window may have closed since.
		n.log.Debug("task no longer valid at delivery", "err", err)
		return
	}
	h := c.Header
	fresh, err := n.store.MarkSeen(h.ID, h.NotAfter)
	if err != nil {
		n.log.Error("record seen task", "task", h.ID, "err", err)
		return
	}
	if !fresh {
		n.count("duplicate")
		return
	}
	if n.cfg.Sim.OnTask != nil {
		n.cfg.Sim.OnTask(h.ID, h.Type)
	}
	if err := n.store.PutTask(store.StoredTask{
		ID: h.ID, Type: h.Type, NotAfter: h.NotAfter, Envelope: raw, Issued: h.ReplyTo == n.ID(),
	}); err != nil {
		n.log.Error("keep task", "task", h.ID, "err", err)
	}

	log := n.log.With("task", h.ID, "type", h.Type, "analyst", c.Signer.Name)
	if h.Type == tasks.TypeCancel {
		n.handleCancel(h, c, log) // cancel.go: every node obeys, whatever the selector
		return
	}
	selected, err := n.selects(h) // a count sample uses the membership view (sample.go)
	if err != nil || !selected {
		reason := "not selected by " + describeSelector(h.Selector)
		if err != nil {
			reason = err.Error()
		}
		log.Info("task declined", "reason", reason)
		n.sendResults(h, []*tasks.Result{n.newResult(h.ID, tasks.StatusDeclined, reason)})
		return
	}

	switch h.Type {
	case tasks.TypeQuery:
		n.startQuery(h, c, log) // query.go
	case tasks.TypeHunt:
		hunt, err := tasks.DecodeHunt(c.Envelope.Payload)
		if err != nil {
			log.Warn("task refused", "reason", "malformed", "err", err)
			n.sendResults(h, []*tasks.Result{n.newResult(h.ID, tasks.StatusFailed, err.Error())})
			return
		}
		n.startTask(h, log, func(ctx context.Context) []*tasks.Result {
			return n.runHunt(ctx, hunt, log)
		})
		n.scheduleRuns(hunt, log) // later runs of a recurring hunt (recur.go)
	default:
		log.Warn("task type not handled by this node version")
		n.sendResults(h, []*tasks.Result{
			n.newResult(h.ID, tasks.StatusDeclined, "task type "+h.Type+" not supported"),
		})
	}
}

func describeSelector(s tasks.Selector) string {
	out := s.Expr
	if out == "" {
		out = "all"
	}
	if s.Sample != "" {
		out += " sample " + s.Sample
	}
	return out
}

// startTask runs work in its own goroutine once a slot is free, bounded by
// the task's deadline and the node's life, and sends what it returns. A
// task that waits for a slot, or runs, longer than the receipt delay tells
// its issuer so with a signed receipt. A cancelled task still sends what it
// found, marked failed with the cancel's reason.
func (n *Node) startTask(h tasks.Header, log *slog.Logger, work func(context.Context) []*tasks.Result) {
	if reason, ok := n.cancelReason(h.ID); ok {
		n.sendResults(h, []*tasks.Result{n.newResult(h.ID, tasks.StatusFailed, reason)})
		return
	}
	ctx, cancel := context.WithDeadline(n.ctx, h.NotAfter)
	n.mu.Lock()
	n.running[h.ID] = cancel
	n.mu.Unlock()

	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() {
			cancel()
			n.mu.Lock()
			delete(n.running, h.ID)
			n.mu.Unlock()
		}()

		if n.cfg.Sim.BeforeRun != nil {
			n.cfg.Sim.BeforeRun(ctx, h.ID)
		}

		// Wait for a slot; say so if that takes a while.
		delay := cmp.Or(n.cfg.ReceiptDelay, time.Second)
		receipt := time.AfterFunc(delay, func() { n.sendReceipt(h, tasks.StatusReceived) })
		slots := n.slots
		if h.Type == tasks.TypeQuery {
			slots = n.querySlots
		}
		select {
		case slots <- struct{}{}:
			receipt.Stop()
			defer func() { <-slots }()
		case <-ctx.Done():
			receipt.Stop()
			reason := "deadline passed while waiting for a task slot"
			if r, ok := n.cancelReason(h.ID); ok {
				reason = r
			} else if n.ctx.Err() != nil {
				reason = interruptedByStop
			}
			n.sendResults(h, []*tasks.Result{n.newResult(h.ID, tasks.StatusFailed, reason)})
			return
		}

		// Run; say so if that takes a while.
		start := time.Now()
		receipt = time.AfterFunc(delay, func() { n.sendReceipt(h, tasks.StatusRunning) })
		results := work(ctx)
		receipt.Stop()
		if len(results) > 0 {
			last := results[len(results)-1]
			if reason, ok := n.cancelReason(h.ID); ok {
				last.Status, last.Reason = tasks.StatusFailed, reason
			} else if n.ctx.Err() != nil {
				last.Status, last.Reason = tasks.StatusFailed, interruptedByStop
			}
		}
		n.sendResults(h, results)
		log.Info("task finished", "dur", time.Since(start).Round(time.Millisecond))
		if h.Type == tasks.TypeHunt {
			// A hunt's buffers (file reads, YARA, record batches) are garbage
			// now: hand the memory back to the host instead of keeping the
			// high-water mark for minutes.
			debug.FreeOSMemory()
		}
	}()
}

// sendReceipt tells the issuer this node holds task h in state status.
func (n *Node) sendReceipt(h tasks.Header, status tasks.Status) {
	if h.ReplyTo == "" || n.ctx.Err() != nil {
		return
	}
	r := n.newResult(h.ID, status, "")
	r.Final, r.Receipt, r.SentAt = false, true, time.Now().UTC()
	raw, err := tasks.SealResult(n.key, r)
	if err != nil {
		n.log.Error("sign receipt", "task", h.ID, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	if _, err := n.mesh.Call(ctx, h.ReplyTo, ProtoResults, raw); err != nil {
		n.log.Debug("send receipt", "task", h.ID, "peer", shortID(h.ReplyTo), "err", err)
	}
}

// newResult starts a result of this node for task id.
func (n *Node) newResult(id string, status tasks.Status, reason string) *tasks.Result {
	return &tasks.Result{
		TaskID: id,
		Node:   n.ID(),
		Host:   n.cfg.Host,
		Labels: n.cfg.Labels,
		Status: status,
		Reason: reason,
		Final:  true,
	}
}

// sendResults keeps the node's own answer in its store, so it can be read
// later even if the issuer is gone, then signs it and delivers it to the
// issuer: whole when small, else as a summary the issuer pulls pages for
// (results.go).
func (n *Node) sendResults(h tasks.Header, parts []*tasks.Result) {
	for i, r := range parts {
		r.Seq = i
		r.Final = i == len(parts)-1
		r.SentAt = time.Now().UTC()
		if err := n.store.PutResult(*r); err != nil {
			n.log.Error("store own result", "task", h.ID, "err", err)
		}
	}
	if h.ReplyTo == "" {
		return
	}
	// A node that is stopping still has its mesh until its tasks return:
	// it gets a few seconds to say what it found before it went.
	parent, wait := n.ctx, 30*time.Second
	if n.ctx.Err() != nil {
		parent, wait = context.Background(), 3*time.Second
	}
	ctx, cancel := context.WithTimeout(parent, wait)
	defer cancel()
	n.deliver(ctx, h, parts)
}

// interruptedByStop is the reason of a task cut short by the node stopping.
const interruptedByStop = "interrupted: the node stopped during the task; " +
	"what it found so far is kept, and the task is not run again"

// handleResult receives a signed result part on the results protocol. It
// accepts only results signed by the node that sent them, for tasks this
// node issued.
func (n *Node) handleResult(_ context.Context, from string, raw []byte) ([]byte, error) {
	env, r, err := tasks.OpenResult(raw, resultMaxBytes)
	if err != nil {
		n.count("result-refused/malformed")
		n.log.Warn("result refused", "peer", shortID(from), "err", err)
		return nil, fmt.Errorf("refuse result: %w", err)
	}
	signer, err := mesh.PeerIDOf(env.Signer)
	if err != nil || signer != from || r.Node != from {
		n.count("result-refused/signer")
		n.log.Warn("result refused", "peer", shortID(from), "reason", "signer is not the sender")
		return nil, errors.New("refuse result: signer is not the sending node")
	}
	t, ok, err := n.store.Task(tasks.BaseID(r.TaskID)) // runs answer as ID/run/K
	if err != nil {
		return nil, fmt.Errorf("look up task: %w", err)
	}
	if !ok || !t.Issued {
		n.count("result-refused/not-ours")
		n.log.Warn("result refused", "peer", shortID(from), "task", r.TaskID,
			"reason", "task not issued by this node")
		return nil, fmt.Errorf("refuse result: task %s was not issued here", r.TaskID)
	}
	switch {
	case r.Receipt:
		if r.Final || len(r.Records)+len(r.Detections)+len(r.Groups) > 0 || r.Pages > 0 {
			n.count("result-refused/malformed")
			return nil, errors.New("refuse result: a receipt carries no rows and is not final")
		}
		n.keepReceipt(r)
		n.notify(r)
		return []byte("ok"), nil
	case r.Pages > 0:
		if !r.Final || r.Pages > maxPages || len(r.Records)+len(r.Detections)+len(r.Groups) > 0 {
			n.count("result-refused/malformed")
			return nil, fmt.Errorf("refuse result: a summary of %d pages must be final, "+
				"carry no rows and announce at most %d pages", r.Pages, maxPages)
		}
		n.pullPages(from, r) // results.go: pulls, stores and notifies each part
		return []byte("ok"), nil
	}
	if from != n.ID() {
		// Our own answer is already stored by sendResults.
		if err := n.store.PutResult(*r); err != nil {
			return nil, fmt.Errorf("store result: %w", err)
		}
	}
	n.notify(r)
	return []byte("ok"), nil
}

// notify hands a result to everyone watching its task.
func (n *Node) notify(r *tasks.Result) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ch := range n.watchers[r.TaskID] {
		select {
		case ch <- r:
		default:
			// A watcher that cannot keep up still finds the result in the store.
			n.counters["watch-dropped"]++
		}
	}
}

// watch registers a channel for results of task id; the returned func
// removes it.
func (n *Node) watch(id string) (<-chan *tasks.Result, func()) {
	ch := make(chan *tasks.Result, 1024)
	n.mu.Lock()
	n.watchers[id] = append(n.watchers[id], ch)
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		list := n.watchers[id]
		for i, c := range list {
			if c == ch {
				n.watchers[id] = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(n.watchers[id]) == 0 {
			delete(n.watchers, id)
		}
	}
}

// IssueTask publishes a task that an analyst signed. The node records it
// as its own first, so that results for it are accepted.
func (n *Node) IssueTask(ctx context.Context, raw []byte) (*tasks.Checked, error) {
	c, err := n.cfg.Policy.Check(raw, n.trust, time.Now())
	if err != nil {
		return nil, fmt.Errorf("refuse task: %w", err)
	}
	if c.Header.ReplyTo != n.ID() {
		return nil, fmt.Errorf("refuse task: reply_to %q is not this node", c.Header.ReplyTo)
	}
	// Forwarded hunts are checked and kept first: a refused hunt leaves
	// nothing recorded as issued.
	if err := n.keepForwards(c); err != nil { // chained hunts (forward.go)
		return nil, fmt.Errorf("refuse task: %w", err)
	}
	if err := n.store.PutTask(store.StoredTask{
		ID: c.Header.ID, Type: c.Header.Type, NotAfter: c.Header.NotAfter,
		Envelope: raw, Issued: true,
	}); err != nil {
		return nil, fmt.Errorf("keep task: %w", err)
	}
	if err := n.mesh.Publish(ctx, TopicTasks, raw); err != nil {
		return nil, fmt.Errorf("publish task: %w", err)
	}
	n.log.Info("task issued", "task", c.Header.ID, "type", c.Header.Type,
		"analyst", c.Signer.Name, "selector", describeSelector(c.Header.Selector))
	return c, nil
}

// summarizeErr shortens an error for a result's reason field.
func summarizeErr(err error) string {
	s := err.Error()
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return strings.TrimSpace(s)
}

// errorf builds a plain error; it keeps call sites short where no error is
// wrapped.
func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
