package tasks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Limits on a query, so that a signed query cannot ask a node for an
// unbounded answer.
const (
	// MaxQueryExpr bounds the CEL expression's length in bytes.
	MaxQueryExpr = 4096

	// MaxGroupBy bounds the fields a query stacks by.
	MaxGroupBy = 8
)

// Query asks nodes to evaluate a CEL expression over their stored records
// (or detections) and answer with the matching rows, or with per-group
// counts when GroupBy is set.
type Query struct {
	Header

	// Expr is a CEL expression over one record that yields a bool; the
	// fields are those of collectors/schema.go plus kind, host, time,
	// collector and source.
	Expr string `json:"expr"`

	// Since (inclusive) and Until (exclusive) bound the event time; zero
	// values do not bound.
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`

	// Limit caps the rows one node returns; zero leaves the node's cap.
	Limit int `json:"limit,omitempty"`

	// GroupBy stacks matching rows by these fields: nodes answer with a
	// count and the distinct hosts per group instead of rows.
	GroupBy []string `json:"group_by,omitempty"`

	// Detections makes the query run over stored detections; the
	// detection's ioc_type, ioc_value, severity, tags and field are
	// declared besides its record's fields.
	Detections bool `json:"detections,omitempty"`
}

// Cancel asks every node to stop running a task and to drop it if it has
// not started. It is signed like any task and needs the hunt role.
type Cancel struct {
	Header

	// Target is the ID of the task to stop.
	Target string `json:"target"`
}

// Group is one stacking group of a query answer: the values of the
// GroupBy fields, how many rows had them, and on which hosts. Nodes send
// partial groups; the querier merges them by Key.
type Group struct {
	Key   []string `json:"key"`
	Count int      `json:"count"`
	Hosts []string `json:"hosts"`
}

// DecodeQuery decodes the payload of a checked query, refusing unknown
// fields and checking its bounds.
func DecodeQuery(payload []byte) (*Query, error) {
	var q Query
	if err := decodeStrict(payload, &q); err != nil {
		return nil, fmt.Errorf("%w: decode query: %w", ErrMalformed, err)
	}
	if q.Type != TypeQuery {
		return nil, fmt.Errorf("%w: payload is a %s, not a query", ErrWrongType, q.Type)
	}
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return &q, nil
}

// Validate checks the query's own fields (not the expression's meaning,
// which needs the CEL environment).
func (q *Query) Validate() error {
	switch {
	case q.Expr == "":
		return fmt.Errorf("query %s: expression is empty", q.ID)
	case len(q.Expr) > MaxQueryExpr:
		return fmt.Errorf("query %s: expression of %d bytes, at most %d", q.ID, len(q.Expr),
			MaxQueryExpr)
	case len(q.GroupBy) > MaxGroupBy:
		return fmt.Errorf("query %s: %d group-by fields, at most %d", q.ID, len(q.GroupBy),
			MaxGroupBy)
	case q.Limit < 0:
		return fmt.Errorf("query %s: negative limit %d", q.ID, q.Limit)
	case !q.Until.IsZero() && !q.Until.After(q.Since):
		return fmt.Errorf("query %s: until is not after since", q.ID)
	}
	return nil
}

// DecodeCancel decodes the payload of a checked cancel.
func DecodeCancel(payload []byte) (*Cancel, error) {
	var c Cancel
	if err := decodeStrict(payload, &c); err != nil {
		return nil, fmt.Errorf("%w: decode cancel: %w", ErrMalformed, err)
	}
	if c.Type != TypeCancel {
		return nil, fmt.Errorf("%w: payload is a %s, not a cancel", ErrWrongType, c.Type)
	}
	if len(c.Target) > 64 || CheckID(c.Target) != nil {
		return nil, fmt.Errorf("%w: cancel %s: target %.64q is not a task ID",
			ErrMalformed, c.ID, c.Target)
	}
	return &c, nil
}

func decodeStrict(payload []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
