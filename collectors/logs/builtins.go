package logs

import (
	"fmt"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// mapEDR maps an EDR alert export: severity, category, user, the process
// (pid, path, command line) and the network peer it talked to.
func mapEDR(obj map[string]any, loc *time.Location) (tasks.Record, string) {
	f := map[string]any{}
	setStr(f, "source", first(str(obj["source"]), str(obj["vendor"]), "edr"))
	title := first(str(obj["title"]), str(obj["rule_name"]), str(obj["alert_name"]),
		str(getPath(obj, "rule.name")), str(obj["name"]))
	setStr(f, "severity", strings.ToLower(str(obj["severity"])))
	setStr(f, "category", str(obj["category"]))
	user := first(str(getPath(obj, "user.name")), str(obj["user"]))
	if d := str(getPath(obj, "user.domain")); d != "" && user != "" {
		user = d + `\` + user
	}
	setStr(f, "user", user)
	pid, pok := num(first(str(getPath(obj, "process.pid")), str(obj["pid"])))
	setInt(f, "pid", pid, pok)
	exe := first(str(getPath(obj, "process.path")), str(getPath(obj, "process.executable")),
		str(obj["exe"]))
	setStr(f, "exe", exe)
	setStr(f, "cmdline", first(str(getPath(obj, "process.command_line")),
		str(obj["cmdline"])))
	raddr := first(str(getPath(obj, "network.remote_ip")), str(obj["remote_address"]))
	setStr(f, "remote_address", raddr)
	rport, rok := num(first(str(getPath(obj, "network.remote_port")), str(obj["remote_port"])))
	setInt(f, "remote_port", rport, rok)
	id, idok := num(obj["event_id"])
	setInt(f, "event_id", id, idok)

	desc := first(str(obj["description"]), str(obj["message"]))
	if title == "" {
		title = first(firstSentence(desc), str(obj["category"]), "EDR alert")
	}
	f["title"] = title
	msg := fmt.Sprintf("EDR alert (%s): %s", first(str(f["severity"]), "unknown"), clip(desc, 300))
	if exe != "" {
		msg += fmt.Sprintf(" [%s pid %d", baseName(exe), pid)
		if raddr != "" {
			msg += fmt.Sprintf(" -> %s:%d", raddr, rport)
		}
		msg += "]"
	}
	f["message"] = msg
	return tasks.Record{Kind: tasks.KindAlert, Time: commonTime(obj, loc), Fields: f}, ""
}

// firstSentence is s up to its first full stop.
func firstSentence(s string) string {
	s = firstLine(s)
	if i := strings.Index(s, ". "); i > 0 {
		return s[:i]
	}
	return strings.TrimSuffix(s, ".")
}

// ipProtocols names common IANA protocol numbers used by flow logs.
var ipProtocols = map[int64]string{1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6"}

// mapFlow maps one flow log record (generic, VPC- and NSG-like keys).
func mapFlow(obj map[string]any, loc *time.Location) (tasks.Record, string) {
	pick := func(keys ...string) any {
		for _, k := range keys {
			if v := getPath(obj, k); v != nil {
				return v
			}
		}
		return nil
	}
	f := map[string]any{}
	proto := str(pick("proto", "protocol", "network.transport"))
	if n, ok := num(proto); ok {
		proto = first(ipProtocols[n], proto)
	}
	setStr(f, "protocol", strings.ToLower(proto))
	src := str(pick("src_ip", "src_address", "srcaddr", "source.ip"))
	dst := str(pick("dst_ip", "dst_address", "dstaddr", "destination.ip"))
	setStr(f, "src_address", src)
	setStr(f, "dst_address", dst)
	sp, sok := num(pick("src_port", "srcport", "source.port"))
	dp, dok := num(pick("dst_port", "dstport", "destination.port"))
	setInt(f, "src_port", sp, sok)
	setInt(f, "dst_port", dp, dok)
	out, ook := num(pick("bytes_out", "bytes_sent", "bytes", "source.bytes"))
	in, iok := num(pick("bytes_in", "bytes_received", "destination.bytes"))
	setInt(f, "bytes_out", out, ook)
	setInt(f, "bytes_in", in, iok)
	setStr(f, "action", strings.ToLower(str(pick("action", "event.action"))))
	setStr(f, "rule", str(pick("rule", "rule_name", "rule.name")))
	if src == "" && dst == "" {
		return tasks.Record{}, "not a flow"
	}
	f["message"] = fmt.Sprintf("Flow %s %s:%d -> %s:%d %s, %d bytes out, %d bytes in",
		proto, src, sp, dst, dp, str(f["action"]), out, in)
	t := commonTime(obj, loc)
	if t.IsZero() {
		t, _ = toTime(pick("start", "end", "flow_start"), loc)
	}
	return tasks.Record{Kind: tasks.KindFlow, Time: t, Fields: f}, ""
}

// syslogPriorities names syslog severities by number.
var syslogPriorities = []string{"emerg", "alert", "crit", "err", "warning", "notice",
	"info", "debug"}

// mapJournal maps one journalctl -o json entry: an auth record when the
// message is an sshd, sudo, useradd or PAM session event, else a log.
func mapJournal(obj map[string]any, _ *time.Location) (tasks.Record, string) {
	var t time.Time
	if us, ok := num(obj["__REALTIME_TIMESTAMP"]); ok {
		t = time.UnixMicro(us).UTC()
	}
	msg := journalMessage(obj["MESSAGE"])
	prog := first(str(obj["SYSLOG_IDENTIFIER"]), str(obj["_COMM"]))
	pid, pok := num(first(str(obj["_PID"]), str(obj["SYSLOG_PID"])))
	sl := syslogLine{time: t, program: prog, message: msg}
	if pok {
		sl.pid = pid
	}
	rec := syslogRecord(sl)
	if rec.Kind == tasks.KindLog {
		if p, ok := num(obj["PRIORITY"]); ok && p >= 0 && int(p) < len(syslogPriorities) {
			rec.Fields["priority"] = syslogPriorities[p]
		}
		setStr(rec.Fields, "facility", str(obj["SYSLOG_FACILITY"]))
		setStr(rec.Fields, "unit", first(str(obj["_SYSTEMD_UNIT"]), str(obj["UNIT"])))
	}
	return rec, ""
}

// journalMessage decodes MESSAGE, which journalctl writes as an array of
// byte values when it is not valid UTF-8.
func journalMessage(v any) string {
	arr, ok := v.([]any)
	if !ok {
		return str(v)
	}
	b := make([]byte, 0, len(arr))
	for _, e := range arr {
		if n, ok := num(e); ok && n >= 0 && n < 256 {
			b = append(b, byte(n))
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
