package logs

import (
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// winEvent is a Windows (or Sysmon for Linux) event in one shape, whatever
// shape it arrived in: Winlogbeat/ECS ("winlog.event_data"), flat NXLog-
// style objects ("EventID" beside the data), "Event.System/EventData"
// objects, Sysmon XML, or EVTX.
type winEvent struct {
	id       int64
	provider string
	channel  string
	computer string
	message  string
	time     time.Time
	data     map[string]string
}

// flatSkip are envelope keys of flat events that are not event data.
var flatSkip = map[string]bool{"EventID": true, "SourceName": true, "TimeCreated": true,
	"@timestamp": true, "Hostname": true, "Channel": true, "Message": true,
	"ProviderGuid": true, "Keywords": true, "Level": true, "Task": true,
	"ProviderName": true, "Provider": true, "Computer": true, "EventTime": true,
	"@version": true, "tags": true, "host": true}

// mapWindowsJSON maps a Windows event in any of the JSON shapes.
func mapWindowsJSON(obj map[string]any, loc *time.Location) (tasks.Record, string) {
	ev := winEvent{data: map[string]string{}}
	switch {
	case obj["winlog"] != nil:
		wl, _ := obj["winlog"].(map[string]any)
		ev.id, _ = num(wl["event_id"])
		ev.provider = str(wl["provider_name"])
		ev.channel = str(wl["channel"])
		ev.computer = str(wl["computer_name"])
		ev.message = str(obj["message"])
		copyStrings(ev.data, wl["event_data"])
	case obj["Event"] != nil:
		e, _ := obj["Event"].(map[string]any)
		sys, _ := e["System"].(map[string]any)
		id := sys["EventID"]
		if m, ok := id.(map[string]any); ok {
			id = m["Value"]
		}
		ev.id, _ = num(id)
		ev.provider = str(getPath(sys, "Provider.Name"))
		ev.channel = str(sys["Channel"])
		ev.computer = str(sys["Computer"])
		ev.time, _ = toTime(getPath(sys, "TimeCreated.SystemTime"), loc)
		copyStrings(ev.data, e["EventData"])
	case obj["event_data"] != nil:
		ev.id, _ = num(obj["event_id"])
		ev.provider = first(str(obj["provider_name"]), str(obj["source_name"]))
		ev.channel = str(obj["log_name"])
		ev.computer = str(obj["computer_name"])
		ev.message = str(obj["message"])
		copyStrings(ev.data, obj["event_data"])
	default:
		ev.id, _ = num(obj["EventID"])
		ev.provider = first(str(obj["SourceName"]), str(obj["ProviderName"]),
			str(obj["Provider"]))
		ev.channel = str(obj["Channel"])
		ev.computer = first(str(obj["Hostname"]), str(obj["Computer"]))
		ev.message = str(obj["Message"])
		for k, v := range obj {
			if !flatSkip[k] {
				if s := str(v); s != "" {
					ev.data[k] = s
				}
			}
		}
	}
	if ev.time.IsZero() {
		ev.time = commonTime(obj, loc)
	}
	if ev.time.IsZero() {
		ev.time, _ = parseStamp(ev.data["UtcTime"], time.UTC)
	}
	if ev.id == 0 && ev.provider == "" {
		return tasks.Record{}, "not a windows event"
	}
	return ev.record(), ""
}

// copyStrings copies the scalar members of an object into dst.
func copyStrings(dst map[string]string, v any) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	for k, val := range m {
		if s := str(val); s != "" {
			dst[k] = s
		}
	}
}

