package intel

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// The convergent IoC set is a last-writer-wins element set over hybrid
// logical clock timestamps. Each indicator identity (type and normalised
// value, see Key) holds exactly one state: the latest add or remove seen
// for it. Two states are ordered by clock, then origin node ID, then
// remove-before-add, then their encoded bytes; merging keeps the greater.
// That order is total, so merging is commutative, associative and
// idempotent: replicas that saw the same updates, in any order and any
// number of times, hold the same state and the same Digest.
//
// Why LWW rather than an observed-remove set: an OR-set keeps a unique tag
// per add and a tombstone per removed tag, so its size grows with every
// re-add; intel feeds re-send the same indicators daily. LWW keeps one
// entry per identity, which bounds the state by MaxIoCs, gives a cheap
// canonical digest for anti-entropy, and lets an edit (new severity, tags
// or expiry) replace the old one. Its cost is that a concurrent add and
// remove resolve by timestamp rather than by intent; with HLC timestamps
// causally later decisions always win, and truly concurrent ones resolve
// the same way on every node. Removes are kept as tombstones so an older
// add arriving late cannot bring an indicator back.

// Op is an update's operation.
type Op string

// Operations on the set.
const (
	OpAdd    Op = "add"
	OpRemove Op = "remove"
)

// Update is one add or remove of an indicator.
type Update struct {
	// Op is OpAdd or OpRemove.
	Op Op `json:"op"`

	// IoC is the indicator; for a remove only its type and value count.
	IoC tasks.IoC `json:"ioc"`

	// Clock is when the origin made the change.
	Clock HLC `json:"clock"`

	// Origin is the ID of the node that made the change; it breaks clock
	// ties.
	Origin string `json:"origin"`
}

// SetLimits bound what a set holds.
type SetLimits struct {
	// MaxIoCs caps distinct identities, tombstones included. A million
	// indicators is a very large feed and costs a few hundred MiB.
	MaxIoCs int

	// MaxTags caps tags per indicator; MaxTextLen caps each tag, the
	// origin, the source and the severity, in bytes.
	MaxTags    int
	MaxTextLen int

	// Values bounds indicator values (see Limits).
	Values Limits
}

// DefaultSetLimits returns the limits NewSet uses.
func DefaultSetLimits() SetLimits {
	return SetLimits{MaxIoCs: 1_000_000, MaxTags: 64, MaxTextLen: 256, Values: DefaultLimits()}
}

// Refusals of Apply and UnmarshalBinary.
var (
	ErrSetFull    = errors.New("intel set full")
	ErrBadUpdate  = errors.New("bad intel update")
	ErrBadEncoded = errors.New("bad encoded intel set")
)

// element is the state of one identity.
type element struct {
	u   Update
	enc []byte // canonical encoding of u, for ordering, digest and export
	seq uint64 // local version at which this state was taken

	// added is the local version at which the identity last became
	// added: an edit of an added indicator keeps it.
	added uint64
}

// Set is a convergent set of indicators. It is safe for concurrent use.
type Set struct {
	lim SetLimits

	mu      sync.Mutex
	elems   map[string]*element // guarded by mu; by Key
	version uint64              // guarded by mu; bumped on every change

	// digest caches Digest until the next change; guarded by mu.
	digest   [32]byte
	digestOK bool

	// held counts added identities per type, and the bytes of their
	// values; guarded by mu. Expired ones are counted: they are still held.
	held map[string]heldCount
}

// heldCount is one type's share of a set.
type heldCount struct{ n, bytes int }

// NewSet returns an empty set with DefaultSetLimits.
func NewSet() *Set { return NewSetLimits(DefaultSetLimits()) }

// NewSetLimits returns an empty set with the given limits; zero fields take
// the defaults.
func NewSetLimits(lim SetLimits) *Set {
	d := DefaultSetLimits()
	if lim.MaxIoCs <= 0 {
		lim.MaxIoCs = d.MaxIoCs
	}
	if lim.MaxTags <= 0 {
		lim.MaxTags = d.MaxTags
	}
	if lim.MaxTextLen <= 0 {
		lim.MaxTextLen = d.MaxTextLen
	}
	lim.Values = lim.Values.orDefault()
	return &Set{lim: lim, elems: map[string]*element{}, held: map[string]heldCount{}}
}

