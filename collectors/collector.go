// Package collectors gathers evidence from the host a node runs on.
//
// Each collector lives in its own file or sub-package, emits tasks.Record
// values of documented kinds (see schema.go), and honours the context and
// the Budget it is handed. Collectors never know about the mesh: they take
// parameters, a file system root and a budget, and call emit.
package collectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/huntmesh/huntmesh/tasks"
)

// ErrRecordCap is returned by Env.Emit once the budget's record cap is hit.
var ErrRecordCap = errors.New("record cap reached")

// Collector is one source of evidence.
type Collector interface {
	// Name is the collector's name as used in hunts ("processes", "files").
	Name() string

	// Validate checks parameters before a task runs, so a bad hunt is
	// refused up front with a clear reason. Empty params must be accepted
	// when the collector has usable defaults.
	Validate(params json.RawMessage) error

	// Collect gathers records and hands each to env.Emit. It returns when
	// done, when ctx ends, or when Emit returns an error (which it should
	// pass back unchanged). Problems with single items (a vanished process,
	// an unreadable file) are counted in env.Stats, not returned.
	Collect(ctx context.Context, env *Env, params json.RawMessage) error
}

// BlobSink keeps large evidence outside records. PutBlob reads r to the end,
// stores the bytes under their SHA-256 and returns the lower-case hex digest
// and the size.
type BlobSink interface {
	PutBlob(r io.Reader) (sha256hex string, size int64, err error)
}

// Budget bounds what one collector run may consume on the host.
type Budget struct {
	// ReadBytesPerSec caps file and memory reads; 0 means unlimited.
	ReadBytesPerSec int64 `json:"read_bytes_per_sec,omitempty" yaml:"read_bytes_per_sec"`

	// MaxRecords caps the records one collector emits; 0 means unlimited.
	MaxRecords int `json:"max_records,omitempty" yaml:"max_records"`

	// WallTime caps how long one collector runs; 0 means unlimited.
	WallTime time.Duration `json:"wall_time,omitempty" yaml:"wall_time"`

	// Nice is the CPU niceness (0..19) the node applies to scan work.
	Nice int `json:"nice,omitempty" yaml:"nice"`
}

// Tighter returns the budget that respects both b (the node's ceiling) and
// req (what a hunt asked for): for each limit the stricter non-zero value.
func (b Budget) Tighter(req Budget) Budget {
	out := b
	if req.ReadBytesPerSec > 0 &&
		(out.ReadBytesPerSec == 0 || req.ReadBytesPerSec < out.ReadBytesPerSec) {
		out.ReadBytesPerSec = req.ReadBytesPerSec
	}
	if req.MaxRecords > 0 && (out.MaxRecords == 0 || req.MaxRecords < out.MaxRecords) {
		out.MaxRecords = req.MaxRecords
	}
	if req.WallTime > 0 && (out.WallTime == 0 || req.WallTime < out.WallTime) {
		out.WallTime = req.WallTime
	}
	if req.Nice > out.Nice {
		out.Nice = req.Nice
	}
	return out
}

// Env is what a collector run is given: where to look, how much it may use,
// and where to put what it finds. Create one with NewEnv.
type Env struct {
	// Root is the file system root to read under; "/" on a live host, a
	// fixture tree in tests and scenario replays.
	Root string

	// Host is the host name stamped on every record.
	Host string

	// Exclude lists absolute paths (as seen on the live host, not under
	// Root) that file walkers must never enter: the node's data directory
	// and intel files, whose contents match broad public rules.
	Exclude []string

	// Logger receives per-run events, never per-record ones.
	Logger *slog.Logger

	// Stats counts what the run emitted and skipped.
	Stats *Stats

	// Blobs stores large evidence (memory dumps, fetched files) by content
	// hash; nil when the run has nowhere to keep blobs.
	Blobs BlobSink

	budget  Budget
	limiter *rate.Limiter
	emit    func(tasks.Record) error
	name    string
}

// NewEnv prepares an Env for collector name with the given budget. emit
// receives each record after Host and Collector are stamped on it.
func NewEnv(name, root, host string, budget Budget, logger *slog.Logger,
	emit func(tasks.Record) error) *Env {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if root == "" {
		root = "/"
	}
	env := &Env{
		Root:   root,
		Host:   host,
		Logger: logger.With("collector", name),
		Stats:  NewStats(),
		budget: budget,
		emit:   emit,
		name:   name,
	}
	if budget.ReadBytesPerSec > 0 {
		// A burst of one second's worth lets reads proceed in useful chunks.
		env.limiter = rate.NewLimiter(rate.Limit(budget.ReadBytesPerSec), int(budget.ReadBytesPerSec))
	}
	return env
}

// Budget returns the budget this run works under.
func (e *Env) Budget() Budget { return e.budget }

