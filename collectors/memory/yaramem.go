package memory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/collectors/yarascan"
	"github.com/huntmesh/huntmesh/tasks"
)

// yara-memory limits.
const (
	// DefaultMaxPerProcess bounds the bytes scanned in one process: a
	// miner's heap and binary fit well inside, a database's page cache
	// does not need to.
	DefaultMaxPerProcess = 512 << 20

	// MaxPerProcessCeiling is the largest per-process cap a hunt may ask.
	MaxPerProcessCeiling = 16 << 30

	// maxTargets bounds the pids and names lists of one hunt.
	maxTargets = 4096

	// maxNameLen bounds one process name in the names list.
	maxNameLen = 256

	// commLen is how much of a name the kernel keeps in /proc/PID/comm.
	commLen = 15

	// defaultScanTimeout bounds one process scan when the context has no
	// deadline, so that a pathological rule cannot spin forever.
	defaultScanTimeout = 10 * time.Minute
)

// YaraMemory scans the memory of chosen processes with YARA rules and
// emits one memory record per process and matching rule.
//
// Parameters: {"pids": [N...], "names": ["xmrig"...], "all": bool,
// "max_per_process": bytes (default 512 MiB), "include_file_backed": bool
// (default true), "include_self": bool (default false), "yara": [{"name",
// "text"}]}. With neither pids nor names every process is scanned. Names
// match the process name (as in /proc/PID/comm, which the kernel cuts to
// 15 bytes) or the base name of its executable. The rules are the hunt's
// "yara" sources together with the rule set the node injects through
// Rules.
//
// Each process is scanned as one YARA object, its readable regions being
// the blocks, so conditions combine strings from the whole address space
// as the yara command does with a pid; filesize is undefined. The record
// carries pid, process_name, rule, and where the rule matched: address
// (the region's start), offset (the start within the region of the block
// of at most 16 MiB that matched on its own) and region_size. A rule that
// only matches across regions has no location fields. The record has
// exited set when the process ended during the scan; the run counts that
// as a skip "exited".
type YaraMemory struct {
	// ProcRoot is where the process table is read; "" means /proc. It is
	// for tests: hunts cannot choose it.
	ProcRoot string

	// Rules, when set, returns the node's compiled rule set (from its
	// intel) or nil when there is none. It is called once per run; the
	// set must stay usable until Collect returns.
	Rules func() *yarascan.Rules
}

type yaraMemParams struct {
	PIDs              []int64           `json:"pids"`
	Names             []string          `json:"names"`
	All               bool              `json:"all"`
	MaxPerProcess     int64             `json:"max_per_process"`
	IncludeFileBacked *bool             `json:"include_file_backed"`
	IncludeSelf       bool              `json:"include_self"`
	YARA              []yarascan.Source `json:"yara"`
}

// Name implements collectors.Collector.
func (*YaraMemory) Name() string { return "yara-memory" }

// Validate implements collectors.Collector. It compiles the hunt's rules
// to report syntax errors up front, and refuses a hunt with no rules when
// the node has none either.
func (c *YaraMemory) Validate(raw json.RawMessage) error {
	p, err := parseYaraMemParams(raw)
	if err != nil {
		return err
	}
	if len(p.YARA) > 0 {
		rs, err := yarascan.Compile(p.YARA)
		if err != nil {
			return fmt.Errorf("yara-memory: %w", err)
		}
		rs.Destroy()
		return nil
	}
	if c.injected() == nil {
		return errors.New("yara-memory: no yara rules in the hunt or the node's intel")
	}
	return nil
}

func (c *YaraMemory) injected() *yarascan.Rules {
	if c.Rules == nil {
		return nil
	}
	return c.Rules()
}

