package tasks

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// Selector decides which nodes act on a task.
//
// Expr is a boolean expression over terms, with "," or "and" for AND, "or"
// for OR, "not" for negation and parentheses for grouping:
//
//	all
//	role=web
//	role=web,site=dc1
//	(role=web or role=app) and not site=lab
//	host=web-01 or node=12D3KooW...
//
// A term is "all", "label=value", "label!=value", "host=NAME" or
// "node=PEERID". The empty expression means all.
//
// Sample, when set, then keeps only a share of the selected nodes: "10%"
// or a count such as "5". Each node decides for itself from a hash of the
// task ID and its own ID, so no coordinator is needed; a count is turned
// into a share of FleetSize, which the issuer fills in from its membership
// view. Nodes labelled value=high are kept whatever the sample when
// AlwaysHighValue is set.
type Selector struct {
	Expr            string `json:"expr,omitempty"`
	Sample          string `json:"sample,omitempty"`
	FleetSize       int    `json:"fleet_size,omitempty"`
	AlwaysHighValue bool   `json:"always_high_value,omitempty"`
}

// NodeInfo is what a selector is evaluated against.
type NodeInfo struct {
	ID     string
	Host   string
	Labels map[string]string
}

// Validate parses the selector and reports the first problem.
func (s Selector) Validate() error {
	if _, err := parseSelector(s.Expr); err != nil {
		return err
	}
	if s.Sample != "" {
		if _, err := s.sampleShare(); err != nil {
			return err
		}
	}
	return nil
}

// Matches reports whether the node described by n is selected for the task
// with ID taskID.
func (s Selector) Matches(taskID string, n NodeInfo) (bool, error) {
	e, err := parseSelector(s.Expr)
	if err != nil {
		return false, err
	}
	if !e.eval(n) {
		return false, nil
	}
	if s.Sample == "" {
		return true, nil
	}
	if s.AlwaysHighValue && n.Labels["value"] == "high" {
		return true, nil
	}
	share, err := s.sampleShare()
	if err != nil {
		return false, err
	}
	return sampleDraw(taskID, n.ID) < share, nil
}

// sampleShare turns Sample into a fraction in [0, 1].
func (s Selector) sampleShare() (float64, error) {
	v := strings.TrimSpace(s.Sample)
	if pct, ok := strings.CutSuffix(v, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
		if err != nil || f < 0 || f > 100 {
			return 0, fmt.Errorf("selector sample %q: want a percentage from 0%% to 100%%",
				s.Sample)
		}
		return f / 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("selector sample %q: want a percentage or a node count", s.Sample)
	}
	if s.FleetSize <= 0 {
		return 0, fmt.Errorf("selector sample %q: a count needs the fleet size", s.Sample)
	}
	if n > s.FleetSize {
		return 0, fmt.Errorf("selector sample %d is larger than the fleet of %d nodes", n,
			s.FleetSize)
	}
	return float64(n) / float64(s.FleetSize), nil
}

// sampleDraw maps (task, node) to a uniform number in [0, 1).
func sampleDraw(taskID, nodeID string) float64 {
	sum := sha256.Sum256([]byte(taskID + "\x00" + nodeID))
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / float64(1<<53)
}

// selExpr is a parsed selector expression.
type selExpr struct {
	op       string // "and", "or", "not", "term"
	kids     []*selExpr
	key, val string
	negate   bool // for "!=" terms
}

func (e *selExpr) eval(n NodeInfo) bool {
	switch e.op {
	case "and":
		for _, k := range e.kids {
			if !k.eval(n) {
				return false
			}
		}
		return true
	case "or":
		for _, k := range e.kids {
			if k.eval(n) {
				return true
			}
		}
		return false
	case "not":
		return !e.kids[0].eval(n)
	}
	var hit bool
	switch e.key {
	case "all":
		return true
	case "host":
		hit = strings.EqualFold(n.Host, e.val)
	case "node":
		hit = n.ID == e.val
	default:
		hit = n.Labels[e.key] == e.val
	}
	return hit != e.negate
}

// parseSelector parses expr; see Selector for the grammar.
func parseSelector(expr string) (*selExpr, error) {
	toks := tokenizeSelector(expr)
	if len(toks) == 0 {
		return &selExpr{op: "term", key: "all"}, nil
	}
	p := &selParser{toks: toks}
	e, err := p.or()
	if err != nil {
		return nil, fmt.Errorf("selector %q: %w", expr, err)
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("selector %q: unexpected %q", expr, p.toks[p.pos])
	}
	return e, nil
}

func tokenizeSelector(s string) []string {
	var toks []string
	cur := strings.Builder{}
	flush := func() {
		if cur.Len() > 0 {
			toks = append(toks, cur.String())
			cur.Reset()
		}
	}
	for _, r := range s {
		switch r {
		case ' ', '\t', '\n':
			flush()
		case '(', ')', ',':
			flush()
			toks = append(toks, string(r))
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	return toks
}

type selParser struct {
	toks []string
	pos  int
}

func (p *selParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *selParser) or() (*selExpr, error) {
	left, err := p.and()
	if err != nil {
		return nil, err
	}
	kids := []*selExpr{left}
	for strings.EqualFold(p.peek(), "or") {
		p.pos++
		right, err := p.and()
		if err != nil {
			return nil, err
		}
		kids = append(kids, right)
	}
	if len(kids) == 1 {
		return left, nil
	}
	return &selExpr{op: "or", kids: kids}, nil
}

func (p *selParser) and() (*selExpr, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	kids := []*selExpr{left}
	for t := p.peek(); t == "," || strings.EqualFold(t, "and"); t = p.peek() {
		p.pos++
		right, err := p.unary()
		if err != nil {
			return nil, err
		}
		kids = append(kids, right)
	}
	if len(kids) == 1 {
		return left, nil
	}
	return &selExpr{op: "and", kids: kids}, nil
}

func (p *selParser) unary() (*selExpr, error) {
	t := p.peek()
	switch {
	case t == "":
		return nil, fmt.Errorf("expression ends early")
	case strings.EqualFold(t, "not"):
		p.pos++
		k, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &selExpr{op: "not", kids: []*selExpr{k}}, nil
	case t == "(":
		p.pos++
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, fmt.Errorf("missing )")
		}
		p.pos++
		return e, nil
	}
	p.pos++
	return parseTerm(t)
}

func parseTerm(t string) (*selExpr, error) {
	if strings.EqualFold(t, "all") {
		return &selExpr{op: "term", key: "all"}, nil
	}
	if k, v, ok := strings.Cut(t, "!="); ok {
		if k == "" || v == "" {
			return nil, fmt.Errorf("term %q: want label!=value", t)
		}
		return &selExpr{op: "term", key: k, val: v, negate: true}, nil
	}
	k, v, ok := strings.Cut(t, "=")
	if !ok || k == "" || v == "" {
		return nil, fmt.Errorf("term %q: want all, label=value, host=NAME or node=ID", t)
	}
	return &selExpr{op: "term", key: k, val: v}, nil
}