// Emit stamps rec with the host (unless the collector already set one, as
// log ingestion does for logs shipped from other hosts) and the collector,
// and passes it on. It returns
// ErrRecordCap once the budget's record cap is reached, and records that in
// Stats so the result can say the run was cut short.
func (e *Env) Emit(rec tasks.Record) error {
	if e.budget.MaxRecords > 0 && e.Stats.Emitted() >= e.budget.MaxRecords {
		e.Stats.Cut("record cap")
		return ErrRecordCap
	}
	if rec.Host == "" {
		rec.Host = e.Host
	}
	rec.Collector = e.name
	if rec.Time.IsZero() {
		rec.Time = time.Now().UTC()
	}
	e.Stats.addEmitted()
	return e.emit(rec)
}

// WaitRead blocks until n more bytes may be read under the budget. Large n
// is split so that a single call never exceeds the limiter's burst. When
// ctx ends first it returns an error wrapping ctx's own, so that a wall
// time reached while waiting reads as the budget cutting the run short.
// (rate.Limiter.WaitN instead fails at once, with an error of its own,
// when the wait would pass ctx's deadline.)
func (e *Env) WaitRead(ctx context.Context, n int) error {
	if e.limiter == nil || n <= 0 {
		return ctx.Err()
	}
	burst := e.limiter.Burst()
	for n > 0 {
		step := min(n, burst)
		r := e.limiter.ReserveN(time.Now(), step)
		if !r.OK() {
			return fmt.Errorf("wait for read budget: %d bytes over the burst %d", step, burst)
		}
		if d := r.Delay(); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				r.Cancel()
				return fmt.Errorf("wait for read budget: %w", ctx.Err())
			}
		} else if err := ctx.Err(); err != nil {
			r.Cancel()
			return fmt.Errorf("wait for read budget: %w", err)
		}
		n -= step
	}
	return nil
}

// Stats counts what a collector run did. It is safe for concurrent use, so
// collectors with worker pools can share one.
type Stats struct {
	mu      sync.Mutex
	emitted int
	skipped map[string]int // reason -> count
	samples map[string][]string
	cutBy   string
}

// maxSkipSamples bounds how many example items are kept per skip reason, so
// a result can name what was skipped without growing with the tree.
const maxSkipSamples = 20

// NewStats returns empty counters.
func NewStats() *Stats {
	return &Stats{skipped: map[string]int{}, samples: map[string][]string{}}
}

func (s *Stats) addEmitted() {
	s.mu.Lock()
	s.emitted++
	s.mu.Unlock()
}

// Emitted is the number of records emitted so far.
func (s *Stats) Emitted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.emitted
}

// Skip counts one item passed over for reason ("permission", "vanished",
// "size", "fifo", "budget"), keeping a few example names.
func (s *Stats) Skip(reason, item string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.skipped[reason]++
	if item != "" && len(s.samples[reason]) < maxSkipSamples {
		s.samples[reason] = append(s.samples[reason], item)
	}
}

// Cut records that a budget limit stopped the run early.
func (s *Stats) Cut(by string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cutBy == "" {
		s.cutBy = by
	}
}

// Summary is the wire form of Stats carried in results.
type Summary struct {
	Emitted int                 `json:"emitted"`
	Skipped map[string]int      `json:"skipped,omitempty"`
	Samples map[string][]string `json:"samples,omitempty"`
	CutBy   string              `json:"cut_by,omitempty"`
	Error   string              `json:"error,omitempty"`
}

// Summary copies the counters.
func (s *Stats) Summary() Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Summary{Emitted: s.emitted, CutBy: s.cutBy}
	if len(s.skipped) > 0 {
		out.Skipped = make(map[string]int, len(s.skipped))
		out.Samples = make(map[string][]string, len(s.samples))
		for k, v := range s.skipped {
			out.Skipped[k] = v
		}
		for k, v := range s.samples {
			out.Samples[k] = append([]string(nil), v...)
		}
	}
	return out
}

// Registry maps collector names to implementations.
type Registry struct {
	byName map[string]Collector
}

// NewRegistry returns a registry holding cs.
func NewRegistry(cs ...Collector) *Registry {
	r := &Registry{byName: map[string]Collector{}}
	for _, c := range cs {
		r.byName[c.Name()] = c
	}
	return r
}

// Get returns the collector called name.
func (r *Registry) Get(name string) (Collector, bool) {
	c, ok := r.byName[name]
	return c, ok
}

// Names lists the registered collectors in order.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.byName))
	for n := range r.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Run executes c under env's budget: it applies the wall-time limit and
// turns a record-cap stop into a normal return, so that the caller sees an
// error only when the collector itself failed.
func Run(ctx context.Context, c Collector, env *Env, params json.RawMessage) error {
	if wall := env.budget.WallTime; wall > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wall)
		defer cancel()
	}
	err := c.Collect(ctx, env, params)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrRecordCap):
		return nil
	case errors.Is(err, context.DeadlineExceeded) && env.budget.WallTime > 0:
		env.Stats.Cut("wall time")
		return nil
	}
	return fmt.Errorf("collector %s: %w", c.Name(), err)
}