func parseYaraMemParams(raw json.RawMessage) (yaraMemParams, error) {
	var p yaraMemParams
	if err := decodeParams(raw, &p); err != nil {
		return p, fmt.Errorf("yara-memory: %w", err)
	}
	if len(p.PIDs) > maxTargets || len(p.Names) > maxTargets {
		return p, fmt.Errorf("yara-memory: more than %d pids or names", maxTargets)
	}
	for _, pid := range p.PIDs {
		if err := checkPID(pid); err != nil {
			return p, fmt.Errorf("yara-memory: %w", err)
		}
	}
	for _, n := range p.Names {
		if n == "" || len(n) > maxNameLen {
			return p, fmt.Errorf("yara-memory: process name %.40q empty or too long", n)
		}
	}
	err := checkSize("max_per_process", p.MaxPerProcess, MaxPerProcessCeiling)
	if err != nil {
		return p, fmt.Errorf("yara-memory: %w", err)
	}
	if p.MaxPerProcess == 0 {
		p.MaxPerProcess = DefaultMaxPerProcess
	}
	if p.IncludeFileBacked == nil {
		yes := true
		p.IncludeFileBacked = &yes
	}
	if len(p.PIDs) == 0 && len(p.Names) == 0 {
		p.All = true
	}
	return p, nil
}

// Collect implements collectors.Collector.
func (c *YaraMemory) Collect(ctx context.Context, env *collectors.Env, raw json.RawMessage) error {
	params, err := parseYaraMemParams(raw)
	if err != nil {
		return err
	}
	began := time.Now()

	// The hunt's own rules and the node's go side by side: compiled
	// rules cannot be merged, so each set scans every process.
	var sets []*yarascan.Rules
	if len(params.YARA) > 0 {
		rs, err := yarascan.Compile(params.YARA)
		if err != nil {
			return fmt.Errorf("yara-memory: %w", err)
		}
		defer rs.Destroy()
		sets = append(sets, rs)
	}
	if rs := c.injected(); rs != nil {
		sets = append(sets, rs)
	}
	if len(sets) == 0 {
		return errors.New("yara-memory: no yara rules in the hunt or the node's intel")
	}

	root := procRoot(c.ProcRoot)
	pids, err := c.targets(root, params, env.Stats)
	if err != nil {
		return fmt.Errorf("yara-memory: %w", err)
	}
	s := &procScan{env: env, params: params, sets: sets}
	for _, pid := range pids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.scan(ctx, root, pid); err != nil {
			return err
		}
	}
	env.Logger.Debug("yara-memory done", "processes", len(pids),
		"matches", env.Stats.Emitted(), "dur", time.Since(began))
	return nil
}

// targets lists the pids to scan, in order, without the node's own pid
// unless asked. Asked-for pids that do not exist are counted.
func (c *YaraMemory) targets(root string, p yaraMemParams, stats *collectors.Stats) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	add := func(pid int) {
		if !seen[pid] {
			seen[pid] = true
			out = append(out, pid)
		}
	}
	for _, pid := range p.PIDs {
		add(int(pid))
	}
	if p.All || len(p.Names) > 0 {
		all, err := listPids(root)
		if err != nil {
			return nil, err
		}
		for _, pid := range all {
			if p.All || matchesName(root, pid, p.Names) {
				add(pid)
			}
		}
	}
	if !p.IncludeSelf {
		out = slices.DeleteFunc(out, func(pid int) bool { return pid == os.Getpid() })
	}
	return out, nil
}

// matchesName reports whether process pid goes by one of names.
func matchesName(root string, pid int, names []string) bool {
	pr, err := openProc(root, pid)
	if err != nil {
		return false
	}
	exe := pr.exeBase()
	for _, n := range names {
		if n == pr.name || n == exe || (len(n) > commLen && n[:commLen] == pr.name) {
			return true
		}
	}
	return false
}

// procScan scans processes one at a time for a run.
type procScan struct {
	env    *collectors.Env
	params yaraMemParams
	sets   []*yarascan.Rules
	buf    []byte // one block, for locating matches
}

// hit is one rule matched in one process, located when possible.
type hit struct {
	rule    string
	blk     *block
	located bool
}

