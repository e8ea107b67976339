package sim

import (
	"context"
	"fmt"
	"time"

	"github.com/huntmesh/huntmesh/node"
	"github.com/huntmesh/huntmesh/tasks"
)

// QueryOptions shape one measured query: where it leaves from and how its
// answers are awaited are those of a hunt.
type QueryOptions struct {
	HuntOptions

	// Expr is the CEL expression every node evaluates over its stored
	// records (see node.CompileQuery).
	Expr string

	// GroupBy stacks the matching rows by these fields; nodes then answer
	// with counts per group, merged at the issuer.
	GroupBy []string

	// Detections runs the query over stored detections instead of records.
	Detections bool

	// Limit caps the rows each node returns; zero leaves the node's cap.
	Limit int
}

// Query issues a signed query from one node and measures its delivery
// and answers as Hunt does. The report's Query section has the rows
// counted and the groups merged.
func (s *Sim) Query(ctx context.Context, opt QueryOptions) (*Report, error) {
	// Refuse a bad expression here, with its reason, rather than as many
	// failed answers.
	if _, err := node.CompileQuery(opt.Expr, opt.GroupBy, opt.Detections); err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	rep, err := s.run(ctx, opt.HuntOptions, "query", func(src *Node) (string, []byte, error) {
		now := time.Now().UTC()
		q := &tasks.Query{
			Header: tasks.Header{ID: tasks.NewID(now), Type: tasks.TypeQuery, IssuedAt: now,
				NotAfter: now.Add(taskTTL), ReplyTo: src.ID()},
			Expr: opt.Expr, GroupBy: opt.GroupBy, Detections: opt.Detections, Limit: opt.Limit,
		}
		if err := q.Validate(); err != nil {
			return "", nil, fmt.Errorf("query: %w", err)
		}
		raw, err := tasks.SealTask(s.analyst, tasks.TypeQuery, q, tasks.DefaultPolicy().MaxSize)
		if err != nil {
			return "", nil, fmt.Errorf("seal query: %w", err)
		}
		return q.ID, raw, nil
	})
	if err != nil {
		return nil, err
	}
	rep.Query.Expr, rep.Query.GroupBy = opt.Expr, opt.GroupBy
	return rep, nil
}

// QueryReport is what a query's answers held.
type QueryReport struct {
	Expr    string   `json:"expr"`
	GroupBy []string `json:"group_by,omitempty"`
	// Rows counts the matching rows (or detections) of every final answer.
	Rows int `json:"rows"`
	// Groups counts the stacking groups after the issuer merged them, and
	// Rarest holds the least frequent few.
	Groups int           `json:"groups"`
	Rarest []tasks.Group `json:"rarest,omitempty"`
}

// rarestGroups is how many merged groups a query report shows.
const rarestGroups = 5

// queryReport merges the groups of the answers collected so far.
func (ih *issuedHunt) queryReport() *QueryReport {
	ih.mu.Lock()
	defer ih.mu.Unlock()
	merged := node.MergeGroups(ih.groups...)
	qr := &QueryReport{Rows: ih.rows, Groups: len(merged)}
	qr.Rarest = merged[:min(len(merged), rarestGroups)]
	return qr
}
