package node

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/huntmesh/huntmesh/intel"
	"github.com/huntmesh/huntmesh/tasks"
)

// Chained rules run inside the hunt that carries them. When a detection
// on this node matches a rule's trigger, the rule's collectors are queued
// as a step of the same run: they execute right after the collector that
// triggered, their records are stored under the hunt's task ID, their
// detections are tagged "chain:NAME" and travel back in the same answer,
// and their collector summaries are named "chain NAME: COLLECTOR". So the
// issuer sees the follow-up without asking, and nothing new has to be
// signed: the analyst's signature on the hunt covers its chains.
//
// Guards: a rule runs at most once per task on a node (its derived ID,
// TASK/chain/NAME, is marked seen in the store, so a restart or a second
// delivery does not run it again); a step's own detections may trigger
// further rules only up to the rule's depth bound; and each node rate
// limits every rule and all rules together, across hunts.

// nodeChainPerMinute caps chained steps a node runs a minute, all rules
// and hunts together: enough for a real incident, too few for a storm.
const nodeChainPerMinute = 30

// maxRuleLimiters bounds the per-rule limiters a node keeps: rule names
// come from hunts, so over a long life they would pile up. Past the bound,
// limiters that have refilled (they hold no memory of recent runs) go.
const maxRuleLimiters = 1024

// chainLimits holds a node's rate limiters. The zero value is ready.
type chainLimits struct {
	mu sync.Mutex
	// node limits all chained steps; perRule limits each rule by name.
	node    *rate.Limiter
	perRule map[string]*rate.Limiter
}

// allow reports whether rule c may run now, taking a token from both the
// rule's and the node's limiter.
func (l *chainLimits) allow(c *tasks.Chain, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.node == nil {
		l.node = rate.NewLimiter(rate.Every(time.Minute/nodeChainPerMinute), nodeChainPerMinute)
		l.perRule = map[string]*rate.Limiter{}
	}
	r := l.perRule[c.Name]
	if r == nil && len(l.perRule) >= maxRuleLimiters {
		for name, old := range l.perRule {
			if old.TokensAt(now) >= float64(old.Burst()) {
				delete(l.perRule, name)
			}
		}
	}
	if r == nil || r.Burst() != c.Rate() {
		r = rate.NewLimiter(rate.Every(time.Minute/time.Duration(c.Rate())), c.Rate())
		l.perRule[c.Name] = r
	}
	if !r.AllowN(now, 1) {
		return false
	}
	return l.node.AllowN(now, 1)
}

// chainStep is one queued or running follow-up.
type chainStep struct {
	chain *compiledChain
	depth int
	iocs  []tasks.IoC
	seen  map[[2]string]bool

	// matcher matches the derived indicators; nil when there are none.
	matcher *intel.Matcher
}

// compiledChain is a chained rule ready to evaluate.
type compiledChain struct {
	tasks.Chain
	cond *condition
}

// adaptive evaluates a hunt's detection rules and chains during one run.
// It is used by the run's goroutine only.
type adaptive struct {
	n      *Node
	taskID string
	header tasks.Header
	log    *slog.Logger
	rules  []compiledRule
	chains []*compiledChain

	// pending are steps triggered but not yet handed out, by chain name.
	pending map[string]*chainStep
	order   []string
	// started names chains that already ran (or were refused) in this run.
	started map[string]bool
}

// newAdaptive compiles h's rules and chains and checks that every chain
// names known collectors with valid parameters.
// The intel set's YARA rules go to chained YARA scans that bring none.
func (n *Node) newAdaptive(h *tasks.Hunt, m *intel.Matcher, log *slog.Logger) (*adaptive, error) {
	rules, err := compileRules(h.Rules)
	if err != nil {
		return nil, err
	}
	if err := tasks.ValidateChains(h.Chains); err != nil {
		return nil, err
	}
	a := &adaptive{n: n, taskID: h.ID, header: h.Header, log: log, rules: rules,
		pending: map[string]*chainStep{}, started: map[string]bool{}}
	for _, c := range h.Chains {
		cc := &compiledChain{Chain: c}
		if m != nil {
			cc.Collect = withIntelRules(c.Collect, m)
		}
		if c.When.Expr != "" {
			if cc.cond, err = compileCondition(c.When.Expr); err != nil {
				return nil, fmt.Errorf("chain %s: %w", c.Name, err)
			}
		}
		if err := n.validateSpecs(c.Collect); err != nil {
			return nil, fmt.Errorf("chain %s: %w", c.Name, err)
		}
		if len(c.Forward) > 0 && n.trust != nil {
			if _, err := n.checkForward(h.Header, &c); err != nil {
				return nil, err
			}
		}
		a.chains = append(a.chains, cc)
	}
	return a, nil
}

