package logs

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// auditEvent gathers the records of one auditd event (one serial).
type auditEvent struct {
	serial string
	time   time.Time
	where  string // file:line of its first record
	types  []string
	kv     map[string]map[string]string // type -> key -> value (first record of a type)
	args   []string                     // EXECVE a0..aN
}

// auditd reads auditd's raw log. Records sharing a serial are one event:
// an event with an EXECVE record becomes a process record (pid, ppid, exe,
// name, cmdline, cwd, user as the numeric uid), any other a log record.
func (in *ingest) auditd(r *bufio.Reader) error {
	lr := &lineReader{r: r, max: MaxLine}
	var cur *auditEvent
	flush := func() error {
		if cur == nil {
			return nil
		}
		ev := cur
		cur = nil
		return emitErr(in.emit(ev.record(), ev.where))
	}
	for {
		line, long, err := lr.next()
		if err != nil {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return eofNil(err)
		}
		where := fmt.Sprintf("%s:%d", in.src.Path, lr.n)
		if long {
			in.env.Stats.Skip("line too long", where)
			continue
		}
		if strings.TrimSpace(string(line)) == "" {
			continue
		}
		typ, t, serial, kv, ok := parseAuditLine(string(line))
		if !ok {
			in.env.Stats.Skip("unparsed line", where)
			continue
		}
		if cur != nil && cur.serial != serial {
			if err := flush(); err != nil {
				return err
			}
		}
		if cur == nil {
			cur = &auditEvent{serial: serial, time: t, where: where,
				kv: map[string]map[string]string{}}
		}
		cur.add(typ, kv)
	}
}

// parseAuditLine splits "type=T msg=audit(SECS.MS:SERIAL): k=v ...".
func parseAuditLine(line string) (typ string, t time.Time, serial string,
	kv map[string]string, ok bool) {
	rest, found := strings.CutPrefix(line, "type=")
	if !found {
		return "", t, "", nil, false
	}
	typ, rest, _ = strings.Cut(rest, " ")
	rest, found = strings.CutPrefix(rest, "msg=audit(")
	if !found {
		return "", t, "", nil, false
	}
	stamp, rest, found := strings.Cut(rest, "):")
	if !found {
		return "", t, "", nil, false
	}
	secs, serial, found := strings.Cut(stamp, ":")
	if !found {
		return "", t, "", nil, false
	}
	sec, frac, _ := strings.Cut(secs, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || s < 0 {
		return "", t, "", nil, false
	}
	ms, _ := strconv.ParseInt((frac + "000")[:3], 10, 64)
	return typ, time.Unix(s, ms*int64(time.Millisecond)).UTC(), serial, splitKV(rest), true
}

// splitKV parses space-separated key=value pairs; quoted values keep spaces.
func splitKV(s string) map[string]string {
	out := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		key, rest, found := strings.Cut(s, "=")
		if !found || strings.Contains(key, " ") {
			_, s, _ = strings.Cut(s, " ")
			continue
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				val, s = rest[1:], ""
			} else {
				val, s = rest[1:end+1], rest[end+2:]
			}
			out[key] = val
			continue
		}
		val, s, _ = strings.Cut(rest, " ")
		if hexKey(key) {
			val = unhex(val)
		}
		out[key] = val
	}
	return out
}

// hexKey reports whether auditd hex-encodes the key's value when it is not
// quoted: strings that may hold spaces or odd bytes.
func hexKey(k string) bool {
	switch k {
	case "proctitle", "exe", "comm", "cwd", "name":
		return true
	}
	if rest, ok := strings.CutPrefix(k, "a"); ok && rest != "" {
		_, err := strconv.Atoi(rest)
		return err == nil
	}
	return false
}

// unhex decodes auditd's hex encoding of values with spaces or odd bytes;
// NULs (argument separators in proctitle) become spaces.
func unhex(v string) string {
	if len(v) < 2 || len(v)%2 != 0 {
		return v
	}
	b, err := hex.DecodeString(v)
	if err != nil {
		return v
	}
	for i, c := range b {
		if c == 0 {
			b[i] = ' '
		}
	}
	return strings.ToValidUTF8(strings.TrimSpace(string(b)), "\uFFFD")
}

// add files one record of the event.
func (ev *auditEvent) add(typ string, kv map[string]string) {
	ev.types = append(ev.types, typ)
	if _, ok := ev.kv[typ]; !ok {
		ev.kv[typ] = kv
	}
	if typ == "EXECVE" {
		argc, _ := strconv.Atoi(kv["argc"])
		for i := 0; i < argc && i < 4096; i++ {
			a, ok := kv["a"+strconv.Itoa(i)]
			if !ok {
				break
			}
			ev.args = append(ev.args, a)
		}
	}
}

// record turns the event into a process or log record.
func (ev *auditEvent) record() tasks.Record {
	sc := ev.kv["SYSCALL"]
	f := map[string]any{}
	pid, pok := num(sc["pid"])
	ppid, ppok := num(sc["ppid"])
	if _, exec := ev.kv["EXECVE"]; exec && sc != nil {
		setInt(f, "pid", pid, pok)
		setInt(f, "ppid", ppid, ppok)
		setStr(f, "exe", sc["exe"])
		setStr(f, "name", first(sc["comm"], baseName(sc["exe"])))
		cmd := strings.Join(ev.args, " ")
		if cmd == "" {
			cmd = ev.kv["PROCTITLE"]["proctitle"]
		}
		setStr(f, "cmdline", cmd)
		setStr(f, "cwd", ev.kv["CWD"]["cwd"])
		setStr(f, "user", sc["uid"])
		f["message"] = fmt.Sprintf("Process exec: %s (pid %d, parent %d, auid %s)",
			clip(cmd, 200), pid, ppid, sc["auid"])
		f["provider"] = "auditd"
		return tasks.Record{Kind: tasks.KindProcess, Time: ev.time, Fields: f}
	}
	setStr(f, "program", first(sc["comm"], "auditd"))
	setInt(f, "pid", pid, pok)
	msg := "audit " + strings.Join(ev.types, ",")
	if sc != nil {
		msg += fmt.Sprintf(" syscall=%s success=%s exe=%s", sc["syscall"], sc["success"],
			sc["exe"])
	} else if m := ev.kv[ev.types[0]]["msg"]; m != "" {
		msg += " " + m
	}
	f["message"] = clip(msg, 1024)
	return tasks.Record{Kind: tasks.KindLog, Time: ev.time, Fields: f}
}
