package files

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/collectors/yarascan"
	"github.com/huntmesh/huntmesh/tasks"
)

// Files is the "files" collector: it walks roots, filters by name, size
// and time, hashes each file in a single read, types it by magic bytes and
// scans it with YARA. Create one with NewFiles; it is safe for concurrent
// runs, which share its cache.
type Files struct {
	cache    *HashCache
	compiled *ruleCache      // the hunts' rules, compiled once for Validate and runs
	rules    *yarascan.Rules // injected by the node; may be nil
	reads    *atomic.Int64   // files opened for reading, across runs

	// beforeRead, when set (tests only), runs after the walk queued a file
	// and before it is opened.
	beforeRead func(hostPath string)

	// streamAll, when set (benchmarks only), streams every file and lets
	// libyara scan the descriptor instead of reading small files whole.
	streamAll bool
}

// NewFiles returns the files collector using cache (nil: no caching).
func NewFiles(cache *HashCache) *Files {
	return &Files{cache: cache, compiled: newRuleCache(), reads: new(atomic.Int64)}
}

// WithRules returns a copy of f that also scans with rules, compiled by the
// caller (the node's intel YARA set, say), beside any rules the hunt
// carries. The copy shares f's cache. The caller keeps ownership of rules
// and must not Destroy them while a run is in progress.
func (f *Files) WithRules(rules *yarascan.Rules) *Files {
	c := *f
	c.rules = rules
	return &c
}

// FilesRead is how many files this collector (and its copies) opened to
// read, across runs; cache hits are not counted.
func (f *Files) FilesRead() int64 { return f.reads.Load() }

// Name implements collectors.Collector.
func (f *Files) Name() string { return "files" }

// Validate implements collectors.Collector. It compiles the hunt's rules
// to check them, so a bad rule is refused before the task runs.
func (f *Files) Validate(params json.RawMessage) error {
	p, err := parseFilesParams(params)
	if err != nil {
		return err
	}
	if len(p.Yara) > 0 {
		_, release, err := f.compiled.acquire(p.Yara)
		if err != nil {
			return fmt.Errorf("files params: %w", err)
		}
		release() // kept compiled for the run that follows
	}
	return nil
}

// Collect implements collectors.Collector. One goroutine walks and
// params.workers goroutines read; all stop when ctx ends or Emit fails.
func (f *Files) Collect(ctx context.Context, env *collectors.Env, params json.RawMessage) error {
	p, err := parseFilesParams(params)
	if err != nil {
		return err
	}
	start := time.Now()

	// Rules given with the hunt are compiled once for the whole run (and
	// usually already were, by Validate).
	var sets []ruleSet
	if f.rules != nil {
		sets = append(sets, ruleSet{rules: f.rules, hash: f.rules.Hash()})
	}
	if len(p.Yara) > 0 {
		r, release, err := f.compiled.acquire(p.Yara)
		if err != nil {
			return fmt.Errorf("files: %w", err)
		}
		defer release()
		sets = append(sets, ruleSet{rules: r, hash: r.Hash()})
	}

	run := &filesRun{f: f, env: env, p: p, sets: sets, acc: readAccounts(env.Root)}
	err = run.run(ctx)
	env.Logger.Debug("files run done", "dur", time.Since(start), "err", err,
		"read", run.read.Load(), "cached", run.cached.Load())
	return err
}

// filesRun is the state of one Collect call.
type filesRun struct {
	f    *Files
	env  *collectors.Env
	p    *filesParams
	sets []ruleSet
	acc  *accounts

	read, cached atomic.Int64

	// hashq carries files scanned but not yet hashed to the hashers; nil
	// when the run hashes as it reads.
	hashq chan []hashJob

	emitMu sync.Mutex // serialises env.Emit, whose sink may not be concurrent
}

