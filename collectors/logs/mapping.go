package logs

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// Built-in mapping names, usable as Source.Mapping.
const (
	MapEDR     = "edr"            // EDR alert exports -> alert
	MapWindows = "windows"        // Sysmon and Security events, any shape -> by event ID
	MapAzure   = "azure-activity" // Azure Activity Log, export or REST -> cloud-activity
	MapFlow    = "flow"           // flow log records -> flow
	MapJournal = "journal"        // journalctl -o json -> log or auth
	MapGeneric = "generic"        // any object -> log, message from common keys
)

// mapper turns one decoded JSON object into a record. A non-empty reason
// means the object is not mapped and is counted as skipped for it.
type mapper func(obj map[string]any, loc *time.Location) (rec tasks.Record, reason string)

// builtins are the named mappings.
var builtins = map[string]mapper{
	MapEDR:     mapEDR,
	MapWindows: mapWindowsJSON,
	"sysmon":   mapWindowsJSON,
	MapAzure:   mapAzure,
	MapFlow:    mapFlow,
	MapJournal: mapJournal,
	MapGeneric: mapGeneric,
}

// Mapping is a user-defined field mapping for JSON logs: each record gets
// Kind, its time from the dotted path Time, and each schema field from the
// dotted path in Fields. Paths index objects by key ("user.name") and
// arrays by number ("hits.0.ip"); a key containing dots is matched whole.
type Mapping struct {
	Kind   string            `json:"kind"`
	Time   string            `json:"time,omitempty"`
	Fields map[string]string `json:"fields"`
}

// resolveMapping turns Source.Mapping into a mapper: a name, an inline
// object, or a string holding an inline object. implied is the built-in
// that the format names, used when raw is empty; nil means auto-detect.
func resolveMapping(raw json.RawMessage, implied string) (mapper, error) {
	text := strings.TrimSpace(string(raw))
	if text == "" || text == "null" {
		if implied == "" {
			return nil, nil
		}
		return builtins[implied], nil
	}
	if text[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("decode mapping: %w", err)
		}
		s = strings.TrimSpace(s)
		if !strings.HasPrefix(s, "{") {
			m, ok := builtins[s]
			if !ok {
				return nil, fmt.Errorf("unknown mapping %q", s)
			}
			return m, nil
		}
		text = s
	}
	var m Mapping
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode mapping: %w", err)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m.mapper(), nil
}

// validate checks the kind and that every field belongs to its schema.
func (m Mapping) validate() error {
	fields, ok := schema[m.Kind]
	if !ok {
		return fmt.Errorf("mapping: unknown kind %q", m.Kind)
	}
	if len(m.Fields) == 0 {
		return fmt.Errorf("mapping: no fields")
	}
	for name, path := range m.Fields {
		if _, ok := fields[name]; !ok {
			if _, ok := common[name]; !ok {
				return fmt.Errorf("mapping: field %q is not in the %s schema", name, m.Kind)
			}
		}
		if strings.TrimSpace(path) == "" {
			return fmt.Errorf("mapping: field %q has an empty path", name)
		}
	}
	return nil
}

// mapper compiles m.
func (m Mapping) mapper() mapper {
	return func(obj map[string]any, loc *time.Location) (tasks.Record, string) {
		rec := tasks.Record{Kind: m.Kind, Fields: map[string]any{}}
		if m.Time != "" {
			rec.Time, _ = toTime(getPath(obj, m.Time), loc)
		} else {
			rec.Time = commonTime(obj, loc)
		}
		for name, path := range m.Fields {
			typ, ok := schema[m.Kind][name]
			if !ok {
				typ = common[name]
			}
			if v, ok := convert(getPath(obj, path), typ); ok {
				rec.Fields[name] = v
			}
		}
		if len(rec.Fields) == 0 {
			return rec, "mapping matched no field"
		}
		return rec, ""
	}
}

// Field types of the schema.
const (
	tStr = iota
	tInt
	tBool
	tStrs
	tFloat
)

// common are the fields every kind may carry.
var common = map[string]int{"message": tStr, "event_id": tInt, "provider": tStr}

