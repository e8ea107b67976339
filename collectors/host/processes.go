package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shirou/gopsutil/v4/process"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

// deletedSuffix is what the kernel appends to /proc/PID/exe's target once
// the executable has been unlinked.
const deletedSuffix = " (deleted)"

// defaultMaxHashBytes bounds executable hashing: real binaries are far
// smaller, and a huge file here is more likely a trap than a program.
const defaultMaxHashBytes = 512 << 20

// ProcessParams are the parameters of the processes collector.
type ProcessParams struct {
	// Names keeps only processes whose name or executable base name matches
	// one of these shell patterns ("miner", "kworker*"); empty keeps all.
	Names []string `json:"names,omitempty"`

	// Pids keeps only these process ids; empty keeps all.
	Pids []int64 `json:"pids,omitempty"`

	// Hash turns executable hashing on or off; absent means on.
	Hash *bool `json:"hash,omitempty"`

	// MaxHashBytes skips hashing executables larger than this; 0 means
	// 512 MiB.
	MaxHashBytes int64 `json:"max_hash_bytes,omitempty"`

	// Snapshot reads a saved process table (a JSON array as in
	// testdata/cryptominer/*/processes.json) instead of the live host. The
	// path is used as given: absolute, or relative to the working folder.
	Snapshot string `json:"snapshot,omitempty"`

	// Time (RFC 3339) says when a snapshot was taken; it stamps records of
	// processes with no start time. Default: the newest start time.
	Time string `json:"time,omitempty"`
}

// hashOn reports whether executables are to be hashed.
func (p ProcessParams) hashOn() bool { return p.Hash == nil || *p.Hash }

// decodeParams decodes raw strictly into v; empty input leaves v as is.
func decodeParams(raw json.RawMessage, v any) error {
	if len(strings.TrimSpace(string(raw))) == 0 || string(raw) == "null" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode params: %w", err)
	}
	return nil
}

// parseProcessParams decodes and checks processes parameters.
func parseProcessParams(raw json.RawMessage) (ProcessParams, error) {
	var p ProcessParams
	if err := decodeParams(raw, &p); err != nil {
		return p, err
	}
	for _, n := range p.Names {
		if _, err := path.Match(n, ""); err != nil {
			return p, fmt.Errorf("names: bad pattern %q: %w", n, err)
		}
	}
	if p.MaxHashBytes < 0 {
		return p, errors.New("max_hash_bytes: must not be negative")
	}
	if p.Time != "" {
		if _, err := time.Parse(time.RFC3339, p.Time); err != nil {
			return p, fmt.Errorf("time: %w", err)
		}
	}
	return p, nil
}

// procFilter decides which processes a run keeps.
type procFilter struct {
	names []string
	pids  map[int64]bool
}

func newProcFilter(p ProcessParams) procFilter {
	f := procFilter{names: p.Names}
	if len(p.Pids) > 0 {
		f.pids = make(map[int64]bool, len(p.Pids))
		for _, pid := range p.Pids {
			f.pids[pid] = true
		}
	}
	return f
}

// wantPid reports whether pid passes the pid filter.
func (f procFilter) wantPid(pid int64) bool {
	return f.pids == nil || f.pids[pid]
}

// wantName reports whether a process with this name and exe passes the
// name filter.
func (f procFilter) wantName(name, exe string) bool {
	if len(f.names) == 0 {
		return true
	}
	base := ""
	if exe != "" {
		base = path.Base(exe)
	}
	for _, pat := range f.names {
		if ok, _ := path.Match(pat, name); ok {
			return true
		}
		if ok, _ := path.Match(pat, base); base != "" && ok {
			return true
		}
	}
	return false
}

// Processes is the processes collector: one process record per running
// process (or per row of a saved process table).
type Processes struct {
	cache *HashCache
}

// NewProcesses returns the processes collector. cache keeps executable
// digests across runs and may be shared with other collectors; nil gives
// the collector a private cache.
func NewProcesses(cache *HashCache) *Processes {
	if cache == nil {
		cache = NewHashCache(0)
	}
	return &Processes{cache: cache}
}

// Name returns "processes".
func (*Processes) Name() string { return "processes" }