// Apply merges one update. It reports whether the set's state changed; a
// stale or repeated update changes nothing. An invalid update is refused
// with an error wrapping ErrBadUpdate (or ErrInvalidIoC), and a new
// identity beyond MaxIoCs with ErrSetFull.
func (s *Set) Apply(u Update) (bool, error) {
	u, key, err := s.canonical(u)
	if err != nil {
		return false, err
	}
	enc := encodeUpdate(nil, u)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applyLocked(key, u, enc)
}

// applyLocked keeps the greater of the current and the new state.
func (s *Set) applyLocked(key string, u Update, enc []byte) (bool, error) {
	cur, ok := s.elems[key]
	if !ok && len(s.elems) >= s.lim.MaxIoCs {
		return false, fmt.Errorf("apply %s %s: %w: %d identities", u.Op, u.IoC.Type,
			ErrSetFull, len(s.elems))
	}
	if ok && !wins(u, enc, cur.u, cur.enc) {
		return false, nil
	}
	s.version++
	s.digestOK = false
	e := &element{u: u, enc: enc, seq: s.version}
	if u.Op == OpAdd {
		e.added = s.version
	}
	if ok {
		s.count(cur.u, -1)
		if cur.u.Op == OpAdd && u.Op == OpAdd {
			e.added = cur.added
		}
	}
	s.count(u, 1)
	s.elems[key] = e
	return true, nil
}

// Added returns the indicators added, not removed and not expired at now
// whose identity became added after local version since: new indicators
// and ones added again after a remove, but not edits (new tags, severity
// or expiry) of ones that were added already. A retro-hunt matches these
// alone, so a feed sent again does not flag the same records again.
func (s *Set) Added(since uint64, now time.Time) []tasks.IoC {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []tasks.IoC
	for _, e := range s.elems {
		if ioc, ok := e.active(now); ok && e.added > since {
			out = append(out, ioc)
		}
	}
	return out
}

// count adds (sign 1) or takes away (sign -1) u's share of held.
func (s *Set) count(u Update, sign int) {
	if u.Op != OpAdd {
		return
	}
	c := s.held[u.IoC.Type]
	c.n += sign
	c.bytes += sign * len(u.IoC.Value)
	s.held[u.IoC.Type] = c
}

// Held returns how many indicators of type typ the set holds added (not
// removed; expired ones included) and the total length of their values,
// so that a caller can bound what the whole set costs to compile.
func (s *Set) Held(typ string) (n, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.held[typ]
	return c.n, c.bytes
}

// Holds reports whether the set holds ioc's identity as added (expired or
// not). An indicator that does not normalise is not held.
func (s *Set) Holds(ioc tasks.IoC) bool {
	n, err := Normalize(ioc, s.lim.Values)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.elems[n.Type+"\x00"+n.Value]
	return ok && e.u.Op == OpAdd
}

// wins reports whether state a orders after state b.
func wins(a Update, aEnc []byte, b Update, bEnc []byte) bool {
	if c := a.Clock.Compare(b.Clock); c != 0 {
		return c > 0
	}
	if a.Origin != b.Origin {
		return a.Origin > b.Origin
	}
	if a.Op != b.Op {
		return a.Op == OpRemove
	}
	return bytes.Compare(aEnc, bEnc) > 0
}