// first returns the first non-empty string.
func first(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// get returns an event data value, with Sysmon's "-" placeholder as "".
func (ev *winEvent) get(k string) string {
	v := strings.TrimSpace(ev.data[k])
	if v == "-" {
		return ""
	}
	return v
}

// int returns an event data value as a number (decimal or 0x hex).
func (ev *winEvent) int(k string) (int64, bool) {
	return num(ev.get(k))
}

// sysmon reports whether the event comes from Sysmon (Windows or Linux).
func (ev *winEvent) sysmon() bool {
	return strings.Contains(ev.provider, "Sysmon") || strings.Contains(ev.channel, "Sysmon")
}

// record maps the event by provider and ID: Sysmon 1 and Security 4688 to
// process, Sysmon 3 to connection, Sysmon 11 to file, anything else to log.
func (ev *winEvent) record() tasks.Record {
	var rec tasks.Record
	switch {
	case ev.sysmon() && ev.id == 1:
		rec = ev.processCreate()
	case ev.sysmon() && ev.id == 3:
		rec = ev.networkConnect()
	case ev.sysmon() && ev.id == 11:
		rec = ev.fileCreate()
	case ev.id == 4688 && strings.Contains(ev.provider, "Security-Auditing"):
		rec = ev.securityProcess()
	default:
		rec = ev.logRecord()
	}
	rec.Time = ev.time
	rec.Fields["event_id"] = ev.id
	if ev.provider != "" {
		rec.Fields["provider"] = ev.provider
	}
	return rec
}

// setStr sets f[k] when v is not empty.
func setStr(f map[string]any, k, v string) {
	if v != "" {
		f[k] = v
	}
}

// setInt sets f[k] when v parsed.
func setInt(f map[string]any, k string, v int64, ok bool) {
	if ok {
		f[k] = v
	}
}

// baseName is the last element of a Windows or POSIX path.
func baseName(p string) string {
	if i := strings.LastIndexAny(p, `\/`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// sha256Of extracts the SHA256 from Sysmon's "SHA1=..,SHA256=..,..".
func sha256Of(hashes string) string {
	for part := range strings.SplitSeq(hashes, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "SHA256="); ok {
			return strings.ToLower(v)
		}
	}
	return ""
}

func (ev *winEvent) processCreate() tasks.Record {
	f := map[string]any{}
	pid, pok := ev.int("ProcessId")
	ppid, ppok := ev.int("ParentProcessId")
	setInt(f, "pid", pid, pok)
	setInt(f, "ppid", ppid, ppok)
	exe := ev.get("Image")
	setStr(f, "exe", exe)
	setStr(f, "name", baseName(exe))
	setStr(f, "cmdline", ev.get("CommandLine"))
	setStr(f, "user", ev.get("User"))
	setStr(f, "cwd", ev.get("CurrentDirectory"))
	setStr(f, "exe_sha256", sha256Of(ev.get("Hashes")))
	if pe := ev.get("ParentImage"); pe != "" {
		f["parent_exe"] = pe
		f["parent_name"] = baseName(pe)
	}
	if t, ok := parseStamp(ev.get("UtcTime"), time.UTC); ok {
		f["started"] = t.UTC().Format(time.RFC3339Nano)
	}
	f["message"] = fmt.Sprintf("Process Create: %s (pid %d, parent %d)",
		clip(first(ev.get("CommandLine"), exe), 200), pid, ppid)
	return tasks.Record{Kind: tasks.KindProcess, Fields: f}
}

func (ev *winEvent) securityProcess() tasks.Record {
	f := map[string]any{}
	pid, pok := ev.int("NewProcessId")
	ppid, ppok := ev.int("ProcessId")
	setInt(f, "pid", pid, pok)
	setInt(f, "ppid", ppid, ppok)
	exe := ev.get("NewProcessName")
	setStr(f, "exe", exe)
	setStr(f, "name", baseName(exe))
	setStr(f, "cmdline", ev.get("CommandLine"))
	user := ev.get("SubjectUserName")
	if d := ev.get("SubjectDomainName"); d != "" && user != "" {
		user = d + `\` + user
	}
	setStr(f, "user", user)
	if pe := ev.get("ParentProcessName"); pe != "" {
		f["parent_exe"] = pe
		f["parent_name"] = baseName(pe)
	}
	f["message"] = fmt.Sprintf("Process Create: %s (pid %d, parent %d)",
		clip(first(ev.get("CommandLine"), exe), 200), pid, ppid)
	return tasks.Record{Kind: tasks.KindProcess, Fields: f}
}

func (ev *winEvent) networkConnect() tasks.Record {
	f := map[string]any{}
	proto := strings.ToLower(ev.get("Protocol"))
	remote := ev.get("DestinationIp")
	if proto != "" && (strings.Contains(remote, ":") ||
		strings.EqualFold(ev.get("DestinationIsIpv6"), "true")) {
		proto += "6"
	}
	setStr(f, "protocol", proto)
	setStr(f, "local_address", ev.get("SourceIp"))
	lp, lok := ev.int("SourcePort")
	setInt(f, "local_port", lp, lok)
	setStr(f, "remote_address", remote)
	rp, rok := ev.int("DestinationPort")
	setInt(f, "remote_port", rp, rok)
	pid, pok := ev.int("ProcessId")
	setInt(f, "pid", pid, pok)
	exe := ev.get("Image")
	setStr(f, "process_exe", exe)
	setStr(f, "process_name", baseName(exe))
	f["message"] = fmt.Sprintf("Network connect: %s (pid %d) %s %s:%d -> %s:%d",
		baseName(exe), pid, proto, ev.get("SourceIp"), lp, remote, rp)
	return tasks.Record{Kind: tasks.KindConnection, Fields: f}
}

func (ev *winEvent) fileCreate() tasks.Record {
	f := map[string]any{}
	path := ev.get("TargetFilename")
	setStr(f, "path", path)
	setStr(f, "name", baseName(path))
	exe := ev.get("Image")
	setStr(f, "process_exe", exe)
	pid, _ := ev.int("ProcessId")
	f["message"] = fmt.Sprintf("File created: %s by %s (pid %d)", path, baseName(exe), pid)
	return tasks.Record{Kind: tasks.KindFile, Fields: f}
}

// sysmonNames are the titles of Sysmon event IDs, for log messages.
var sysmonNames = map[int64]string{
	2: "File creation time changed", 4: "Sysmon state changed",
	5: "Process terminated", 6: "Driver loaded", 7: "Image loaded",
	8: "CreateRemoteThread", 9: "RawAccessRead", 10: "Process accessed",
	12: "Registry object added or deleted", 13: "Registry value set",
	14: "Registry object renamed", 15: "File stream created",
	16: "Sysmon config changed", 17: "Pipe created", 18: "Pipe connected",
	19: "WMI filter", 20: "WMI consumer", 21: "WMI binding", 22: "DNS query",
	23: "File deleted", 24: "Clipboard changed", 25: "Process tampering",
	26: "File delete logged", 27: "File block executable", 28: "File block shredding",
}

// logRecord keeps any other event as a log record whose message says what
// happened in one line. Sysmon event 10 (process access, e.g. a credential
// dump opening lsass) names source and target process and the access mask;
// pid and program are the accessing process.
func (ev *winEvent) logRecord() tasks.Record {
	f := map[string]any{}
	exe := first(ev.get("Image"), ev.get("SourceImage"), ev.get("ProcessName"),
		ev.get("NewProcessName"))
	setStr(f, "program", baseName(exe))
	pidKey := "ProcessId"
	if ev.get(pidKey) == "" {
		pidKey = "SourceProcessId"
	}
	pid, pok := ev.int(pidKey)
	setInt(f, "pid", pid, pok)

	var msg string
	if ev.sysmon() {
		title := first(sysmonNames[ev.id], fmt.Sprintf("Sysmon event %d", ev.id))
		switch ev.id {
		case 10:
			tpid, _ := ev.int("TargetProcessId")
			spid, _ := ev.int("SourceProcessId")
			msg = fmt.Sprintf("%s: %s (pid %d) -> %s (pid %d), access %s", title,
				ev.get("SourceImage"), spid, ev.get("TargetImage"), tpid,
				ev.get("GrantedAccess"))
		default:
			target := first(ev.get("TargetFilename"), ev.get("TargetObject"),
				ev.get("ImageLoaded"), ev.get("QueryName"), ev.get("PipeName"),
				ev.get("Device"))
			msg = fmt.Sprintf("%s: %s (pid %d)", title, exe, pid)
			if target != "" {
				msg += " " + target
			}
			if d := ev.get("Details"); d != "" {
				msg += " = " + d
			}
		}
	} else {
		msg = firstLine(ev.message)
		if msg == "" {
			msg = fmt.Sprintf("%s event %d", first(ev.provider, ev.channel), ev.id)
		}
		if obj := first(ev.get("ObjectName"), ev.get("TargetFilename")); obj != "" {
			msg += " " + obj
		}
		if exe != "" {
			msg += fmt.Sprintf(" by %s", exe)
		}
	}
	f["message"] = clip(msg, 1024)
	return tasks.Record{Kind: tasks.KindLog, Fields: f}
}

// newWinEvent builds an event from XML or EVTX parts.
func newWinEvent(id int64, provider, channel, computer string, t time.Time,
	data map[string]string) winEvent {
	ev := winEvent{id: id, provider: provider, channel: channel, computer: computer,
		time: t, data: map[string]string{}}
	maps.Copy(ev.data, data)
	if ev.time.IsZero() {
		ev.time, _ = parseStamp(ev.data["UtcTime"], time.UTC)
	}
	return ev
}
