package host

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// maxSudoersFiles bounds how many sudoers files one run reads, includes
// and sudoers.d together, so an include loop or a flooded folder ends.
const maxSudoersFiles = 256

// sudoRule is one user specification line of a sudoers file.
type sudoRule struct {
	file  string   // path as seen on the host ("/etc/sudoers.d/x")
	line  string   // the whole logical line
	users []string // the user list, negations dropped
}

// sudoers is what the sudoers files grant.
type sudoers struct {
	rules   []sudoRule
	aliases map[string][]string // User_Alias name -> members
}

// sudoersReader reads sudoers files under a root.
type sudoersReader struct {
	root    string
	seen    map[string]bool
	out     *sudoers
	onError func(path string, err error)
}

// readSudoers reads root/etc/sudoers, the files it includes, and every
// file in root/etc/sudoers.d that sudo itself would read. onError is told
// of each file that could not be read.
func readSudoers(root string, onError func(path string, err error)) *sudoers {
	r := &sudoersReader{
		root:    root,
		seen:    map[string]bool{},
		out:     &sudoers{aliases: map[string][]string{}},
		onError: onError,
	}
	r.file("/etc/sudoers")
	r.dir("/etc/sudoers.d")
	return r.out
}

// file reads one sudoers file given by its host path.
func (r *sudoersReader) file(hostPath string) {
	hostPath = filepath.Clean(hostPath)
	if r.seen[hostPath] || len(r.seen) >= maxSudoersFiles {
		return
	}
	r.seen[hostPath] = true
	b, err := readRegular(filepath.Join(r.root, hostPath))
	if err != nil {
		if !os.IsNotExist(err) {
			r.onError(hostPath, err)
		}
		return
	}
	for _, line := range logicalLines(string(b)) {
		r.line(hostPath, line)
	}
}

// dir reads the files of an include folder, skipping names sudo skips
// (those holding a dot or ending in a tilde), in sorted order.
func (r *sudoersReader) dir(hostPath string) {
	full := filepath.Join(r.root, filepath.Clean(hostPath))
	if fi, err := os.Lstat(full); err == nil && !fi.IsDir() {
		r.onError(hostPath, errNotRegular) // a symlinked or odd include folder
		return
	}
	ents, err := os.ReadDir(full)
	if err != nil {
		if !os.IsNotExist(err) {
			r.onError(hostPath, err)
		}
		return
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && !strings.Contains(n, ".") && !strings.HasSuffix(n, "~") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		r.file(filepath.Join(hostPath, n))
	}
}

// logicalLines splits text into lines, joining backslash continuations
// and dropping blanks.
func logicalLines(text string) []string {
	var out []string
	var cur strings.Builder
	for _, raw := range strings.Split(text, "\n") {
		raw = strings.TrimRight(raw, " \t\r")
		if cur.Len() > 0 {
			raw = strings.TrimLeft(raw, " \t")
		}
		if strings.HasSuffix(raw, "\\") {
			cur.WriteString(strings.TrimRight(strings.TrimSuffix(raw, "\\"), " \t"))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(raw)
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// line handles one logical line: includes, user aliases and user specs.
func (r *sudoersReader) line(file, line string) {
	fields := strings.Fields(line)
	switch {
	case fields[0] == "#include" || fields[0] == "@include":
		if len(fields) > 1 {
			r.file(includePath(file, fields[1]))
		}
		return
	case fields[0] == "#includedir" || fields[0] == "@includedir":
		if len(fields) > 1 {
			r.dir(includePath(file, fields[1]))
		}
		return
	case strings.HasPrefix(line, "#"):
		// A comment; "#123" as a uid user spec is rare enough to read as one.
		return
	case fields[0] == "User_Alias":
		r.alias(strings.TrimSpace(strings.TrimPrefix(line, "User_Alias")))
		return
	case strings.HasPrefix(fields[0], "Defaults") || fields[0] == "Cmnd_Alias" ||
		fields[0] == "Host_Alias" || fields[0] == "Runas_Alias" ||
		fields[0] == "Cmd_Alias":
		return
	}
	if !strings.Contains(line, "=") {
		return
	}

	// The user list runs to the first blank not right after a comma.
	spec := strings.NewReplacer(", ", ",", " ,", ",").Replace(line)
	list := strings.Fields(spec)[0]
	var users []string
	for _, u := range strings.Split(list, ",") {
		if u != "" && !strings.HasPrefix(u, "!") {
			users = append(users, u)
		}
	}
	r.out.rules = append(r.out.rules, sudoRule{file: file, line: line, users: users})
}

// alias records "NAME = a, b : NAME2 = c" user aliases.
func (r *sudoersReader) alias(body string) {
	for _, def := range strings.Split(body, ":") {
		name, members, ok := strings.Cut(def, "=")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		for _, m := range strings.Split(members, ",") {
			if m = strings.TrimSpace(m); m != "" && !strings.HasPrefix(m, "!") {
				r.out.aliases[name] = append(r.out.aliases[name], m)
			}
		}
	}
}

// includePath resolves an include target relative to the including file.
// The result is always rooted and clean, so ".." cannot climb out of the
// root it is later joined to.
func includePath(from, target string) string {
	if filepath.IsAbs(target) {
		return filepath.Clean(target)
	}
	return filepath.Join(filepath.Dir(from), target)
}

// principal is an account as sudoers entries may name it.
type principal struct {
	user   string
	uid    int64
	gid    int64
	groups map[string]bool // group names, primary included
}

// grants returns the rules naming p, each as "file: line".
func (s *sudoers) grants(p principal) []string {
	var out []string
	for _, r := range s.rules {
		for _, u := range r.users {
			if s.matches(u, p, 0) {
				out = append(out, r.file+": "+r.line)
				break
			}
		}
	}
	return out
}

// maxAliasDepth bounds alias expansion so alias loops end.
const maxAliasDepth = 8

// matches reports whether the sudoers user entry names p.
func (s *sudoers) matches(entry string, p principal, depth int) bool {
	switch {
	case entry == "ALL" || entry == p.user:
		return true
	case entry == "#"+itoa(p.uid):
		return true
	case strings.HasPrefix(entry, "%#"):
		return entry[2:] == itoa(p.gid)
	case strings.HasPrefix(entry, "%:"):
		return p.groups[entry[2:]]
	case strings.HasPrefix(entry, "%"):
		return p.groups[entry[1:]]
	}
	if members, ok := s.aliases[entry]; ok && depth < maxAliasDepth {
		for _, m := range members {
			if s.matches(m, p, depth+1) {
				return true
			}
		}
	}
	return false
}

// namedUsers lists the plain user names that rules name directly, so
// grants to accounts missing from passwd can still be reported.
func (s *sudoers) namedUsers() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range s.rules {
		for _, u := range r.users {
			if u == "ALL" || strings.HasPrefix(u, "%") || strings.HasPrefix(u, "#") ||
				s.aliases[u] != nil || seen[u] {
				continue
			}
			seen[u] = true
			out = append(out, u)
		}
	}
	return out
}
