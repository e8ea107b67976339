package memory

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DefaultProcRoot is where the live host's process table is mounted.
// Memory is always read from the live host, whatever Env.Root says.
const DefaultProcRoot = "/proc"

// Bounds on what is read from /proc. The kernel's default
// vm.max_map_count is 65530; a map line is at most a PATH_MAX path plus
// the fixed columns.
const (
	maxRegions  = 1 << 18
	maxMapLine  = 8 << 10
	maxStatRead = 4 << 10
)

// ErrNoProcess is returned when the asked-for process does not exist.
var ErrNoProcess = errors.New("no such process")

// Region is one line of /proc/PID/maps.
type Region struct {
	Start, End uint64
	Perms      string // "rw-p"
	Offset     uint64 // offset into the mapped file
	Inode      uint64
	Path       string // "" for anonymous memory, "[heap]", "/usr/lib/..."
}

// Size is the length of the region in bytes.
func (r Region) Size() uint64 { return r.End - r.Start }

// String renders the region the way map entries in records show it.
func (r Region) String() string {
	s := fmt.Sprintf("%x-%x %s", r.Start, r.End, r.Perms)
	if r.Path != "" {
		s += " " + r.Path
	}
	return s
}

// skipReason says why a region must not be read, or "" when it may be.
// Device mappings are skipped because reading them can have side effects
// or hang; the kernel's own pseudo-regions hold no process data.
func (r Region) skipReason(includeFileBacked bool) string {
	switch {
	case len(r.Perms) < 1 || r.Perms[0] != 'r':
		return "unreadable"
	case r.Path == "[vvar]", r.Path == "[vvar_vclock]", r.Path == "[vsyscall]":
		return "pseudo"
	case isDevice(r.Path):
		return "device"
	case r.End <= r.Start:
		return "empty"
	case !includeFileBacked && isFileBacked(r.Path):
		return "file-backed"
	}
	return ""
}

// isDevice reports mappings of device nodes. Files in /dev/shm are tmpfs
// files and /dev/zero mappings are shared anonymous memory; both hold
// ordinary process data and are kept.
func isDevice(path string) bool {
	if !strings.HasPrefix(path, "/dev/") {
		return false
	}
	return !strings.HasPrefix(path, "/dev/shm/") && !strings.HasPrefix(path, "/dev/zero")
}

// isFileBacked reports mappings of files on disk. memfd and System V
// segments show up with a path but live only in memory, so they count as
// anonymous: fileless payloads hide there.
func isFileBacked(path string) bool {
	if !strings.HasPrefix(path, "/") {
		return false
	}
	for _, p := range []string{"/memfd:", "/SYSV", "/dev/zero", "/dev/shm/"} {
		if strings.HasPrefix(path, p) {
			return false
		}
	}
	return true
}

// parseMaps reads /proc/PID/maps text. Malformed lines are an error:
// the kernel never writes them, so they mean the input is not a maps file.
func parseMaps(r io.Reader) ([]Region, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxMapLine)
	var out []Region
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		if len(out) >= maxRegions {
			return out, fmt.Errorf("parse maps: more than %d regions", maxRegions)
		}
		reg, err := parseMapLine(line)
		if err != nil {
			return out, fmt.Errorf("parse maps: %w", err)
		}
		out = append(out, reg)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("parse maps: %w", err)
	}
	return out, nil
}

// parseMapLine parses "start-end perms offset dev inode [path]". The path
// may contain spaces, so it is everything after the fifth column.
func parseMapLine(line string) (Region, error) {
	var reg Region
	rest := line
	cols := make([]string, 0, 5)
	for range 5 {
		rest = strings.TrimLeft(rest, " ")
		i := strings.IndexByte(rest, ' ')
		if i < 0 {
			cols = append(cols, rest)
			rest = ""
			continue
		}
		cols = append(cols, rest[:i])
		rest = rest[i:]
	}
	reg.Path = strings.TrimLeft(rest, " ")

	start, end, ok := strings.Cut(cols[0], "-")
	if !ok {
		return reg, fmt.Errorf("bad address range %q", cols[0])
	}
	var err error
	if reg.Start, err = strconv.ParseUint(start, 16, 64); err != nil {
		return reg, fmt.Errorf("bad start address %q", start)
	}
	if reg.End, err = strconv.ParseUint(end, 16, 64); err != nil {
		return reg, fmt.Errorf("bad end address %q", end)
	}
	if reg.End < reg.Start {
		return reg, fmt.Errorf("range %q ends before it starts", cols[0])
	}
	if len(cols[1]) != 4 {
		return reg, fmt.Errorf("bad permissions %q", cols[1])
	}
	reg.Perms = cols[1]
	if reg.Offset, err = strconv.ParseUint(cols[2], 16, 64); err != nil {
		return reg, fmt.Errorf("bad offset %q", cols[2])
	}
	if reg.Inode, err = strconv.ParseUint(cols[4], 10, 64); err != nil {
		return reg, fmt.Errorf("bad inode %q", cols[4])
	}
	return reg, nil
}

