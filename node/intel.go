package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/huntmesh/huntmesh/collectors/yarascan"
	"github.com/huntmesh/huntmesh/intel"
	"github.com/huntmesh/huntmesh/tasks"
)

// The shared intel set travels as the analysts' original signed updates.
// A node keeps every update it accepted, keyed by the SHA-256 of the
// envelope, rebuilds its set from them at start, gossips new ones on
// TopicIntel and exchanges the ones a peer lacks over ProtoIntelSync. No
// node can invent intel: each update still carries its analyst's signature
// and every receiver checks it against its own trust file.

// Wire names of the intel topic and the anti-entropy protocol.
const (
	TopicIntel     = "/huntmesh/intel/1"
	ProtoIntelSync = "/huntmesh/intel-sync/1"
)

// Meta keys of the intel state in the store.
const (
	metaIntelIndex  = "intel/index" // newline-separated update IDs (first format)
	metaIntelPages  = "intel/pages" // how many index pages there are, in decimal
	metaIntelPage   = "intel/page/" // + page number -> newline-separated update IDs
	metaIntelPrefix = "intel/env/"  // + update ID -> envelope bytes
)

// intelIndexPage is how many update IDs one index page holds. Accepting an
// update rewrites only the last page, so the cost of storing the index
// does not grow with the number of updates held. A variable so that tests
// can fill several pages with few updates.
var intelIndexPage = 1000

// Defaults for the intel settings of Config.
const (
	// defaultRetroWindow: a day of stored records covers the triage that
	// usually precedes a new indicator, at the cost of one scan per change.
	defaultRetroWindow = 24 * time.Hour

	// defaultIntelSync: a partition that heals without a new connection is
	// repaired within this; new connections sync at once.
	defaultIntelSync = 15 * time.Second
)

// maxRefusedIDs bounds the memory of updates refused for good, which
// anti-entropy then does not fetch again.
const maxRefusedIDs = 10_000

// retroDebounce gathers a burst of updates (an import) into one retro-hunt.
const retroDebounce = 300 * time.Millisecond

// errIntelRefused wraps refusals of an update's content.
var errIntelRefused = errors.New("intel update refused")

// errSetCap wraps refusals of an issued update for what the whole set
// would hold (see fits). They depend on this node's set at the time, so
// they are not remembered: the same update may come back by sync later.
var errSetCap = errors.New("intel set cap")

// intelNode is a node's share of the intel mesh: the set, the updates that
// built it, the compiled matcher and the retro-hunt state.
type intelNode struct {
	n      *Node
	log    *slog.Logger
	policy tasks.Policy
	set    *intel.Set
	clock  *intel.Clock
	window time.Duration
	every  time.Duration

	// applyMu serialises accepting updates, so the stored index and the
	// set move together.
	applyMu sync.Mutex

	mu      sync.Mutex
	held    map[string]bool          // guarded by mu: IDs of updates applied
	order   []string                 // guarded by mu: the same IDs in arrival order
	refused map[string]string        // guarded by mu: ID -> reason, refused for good
	matcher *intel.Matcher           // guarded by mu: compiled for matcherVer
	mver    uint64                   // guarded by mu
	retro   RetroReport              // guarded by mu: the last retro-hunt
	retroV  uint64                   // guarded by mu: set version retro covered
	synced  map[string]time.Time     // guarded by mu: peer -> last sync
	syncing map[string]bool          // guarded by mu: peers pulled from now
	nudged  map[string]time.Time     // guarded by mu: peer -> last nudge followed
	checked map[string]checkedUpdate // guarded by mu: checks passed, for accept

	kick chan struct{}
}

// RetroReport describes the last retro-hunt over stored records.
type RetroReport struct {
	At         time.Time     `json:"at,omitzero"`
	IoCs       int           `json:"iocs"`
	Records    int           `json:"records"`
	Detections int           `json:"detections"`
	Since      time.Time     `json:"since,omitzero"`
	Dur        time.Duration `json:"dur"`
	Error      string        `json:"error,omitempty"`
}

// updateID names an update by the hash of its envelope bytes, so that two
// different updates can never share a name.
func updateID(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:16])
}

