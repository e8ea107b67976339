package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

// passwdEntry is one line of /etc/passwd.
type passwdEntry struct {
	name  string
	uid   int64
	gid   int64
	home  string
	shell string
}

// groupEntry is one line of /etc/group.
type groupEntry struct {
	name    string
	gid     int64
	members []string
}

// itoa formats an id.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// parsePasswd decodes passwd lines; malformed lines are dropped.
func parsePasswd(b []byte) []passwdEntry {
	var out []passwdEntry
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < 7 || f[0] == "" {
			continue
		}
		uid, err1 := strconv.ParseInt(f[2], 10, 64)
		gid, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, passwdEntry{name: f[0], uid: uid, gid: gid, home: f[5], shell: f[6]})
	}
	return out
}

// parseGroup decodes group lines; malformed lines are dropped.
func parseGroup(b []byte) []groupEntry {
	var out []groupEntry
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < 4 || f[0] == "" {
			continue
		}
		gid, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			continue
		}
		g := groupEntry{name: f[0], gid: gid}
		for _, m := range strings.Split(f[3], ",") {
			if m = strings.TrimSpace(m); m != "" {
				g.members = append(g.members, m)
			}
		}
		out = append(out, g)
	}
	return out
}

// AccountParams are the parameters of the accounts collector.
type AccountParams struct {
	// Logins turns reading recent logins from wtmp on or off; absent
	// means on.
	Logins *bool `json:"logins,omitempty"`
}

// Accounts is the accounts collector: local users with their groups, uid-0
// status, sudo grants and newest login.
type Accounts struct{}

// NewAccounts returns the accounts collector.
func NewAccounts() *Accounts { return &Accounts{} }

// Name returns "accounts".
func (*Accounts) Name() string { return "accounts" }

// Validate checks accounts parameters.
func (*Accounts) Validate(params json.RawMessage) error {
	var p AccountParams
	return decodeParams(params, &p)
}

// Collect emits one record per account in Root/etc/passwd, then one per
// user that sudoers names but passwd lacks. Unreadable files are counted
// ("permission", "unreadable") and the run goes on with what it has.
//
// uid0 is true for an account other than root whose uid is 0: a second
// superuser is the finding, root itself is not.
func (*Accounts) Collect(ctx context.Context, env *collectors.Env, params json.RawMessage) error {
	var p AccountParams
	if err := decodeParams(params, &p); err != nil {
		return err
	}
	skip := func(path string, err error) {
		if isDenied(err) {
			env.Stats.Skip("permission", path)
		} else {
			env.Stats.Skip("unreadable", path)
		}
	}
	// Reads are paid for after the fact: the files are small and bounded,
	// and what the budget paces is the run as a whole.
	var budgetErr error
	read := func(hostPath string) []byte {
		if budgetErr != nil {
			return nil
		}
		b, err := readRegular(filepath.Join(env.Root, hostPath))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			skip(hostPath, err)
		}
		budgetErr = env.WaitRead(ctx, len(b))
		return b
	}

	// Gather users, groups, sudo rules and logins first.
	users := parsePasswd(read("/etc/passwd"))
	groups := parseGroup(read("/etc/group"))
	rules := readSudoers(env.Root, skip)
	logins := map[string]login{}
	if (p.Logins == nil || *p.Logins) && budgetErr == nil {
		b, err := readWtmp(filepath.Join(env.Root, "var/log/wtmp"))
		switch {
		case err == nil:
			logins = parseWtmp(b)
			budgetErr = env.WaitRead(ctx, len(b))
		case !errors.Is(err, fs.ErrNotExist):
			skip("/var/log/wtmp", err)
		}
	}
	if budgetErr != nil {
		return budgetErr
	}
	now := time.Now().UTC()

	// One record per passwd account.
	known := map[string]bool{}
	for _, u := range users {
		if err := ctx.Err(); err != nil {
			return err
		}
		known[u.name] = true
		pr := principal{user: u.name, uid: u.uid, gid: u.gid, groups: groupsOf(u, groups)}
		f := map[string]any{
			"user":   u.name,
			"uid":    u.uid,
			"gid":    u.gid,
			"home":   u.home,
			"shell":  u.shell,
			"uid0":   u.uid == 0 && u.name != "root",
			"groups": sortedKeys(pr.groups),
			"sudo":   nonNil(rules.grants(pr)),
		}
		if l, ok := logins[u.name]; ok {
			f["last_login"] = l.at.Format(time.RFC3339)
			f["last_login_from"] = l.from
		}
		if f["uid0"] == true {
			f["message"] = fmt.Sprintf("account %s has uid 0", u.name)
		}
		rec := tasks.Record{Kind: tasks.KindAccount, Time: now, Source: "/etc/passwd", Fields: f}
		if err := env.Emit(rec); err != nil {
			return err
		}
	}

	// Sudo grants to names passwd does not know (directory users, or a
	// leftover an attacker planted).
	for _, name := range rules.namedUsers() {
		if known[name] {
			continue
		}
		f := map[string]any{
			"user":    name,
			"sudo":    rules.grants(principal{user: name, uid: -1, gid: -1}),
			"message": fmt.Sprintf("sudoers grants %s, which is not in /etc/passwd", name),
		}
		rec := tasks.Record{Kind: tasks.KindAccount, Time: now, Source: "/etc/sudoers", Fields: f}
		if err := env.Emit(rec); err != nil {
			return err
		}
	}
	return nil
}

// groupsOf returns the names of u's groups: its primary group and every
// group listing it as a member.
func groupsOf(u passwdEntry, groups []groupEntry) map[string]bool {
	out := map[string]bool{}
	for _, g := range groups {
		if g.gid == u.gid {
			out[g.name] = true
			continue
		}
		for _, m := range g.members {
			if m == u.name {
				out[g.name] = true
				break
			}
		}
	}
	return out
}

// sortedKeys lists a set's members in order.
func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// nonNil turns a nil list into an empty one so records always carry it.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
