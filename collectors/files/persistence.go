package files

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/collectors/yarascan"
	"github.com/huntmesh/huntmesh/tasks"
)

// Persistence types, the values of the record's type field.
const (
	TypeRCLocal        = "rc.local"
	TypeInitD          = "init.d"
	TypeCron           = "cron"
	TypeAt             = "at"
	TypeSystemdUnit    = "systemd-unit"
	TypeSystemdTimer   = "systemd-timer"
	TypeLdSoPreload    = "ld.so.preload"
	TypeAuthorizedKeys = "authorized_keys"
	TypeShellProfile   = "shell-profile"
)

// persistenceTypes lists every type, the default selection.
var persistenceTypes = []string{TypeRCLocal, TypeInitD, TypeCron, TypeAt,
	TypeSystemdUnit, TypeSystemdTimer, TypeLdSoPreload, TypeAuthorizedKeys,
	TypeShellProfile}

const (
	// contentBytes is how much of each file a record carries.
	contentBytes = 4 << 10

	// maxParseBytes bounds how much of a file is parsed for commands;
	// the SHA-256 still covers the whole file up to DefaultMaxSize.
	maxParseBytes = 1 << 20

	// maxListed bounds the entries taken from one persistence directory,
	// so a directory stuffed with files cannot stall the run.
	maxListed = 10_000

	// maxUnitDepth bounds recursion under systemd unit directories,
	// which nest only a level or two (*.wants, *.d).
	maxUnitDepth = 4
)

// Persistence is the "persistence" collector: the places Linux starts
// programs from, one record per file (per job line for crontabs).
type Persistence struct{}

// NewPersistence returns the persistence collector.
func NewPersistence() *Persistence { return &Persistence{} }

// Name implements collectors.Collector.
func (*Persistence) Name() string { return "persistence" }

type persistenceParams struct {
	Types []string `json:"types"`
}

func parsePersistenceParams(raw json.RawMessage) (map[string]bool, error) {
	var p persistenceParams
	if len(raw) > 0 && string(raw) != "null" {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("decode persistence params: %w", err)
		}
	}
	if len(p.Types) == 0 {
		p.Types = persistenceTypes
	}
	want := map[string]bool{}
	for _, t := range p.Types {
		if !slices.Contains(persistenceTypes, t) {
			return nil, fmt.Errorf("persistence params: unknown type %q (known: %s)",
				t, strings.Join(persistenceTypes, ", "))
		}
		want[t] = true
	}
	return want, nil
}

// Validate implements collectors.Collector.
func (*Persistence) Validate(params json.RawMessage) error {
	_, err := parsePersistenceParams(params)
	return err
}

// location is one file, or one directory's files, of a persistence type.
type location struct {
	typ       string
	path      string // host path
	dir       bool   // list the entries of path
	recursive bool   // list subdirectories too (systemd)
	user      string // default user of what it starts
	parse     func(b []byte, hostPath, user string) []parsed
}

// Collect implements collectors.Collector.
func (p *Persistence) Collect(ctx context.Context, env *collectors.Env,
	params json.RawMessage) error {
	want, err := parsePersistenceParams(params)
	if err != nil {
		return err
	}
	acc := readAccounts(env.Root)
	seen := map[string]bool{} // host paths already reported
	for _, loc := range locations(env, acc) {
		if !want[loc.typ] && !(loc.typ == TypeSystemdUnit && want[TypeSystemdTimer]) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := collectLocation(ctx, env, acc, loc, want, seen); err != nil {
			return err
		}
	}
	return nil
}

// collectLocation reports the file or files of one location.
func collectLocation(ctx context.Context, env *collectors.Env, acc *accounts,
	loc location, want, seen map[string]bool) error {
	if !loc.dir {
		return reportFile(ctx, env, acc, loc, loc.path, want, seen)
	}
	files, err := listDir(env, loc.path, loc.recursive)
	if err != nil {
		return nil // counted by listDir
	}
	for _, f := range files {
		if err := reportFile(ctx, env, acc, loc, f, want, seen); err != nil {
			return err
		}
	}
	return nil
}

// listDir lists the non-directory entries under hostDir (recursively when
// asked), refusing symlinked directories anywhere on the way.
func listDir(env *collectors.Env, hostDir string, recursive bool) ([]string, error) {
	var out []string
	type level struct {
		dir   string
		depth int
	}
	stack := []level{{hostDir, 0}}
	for len(stack) > 0 && len(out) < maxListed {
		cur := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		fsDir, err := realDir(env, cur.dir)
		if err != nil {
			if cur.dir == hostDir {
				return nil, err
			}
			continue
		}
		ents, err := os.ReadDir(fsDir)
		if err != nil {
			env.Stats.Skip(reasonOf(err), cur.dir)
			continue
		}
		for _, e := range ents {
			child := path.Join(cur.dir, e.Name())
			switch {
			case isExcluded(env.Exclude, child):
				env.Stats.Skip("excluded", child)
			case e.IsDir() && recursive && cur.depth < maxUnitDepth:
				stack = append(stack, level{child, cur.depth + 1})
			case e.IsDir():
			case len(out) < maxListed:
				out = append(out, child)
			default:
				env.Stats.Skip("budget", child)
			}
		}
	}
	return out, nil
}