// startIntel loads the stored updates, joins the intel topic, serves
// anti-entropy and starts the retro-hunt and sync loops.
func (n *Node) startIntel() error {
	in := &intelNode{
		n: n, log: n.log.With("part", "intel"),
		policy: n.cfg.Policy,
		set:    intel.NewSet(), clock: intel.NewClock(nil),
		window: n.cfg.IntelRetroWindow, every: n.cfg.IntelSyncInterval,
		held: map[string]bool{}, refused: map[string]string{},
		synced: map[string]time.Time{}, syncing: map[string]bool{},
		nudged: map[string]time.Time{}, checked: map[string]checkedUpdate{},
		kick: make(chan struct{}, 1),
	}
	// Updates are states, not commands: no lifetime cap (see
	// tasks.IntelLifetime), and no replay check: applying twice is a no-op.
	in.policy.MaxLifetime = 0
	if in.window <= 0 {
		in.window = defaultRetroWindow
	}
	if in.every <= 0 {
		in.every = defaultIntelSync
	}
	n.intel = in

	if err := in.load(); err != nil {
		return err
	}
	n.mesh.Handle(ProtoIntelSync, in.serveSync)
	if err := n.mesh.Join(TopicIntel, in.validate, in.handle); err != nil {
		return fmt.Errorf("join intel topic: %w", err)
	}
	n.mesh.OnConnect(n.pullOnConnect("intel sync", in.pullWith))
	n.startPullLoop("intel sync", in.every, in.pullWith)

	n.wg.Add(1)
	go in.retroLoop()
	return nil
}

// load rebuilds the set from the stored updates. An update that no longer
// passes (its key left the trust file) is left out and logged.
func (in *intelNode) load() error {
	ids, err := in.loadIndex()
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	start := time.Now()
	now := time.Now()
	for _, id := range ids {
		raw, ok, err := in.n.store.GetMeta(metaIntelPrefix + id)
		if err != nil {
			return fmt.Errorf("load intel update %s: %w", id, err)
		}
		if !ok {
			in.log.Warn("intel update missing from store", "update", id)
			continue
		}
		_, ups, err := in.check(raw, now)
		if err != nil {
			in.log.Warn("stored intel update no longer accepted", "update", id, "err", err)
			in.refused[id] = err.Error()
			continue
		}
		in.applyUpdates(ups)
		in.held[id] = true
		in.order = append(in.order, id)
	}
	// What was stored was matched before: no retro-hunt for it.
	in.retroV = in.set.Version()
	in.log.Info("intel loaded", "updates", len(in.order), "iocs", in.set.Len(),
		"digest", in.digest()[:16], "dur", time.Since(start).Round(time.Millisecond))
	return nil
}

// loadIndex reads the stored update IDs in arrival order. An index in the
// first format (one value holding every ID) is moved to pages once.
func (in *intelNode) loadIndex() ([]string, error) {
	st := in.n.store
	count, ok, err := st.GetMeta(metaIntelPages)
	if err != nil {
		return nil, fmt.Errorf("load intel index: %w", err)
	}
	if !ok {
		old, ok, err := st.GetMeta(metaIntelIndex)
		if err != nil || !ok {
			if err != nil {
				err = fmt.Errorf("load intel index: %w", err)
			}
			return nil, err
		}
		ids := strings.Fields(string(old))
		for p := 0; p*intelIndexPage < len(ids); p++ {
			last := (p+1)*intelIndexPage >= len(ids)
			if err := in.putPage(p, ids, last); err != nil {
				return nil, err
			}
		}
		in.log.Info("intel index moved to pages", "updates", len(ids))
		return ids, nil
	}
	pages, err := strconv.Atoi(string(count))
	if err != nil || pages < 0 {
		return nil, fmt.Errorf("load intel index: bad page count %q", count)
	}
	var ids []string
	for p := range pages {
		page, ok, err := st.GetMeta(metaIntelPage + strconv.Itoa(p))
		if err != nil {
			return nil, fmt.Errorf("load intel index page %d: %w", p, err)
		}
		if !ok {
			in.log.Warn("intel index page missing from store", "page", p)
			continue
		}
		ids = append(ids, strings.Fields(string(page))...)
	}
	return ids, nil
}

// putPage stores index page p of ids (all IDs in arrival order) and, when
// count is set, the number of pages ids fill. The page goes first: a crash
// between the two leaves the count short, and the updates of the unlisted
// page come back by anti-entropy.
func (in *intelNode) putPage(p int, ids []string, count bool) error {
	end := min(len(ids), (p+1)*intelIndexPage)
	page := strings.Join(ids[p*intelIndexPage:end], "\n")
	if err := in.n.store.PutMeta(metaIntelPage+strconv.Itoa(p), []byte(page)); err != nil {
		return fmt.Errorf("store intel index: %w", err)
	}
	if !count {
		return nil
	}
	pages := strconv.Itoa((len(ids) + intelIndexPage - 1) / intelIndexPage)
	if err := in.n.store.PutMeta(metaIntelPages, []byte(pages)); err != nil {
		return fmt.Errorf("store intel index: %w", err)
	}
	return nil
}