// schema mirrors collectors/schema.go: kind -> field -> type.
var schema = map[string]map[string]int{
	tasks.KindProcess: {"pid": tInt, "ppid": tInt, "name": tStr, "exe": tStr,
		"cmdline": tStr, "user": tStr, "cwd": tStr, "started": tStr,
		"exe_sha256": tStr, "exe_deleted": tBool, "parent_name": tStr,
		"parent_exe": tStr},
	tasks.KindConnection: {"protocol": tStr, "local_address": tStr,
		"local_port": tInt, "remote_address": tStr, "remote_port": tInt,
		"state": tStr, "pid": tInt, "process_name": tStr, "process_exe": tStr},
	tasks.KindFile: {"path": tStr, "name": tStr, "size": tInt, "mode": tStr,
		"uid": tInt, "gid": tInt, "owner": tStr, "mtime": tStr, "ctime": tStr,
		"atime": tStr, "md5": tStr, "sha1": tStr, "sha256": tStr,
		"file_type": tStr, "yara": tStrs, "process_exe": tStr},
	tasks.KindPersistence: {"type": tStr, "path": tStr, "name": tStr,
		"owner": tStr, "mtime": tStr, "sha256": tStr, "content": tStr,
		"command": tStr, "user": tStr},
	tasks.KindAccount: {"user": tStr, "uid": tInt, "gid": tInt, "home": tStr,
		"shell": tStr, "uid0": tBool, "sudo": tStrs, "last_login": tStr},
	tasks.KindAuth: {"event": tStr, "user": tStr, "method": tStr,
		"source_address": tStr, "source_port": tInt, "program": tStr,
		"pid": tInt, "command": tStr},
	tasks.KindLog: {"program": tStr, "facility": tStr, "priority": tStr,
		"pid": tInt, "unit": tStr},
	tasks.KindCloudActivity: {"operation": tStr, "category": tStr,
		"status": tStr, "caller": tStr, "caller_address": tStr,
		"subscription": tStr, "resource_group": tStr, "resource": tStr,
		"resource_type": tStr, "location": tStr, "correlation_id": tStr},
	tasks.KindFlow: {"protocol": tStr, "src_address": tStr, "dst_address": tStr,
		"action": tStr, "rule": tStr, "src_port": tInt, "dst_port": tInt,
		"bytes_out": tInt, "bytes_in": tInt},
	tasks.KindAlert: {"source": tStr, "title": tStr, "severity": tStr,
		"category": tStr, "user": tStr, "pid": tInt, "exe": tStr,
		"cmdline": tStr, "remote_address": tStr, "remote_port": tInt},
}

// getPath follows a dotted path through decoded JSON.
func getPath(v any, path string) any {
	for path != "" {
		switch node := v.(type) {
		case map[string]any:
			if whole, ok := node[path]; ok {
				return whole
			}
			head, tail, _ := strings.Cut(path, ".")
			v, path = node[head], tail
		case []any:
			head, tail, _ := strings.Cut(path, ".")
			i, err := strconv.Atoi(head)
			if err != nil || i < 0 || i >= len(node) {
				return nil
			}
			v, path = node[i], tail
		default:
			return nil
		}
	}
	return v
}

// str renders a JSON scalar as a string; Azure's {value, localizedValue}
// objects yield their value.
func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case map[string]any:
		if s, ok := x["value"].(string); ok {
			return s
		}
	}
	return ""
}

// num reads an integer from a JSON number or a decimal or 0x-hex string.
func num(v any) (int64, bool) {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n, true
		}
		f, err := x.Float64()
		if err != nil || math.IsNaN(f) || math.Abs(f) > 1<<62 {
			return 0, false
		}
		return int64(f), true
	case float64:
		if math.IsNaN(x) || math.Abs(x) > 1<<62 {
			return 0, false
		}
		return int64(x), true
	case string:
		s := strings.TrimSpace(x)
		if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
			n, err := strconv.ParseInt(h, 16, 64)
			return n, err == nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// convert coerces a JSON value to a schema type.