// proc is one process being read: its identity when first seen, so that
// a pid reused by a new process is not mistaken for the original.
type proc struct {
	root  string
	pid   int
	name  string
	start string // field 22 of /proc/PID/stat, clock ticks since boot
}

// openProc looks pid up under root. It returns ErrNoProcess when the pid
// does not exist or is a zombie, whose memory is already gone.
func openProc(root string, pid int) (*proc, error) {
	p := &proc{root: root, pid: pid}
	state, start, err := p.stat()
	if err != nil {
		return nil, err
	}
	if state == "Z" || state == "X" {
		return nil, fmt.Errorf("pid %d: %w (zombie)", pid, ErrNoProcess)
	}
	p.start = start
	comm, err := readBounded(p.path("comm"), 256)
	if err == nil {
		p.name = strings.TrimSpace(string(comm))
	}
	return p, nil
}

func (p *proc) path(name string) string {
	return filepath.Join(p.root, strconv.Itoa(p.pid), name)
}

// label names the process in skip samples and messages.
func (p *proc) label() string { return fmt.Sprintf("pid %d %s", p.pid, p.name) }

// stat returns the state letter and start time from /proc/PID/stat. The
// command name in parentheses may hold spaces and parentheses, so fields
// are counted from the last ')'.
func (p *proc) stat() (state, start string, err error) {
	b, err := readBounded(p.path("stat"), maxStatRead)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return "", "", fmt.Errorf("pid %d: %w", p.pid, ErrNoProcess)
	}
	if err != nil {
		return "", "", fmt.Errorf("read stat of pid %d: %w", p.pid, err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", "", fmt.Errorf("read stat of pid %d: malformed", p.pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state is field 3 of the line, starttime field 22.
	if len(f) < 20 {
		return "", "", fmt.Errorf("read stat of pid %d: %d fields", p.pid, len(f))
	}
	return f[0], f[19], nil
}

// alive reports whether the same process still runs with its memory.
func (p *proc) alive() bool {
	state, start, err := p.stat()
	return err == nil && start == p.start && state != "Z" && state != "X"
}

// regions reads the process's memory map.
func (p *proc) regions() ([]Region, error) {
	f, err := os.Open(p.path("maps"))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return nil, fmt.Errorf("pid %d: %w", p.pid, ErrNoProcess)
	}
	if err != nil {
		return nil, fmt.Errorf("open maps of pid %d: %w", p.pid, err)
	}
	defer f.Close()
	regs, err := parseMaps(f)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", p.pid, err)
	}
	return regs, nil
}

// openMem opens the process's memory for reading at region addresses.
func (p *proc) openMem() (*os.File, error) {
	f, err := os.Open(p.path("mem"))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return nil, fmt.Errorf("pid %d: %w", p.pid, ErrNoProcess)
	}
	if err != nil {
		return nil, fmt.Errorf("open memory of pid %d: %w", p.pid, err)
	}
	return f, nil
}

// readBounded reads at most limit bytes of a small /proc file.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// listPids returns the numeric entries of the proc root.
func listPids(root string) ([]int, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > 0 && e.IsDir() {
			out = append(out, n)
		}
	}
	return out, nil
}

// exeBase returns the base name of the process's executable, or "" when
// the link cannot be read (kernel threads, permission).
func (p *proc) exeBase() string {
	exe, err := os.Readlink(p.path("exe"))
	if err != nil {
		return ""
	}
	return filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
}