// check verifies an update and returns its ops as set updates. It refuses
// an update whose signer is untrusted or lacks the intel role, whose ops
// are malformed, or whose indicators do not compile on their own within
// the matcher's limits (catastrophic expressions, too many expressions,
// YARA that libyara rejects). A refused update changes nothing.
func (in *intelNode) check(raw []byte, now time.Time) (*tasks.Checked, []intel.Update, error) {
	in.n.count("intel/checks")
	c, err := in.policy.Check(raw, in.n.trust, now)
	if err != nil {
		return nil, nil, err
	}
	if c.Envelope.Type != tasks.TypeIntel {
		return nil, nil, fmt.Errorf("%w: a %s is not an intel update", tasks.ErrWrongType,
			c.Envelope.Type)
	}
	u, err := tasks.DecodeIntel(c.Envelope.Payload)
	if err != nil {
		return nil, nil, err
	}

	signer := c.Envelope.SignerID()
	horizon := c.Header.IssuedAt.Add(intel.MaxDrift).UnixNano()
	trial := intel.NewSet()
	ups := make([]intel.Update, 0, len(u.Ops))
	var adds []tasks.IoC
	var rules []yarascan.Source
	for i, op := range u.Ops {
		switch {
		case op.Origin != signer:
			return nil, nil, fmt.Errorf("%w: op %d: origin %q is not the signer %s",
				errIntelRefused, i, op.Origin, signer)
		case op.Clock.Wall > horizon:
			return nil, nil, fmt.Errorf("%w: op %d: clock more than %s after issued_at",
				errIntelRefused, i, intel.MaxDrift)
		}
		up := intel.Update{Op: intel.Op(op.Op), IoC: op.IoC, Origin: op.Origin,
			Clock: intel.HLC{Wall: op.Clock.Wall, Logical: op.Clock.Logical}}
		if _, err := trial.Apply(up); err != nil {
			return nil, nil, fmt.Errorf("%w: op %d: %w", errIntelRefused, i, err)
		}
		ups = append(ups, up)
		if up.Op == intel.OpAdd {
			adds = append(adds, op.IoC)
			if op.IoC.Type == tasks.IoCYARA {
				rules = append(rules, yarascan.Source{
					Name: fmt.Sprintf("intel_%d", i), Text: op.IoC.Value})
			}
		}
	}

	// The update must compile on its own: the expression limits and the
	// program-size cap bound what it costs every node to hold.
	if _, err := intel.Compile(adds, intel.CompileOptions{Now: time.Unix(1, 0)}); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errIntelRefused, err)
	}
	if len(rules) > 0 {
		r, err := yarascan.Compile(rules)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: yara: %w", errIntelRefused, err)
		}
		r.Destroy()
	}
	// A full set refuses the update whole rather than take part of it;
	// not for good, since removes may make room.
	if max := intel.DefaultSetLimits().MaxIoCs; in.set.Len()+len(ups) > max {
		return nil, nil, fmt.Errorf("%w: %w: %w: the set holds %d of %d indicators",
			errIntelRefused, errSetCap, intel.ErrSetFull, in.set.Len(), max)
	}
	return c, ups, nil
}

// fits refuses updates that would take the set past the matcher's cap
// on expressions or the scanners' cap on YARA source, counted over every
// indicator the set holds once ups are applied. Each update already
// passes the caps alone (check); fits catches many updates adding up.
func (in *intelNode) fits(ups []intel.Update) error {
	lim := intel.DefaultLimits()
	regexes, _ := in.set.Held(tasks.IoCCmdlineRE)
	_, yaraBytes := in.set.Held(tasks.IoCYARA)
	seen := map[string]bool{}
	for _, u := range ups {
		if u.IoC.Type != tasks.IoCCmdlineRE && u.IoC.Type != tasks.IoCYARA {
			continue
		}
		key, err := intel.Key(u.IoC)
		if err != nil || seen[key] {
			continue
		}
		seen[key] = true
		held := in.set.Holds(u.IoC)
		sign := 0
		switch {
		case u.Op == intel.OpAdd && !held:
			sign = 1
		case u.Op == intel.OpRemove && held:
			sign = -1
		}
		if u.IoC.Type == tasks.IoCCmdlineRE {
			regexes += sign
		} else {
			v, _ := intel.NormalizeValue(u.IoC.Type, u.IoC.Value, intel.Limits{})
			yaraBytes += sign * len(v)
		}
	}
	if regexes > lim.MaxRegexes {
		return fmt.Errorf("%w: %w: the set would hold %d command-line expressions, over "+
			"the limit of %d", errIntelRefused, errSetCap, regexes, lim.MaxRegexes)
	}
	if yaraBytes > lim.MaxYARABytes {
		return fmt.Errorf("%w: %w: the set would hold %d bytes of YARA rules, over the "+
			"limit of %d", errIntelRefused, errSetCap, yaraBytes, lim.MaxYARABytes)
	}
	return nil
}