// Validate checks processes parameters.
func (*Processes) Validate(params json.RawMessage) error {
	_, err := parseProcessParams(params)
	return err
}

// Collect emits one record per process. Processes that exit during the
// scan are counted as skipped ("vanished"); fields the node may not read
// are left empty and counted ("permission").
func (c *Processes) Collect(ctx context.Context, env *collectors.Env,
	params json.RawMessage) error {
	p, err := parseProcessParams(params)
	if err != nil {
		return err
	}
	if p.Snapshot != "" {
		return collectProcessSnapshot(ctx, env, p)
	}
	if noProcTable(env) {
		return nil
	}
	return c.collectLive(ctx, env, p)
}

// liveProc is what the first pass learns about one process.
type liveProc struct {
	stat  procStat
	name  string // full name, filled lazily
	named bool
	exe   string // exe link target, filled lazily for parents
	exeOK bool   // exe was read successfully
	exeIn bool   // exe was looked up
}

// procScan holds the state of one live scan.
type procScan struct {
	env    *collectors.Env
	ctx    context.Context // carries gopsutil's root environment
	proc   string          // root/proc
	boot   int64           // boot time, Unix seconds
	users  userNames
	procs  map[int64]*liveProc
	filter procFilter
}

func (c *Processes) collectLive(ctx context.Context, env *collectors.Env,
	p ProcessParams) error {
	s := &procScan{
		env:    env,
		ctx:    withRoot(ctx, env.Root),
		proc:   procRoot(env.Root),
		users:  loadUserNames(env.Root),
		procs:  map[int64]*liveProc{},
		filter: newProcFilter(p),
	}

	// Boot time anchors start times; read once so keys stay stable.
	b, err := readSmall(filepath.Join(s.proc, "stat"))
	if err != nil {
		return fmt.Errorf("read boot time: %w", err)
	}
	if s.boot, err = parseBootTime(b); err != nil {
		return err
	}
	pids, err := process.PidsWithContext(s.ctx)
	if err != nil {
		return fmt.Errorf("list processes: %w", err)
	}

	// First pass: the stat line of every process, so parents can be named
	// even when the filter drops them.
	for _, pid32 := range pids {
		pid := int64(pid32)
		st, err := s.readStat(pid)
		if err != nil {
			// Count only processes the run would have reported.
			if s.filter.wantPid(pid) && len(s.filter.names) == 0 {
				s.skip(err, pid, "")
			}
			continue
		}
		s.procs[pid] = &liveProc{stat: st}
	}

	// Second pass: details, hash and emit, in pid order.
	maxHash := p.MaxHashBytes
	if maxHash == 0 {
		maxHash = defaultMaxHashBytes
	}
	for _, pid32 := range pids {
		if err := ctx.Err(); err != nil {
			return err
		}
		pid := int64(pid32)
		lp, ok := s.procs[pid]
		if !ok || !s.filter.wantPid(pid) {
			continue
		}
		rec, ok := s.record(pid, lp, p.hashOn(), c.cache, maxHash)
		if !ok {
			continue
		}
		if err := env.Emit(rec); err != nil {
			return err
		}
	}
	return nil
}

