package tasks

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Limits on chained rules, so that a signed hunt cannot ask for an
// unbounded cascade.
const (
	// MaxChains bounds the chained rules one hunt carries.
	MaxChains = 32

	// MaxChainDepth bounds how many chained steps may follow one another
	// on a node: a detection found by a chained step may trigger another
	// rule only while the depth stays within this bound.
	MaxChainDepth = 4

	// DefaultChainDepth is used when a rule gives no depth.
	DefaultChainDepth = 2
)

// Rule is a detection rule: a CEL condition over one record that, when
// true, makes the record a detection named after the rule (IoCType
// "rule", IoCValue Name).
type Rule struct {
	Name     string   `json:"name"`
	Expr     string   `json:"expr"`
	Severity string   `json:"severity,omitempty"`
	Tags     []string `json:"tags,omitempty"`
}

// Chain is a chained rule: when a detection matching When appears on a
// node during the hunt that carries the chain, the node runs Collect
// there at once, matching the new records against the hunt's indicators,
// its rules, and indicators derived from the triggering record. The chain
// is signed with the hunt, so it can only ask for what the analyst wrote.
type Chain struct {
	// Name identifies the rule in results, tags ("chain:NAME") and logs.
	Name string `json:"name"`

	// When says which detections trigger the rule.
	When ChainWhen `json:"when"`

	// Collect are the follow-up collectors.
	Collect []CollectorSpec `json:"collect"`

	// Derive turns fields of the triggering record into indicators for
	// the follow-up: {"from": "process_exe", "as": "cmdline"} finds the
	// persistence entry that starts the process that triggered.
	Derive []Derive `json:"derive,omitempty"`

	// Forward, when set, is a second hunt the analyst signed with this one
	// (a sealed envelope, replying to the same issuer): the node where the
	// rule triggers publishes it, so the peers it selects run it too. It is
	// verified by every node like any task, and its ID makes it run at most
	// once per node however many nodes trigger. A forwarded hunt may not
	// forward again.
	Forward []byte `json:"forward,omitempty"`

	// MaxDepth is the deepest step at which the rule may run: 1 means only
	// on detections of the hunt's own collectors, 2 also on those of a
	// step they triggered, and so on; 0 means DefaultChainDepth.
	MaxDepth int `json:"max_depth,omitempty"`

	// PerMinute caps how often one node runs this rule across hunts;
	// 0 means 6 runs a minute.
	PerMinute int `json:"per_minute,omitempty"`
}

// ChainWhen selects triggering detections. Every non-empty field must
// hold (a list holds when any element matches).
type ChainWhen struct {
	// Tags match the indicator's tags ("actor:CryptoMinersGroup", T1496).
	Tags []string `json:"tags,omitempty"`

	// IoCTypes match the indicator type ("ip", "port", "yara", "rule").
	IoCTypes []string `json:"ioc_types,omitempty"`

	// Collectors match the collector that produced the record.
	Collectors []string `json:"collectors,omitempty"`

	// Kinds match the record kind.
	Kinds []string `json:"kinds,omitempty"`

	// Severity is the lowest severity that triggers: low, medium, high
	// or critical.
	Severity string `json:"severity,omitempty"`

	// After names another chain: only detections found by that chain's
	// follow-up trigger this one.
	After string `json:"after,omitempty"`

	// Expr is a CEL condition over the detection: the record's fields,
	// kind, host, collector, and ioc_type, ioc_value, severity, tags.
	Expr string `json:"expr,omitempty"`
}

// Derive maps a field of the triggering record to an indicator type.
type Derive struct {
	From string `json:"from"`
	As   string `json:"as"`
}

// severityRank orders severities; unknown ranks lowest.
var severityRank = map[string]int{"low": 1, "medium": 2, "high": 3, "critical": 4}

// SeverityRank returns the rank of a severity name (0 when unknown).
func SeverityRank(s string) int { return severityRank[strings.ToLower(s)] }

// Depth returns the rule's depth bound.
func (c *Chain) Depth() int {
	if c.MaxDepth <= 0 {
		return DefaultChainDepth
	}
	return c.MaxDepth
}

// Rate returns the rule's runs a minute per node.
func (c *Chain) Rate() int {
	if c.PerMinute <= 0 {
		return 6
	}
	return c.PerMinute
}