// validateSpecs checks collector names and parameters.
func (n *Node) validateSpecs(specs []tasks.CollectorSpec) error {
	for _, spec := range specs {
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

// detect returns the rule detections of rec, and, inside a chained step,
// the matches of the step's derived indicators.
func (a *adaptive) detect(rec *tasks.Record, step *chainStep) []tasks.Detection {
	out := ruleDetections(a.rules, rec)
	if step != nil && step.matcher != nil {
		out = append(out, onePerIoC(step.matcher.Match(rec))...)
	}
	return out
}

// observe tags a detection found by a chained step and queues every rule
// it triggers.
func (a *adaptive) observe(d *tasks.Detection, step *chainStep) {
	depth := 0
	if step != nil {
		depth = step.depth
		tag := "chain:" + step.chain.Name
		if !slices.Contains(d.Tags, tag) {
			d.Tags = append(slices.Clip(d.Tags), tag)
		}
	}
	for _, c := range a.chains {
		if depth+1 > c.Depth() || !c.triggers(d, step) {
			continue
		}
		a.queue(c, d, depth+1)
	}
}

// triggers reports whether d, found in step (nil for the hunt's own
// collectors), matches the rule's trigger.
func (c *compiledChain) triggers(d *tasks.Detection, step *chainStep) bool {
	w := &c.When
	if w.After != "" && (step == nil || step.chain.Name != w.After) {
		return false
	}
	if step != nil && step.chain.Name == c.Name {
		return false
	}
	if len(w.Tags) > 0 && !slices.ContainsFunc(w.Tags, func(t string) bool {
		return slices.ContainsFunc(d.Tags, func(dt string) bool { return strings.EqualFold(t, dt) })
	}) {
		return false
	}
	if len(w.IoCTypes) > 0 && !slices.Contains(w.IoCTypes, d.IoCType) {
		return false
	}
	if len(w.Collectors) > 0 && !slices.Contains(w.Collectors, d.Record.Collector) {
		return false
	}
	if len(w.Kinds) > 0 && !slices.Contains(w.Kinds, d.Record.Kind) {
		return false
	}
	if w.Severity != "" && tasks.SeverityRank(d.Severity) < tasks.SeverityRank(w.Severity) {
		return false
	}
	return c.cond == nil || c.cond.eval(&d.Record, d)
}

// queue adds d's derived indicators to the rule's pending step, creating
// it when the rule has not run in this task yet.
func (a *adaptive) queue(c *compiledChain, d *tasks.Detection, depth int) {
	if a.started[c.Name] {
		return
	}
	s := a.pending[c.Name]
	if s == nil {
		s = &chainStep{chain: c, depth: depth, seen: map[[2]string]bool{}}
		a.pending[c.Name] = s
		a.order = append(a.order, c.Name)
	}
	for _, dv := range c.Derive {
		v := d.Record.Str(dv.From)
		k := [2]string{dv.As, v}
		if v == "" || s.seen[k] {
			continue
		}
		s.seen[k] = true
		s.iocs = append(s.iocs, tasks.IoC{Type: dv.As, Value: v, Severity: d.Severity,
			Source: "chain:" + c.Name, Tags: d.Tags})
	}
}

// runItem is one collector run of a hunt: its own, or a chained step's.
type runItem struct {
	spec tasks.CollectorSpec
	step *chainStep
}

// name is the collector summary's name.
func (r runItem) name() string {
	if r.step == nil {
		return r.spec.Name
	}
	return "chain " + r.step.chain.Name + ": " + r.spec.Name
}

// plan lists the hunt's own collector runs.
func plan(specs []tasks.CollectorSpec) []runItem {
	out := make([]runItem, len(specs))
	for i, s := range specs {
		out[i] = runItem{spec: s}
	}
	return out
}

// take hands out the collector runs of the steps queued since the last
// call, once each guard allows them: the once-per-task mark and the rate
// limits. Refused steps are logged and counted, not retried.
func (a *adaptive) take(notAfter time.Time) []runItem {
	var out []runItem
	for _, name := range a.order {
		s := a.pending[name]
		a.started[name] = true
		id := a.taskID + "/chain/" + name
		fresh, err := a.n.store.MarkSeen(id, notAfter)
		switch {
		case err != nil:
			a.log.Error("mark chained step", "chain", name, "err", err)
			continue
		case !fresh:
			a.n.count("chain/repeat")
			continue
		case !a.n.chainLim.allow(&s.chain.Chain, time.Now()):
			a.n.count("chain/rate-limited")
			a.log.Warn("chained rule rate limited", "chain", name)
			continue
		}
		if len(s.iocs) > 0 {
			m, err := intel.Compile(s.iocs, intel.CompileOptions{SkipInvalid: true})
			if err != nil {
				a.log.Warn("derived indicators", "chain", name, "err", err)
			} else {
				s.matcher = m
			}
		}
		if len(s.chain.Forward) > 0 && a.n.mesh != nil {
			a.forward(&s.chain.Chain)
		}
		a.n.count("chain/run")
		a.log.Info("chained rule triggered", "chain", name, "depth", s.depth,
			"derived", len(s.iocs))
		for _, spec := range s.chain.Collect {
			out = append(out, runItem{spec: spec, step: s})
		}
	}
	a.order = a.order[:0]
	clear(a.pending)
	return out
}

// ValidateHunt checks a hunt the way every node does before running it:
// known collectors with valid parameters (chains included), indicators
// that compile, detection rules and chain conditions that compile, chains
// without loops, and a valid selector. It needs no running node.
func ValidateHunt(h *tasks.Hunt) error {
	n := &Node{reg: defaultRegistry()}
	if err := n.validateCollectors(h); err != nil {
		return err
	}
	if len(h.IoCs) > 0 {
		if _, err := intel.Compile(h.IoCs, intel.CompileOptions{Now: time.Now()}); err != nil {
			return fmt.Errorf("indicators: %w", err)
		}
	}
	if err := h.Selector.Validate(); err != nil {
		return err
	}
	if _, err := n.newAdaptive(h, nil, slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	return tasks.ValidateEvery(h.Every, h.Header)
}
