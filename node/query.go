package node

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/store"
	"github.com/huntmesh/huntmesh/tasks"
)

// maxGroups bounds the stacking groups one node keeps for one query: past
// it, further rows of new groups are counted in one overflow group.
const maxGroups = 50_000

// queryConcurrency is how many queries a node evaluates at once, apart
// from its hunts; more wait their turn.
const queryConcurrency = 4

// overflowKey is the key of the group that absorbs rows past maxGroups.
const overflowKey = "\x00overflow"

// QueryLocal evaluates q over this node's stored records (or detections)
// and calls fn for each matching row, in event-time order, until q's
// limit. It runs in the caller's goroutine; fn returning an error ends it.
// It is what every node runs for a fleet query, without the answer.
func (n *Node) QueryLocal(ctx context.Context, q *tasks.Query,
	fn func(rec *tasks.Record, det *tasks.Detection) error) error {
	cq, err := CompileQuery(q.Expr, q.GroupBy, q.Detections)
	if err != nil {
		return err
	}
	_, err = n.scanQuery(ctx, cq, q, func(rec *tasks.Record, det *tasks.Detection) error {
		return fn(rec, det)
	})
	return err
}

// scanQuery walks the store over q's time range and calls fn with each
// row the compiled query matches, up to q.Limit rows (no cap when zero).
// It returns the number of matching rows handed to fn.
func (n *Node) scanQuery(ctx context.Context, cq *CompiledQuery, q *tasks.Query,
	fn func(rec *tasks.Record, det *tasks.Detection) error) (int, error) {
	f := store.Filter{Since: q.Since, Until: q.Until, Kind: cq.kind, Host: cq.host}
	matched := 0
	visit := func(rec *tasks.Record, det *tasks.Detection) error {
		ok, _, err := cq.Match(rec, det)
		if errors.Is(err, errRecordEval) {
			cq.noteEvalError(err)
			return nil
		}
		if err != nil || !ok {
			return err
		}
		matched++
		if err := fn(rec, det); err != nil {
			return err
		}
		if q.Limit > 0 && matched >= q.Limit {
			return store.ErrStop
		}
		return nil
	}
	var err error
	if q.Detections {
		err = n.store.Detections(ctx, f, func(d tasks.Detection) error {
			return visit(&d.Record, &d)
		})
	} else {
		err = n.store.Records(ctx, f, func(r tasks.Record) error {
			return visit(&r, nil)
		})
	}
	return matched, err
}

// runQuery answers a query on this node: rows when it has no group-by,
// partial stacking groups when it has. Every answer carries the count of
// matching rows and a digest over them.
func (n *Node) runQuery(ctx context.Context, q *tasks.Query, log *slog.Logger) []*tasks.Result {
	res := n.newResult(q.ID, tasks.StatusFinished, "")
	start := time.Now()
	cq, err := CompileQuery(q.Expr, q.GroupBy, q.Detections)
	if err != nil {
		log.Warn("query refused", "reason", "compile", "err", err)
		res.Status, res.Reason = tasks.StatusFailed, summarizeErr(err)
		return []*tasks.Result{res}
	}

	// A query with no group-by returns rows, capped by the node too.
	limit := n.cfg.MaxRows
	if q.Limit > 0 && (limit <= 0 || q.Limit < limit) {
		limit = q.Limit
	}
	lq := *q
	lq.Limit = limit
	if len(q.GroupBy) > 0 {
		lq.Limit = 0 // stacking counts every row
	}

	var (
		records []tasks.Record
		dets    []tasks.Detection
		groups  = newGroupSet()
		digest  = sha256.New()
	)
	matched, err := n.scanQuery(ctx, cq, &lq, func(rec *tasks.Record, det *tasks.Detection) error {
		hashRow(digest, rec, det)
		switch {
		case len(q.GroupBy) > 0:
			groups.add(cq.GroupKey(rec, det), 1, []string{rec.Host})
		case det != nil:
			dets = append(dets, *det)
		default:
			records = append(records, *rec)
		}
		return nil
	})
	res.TotalRecords = matched
	if q.Detections {
		res.TotalRecords, res.TotalDetections = 0, matched
	}
	res.Digest = hex.EncodeToString(digest.Sum(nil))
	if cq.evalErrors > 0 {
		res.Reason = fmt.Sprintf("%d records could not be evaluated and did not match, first: %s",
			cq.evalErrors, summarizeErr(cq.firstEvalErr))
	}
	if len(q.GroupBy) == 0 && limit > 0 && matched >= limit {
		res.Reason = strings.TrimPrefix(res.Reason+fmt.Sprintf("; stopped at the row cap of %d: "+
			"more rows may match (narrow the query, or --group-by to count them all)", limit), "; ")
	}
	switch {
	case errors.Is(err, ErrCostLimit):
		log.Warn("query stopped", "reason", "cost-limit", "err", err)
		res.Status, res.Reason = tasks.StatusFailed, "cost limit: "+summarizeErr(err)
	case err != nil && ctx.Err() != nil:
		res.Status, res.Reason = tasks.StatusFailed, "stopped: "+ctx.Err().Error()
	case err != nil:
		log.Error("query failed", "err", err)
		res.Status, res.Reason = tasks.StatusFailed, summarizeErr(err)
	}
	log.Info("query evaluated", "rows", matched, "groups", groups.len(),
		"dur", time.Since(start).Round(time.Millisecond))
	return pageResult(res, records, dets, groups.sorted())
}

