package logs

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// syslogLine is the header of one syslog line.
type syslogLine struct {
	time    time.Time
	host    string
	program string
	pid     int64
	message string
}

// textLines reads auth.log, secure, syslog or messages: each line becomes
// an auth record when an auth parser recognises it, a log record otherwise.
func (in *ingest) textLines(r *bufio.Reader) error {
	lr := &lineReader{r: r, max: MaxLine}
	year := in.p.Year
	for {
		line, long, err := lr.next()
		if err != nil {
			return eofNil(err)
		}
		where := func() string { return in.src.Path + ":" + strconv.Itoa(lr.n) }
		if long {
			in.env.Stats.Skip("line too long", where())
			continue
		}
		text := string(line)
		if len(strings.TrimSpace(text)) == 0 {
			continue // a blank line is no event
		}
		sl, ok := parseSyslog(text, year, in.mtime, in.p.loc)
		if !ok {
			in.env.Stats.Skip("unparsed line", where())
			continue
		}
		if err := in.emitAt(syslogRecord(sl), where); err != nil {
			return emitErr(err)
		}
	}
}

// syslogRecord turns a parsed line into an auth or log record.
func syslogRecord(sl syslogLine) tasks.Record {
	if f := parseAuth(sl.program, sl.message); f != nil {
		f["program"] = sl.program
		if sl.pid > 0 {
			f["pid"] = sl.pid
		}
		return tasks.Record{Kind: tasks.KindAuth, Time: sl.time, Fields: f}
	}
	f := map[string]any{"message": sl.message}
	if sl.program != "" {
		f["program"] = sl.program
	}
	if sl.pid > 0 {
		f["pid"] = sl.pid
	}
	return tasks.Record{Kind: tasks.KindLog, Time: sl.time, Fields: f}
}

// parseSyslog splits a traditional ("Feb 21 21:54:44 host prog[pid]: msg")
// or RFC 3339 ("2019-06-14T10:40:20.912+01:30 host prog: msg") syslog line.
// Traditional stamps carry no year: year is used when set, else the year of
// mtime, stepping back one year for stamps that would lie more than a day
// after the file was last written (December lines in a January file).
func parseSyslog(line string, year int, mtime time.Time, loc *time.Location) (syslogLine, bool) {
	var sl syslogLine
	rest := line
	if isPriority([]byte(rest)) {
		rest = rest[strings.IndexByte(rest, '>')+1:]
		rest = strings.TrimPrefix(rest, "1 ") // RFC 5424 version
	}

	// The time stamp.
	switch {
	case len(rest) >= 15 && isMonth(rest[:3]) && rest[3] == ' ':
		t, err := time.ParseInLocation("Jan _2 15:04:05", rest[:15], loc)
		if err != nil {
			return sl, false
		}
		sl.time = withYear(t, year, mtime, loc)
		rest = rest[15:]
	case len(rest) >= 19 && rest[4] == '-' && rest[10] == 'T':
		stamp, tail, _ := strings.Cut(rest, " ")
		t, ok := parseStamp(stamp, loc)
		if !ok {
			return sl, false
		}
		sl.time, rest = t, " "+tail
	default:
		return sl, false
	}

	// Host, then "program[pid]:" or "program:".
	rest = strings.TrimLeft(rest, " ")
	sl.host, rest, _ = strings.Cut(rest, " ")
	tag, msg, ok := strings.Cut(rest, ": ")
	if !ok || strings.ContainsAny(tag, " \t") || tag == "" {
		if t, found := strings.CutSuffix(rest, ":"); found && !strings.Contains(t, " ") {
			tag, msg = t, ""
		} else {
			sl.message = strings.TrimSpace(rest)
			return sl, true
		}
	}
	if open := strings.IndexByte(tag, '['); open > 0 && strings.HasSuffix(tag, "]") {
		sl.pid, _ = strconv.ParseInt(tag[open+1:len(tag)-1], 10, 64)
		tag = tag[:open]
	}
	sl.program, sl.message = tag, strings.TrimSpace(msg)
	return sl, true
}

// isMonth reports whether s is an English three-letter month.
func isMonth(s string) bool {
	switch s {
	case "Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec":
		return true
	}
	return false
}

// withYear completes a year-less stamp.
func withYear(t time.Time, year int, mtime time.Time, loc *time.Location) time.Time {
	if year > 0 {
		return t.AddDate(year-t.Year(), 0, 0)
	}
	ref := mtime
	if ref.IsZero() {
		ref = time.Now()
	}
	out := t.AddDate(ref.In(loc).Year()-t.Year(), 0, 0)
	if out.After(ref.Add(24 * time.Hour)) {
		out = out.AddDate(-1, 0, 0)
	}
	return out
}

// stampLayouts are the time formats accepted in JSON and text logs; a stamp
// without a zone is read in the configured zone.
var stampLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z0700",
}