// readStat reads and decodes /proc/PID/stat.
func (s *procScan) readStat(pid int64) (procStat, error) {
	b, err := readSmall(filepath.Join(s.proc, strconv.FormatInt(pid, 10), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// skip counts a process passed over because of err.
func (s *procScan) skip(err error, pid int64, name string) {
	item := strconv.FormatInt(pid, 10)
	if name != "" {
		item += " " + name
	}
	switch {
	case isGone(err):
		s.env.Stats.Skip("vanished", item)
	case isDenied(err):
		s.env.Stats.Skip("permission", item)
	default:
		s.env.Stats.Skip("unreadable", item)
	}
}

// nameOf returns the full name of pid (gopsutil extends the 15-byte comm
// from the command line), falling back to comm.
func (s *procScan) nameOf(pid int64) string {
	lp, ok := s.procs[pid]
	if !ok {
		return ""
	}
	if !lp.named {
		lp.named = true
		lp.name = lp.stat.comm
		gp := &process.Process{Pid: int32(pid)}
		if n, err := gp.NameWithContext(s.ctx); err == nil && n != "" {
			lp.name = n
		}
	}
	return lp.name
}

// exeOf reads the /proc/PID/exe link, returning the path without the
// deleted marker and whether the marker was there.
func (s *procScan) exeOf(pid int64) (string, bool, error) {
	gp := &process.Process{Pid: int32(pid)}
	exe, err := gp.ExeWithContext(s.ctx)
	if err != nil {
		return "", false, err
	}
	if trimmed, ok := strings.CutSuffix(exe, deletedSuffix); ok {
		return trimmed, true, nil
	}
	return exe, false, nil
}

// record builds the record of one process. It returns false when the
// process vanished or was replaced by another with the same pid.
func (s *procScan) record(pid int64, lp *liveProc, hash bool, cache *HashCache,
	maxHash int64) (tasks.Record, bool) {
	// One read of status gives both the owner and the full name.
	gp := &process.Process{Pid: int32(pid)}
	uids, uidErr := gp.UidsWithContext(s.ctx)
	if isGone(uidErr) {
		s.skip(uidErr, pid, lp.stat.comm)
		return tasks.Record{}, false
	}
	if n, err := gp.NameWithContext(s.ctx); err == nil && n != "" {
		lp.name, lp.named = n, true
	}
	name := s.nameOf(pid)
	exe, deleted, exeErr := s.exeOf(pid)
	if !s.filter.wantName(name, exe) {
		return tasks.Record{}, false
	}
	denied := isDenied(exeErr) || isDenied(uidErr)
	start := startMillis(s.boot, lp.stat.startTick)
	f := map[string]any{
		"pid":         pid,
		"ppid":        lp.stat.ppid,
		"name":        name,
		"exe":         exe,
		"exe_deleted": deleted,
		"started":     time.UnixMilli(start).UTC().Format(time.RFC3339),
		"process_key": processKey(pid, start),
	}

	// Command line, working folder and owner: each may be denied alone.
	if cmd, err := gp.CmdlineWithContext(s.ctx); err == nil {
		f["cmdline"] = cmd
	} else {
		denied = denied || isDenied(err)
	}
	if cwd, err := gp.CwdWithContext(s.ctx); err == nil {
		f["cwd"] = cwd
	} else {
		denied = denied || isDenied(err)
	}
	if uidErr == nil && len(uids) > 1 {
		f["user"] = s.users.name(int64(uids[1])) // effective uid, as ps shows
	}
	if pp, ok := s.procs[lp.stat.ppid]; ok && pp != nil {
		f["parent_name"] = s.nameOf(lp.stat.ppid)
		if !pp.exeIn {
			pp.exeIn = true
			pexe, _, err := s.exeOf(lp.stat.ppid)
			pp.exe, pp.exeOK = pexe, err == nil && pexe != ""
		}
		if pp.exeOK {
			f["parent_exe"] = pp.exe
		}
	}

	// Hash through the /proc link so a deleted executable still hashes.
	if hash && exe != "" {
		link := filepath.Join(s.proc, strconv.FormatInt(pid, 10), "exe")
		sum, err := cache.hashOpen(s.ctx, s.env, link, exe, maxHash)
		switch {
		case err == nil:
			f["exe_sha256"] = sum
		case errors.Is(err, errTooLarge):
			s.env.Stats.Skip("size", exe)
		case isDenied(err):
			denied = true
		case s.ctx.Err() != nil:
			return tasks.Record{}, false
		}
	}
	if denied {
		s.env.Stats.Skip("permission", strconv.FormatInt(pid, 10)+" "+name)
	}

	// The pid may have been reused while we read: check the start time.
	if st, err := s.readStat(pid); err != nil || st.startTick != lp.stat.startTick {
		s.env.Stats.Skip("vanished", strconv.FormatInt(pid, 10)+" "+name)
		return tasks.Record{}, false
	}
	return tasks.Record{
		Kind:   tasks.KindProcess,
		Time:   time.Now().UTC(),
		Source: "live",
		Fields: f,
	}, true
}

// processKey is the identity of a process across scans: pids are reused,
// the pair of pid and start time is not.
func processKey(pid, startMillis int64) string {
	return strconv.FormatInt(pid, 10) + "@" + strconv.FormatInt(startMillis, 10)
}