// hashRow feeds a row's identity into the answer's digest.
func hashRow(h hash.Hash, rec *tasks.Record, det *tasks.Detection) {
	b, _ := json.Marshal(rec)
	h.Write(b)
	if det != nil {
		h.Write([]byte(det.IoCType + "\x00" + det.IoCValue + "\x00" + det.Field))
	}
	h.Write([]byte{'\n'})
}

// pageBytes is the target encoded size of one result part: far below the
// stream cap, and small enough that one page is cheap to retry.
const pageBytes = 256 << 10

// pageResult spreads rows and groups over parts of about pageBytes each.
// The last part is Final and carries the summary.
func pageResult(res *tasks.Result, records []tasks.Record, dets []tasks.Detection,
	groups []tasks.Group) []*tasks.Result {
	var parts []*tasks.Result
	cur, size := (*tasks.Result)(nil), 0
	next := func(n int) {
		if cur == nil || size+n > pageBytes {
			cur = &tasks.Result{TaskID: res.TaskID, Node: res.Node, Host: res.Host,
				Labels: res.Labels, Status: tasks.StatusRunning}
			parts = append(parts, cur)
			size = 0
		}
		size += n
	}
	for i := range records {
		next(jsonSize(&records[i]))
		cur.Records = append(cur.Records, records[i])
	}
	for i := range dets {
		next(jsonSize(&dets[i]))
		cur.Detections = append(cur.Detections, dets[i])
	}
	for i := range groups {
		next(jsonSize(&groups[i]))
		cur.Groups = append(cur.Groups, groups[i])
	}
	if len(parts) == 0 {
		return []*tasks.Result{res}
	}
	for _, p := range parts {
		p.TotalRecords, p.TotalDetections = res.TotalRecords, res.TotalDetections
	}
	last := parts[len(parts)-1]
	last.Status, last.Reason, last.Digest = res.Status, res.Reason, res.Digest
	return parts
}

func jsonSize(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return 0
	}
	return len(b) + 1
}

// groupSet accumulates stacking groups by key.
type groupSet struct {
	byKey map[string]*groupAcc
}

type groupAcc struct {
	key   []string
	count int
	hosts map[string]bool
}

func newGroupSet() *groupSet { return &groupSet{byKey: map[string]*groupAcc{}} }

func (s *groupSet) len() int { return len(s.byKey) }

// add counts rows under key seen on hosts.
func (s *groupSet) add(key []string, count int, hosts []string) {
	k := strings.Join(key, "\x00")
	g, ok := s.byKey[k]
	if !ok {
		if len(s.byKey) >= maxGroups {
			k, key = overflowKey, []string{"(other groups)"}
			g = s.byKey[k]
		}
		if g == nil {
			g = &groupAcc{key: slices.Clone(key), hosts: map[string]bool{}}
			s.byKey[k] = g
		}
	}
	g.count += count
	for _, h := range hosts {
		g.hosts[h] = true
	}
}