// parseStamp parses an RFC 3339-like stamp, with or without zone.
func parseStamp(s string, loc *time.Location) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 10 || len(s) > 64 {
		return time.Time{}, false
	}
	for _, layout := range stampLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// parseAuth recognises authentication events by program and message. It
// returns the auth fields, or nil when the line is not one of them.
func parseAuth(program, msg string) map[string]any {
	switch program {
	case "sshd", "sshd-session":
		return parseSSHD(msg)
	case "sudo":
		return parseSudo(msg)
	case "useradd", "groupadd":
		return parseUseradd(program, msg)
	}
	if f := parseSession(msg); f != nil {
		return f
	}
	return nil
}

// parseSSHD handles accepted, failed and invalid-user lines.
func parseSSHD(msg string) map[string]any {
	var event, rest string
	switch {
	case strings.HasPrefix(msg, "Accepted "):
		event, rest = "accepted", msg[len("Accepted "):]
	case strings.HasPrefix(msg, "Failed "):
		event, rest = "failed", msg[len("Failed "):]
	case strings.HasPrefix(msg, "Invalid user "):
		return invalidUser(msg[len("Invalid user "):], msg)
	default:
		return parseSession(msg)
	}

	// "<method> for [invalid user ]<user> from <addr> port <port> ..."
	method, rest, ok := strings.Cut(rest, " for ")
	if !ok || strings.Contains(method, " ") {
		return nil
	}
	invalid := false
	if r, found := strings.CutPrefix(rest, "invalid user "); found {
		rest, invalid = r, true
	}
	user, rest, ok := cutLast(rest, " from ")
	if !ok {
		return nil
	}
	f := map[string]any{"event": event, "user": user, "method": method, "message": msg}
	if invalid {
		f["event"] = "invalid-user"
		if event == "accepted" {
			f["event"] = event
		}
	}
	addr, rest, _ := strings.Cut(rest, " ")
	f["source_address"] = addr
	if p, found := strings.CutPrefix(rest, "port "); found {
		ps, _, _ := strings.Cut(p, " ")
		if n, err := strconv.ParseInt(ps, 10, 64); err == nil {
			f["source_port"] = n
		}
	}
	return f
}

// cutLast is strings.Cut at the last occurrence of sep, so that a user name
// containing " from " cannot move the address.
func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// invalidUser parses "<user> from <addr>[ port <port>]".
func invalidUser(rest, msg string) map[string]any {
	f := map[string]any{"event": "invalid-user", "message": msg}
	user, tail, ok := cutLast(rest, " from ")
	if !ok {
		f["user"] = strings.TrimSpace(rest)
		return f
	}
	f["user"] = user
	addr, tail, _ := strings.Cut(tail, " ")
	f["source_address"] = addr
	if p, found := strings.CutPrefix(tail, "port "); found {
		if n, err := strconv.ParseInt(strings.Fields(p + " x")[0], 10, 64); err == nil {
			f["source_port"] = n
		}
	}
	return f
}

// parseSudo parses "user : [reason ; ]TTY=.. ; PWD=.. ; USER=root ; COMMAND=..".
func parseSudo(msg string) map[string]any {
	user, rest, ok := strings.Cut(msg, " : ")
	if !ok {
		return parseSession(msg)
	}
	f := map[string]any{"event": "sudo", "user": strings.TrimSpace(user), "message": msg}
	for part := range strings.SplitSeq(rest, " ; ") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "COMMAND":
			f["command"] = v
		case "USER":
			f["target_user"] = v
		}
	}
	// target_user is not in the schema: fold it into the message only.
	if t, ok := f["target_user"].(string); ok {
		delete(f, "target_user")
		f["message"] = fmt.Sprintf("%s (as %s)", msg, t)
	}
	return f
}

// parseUseradd parses "new user: name=apache, UID=48, ..." and the group
// equivalent.
func parseUseradd(program, msg string) map[string]any {
	rest, ok := strings.CutPrefix(msg, "new user: ")
	if !ok {
		rest, ok = strings.CutPrefix(msg, "new group: ")
	}
	if !ok {
		return nil
	}
	f := map[string]any{"event": program, "message": msg}
	for part := range strings.SplitSeq(rest, ", ") {
		if k, v, ok := strings.Cut(part, "="); ok && k == "name" {
			f["user"] = v
		}
	}
	return f
}

// parseSession parses PAM "session opened|closed for user X[ by ...]".
func parseSession(msg string) map[string]any {
	i := strings.Index(msg, "session opened for user ")
	if i < 0 {
		i = strings.Index(msg, "session closed for user ")
	}
	if i < 0 {
		return nil
	}
	rest := msg[i+len("session opened for user "):]
	user, _, _ := strings.Cut(rest, " ")
	user, _, _ = strings.Cut(user, "(") // "root(uid=0)"
	return map[string]any{"event": "session", "user": user, "message": msg}
}