func convert(v any, typ int) (any, bool) {
	if v == nil {
		return nil, false
	}
	switch typ {
	case tInt:
		return num(v)
	case tBool:
		switch x := v.(type) {
		case bool:
			return x, true
		case string:
			b, err := strconv.ParseBool(x)
			return b, err == nil
		}
		return nil, false
	case tFloat:
		f, err := strconv.ParseFloat(str(v), 64)
		return f, err == nil
	case tStrs:
		switch x := v.(type) {
		case []any:
			out := make([]string, 0, len(x))
			for _, e := range x {
				if s := str(e); s != "" {
					out = append(out, s)
				}
			}
			return out, true
		}
		if s := str(v); s != "" {
			return []string{s}, true
		}
		return nil, false
	}
	s := str(v)
	return s, s != ""
}

// toTime reads a time from an RFC 3339-like string or a Unix number
// (seconds, milliseconds or microseconds, told apart by size).
func toTime(v any, loc *time.Location) (time.Time, bool) {
	switch x := v.(type) {
	case string:
		if t, ok := parseStamp(x, loc); ok {
			return t, true
		}
		if _, err := strconv.ParseInt(x, 10, 64); err == nil {
			return toTime(json.Number(x), loc)
		}
	case json.Number:
		n, ok := num(x)
		if !ok || n <= 0 {
			return time.Time{}, false
		}
		switch {
		case n > 1e17:
			return time.Unix(0, n*1000).UTC(), n < math.MaxInt64/1000
		case n > 1e14:
			return time.UnixMicro(n).UTC(), true
		case n > 1e11:
			return time.UnixMilli(n).UTC(), true
		}
		return time.Unix(n, 0).UTC(), true
	case map[string]any:
		return toTime(x["SystemTime"], loc)
	}
	return time.Time{}, false
}

// timeKeys are where common exports keep the event time, in order.
var timeKeys = []string{"@timestamp", "timestamp", "time", "TimeCreated",
	"eventTimestamp", "EventTime", "ts", "date", "datetime", "__REALTIME_TIMESTAMP"}

// commonTime finds an event time under the usual keys.
func commonTime(obj map[string]any, loc *time.Location) time.Time {
	for _, k := range timeKeys {
		if v, ok := obj[k]; ok {
			if k == "__REALTIME_TIMESTAMP" {
				if n, ok := num(v); ok {
					return time.UnixMicro(n).UTC()
				}
			}
			if t, ok := toTime(v, loc); ok {
				return t
			}
		}
	}
	return time.Time{}
}

// messageKeys are where common exports keep a human message.
var messageKeys = []string{"message", "Message", "msg", "MESSAGE", "description",
	"log", "event.original"}

// mapGeneric keeps any object as a log record with a message.
func mapGeneric(obj map[string]any, loc *time.Location) (tasks.Record, string) {
	rec := tasks.Record{Kind: tasks.KindLog, Time: commonTime(obj, loc)}
	msg := ""
	for _, k := range messageKeys {
		if msg = str(getPath(obj, k)); msg != "" {
			break
		}
	}
	if msg == "" {
		b, _ := json.Marshal(obj)
		msg = string(b)
	}
	rec.Fields = map[string]any{"message": clip(firstLine(msg), 1024)}
	return rec, ""
}

// detect picks a built-in mapper from an object's keys.
func detect(obj map[string]any) mapper {
	switch {
	case obj["winlog"] != nil, obj["EventID"] != nil, obj["Event"] != nil,
		obj["event_data"] != nil && obj["event_id"] != nil:
		return mapWindowsJSON
	case obj["operationName"] != nil && (obj["resourceId"] != nil ||
		obj["correlationId"] != nil):
		return mapAzure
	case obj["__REALTIME_TIMESTAMP"] != nil || obj["MESSAGE"] != nil:
		return mapJournal
	case (obj["src_ip"] != nil || obj["src_address"] != nil || obj["srcaddr"] != nil) &&
		(obj["dst_ip"] != nil || obj["dst_address"] != nil || obj["dstaddr"] != nil):
		return mapFlow
	case obj["severity"] != nil && (obj["process"] != nil ||
		obj["description"] != nil || obj["source"] != nil):
		return mapEDR
	}
	return mapGeneric
}

// clip shortens s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// firstLine is s up to its first line break.
func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimRight(line, "\r")
}