// sorted returns the groups least frequent first: fewest hosts, then
// fewest rows, then by key, which is the order a hunter stacks in.
func (s *groupSet) sorted() []tasks.Group {
	out := make([]tasks.Group, 0, len(s.byKey))
	for _, g := range s.byKey {
		hosts := make([]string, 0, len(g.hosts))
		for h := range g.hosts {
			hosts = append(hosts, h)
		}
		slices.Sort(hosts)
		out = append(out, tasks.Group{Key: g.key, Count: g.count, Hosts: hosts})
	}
	slices.SortFunc(out, func(a, b tasks.Group) int {
		return cmp.Or(cmp.Compare(len(a.Hosts), len(b.Hosts)), cmp.Compare(a.Count, b.Count),
			slices.Compare(a.Key, b.Key))
	})
	return out
}

// MergeGroups merges partial stacking groups from several nodes: counts
// add up and hosts unite. The result is least frequent first.
func MergeGroups(parts ...[]tasks.Group) []tasks.Group {
	s := newGroupSet()
	for _, gs := range parts {
		for _, g := range gs {
			s.add(g.Key, g.Count, g.Hosts)
		}
	}
	return s.sorted()
}

// QueryAnswer is what a fleet query gathered on the issuing node.
type QueryAnswer struct {
	Completeness Completeness `json:"completeness"`

	// Groups are the merged stacking groups, least frequent first.
	Groups []tasks.Group `json:"groups,omitempty"`
}

// RunQuery issues a signed query envelope to the mesh through this node
// and waits up to wait (or the query's deadline) for the nodes that were
// live, passing each result part to fn as it arrives (rows stream; fn may
// be nil). It returns the completeness and the merged stacking groups.
// Other node features (timeline, risk) build fleet views on it.
func (n *Node) RunQuery(ctx context.Context, raw []byte, wait time.Duration,
	fn func(*tasks.Result)) (*QueryAnswer, error) {
	c, err := n.cfg.Policy.Check(raw, n.trust, time.Now())
	if err != nil {
		return nil, fmt.Errorf("refuse query: %w", err)
	}
	if c.Header.Type != tasks.TypeQuery {
		return nil, fmt.Errorf("refuse query: envelope holds a %s", c.Header.Type)
	}
	q, err := tasks.DecodeQuery(c.Envelope.Payload)
	if err != nil {
		return nil, fmt.Errorf("refuse query: %w", err)
	}
	if _, err := CompileQuery(q.Expr, q.GroupBy, q.Detections); err != nil {
		return nil, err
	}
	expected := n.LivePeers()
	if _, err := n.IssueTask(ctx, raw); err != nil {
		return nil, err
	}
	return n.awaitQuery(ctx, q, expected, wait, fn), nil
}

// awaitQuery waits for a query's answers and merges their groups.
func (n *Node) awaitQuery(ctx context.Context, q *tasks.Query, expected []PeerView,
	wait time.Duration, fn func(*tasks.Result)) *QueryAnswer {
	if d := time.Until(q.NotAfter); d < wait || wait <= 0 {
		wait = d
	}
	var parts [][]tasks.Group
	comp := n.Await(ctx, q.ID, expected, wait, func(r *tasks.Result) {
		if len(r.Groups) > 0 {
			parts = append(parts, r.Groups)
		}
		if fn != nil {
			fn(r)
		}
	})
	return &QueryAnswer{Completeness: comp, Groups: MergeGroups(parts...)}
}

// startQuery decodes a selected query and runs it in a task slot.
func (n *Node) startQuery(h tasks.Header, c *tasks.Checked, log *slog.Logger) {
	q, err := tasks.DecodeQuery(c.Envelope.Payload)
	if err != nil {
		log.Warn("task refused", "reason", "malformed", "err", err)
		n.sendResults(h, []*tasks.Result{n.newResult(h.ID, tasks.StatusFailed, err.Error())})
		return
	}
	n.startTask(h, log, func(ctx context.Context) []*tasks.Result {
		return n.runQuery(ctx, q, log)
	})
}