// applyUpdates merges ups into the set and the clock; it reports how many
// changed the set.
func (in *intelNode) applyUpdates(ups []intel.Update) int {
	changed := 0
	for _, u := range ups {
		ok, err := in.set.Apply(u)
		if err != nil {
			// check applied the same update to an empty set; only a
			// full set can refuse it now.
			in.log.Error("apply intel op", "err", err)
			continue
		}
		if ok {
			changed++
		}
		// A clock far ahead is not folded in; the op still counts.
		_ = in.clock.Observe(u.Clock)
	}
	return changed
}

// accept checks, stores and applies one update. It returns how many ops
// changed the set; an update held already changes nothing and is no error.
func (in *intelNode) accept(raw []byte, via string) (string, int, error) {
	id := updateID(raw)
	if in.holds(id) {
		return id, 0, nil
	}
	var c *tasks.Checked
	var ups []intel.Update
	if cu, ok := in.takeChecked(id); ok {
		c, ups = cu.c, cu.ups
	} else {
		var err error
		if c, ups, err = in.check(raw, time.Now()); err != nil {
			in.refuse(id, via, err)
			return id, 0, err
		}
	}

	in.applyMu.Lock()
	defer in.applyMu.Unlock()
	if in.holds(id) {
		return id, 0, nil
	}
	if err := in.n.store.PutMeta(metaIntelPrefix+id, raw); err != nil {
		return id, 0, fmt.Errorf("store intel update: %w", err)
	}
	in.mu.Lock()
	order := append(slices.Clone(in.order), id)
	in.mu.Unlock()
	// Only the last page changes; the count only when a page begins.
	last := len(order) - 1
	if err := in.putPage(last/intelIndexPage, order, last%intelIndexPage == 0); err != nil {
		return id, 0, err
	}
	changed := in.applyUpdates(ups)
	in.mu.Lock()
	in.held[id] = true
	in.order = order
	in.mu.Unlock()

	in.log.Info("intel update applied", "update", id, "task", c.Header.ID, "via", via,
		"analyst", c.Signer.Name, "ops", len(ups), "changed", changed)
	in.n.count("intel/applied")
	if changed > 0 {
		select {
		case in.kick <- struct{}{}:
		default:
		}
	}
	return id, changed, nil
}

// refuse logs and counts a refused update, and remembers refusals that
// will not change with time so that anti-entropy does not fetch it again.
func (in *intelNode) refuse(id, via string, err error) {
	reason := refusalReason(err)
	switch {
	case errors.Is(err, errSetCap):
		reason = "set-cap"
	case errors.Is(err, errIntelRefused) || errors.Is(err, intel.ErrInvalidIoC):
		reason = "content"
	}
	in.n.count("intel-refused/" + reason)
	in.log.Warn("intel update refused", "update", id, "peer", shortID(via), "reason", reason,
		"err", err)
	switch reason {
	case "expired", "not-yet-valid", "too-large", "other", "set-cap":
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.refused) >= maxRefusedIDs {
		clear(in.refused)
	}
	in.refused[id] = reason
}

func (in *intelNode) holds(id string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.held[id]
}

func (in *intelNode) digest() string {
	d := in.set.Digest()
	return hex.EncodeToString(d[:])
}

// validate is the intel topic's gossip validator: the signature, the
// trust and role of the signer and the update's content are checked at
// every hop, so a bad update stops at the first node.
func (in *intelNode) validate(from string, raw []byte) error {
	id := updateID(raw)
	if in.holds(id) {
		return nil
	}
	c, ups, err := in.check(raw, time.Now())
	if err != nil {
		in.refuse(id, from, err)
		return err
	}
	in.keepChecked(id, c, ups)
	return nil
}

// checkedUpdate is the outcome of a check that passed, kept for accept.
type checkedUpdate struct {
	c   *tasks.Checked
	ups []intel.Update
	at  time.Time
}

