package tasks

import (
	"sort"
	"strconv"
	"strings"
)

// MatchesView is Matches for a node that knows its membership view: the
// other live nodes with their hosts and labels. For a sample given as a
// count it meets the count rather than approximating it: every node ranks
// the view's nodes that the expression selects by their draw (the hash of
// task ID and node ID) and runs the task when its own draw is among the
// count smallest. Nodes whose views agree agree on the chosen set, so no
// coordinator is needed; where views differ for a moment the count is met
// approximately. Nodes labelled value=high are kept as in Matches, and do
// not take a place of the count. With an empty view, or a percentage, it
// is Matches.
func (s Selector) MatchesView(taskID string, self NodeInfo, view []NodeInfo) (bool, error) {
	count, isCount := s.sampleCount()
	if !isCount || len(view) == 0 {
		return s.Matches(taskID, self)
	}
	if err := s.Validate(); err != nil {
		return false, err
	}
	e, err := parseSelector(s.Expr)
	if err != nil {
		return false, err
	}
	if !e.eval(self) {
		return false, nil
	}
	high := func(n NodeInfo) bool { return s.AlwaysHighValue && n.Labels["value"] == "high" }
	if high(self) {
		return true, nil
	}
	type cand struct {
		draw float64
		id   string
	}
	cands := []cand{{sampleDraw(taskID, self.ID), self.ID}}
	for _, n := range view {
		if n.ID == self.ID || !e.eval(n) || high(n) {
			continue
		}
		cands = append(cands, cand{sampleDraw(taskID, n.ID), n.ID})
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].draw != cands[j].draw {
			return cands[i].draw < cands[j].draw
		}
		return cands[i].id < cands[j].id
	})
	for i := 0; i < count && i < len(cands); i++ {
		if cands[i].id == self.ID {
			return true, nil
		}
	}
	return false, nil
}

// sampleCount returns the sample as a node count, when it is one.
func (s Selector) sampleCount() (int, bool) {
	v := strings.TrimSpace(s.Sample)
	if v == "" || strings.HasSuffix(v, "%") {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil && n >= 0
}