// canonical validates u and puts it in the form every replica stores:
// normalised value, UTC times, and its identity key.
func (s *Set) canonical(u Update) (Update, string, error) {
	if u.Op != OpAdd && u.Op != OpRemove {
		return u, "", fmt.Errorf("%w: op %q", ErrBadUpdate, u.Op)
	}
	if u.Origin == "" || len(u.Origin) > s.lim.MaxTextLen {
		return u, "", fmt.Errorf("%w: origin length %d outside 1..%d", ErrBadUpdate,
			len(u.Origin), s.lim.MaxTextLen)
	}
	if u.Clock.IsZero() || u.Clock.Wall < 0 {
		return u, "", fmt.Errorf("%w: clock %v", ErrBadUpdate, u.Clock)
	}
	ioc, err := Normalize(u.IoC, s.lim.Values)
	if err != nil {
		return u, "", fmt.Errorf("apply %s: %w", u.Op, err)
	}
	if len(ioc.Tags) > s.lim.MaxTags {
		return u, "", fmt.Errorf("%w: %d tags, over %d", ErrBadUpdate, len(ioc.Tags),
			s.lim.MaxTags)
	}
	for _, t := range append([]string{ioc.Source, ioc.Severity}, ioc.Tags...) {
		if len(t) > s.lim.MaxTextLen {
			return u, "", fmt.Errorf("%w: text of %d bytes, over %d", ErrBadUpdate, len(t),
				s.lim.MaxTextLen)
		}
	}
	for _, t := range []time.Time{ioc.FirstSeen, ioc.Expires} {
		if !t.IsZero() && (t.Year() < 1970 || t.Year() > 2200) {
			return u, "", fmt.Errorf("%w: time %s outside 1970..2200", ErrBadUpdate, t)
		}
	}
	ioc.Tags = slices.Clone(ioc.Tags)
	ioc.FirstSeen = utc(ioc.FirstSeen)
	ioc.Expires = utc(ioc.Expires)
	if u.Op == OpRemove {
		// A tombstone needs only the identity; dropping the rest keeps
		// removes of the same indicator from differing in content.
		ioc = tasks.IoC{Type: ioc.Type, Value: ioc.Value}
	}
	u.IoC = ioc
	return u, ioc.Type + "\x00" + ioc.Value, nil
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// Merge folds every state of other into s and returns how many changed s.
// States other refuses to hold never reach it, so the only error is
// ErrSetFull when s has lower limits than other.
func (s *Set) Merge(other *Set) (int, error) {
	if other == s {
		return 0, nil
	}
	return s.ApplyAll(other.Updates(0))
}

// ApplyAll applies updates in order, returning how many changed the set
// and the first error; it goes on past refused updates.
func (s *Set) ApplyAll(us []Update) (int, error) {
	n := 0
	var first error
	for _, u := range us {
		changed, err := s.Apply(u)
		if err != nil && first == nil {
			first = err
		}
		if changed {
			n++
		}
	}
	return n, first
}

// Updates returns the states taken after local version since, oldest
// first: a delta for a peer that last synced at since, or the full state
// for since == 0. Pair it with Version to know where the next delta starts.
func (s *Set) Updates(since uint64) []Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	var es []*element
	for _, e := range s.elems {
		if e.seq > since {
			es = append(es, e)
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].seq < es[j].seq })
	out := make([]Update, len(es))
	for i, e := range es {
		out[i] = e.u
		out[i].IoC.Tags = slices.Clone(e.u.IoC.Tags)
	}
	return out
}

// Version is a local counter bumped by every change. It orders deltas on
// this node only; replicas in the same state may have different versions.
func (s *Set) Version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// Len is the number of identities held, tombstones included.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.elems)
}

// Active returns the indicators added and not removed whose Expires is
// zero or after now, ordered by type and value.
func (s *Set) Active(now time.Time) []tasks.IoC {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := s.sortedKeysLocked()
	out := make([]tasks.IoC, 0, len(keys))
	for _, k := range keys {
		if ioc, ok := s.elems[k].active(now); ok {
			out = append(out, ioc)
		}
	}
	return out
}

// active returns a copy of the element's indicator when it is added and
// not expired at now.
func (e *element) active(now time.Time) (tasks.IoC, bool) {
	if e.u.Op != OpAdd {
		return tasks.IoC{}, false
	}
	if x := e.u.IoC.Expires; !x.IsZero() && !x.After(now) {
		return tasks.IoC{}, false
	}
	ioc := e.u.IoC
	ioc.Tags = slices.Clone(ioc.Tags)
	return ioc, true
}

// Digest is the SHA-256 of the canonical state: equal for replicas holding
// equal states, whatever their histories.
func (s *Set) Digest() [32]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.digestOK {
		return s.digest
	}
	h := sha256.New()
	for _, k := range s.sortedKeysLocked() {
		h.Write(s.elems[k].enc)
	}
	h.Sum(s.digest[:0])
	s.digestOK = true
	return s.digest
}

func (s *Set) sortedKeysLocked() []string {
	keys := make([]string, 0, len(s.elems))
	for k := range s.elems {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