// ValidateChains checks the structure of a hunt's chained rules: names,
// limits, known indicator types, and that no rule triggers itself,
// directly or through others. Collector names and CEL are checked by the
// node, which knows its collectors.
func ValidateChains(chains []Chain) error {
	if len(chains) > MaxChains {
		return fmt.Errorf("%d chains, at most %d", len(chains), MaxChains)
	}
	byName := map[string]*Chain{}
	for i := range chains {
		c := &chains[i]
		if c.Name == "" {
			return fmt.Errorf("chain %d: name required", i)
		}
		if byName[c.Name] != nil {
			return fmt.Errorf("chain %s: name used twice", c.Name)
		}
		byName[c.Name] = c
		if len(c.Collect) == 0 && len(c.Forward) == 0 {
			return fmt.Errorf("chain %s: collect names no collector and nothing is forwarded",
				c.Name)
		}
		if c.MaxDepth < 0 || c.MaxDepth > MaxChainDepth {
			return fmt.Errorf("chain %s: max_depth %d, want 0 to %d", c.Name, c.MaxDepth,
				MaxChainDepth)
		}
		if c.PerMinute < 0 {
			return fmt.Errorf("chain %s: per_minute %d is negative", c.Name, c.PerMinute)
		}
		if s := c.When.Severity; s != "" && SeverityRank(s) == 0 {
			return fmt.Errorf("chain %s: severity %q: want low, medium, high or critical",
				c.Name, s)
		}
		for _, d := range c.Derive {
			if d.From == "" || !slices.Contains([]string{IoCCmdline, IoCPath, IoCIP,
				IoCProcess, IoCFileName, IoCSHA256}, d.As) {
				return fmt.Errorf("chain %s: derive %s as %q: want a field and one of "+
					"cmdline, path, ip, process, filename, sha256", c.Name, d.From, d.As)
			}
		}
		if c.When.After == c.Name {
			return fmt.Errorf("chain %s: triggers after itself: a loop", c.Name)
		}
		for _, col := range c.Collect {
			if slices.Contains(c.When.Collectors, col.Name) && c.When.After == "" {
				return fmt.Errorf("chain %s: triggers on collector %s that it runs itself: "+
					"a loop", c.Name, col.Name)
			}
		}
	}
	for _, c := range chains {
		if c.When.After != "" && byName[c.When.After] == nil {
			return fmt.Errorf("chain %s: after names unknown chain %q", c.Name, c.When.After)
		}
		// Follow the after links: a cycle means rules trigger each other.
		seen := map[string]bool{c.Name: true}
		for at := byName[c.When.After]; at != nil; at = byName[at.When.After] {
			if seen[at.Name] {
				return fmt.Errorf("chain %s: after links form a loop through %s", c.Name,
					at.Name)
			}
			seen[at.Name] = true
		}
	}
	return nil
}

// ValidateRules checks names and severities of detection rules; the CEL
// is compiled by the node.
func ValidateRules(rules []Rule) error {
	seen := map[string]bool{}
	for i, r := range rules {
		switch {
		case r.Name == "":
			return fmt.Errorf("rule %d: name required", i)
		case seen[r.Name]:
			return fmt.Errorf("rule %s: name used twice", r.Name)
		case strings.TrimSpace(r.Expr) == "":
			return fmt.Errorf("rule %s: expr required", r.Name)
		case r.Severity != "" && SeverityRank(r.Severity) == 0:
			return fmt.Errorf("rule %s: severity %q: want low, medium, high or critical",
				r.Name, r.Severity)
		}
		seen[r.Name] = true
	}
	return nil
}

// ErrRecurrence reports a bad recurrence interval.
var ErrRecurrence = errors.New("bad recurrence")

// MinEvery is the shortest recurrence interval a hunt may ask for.
const MinEvery = time.Second

// ValidateEvery checks a recurrence interval against the hunt's lifetime.
func ValidateEvery(every time.Duration, h Header) error {
	if every == 0 {
		return nil
	}
	if every < MinEvery {
		return fmt.Errorf("%w: every %s is under %s", ErrRecurrence, every, MinEvery)
	}
	if every >= h.NotAfter.Sub(h.IssuedAt) {
		return fmt.Errorf("%w: every %s is not shorter than the deadline %s", ErrRecurrence,
			every, h.NotAfter.Sub(h.IssuedAt))
	}
	return nil
}

// RunID names run k (counted from 1) of a recurring hunt. Run 1 keeps the
// task's own ID; later runs answer under "ID/run/K", so each run's results
// are kept apart.
func RunID(id string, k int) string {
	if k <= 1 {
		return id
	}
	return fmt.Sprintf("%s/run/%d", id, k)
}

// BaseID returns the task ID a run or chained-step ID derives from.
func BaseID(id string) string {
	base, _, _ := strings.Cut(id, "/")
	return base
}
