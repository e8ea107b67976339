package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

// storeBatch is how many records are written to the store at a time:
// large enough to amortise a sync, small enough to bound memory.
const storeBatch = 512

// rowsPerPart bounds the rows in one result message so that a part stays
// far below the results protocol's size cap.
const rowsPerPart = 500

// runHunt runs a hunt's collectors under the node's budget, matches every
// record as it is collected, stores records and detections, and returns
// the result parts to send.
func (n *Node) runHunt(ctx context.Context, h *tasks.Hunt, log *slog.Logger) []*tasks.Result {
	res := n.newResult(h.ID, tasks.StatusFinished, "")

	// The shared intel set, merged with the hunt's own IoCs; its YARA rules
	// go to YARA-scanning collectors that bring none.
	matcher, err := n.huntMatcher(h.IoCs)
	if err == nil {
		withRules := *h
		withRules.Collectors = withIntelRules(h.Collectors, matcher)
		h = &withRules
	}
	if err != nil {
		log.Warn("hunt refused", "reason", "iocs", "err", err)
		res.Status, res.Reason = tasks.StatusFailed, "compile iocs: "+summarizeErr(err)
		return []*tasks.Result{res}
	}
	if err := n.validateCollectors(h); err != nil {
		log.Warn("hunt refused", "reason", "collectors", "err", err)
		res.Status, res.Reason = tasks.StatusFailed, summarizeErr(err)
		return []*tasks.Result{res}
	}
	// Detection rules and chained rules (chain.go).
	adapt, err := n.newAdaptive(h, matcher, log)
	if err != nil {
		log.Warn("hunt refused", "reason", "rules", "err", err)
		res.Status, res.Reason = tasks.StatusFailed, summarizeErr(err)
		return []*tasks.Result{res}
	}

	maxRows := n.cfg.MaxRows
	if h.MaxRows > 0 && h.MaxRows < maxRows {
		maxRows = h.MaxRows
	}
	budget := n.cfg.Budget.Tighter(collectors.Budget(h.Budget))
	defer n.holdNice(h.ID, budget.Nice)() // a hunt may ask for a lower CPU priority
	root := n.cfg.Root
	if h.Root != "" {
		root = h.Root
	}

	var (
		batch   []tasks.Record
		records []tasks.Record
		dets    []tasks.Detection
		// found keys each detection by indicator and record, so that a
		// chained step collecting the same process again adds no copy.
		found = map[string]bool{}
	)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := n.store.PutRecords(h.ID, batch); err != nil {
			log.Error("store records", "err", err)
			res.Status, res.Reason = tasks.StatusFailed, "store records: "+summarizeErr(err)
		}
		batch = batch[:0]
	}

	// The hunt's own collectors, then each chained step as it triggers.
	for queue := plan(h.Collectors); len(queue) > 0; queue = append(queue[1:],
		adapt.take(h.NotAfter)...) {
		spec, step := queue[0].spec, queue[0].step
		c, _ := n.reg.Get(spec.Name)
		env := collectors.NewEnv(spec.Name, root, n.cfg.Host, budget, log, func(rec tasks.Record) error {
			res.TotalRecords++
			batch = append(batch, rec)
			hits := append(onePerIoC(matcher.Match(&rec)), adapt.detect(&rec, step)...)
			for _, d := range hits {
				key := d.IoCType + "\x00" + d.IoCValue + "\x00" + d.Field + "\x00" +
					d.Record.Kind + "\x00" + d.Record.Summary()
				if found[key] {
					continue
				}
				found[key] = true
				d.TaskID = h.ID
				adapt.observe(&d, step)
				res.TotalDetections++
				if len(dets) < maxRows {
					dets = append(dets, d)
				}
			}
			if h.ReturnRecords && len(records) < maxRows {
				records = append(records, rec)
			}
			if len(batch) >= storeBatch {
				flush()
			}
			return nil
		})
		env.Exclude = n.excludePaths()
		env.Blobs = n.store

		start := time.Now()
		err := collectors.Run(ctx, c, env, n.nodeParams(spec))
		flush()
		sum := env.Stats.Summary()
		cs := tasks.CollectorSummary{
			Name: queue[0].name(), Emitted: sum.Emitted, Skipped: sum.Skipped, Samples: sum.Samples,
			CutBy: sum.CutBy, Elapsed: time.Since(start),
		}
		if err != nil {
			cs.Error = summarizeErr(err)
			log.Warn("collector failed", "collector", spec.Name, "err", err)
		}
		res.Collectors = append(res.Collectors, cs)
		if ctx.Err() != nil {
			res.Status, res.Reason = tasks.StatusFailed, "stopped: "+ctx.Err().Error()
			break
		}
	}

	// A hunt whose every collector failed found nothing because it looked
	// at nothing: say so, rather than finish with an empty answer.
	failed := 0
	for _, cs := range res.Collectors {
		if cs.Error != "" {
			failed++
		}
	}
	if failed > 0 && failed == len(res.Collectors) && res.Status == tasks.StatusFinished {
		res.Status = tasks.StatusFailed
		res.Reason = "every collector failed, first: " + res.Collectors[0].Error
	}

	if err := n.store.PutDetections(h.ID, dets); err != nil {
		log.Error("store detections", "err", err)
		res.Status, res.Reason = tasks.StatusFailed, "store detections: "+summarizeErr(err)
	}
	// The digest lets two answers be compared without their rows.
	digest := sha256.New()
	for i := range dets {
		hashRow(digest, &dets[i].Record, &dets[i])
	}
	res.Digest = hex.EncodeToString(digest.Sum(nil))
	log.Info("hunt collected", "records", res.TotalRecords, "detections", res.TotalDetections)
	return splitResult(res, records, dets)
}