// Bounds of the checks kept between the gossip validator and the handler,
// so an update is not verified and compiled twice on every hop.
const (
	maxCheckedKept = 256
	checkedFor     = time.Minute
)

// keepChecked keeps a passed check of update id for accept.
func (in *intelNode) keepChecked(id string, c *tasks.Checked, ups []intel.Update) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.checked) >= maxCheckedKept {
		clear(in.checked)
	}
	in.checked[id] = checkedUpdate{c: c, ups: ups, at: time.Now()}
}

// takeChecked returns and forgets a recent passed check of update id.
func (in *intelNode) takeChecked(id string) (checkedUpdate, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	cu, ok := in.checked[id]
	delete(in.checked, id)
	return cu, ok && time.Since(cu.at) < checkedFor
}

// handle applies an update that passed validation.
func (in *intelNode) handle(from string, raw []byte) {
	if _, _, err := in.accept(raw, from); err != nil && !errors.Is(err, errIntelRefused) {
		in.log.Debug("intel update not applied", "peer", shortID(from), "err", err)
	}
}

// IssueIntel takes an intel update an analyst signed (or one carried in a
// bundle): it applies it here, then publishes it. It returns the update's
// ID and how many of its ops changed the set.
//
// Unlike an update that arrives from a peer, one issued here is also
// refused when it would take the whole set past what every node can
// compile together (see fits): the analyst learns it at once and the
// node keeps its set. Updates from peers are not refused for the state
// of this node's set, since that would let nodes that heard updates in
// different orders hold different sets for good.
func (n *Node) IssueIntel(ctx context.Context, raw []byte) (string, int, error) {
	in := n.intel
	if id := updateID(raw); !in.holds(id) {
		c, ups, err := in.check(raw, time.Now())
		if err == nil {
			err = in.fits(ups)
		}
		if err != nil {
			in.refuse(id, n.ID(), err)
			return id, 0, err
		}
		in.keepChecked(id, c, ups)
	}
	id, changed, err := in.accept(raw, n.ID())
	if err != nil {
		return id, 0, err
	}
	if err := n.mesh.Publish(ctx, TopicIntel, raw); err != nil {
		// Anti-entropy still spreads it; the caller learns gossip failed.
		return id, changed, fmt.Errorf("publish intel update: %w", err)
	}
	return id, changed, nil
}

// IntelDigest is the hex SHA-256 of the node's intel set state: equal on
// nodes holding the same set.
func (n *Node) IntelDigest() string { return n.intel.digest() }

// IntelSet returns the active indicators of the shared set.
func (n *Node) IntelSet() []tasks.IoC { return n.intel.set.Active(time.Now()) }

// sharedMatcher returns the matcher of the current set version, compiling
// it on first use after a change or after its earliest indicator expired.
func (in *intelNode) sharedMatcher() *intel.Matcher {
	now := time.Now()
	v := in.set.Version()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.matcher != nil && in.mver == v {
		if x := in.matcher.NextExpiry(); x.IsZero() || now.Before(x) {
			return in.matcher
		}
	}
	start := time.Now()
	m, err := intel.Compile(in.set.Active(now), intel.CompileOptions{Now: now, SkipInvalid: true})
	if err != nil {
		// SkipInvalid leaves nothing to fail on; keep the last matcher.
		in.log.Error("compile intel set", "err", err)
		if in.matcher != nil {
			return in.matcher
		}
		m, _ = intel.Compile(nil, intel.CompileOptions{})
	}
	if r := m.Rejected(); len(r) > 0 {
		in.log.Warn("intel indicators left out of the matcher", "count", len(r),
			"first", r[0].Reason)
	}
	in.matcher, in.mver = m, v
	in.log.Debug("intel matcher compiled", "iocs", m.Len(), "version", v,
		"dur", time.Since(start))
	return m
}

// huntMatcher merges a hunt's own indicators with the shared set. A hunt
// without indicators uses the shared matcher as it is; a hunt's invalid
// indicator fails the hunt, as before the shared set existed.
func (n *Node) huntMatcher(own []tasks.IoC) (*intel.Matcher, error) {
	shared := n.intel.sharedMatcher()
	if len(own) == 0 {
		return shared, nil
	}
	opts := intel.CompileOptions{Now: time.Now()}
	if _, err := intel.Compile(own, opts); err != nil {
		return nil, err
	}
	// The hunt's own come first, so that if the two together pass a cap
	// it is shared indicators that are left out, not the hunt's.
	opts.SkipInvalid = true
	return intel.Compile(append(slices.Clone(own), shared.IoCs()...), opts)
}
