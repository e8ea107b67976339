package files

import (
	"bufio"
	"bytes"
	"path"
	"regexp"
	"strings"
)

// parsed is one thing a persistence file starts: the command and, where
// the format says, the user it runs as.
type parsed struct {
	command string
	user    string
}

// lines yields the non-blank lines of b that are not # comments, with
// surrounding space trimmed.
func lines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), maxParseBytes)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// parseRCLocal joins the script's command lines, leaving out the closing
// "exit 0" that every rc.local carries.
func parseRCLocal(b []byte) []parsed {
	var cmds []string
	for _, l := range lines(b) {
		if l == "exit 0" {
			continue
		}
		cmds = append(cmds, l)
	}
	if len(cmds) == 0 {
		return nil
	}
	return []parsed{{command: strings.Join(cmds, "; "), user: "root"}}
}

// cronEnv matches a crontab environment assignment (SHELL=/bin/sh).
var cronEnv = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*\s*=`)

// parseCron returns one entry per job line. System crontabs (/etc/crontab,
// /etc/cron.d) carry a user field after the schedule; user crontabs run as
// owner.
func parseCron(b []byte, system bool, owner string) []parsed {
	var out []parsed
	for _, l := range lines(b) {
		if cronEnv.MatchString(l) {
			continue
		}
		skip := 5 // minute hour day month weekday
		if strings.HasPrefix(l, "@") {
			skip = 1 // @reboot, @daily, ...
		}
		user := owner
		if system {
			skip++
		}
		rest, fields := cutFields(l, skip)
		if rest == "" {
			continue
		}
		if system {
			user = fields[skip-1]
		}
		out = append(out, parsed{command: rest, user: user})
	}
	return out
}

// cutFields splits off the first n whitespace-separated fields of l and
// returns the remainder (with its inner spacing kept) and those fields.
func cutFields(l string, n int) (string, []string) {
	var fields []string
	rest := l
	for range n {
		rest = strings.TrimLeft(rest, " \t")
		i := strings.IndexAny(rest, " \t")
		if i < 0 {
			return "", nil
		}
		fields = append(fields, rest[:i])
		rest = rest[i:]
	}
	return strings.TrimSpace(rest), fields
}

// parseAtJob returns the job's last command line: at writes the saved
// environment first and the user's commands last.
func parseAtJob(b []byte, owner string) []parsed {
	ls := lines(b)
	if len(ls) == 0 {
		return nil
	}
	return []parsed{{command: ls[len(ls)-1], user: owner}}
}

// unitKeys reads key=value pairs from a systemd unit, joining backslash
// continuations; repeated keys keep every value in order.
func unitKeys(b []byte) map[string][]string {
	out := map[string][]string{}
	var cont string
	for _, l := range lines(b) {
		if strings.HasPrefix(l, ";") || strings.HasPrefix(l, "[") {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cont += strings.TrimRight(strings.TrimSuffix(l, "\\"), " \t") + " "
			continue
		}
		l = cont + l
		cont = ""
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		out[k] = append(out[k], strings.TrimSpace(v))
	}
	return out
}

// parseUnit returns what a service unit starts: its ExecStart lines
// without systemd's prefix characters, and its User (root by default for
// system units, the home's owner for user units).
func parseUnit(b []byte, defaultUser string) []parsed {
	keys := unitKeys(b)
	var cmds []string
	for _, v := range keys["ExecStart"] {
		v = strings.TrimLeft(v, "-@+!:|")
		if v == "" {
			// An empty assignment clears the list (how drop-ins override).
			cmds = nil
			continue
		}
		cmds = append(cmds, v)
	}
	user := defaultUser
	if u := keys["User"]; len(u) > 0 && u[len(u)-1] != "" {
		user = u[len(u)-1]
	}
	if len(cmds) == 0 {
		return []parsed{{user: user}}
	}
	return []parsed{{command: strings.Join(cmds, "; "), user: user}}
}

// parseTimer returns the unit a timer activates: Unit= or, by systemd's
// default, the service of the same name.
func parseTimer(b []byte, hostPath string) []parsed {
	keys := unitKeys(b)
	if u := keys["Unit"]; len(u) > 0 && u[len(u)-1] != "" {
		return []parsed{{command: u[len(u)-1]}}
	}
	return []parsed{{command: strings.TrimSuffix(path.Base(hostPath), ".timer") + ".service"}}
}

// parsePreload returns the libraries ld.so.preload loads into every
// process, separated by spaces.
func parsePreload(b []byte) []parsed {
	var libs []string
	for _, l := range lines(b) {
		libs = append(libs, strings.FieldsFunc(l, func(r rune) bool {
			return r == ' ' || r == '\t' || r == ':'
		})...)
	}
	if len(libs) == 0 {
		return nil
	}
	return []parsed{{command: strings.Join(libs, " ")}}
}

// forcedCommand matches an authorized_keys command="..." option.
var forcedCommand = regexp.MustCompile(`(?:^|,)command="((?:[^"\\]|\\.)*)"`)

// parseAuthorizedKeys returns the forced commands of the file's keys, one
// entry per key line that has one; plain keys start nothing themselves.
func parseAuthorizedKeys(b []byte, owner string) []parsed {
	var out []parsed
	for _, l := range lines(b) {
		if m := forcedCommand.FindStringSubmatch(l); m != nil {
			out = append(out, parsed{command: strings.ReplaceAll(m[1], `\"`, `"`), user: owner})
		}
	}
	return out
}