// realDir maps hostDir under Root, checking that no component of it is a
// symlink: under a fixture root an absolute link would lead out of it, and
// on a merged-/usr host /lib/systemd is reached through /usr/lib anyway.
// A missing directory is not counted; a symlinked one is.
func realDir(env *collectors.Env, hostDir string) (string, error) {
	cur := env.Root
	for _, part := range strings.Split(strings.Trim(path.Clean(hostDir), "/"), "/") {
		if part == "" {
			continue
		}
		cur = cur + string(os.PathSeparator) + part
		fi, err := os.Lstat(cur)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", err
		case err != nil:
			env.Stats.Skip(reasonOf(err), hostDir)
			return "", err
		case fi.Mode()&fs.ModeSymlink != 0:
			env.Stats.Skip("symlink", hostDir)
			return "", fmt.Errorf("%s: %w", hostDir, yarascan.ErrNotRegular)
		case !fi.IsDir():
			return "", syscall.ENOTDIR
		}
	}
	return cur, nil
}

// reportFile emits the record(s) of one persistence file. Missing files
// are normal (most locations are empty on most hosts) and not counted.
func reportFile(ctx context.Context, env *collectors.Env, acc *accounts, loc location,
	hostPath string, want, seen map[string]bool) error {
	typ := typeFor(loc, hostPath)
	if seen[hostPath] || !want[typ] {
		return nil
	}
	seen[hostPath] = true
	if isExcluded(env.Exclude, hostPath) {
		env.Stats.Skip("excluded", hostPath)
		return nil
	}
	if _, err := realDir(env, path.Dir(hostPath)); err != nil {
		return nil
	}
	fsPath := hostToFS(env.Root, hostPath)
	fi, err := os.Lstat(fsPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		env.Stats.Skip(reasonOf(err), hostPath)
		return nil
	}

	base := statFields(fi, acc)
	delete(base, "atime")
	setPath(base, hostPath)
	base["type"] = typ
	rec := tasks.Record{Kind: tasks.KindPersistence, Time: fi.ModTime().UTC(),
		Source: sourceOf(env), Fields: base}

	// A symlink (a *.wants entry, say) is reported with its target and
	// never followed.
	if fi.Mode()&fs.ModeSymlink != 0 {
		if target, err := os.Readlink(fsPath); err == nil {
			base["link_target"] = target
			base["command"] = target
		}
		base["user"] = loc.user
		return env.Emit(rec)
	}
	if !fi.Mode().IsRegular() {
		env.Stats.Skip("type", hostPath)
		return nil
	}

	head, sum, err := readHead(ctx, env, fsPath)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		env.Stats.Skip(openReason(err), hostPath)
		return nil
	}
	base["sha256"] = sum
	base["content"] = strings.ToValidUTF8(string(head[:min(len(head), contentBytes)]), "\uFFFD")

	// One record per thing started; a file that starts nothing we can
	// name is still reported once.
	var entries []parsed
	if loc.parse != nil {
		entries = loc.parse(head, hostPath, loc.user)
	}
	if len(entries) == 0 {
		entries = []parsed{{user: loc.user}}
	}
	for _, e := range entries {
		fields := make(map[string]any, len(base)+2)
		for k, v := range base {
			fields[k] = v
		}
		if e.command != "" {
			fields["command"] = e.command
		}
		if e.user == "" {
			e.user = loc.user
		}
		if owner, _ := base["owner"].(string); e.user == "" && typ == TypeAt {
			e.user = owner // at runs a job as the user who queued it
		}
		if e.user != "" {
			fields["user"] = e.user
		}
		r := rec
		r.Fields = fields
		if err := env.Emit(r); err != nil {
			return err
		}
	}
	return nil
}

// readHead opens fsPath as a regular file, returns its first maxParseBytes
// and the SHA-256 of the whole file, charging the read budget.
func readHead(ctx context.Context, env *collectors.Env, fsPath string) ([]byte, string, error) {
	f, err := yarascan.OpenRegular(fsPath)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	h := sha256.New()
	head := &limitedBuffer{max: maxParseBytes}
	w := io.MultiWriter(h, head)
	if _, err := stream(ctx, env, f, w, DefaultMaxSize); err != nil {
		return nil, "", err
	}
	return head.b, hex.EncodeToString(h.Sum(nil)), nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   []byte
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func sourceOf(env *collectors.Env) string {
	if env.Root == "/" {
		return "live"
	}
	return env.Root
}