// run wires the walker to the workers and returns the first error.
func (r *filesRun) run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	// With both hashes and rules wanted, workers read and scan and leave
	// the hashes of small files to as many hashers, through a queue, so
	// that hashing one file overlaps scanning the next. Work goes through
	// the queue in batches: a hasher is faster than a scan and would
	// otherwise park and be woken for every file, which costs more than
	// the hash itself on a busy machine (a goroutine per file was worse).
	var hwg sync.WaitGroup
	if r.p.hashes.any() && len(r.sets) > 0 && !r.f.streamAll {
		r.hashq = make(chan []hashJob, 2*r.p.Workers)
		for range r.p.Workers {
			hwg.Add(1)
			go func() {
				defer hwg.Done()
				for jobs := range r.hashq {
					for _, job := range jobs {
						if ctx.Err() != nil {
							// The run is ending: drain, counting what was
							// scanned but will not be reported.
							r.dropJob(job)
							continue
						}
						if err := r.finishHash(job); err != nil {
							cancel(err)
						}
					}
				}
			}()
		}
	}

	items := make(chan []item, 4*r.p.Workers)
	var wg sync.WaitGroup
	for range r.p.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pend []hashJob // scanned here, to hash elsewhere
			defer func() {
				for _, job := range pend {
					r.dropJob(job)
				}
			}()
			for batch := range items {
				for _, it := range batch {
					err := ctx.Err()
					if err == nil {
						err = r.handle(ctx, it, &pend)
					}
					if err == nil && len(pend) >= hashBatch {
						err = r.sendJobs(ctx, &pend)
					}
					if err != nil {
						cancel(err)
						return
					}
				}
				if err := r.sendJobs(ctx, &pend); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}

	w := &walker{env: r.env, p: r.p, out: items}
	walkErr := w.walk(ctx)
	close(items)

	// Drain what workers left after a cancel so the walker never blocks.
	wg.Wait()
	for range items {
	}
	if r.hashq != nil {
		close(r.hashq)
		hwg.Wait()
	}

	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if walkErr != nil {
		return fmt.Errorf("walk: %w", walkErr)
	}
	return ctx.Err()
}

// hashBatch is how many scanned files a worker hands the hashers at once.
const hashBatch = 16