// scan scans one process and emits its hits. Problems with the process
// are counted; only the context's end, a destroyed rule set and Emit's
// errors are returned.
func (s *procScan) scan(ctx context.Context, root string, pid int) error {
	stats := s.env.Stats
	p, err := openProc(root, pid)
	if err != nil {
		countProcErr(stats, fmt.Sprintf("pid %d", pid), err)
		return nil
	}
	regs, err := p.regions()
	if err != nil {
		countProcErr(stats, p.label(), err)
		return nil
	}
	blocks, capped := planBlocks(regs, s.params.MaxPerProcess, *s.params.IncludeFileBacked, stats)
	if len(blocks) == 0 {
		return nil
	}
	rd, err := openReader(s.env, p)
	if err != nil {
		countProcErr(stats, p.label(), err)
		return nil
	}
	defer rd.Close()

	// Scan the whole process with each set, then find where each rule
	// that matched matches on its own.
	var hits []hit
	exited := false
	for _, rs := range s.sets {
		it := &blockIter{ctx: ctx, rd: rd, stats: stats, blocks: blocks}
		ms, err := rs.ScanMem(it, nil, scanTimeout(ctx))
		if it.err != nil {
			return it.err
		}
		exited = exited || it.exited
		switch {
		case errors.Is(err, yarascan.ErrDestroyed):
			return fmt.Errorf("yara-memory: %w", err)
		case errors.Is(err, yarascan.ErrTimeout):
			stats.Skip("timeout", p.label())
			continue
		case err != nil:
			stats.Skip("scan error", p.label())
			s.env.Logger.Warn("yara scan failed", "pid", pid, "err", err)
			continue
		}
		found := make([]hit, 0, len(ms))
		for _, name := range yarascan.Names(ms) {
			found = append(found, hit{rule: name})
		}
		if !exited && len(found) > 0 {
			if err := s.locate(ctx, rd, rs, blocks, found); err != nil {
				return err
			}
		}
		hits = append(hits, found...)
	}

	if exited {
		stats.Skip("exited", p.label())
	}
	if capped {
		stats.Skip("size cap", p.label())
	}
	for _, h := range hits {
		if err := s.env.Emit(hitRecord(p, h, exited)); err != nil {
			return err
		}
	}
	return nil
}

// locate rescans blocks one by one until each hit is found in a single
// block. Blocks that cannot be read, or a process that exits, leave the
// remaining hits without a location.
func (s *procScan) locate(ctx context.Context, rd *memReader, rs *yarascan.Rules,
	blocks []block, hits []hit) error {
	left := len(hits)
	for i := range blocks {
		b := &blocks[i]
		if cap(s.buf) < int(b.len) {
			s.buf = make([]byte, b.len)
		}
		buf := s.buf[:b.len]
		it := blockIter{ctx: ctx, rd: rd}
		n, err := it.readInto(b.addr(), buf)
		switch {
		case errors.Is(err, errExited):
			return nil
		case errors.Is(err, errUnreadable):
			clear(buf[n:])
		case err != nil:
			return err
		}
		ms, err := rs.ScanBytes(buf, nil, scanTimeout(ctx))
		if err != nil {
			continue
		}
		for _, name := range yarascan.Names(ms) {
			for j := range hits {
				if hits[j].rule == name && !hits[j].located {
					hits[j].blk, hits[j].located = b, true
					left--
				}
			}
		}
		if left == 0 {
			return nil
		}
	}
	return nil
}

// hitRecord builds the memory record for one hit.
func hitRecord(p *proc, h hit, exited bool) tasks.Record {
	f := map[string]any{
		"pid":          int64(p.pid),
		"process_name": p.name,
		"rule":         h.rule,
	}
	msg := fmt.Sprintf("yara rule %s matched memory of pid %d (%s)", h.rule, p.pid, p.name)
	if h.located {
		f["address"] = int64(h.blk.reg.Start)
		f["offset"] = int64(h.blk.off)
		f["region_size"] = int64(h.blk.reg.Size())
		msg += fmt.Sprintf(" in region %s", h.blk.reg)
	}
	if exited {
		f["exited"] = true
		msg += ", process exited during the scan"
	}
	f["message"] = msg
	return tasks.Record{Kind: tasks.KindMemory, Source: "live", Fields: f}
}

// countProcErr counts why a process could not be read.
func countProcErr(stats *collectors.Stats, item string, err error) {
	switch {
	case errors.Is(err, ErrNoProcess):
		stats.Skip("vanished", item)
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.EPERM):
		stats.Skip("permission", item)
	default:
		stats.Skip("unreadable", item)
	}
}

// scanTimeout is YARA's limit for one scan: what is left of the context's
// deadline, or a default bound.
func scanTimeout(ctx context.Context) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return defaultScanTimeout
	}
	return max(time.Until(dl), time.Second)
}