// onePerIoC keeps one detection per indicator for a record: a process
// named like an IoC matches through its name and its exe path alike, and a
// hunter wants one line for it, naming the first field that matched.
func onePerIoC(dets []tasks.Detection) []tasks.Detection {
	if len(dets) < 2 {
		return dets
	}
	out := dets[:0]
	seen := make(map[[2]string]bool, len(dets))
	for _, d := range dets {
		k := [2]string{d.IoCType, d.IoCValue}
		if !seen[k] {
			seen[k] = true
			out = append(out, d)
		}
	}
	return out
}

// validateCollectors refuses a hunt naming an unknown collector or giving
// one bad parameters, before anything runs.
func (n *Node) validateCollectors(h *tasks.Hunt) error {
	if len(h.Collectors) == 0 {
		return errorf("hunt names no collectors")
	}
	for _, spec := range h.Collectors {
		c, ok := n.reg.Get(spec.Name)
		if !ok {
			return errorf("unknown collector %q (known: %v)", spec.Name, n.reg.Names())
		}
		if err := c.Validate(spec.Params); err != nil {
			return errorf("collector %s: %v", spec.Name, err)
		}
	}
	return nil
}

// splitResult spreads rows over parts of at most rowsPerPart rows. The
// summary travels in the last part, which is Final.
func splitResult(res *tasks.Result, records []tasks.Record, dets []tasks.Detection) []*tasks.Result {
	var parts []*tasks.Result
	for len(dets) > 0 || len(records) > 0 {
		p := &tasks.Result{TaskID: res.TaskID, Node: res.Node, Host: res.Host,
			Labels: res.Labels, Status: tasks.StatusRunning}
		k := min(len(dets), rowsPerPart)
		p.Detections, dets = dets[:k], dets[k:]
		k = min(len(records), rowsPerPart-len(p.Detections))
		p.Records, records = records[:k], records[k:]
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return []*tasks.Result{res}
	}
	last := parts[len(parts)-1]
	last.Status, last.Reason = res.Status, res.Reason
	last.Collectors, last.Digest = res.Collectors, res.Digest
	last.TotalRecords, last.TotalDetections = res.TotalRecords, res.TotalDetections
	for _, p := range parts {
		p.TotalRecords, p.TotalDetections = res.TotalRecords, res.TotalDetections
	}
	return parts
}

// nodeParams adds what the node knows to a collector's parameters: its
// saved snapshots when it replays a host (unless the hunt named one), and
// its labels for the system collector. Values the hunt set win.
func (n *Node) nodeParams(spec tasks.CollectorSpec) json.RawMessage {
	var key string
	var val any
	switch {
	case spec.Name == "processes" && n.cfg.ReplayProcesses != "":
		key, val = "snapshot", n.cfg.ReplayProcesses
	case spec.Name == "connections" && n.cfg.ReplayConnections != "":
		key, val = "snapshot", n.cfg.ReplayConnections
	case spec.Name == "system" && len(n.cfg.Labels) > 0:
		key, val = "labels", n.cfg.Labels
	case spec.Name == "logs" && len(n.cfg.Logs) > 0:
		key, val = "sources", n.cfg.Logs
	default:
		return spec.Params
	}
	params := map[string]any{}
	if len(spec.Params) > 0 {
		if err := json.Unmarshal(spec.Params, &params); err != nil {
			// Validation already refused bad JSON; leave it as it is.
			return spec.Params
		}
	}
	if _, ok := params[key]; !ok {
		params[key] = val
	}
	out, err := json.Marshal(params)
	if err != nil {
		return spec.Params
	}
	return out
}

// excludePaths are the host paths no file collector may enter: the node's
// own data, whose stored evidence and intel match broad public rules.
func (n *Node) excludePaths() []string {
	return append([]string{n.cfg.DataDir}, n.cfg.Exclude...)
}