// sendJobs hands the pending hash jobs to the hashers.
func (r *filesRun) sendJobs(ctx context.Context, pend *[]hashJob) error {
	if len(*pend) == 0 {
		return nil
	}
	select {
	case r.hashq <- *pend:
		*pend = make([]hashJob, 0, hashBatch)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dropJob gives back a hash job's buffer and counts its file as passed
// over because the run ended.
func (r *filesRun) dropJob(job hashJob) {
	r.env.Stats.Skip("budget", job.it.hostPath)
	putLater(job.data)
}

// handle turns one walked item into a record, or, for a file whose hashes
// are left to the hashers, into a job appended to pend.
func (r *filesRun) handle(ctx context.Context, it item, pend *[]hashJob) error {
	if it.info.Mode()&os.ModeSymlink != 0 {
		fields := statFields(it.info, r.acc)
		setPath(fields, it.hostPath)
		fields["file_type"] = "symlink"
		if target, err := os.Readlink(it.fsPath); err == nil {
			fields["link_target"] = target
		}
		return r.emit(it.info, fields)
	}

	d, fi, later, yaraErr, err := r.digest(ctx, it)
	if err != nil {
		if ctx.Err() != nil {
			r.env.Stats.Skip("budget", it.hostPath)
			return ctx.Err()
		}
		return nil // counted by digest
	}
	if later != nil {
		*pend = append(*pend, hashJob{it: it, fi: fi, d: d, data: later, yaraErr: yaraErr})
		return nil
	}
	return r.record(it, fi, d, yaraErr)
}

// hashJob is a file read and scanned whose hashes are still to compute.
type hashJob struct {
	it      item
	fi      fs.FileInfo
	d       *digest // filled by the hasher, then cached
	data    *[]byte // from getLater; the hasher gives it back
	yaraErr error
}

// finishHash hashes a queued file, caches its digest and emits its record.
func (r *filesRun) finishHash(job hashJob) error {
	hashInto(job.d, *job.data, r.p.hashes)
	putLater(job.data)
	if key, ok := keyOf(job.fi); ok {
		job.d.meta = metaOf(job.fi)
		r.f.cache.put(key, job.d)
	}
	return r.record(job.it, job.fi, job.d, job.yaraErr)
}

// record builds and emits the record of a file with its digest.
func (r *filesRun) record(it item, fi fs.FileInfo, d *digest, yaraErr error) error {
	var fields map[string]any
	if d.meta != nil {
		// Read now or found in the cache under a key that fixes them.
		fields = metaFields(d.meta, fi, r.acc)
	} else {
		fields = statFields(fi, r.acc)
	}
	setPath(fields, it.hostPath)
	setNonEmpty(fields, "md5", d.md5)
	setNonEmpty(fields, "sha1", d.sha1)
	setNonEmpty(fields, "sha256", d.sha256)
	setNonEmpty(fields, "file_type", d.fileType)
	if len(r.sets) > 0 {
		fields["yara"] = r.matches(d)
	}
	if yaraErr != nil {
		// The record still goes out with its hashes; the skip counted by
		// digest says the YARA verdict for it is missing.
		fields["yara_error"] = yaraErr.Error()
	}
	return r.emit(fi, fields)
}

func setNonEmpty(fields map[string]any, k, v string) {
	if v != "" {
		fields[k] = v
	}
}

// digest returns the file's digest from the cache or by reading it, with
// the metadata to report: the opened file's when it was read, the walk's
// on a cache hit (whose key already matched it). On a read problem it
// counts the skip and returns an error; a YARA failure comes back as
// yaraErr beside the digest.
func (r *filesRun) digest(ctx context.Context, it item) (d *digest, fi fs.FileInfo,
	later *[]byte, yaraErr, err error) {
	key, keyed := keyOf(it.info)
	if keyed {
		if d := r.f.cache.get(key); d.covers(r.p.hashes, r.sets) {
			r.f.cache.hits.Add(1)
			r.cached.Add(1)
			return d, it.info, nil, nil, nil
		}
	}

	if r.f.beforeRead != nil {
		r.f.beforeRead(it.hostPath)
	}
	fh, err := openRaw(it.fsPath, it.info)
	if err != nil {
		r.env.Stats.Skip(openReason(err), it.hostPath)
		return nil, nil, nil, nil, err
	}
	defer fh.Close()
	r.f.reads.Add(1)
	r.read.Add(1)
	if r.f.cache != nil {
		r.f.cache.misses.Add(1)
	}

	// Trust the opened file's metadata over the walk's.
	fi = fh.info()
	if fi.Size() > r.p.MaxSize {
		r.env.Stats.Skip("size", it.hostPath)
		return nil, nil, nil, nil, errGrew
	}

	d, later, yaraErr, err = digestFile(ctx, r.env, fh, it.hostPath, fi.Size(), r.p.MaxSize,
		r.p.hashes, r.sets, !r.f.streamAll, r.hashq != nil)
	switch {
	case errors.Is(err, errGrew):
		r.env.Stats.Skip("size", it.hostPath)
		return nil, nil, nil, nil, err
	case err != nil:
		if ctx.Err() == nil {
			r.env.Stats.Skip(reasonOf(err), it.hostPath)
		}
		return nil, nil, nil, nil, err
	}
	if yaraErr != nil {
		r.env.Stats.Skip("yara", it.hostPath)
	}
	if key, ok := keyOf(fi); ok && later == nil {
		d.meta = metaOf(fi)
		r.f.cache.put(key, d) // else once hashed (finishHash)
	}
	return d, fi, later, yaraErr, nil
}

// matches unions the rule names over the run's rule sets.
func (r *filesRun) matches(d *digest) []string {
	if len(r.sets) == 1 {
		// Already sorted and unique (yarascan.Names); copied so that no
		// record shares a slice with the cache.
		return append([]string{}, d.yara[r.sets[0].hash]...)
	}
	seen := map[string]bool{}
	out := []string{}
	for _, s := range r.sets {
		for _, name := range d.yara[s.hash] {
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// emit sends one file record, timed by its modification.
func (r *filesRun) emit(fi fs.FileInfo, fields map[string]any) error {
	source := "live"
	if r.env.Root != "/" {
		source = r.env.Root
	}
	rec := tasks.Record{
		Kind:   tasks.KindFile,
		Time:   fi.ModTime().UTC(),
		Source: source,
		Fields: fields,
	}
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	return r.env.Emit(rec)
}

// openReason maps an OpenRegular error to a skip reason.
func openReason(err error) string {
	if errors.Is(err, yarascan.ErrNotRegular) {
		return "type"
	}
	return reasonOf(err)
}
