package tasks

import (
	"fmt"
	"strconv"
	"time"
)

// Record kinds. Each kind has a documented field set in package collectors;
// log ingestion maps foreign formats onto these same kinds so that matching
// and queries treat live and ingested evidence alike.
const (
	KindProcess       = "process"
	KindConnection    = "connection"
	KindFile          = "file"
	KindPersistence   = "persistence"
	KindAccount       = "account"
	KindSystem        = "system"
	KindAuth          = "auth"
	KindLog           = "log"
	KindCloudActivity = "cloud-activity"
	KindFlow          = "flow"
	KindAlert         = "alert"
	KindMemory        = "memory"
	KindBlob          = "blob"
)

// Record is one observation made by a collector on one host.
//
// Fields holds the kind's schema. Values are restricted to the JSON-friendly
// types string, int64, float64, bool and []string so that records survive a
// round trip through the store and the wire unchanged.
type Record struct {
	// Kind names the schema of Fields, one of the Kind constants.
	Kind string `json:"kind"`

	// Time is when the event happened: the event time for logs, the
	// observation time for live state such as the process table.
	Time time.Time `json:"time"`

	// Host is the host name of the node that collected the record.
	Host string `json:"host"`

	// Collector names the collector that produced the record.
	Collector string `json:"collector"`

	// Source says where the record came from: a log file path, "live", a
	// snapshot file. It lets an analyst go back to the original.
	Source string `json:"source,omitempty"`

	// Fields holds the kind-specific values.
	Fields map[string]any `json:"fields"`
}

// Str returns the string field name, or "" when it is absent or not a string.
func (r *Record) Str(name string) string {
	s, _ := r.Fields[name].(string)
	return s
}

// Int returns the integer field name. JSON decoding turns numbers into
// float64, so both are accepted; anything else yields ok == false.
func (r *Record) Int(name string) (int64, bool) {
	switch v := r.Fields[name].(type) {
	case int64:
		return v, true
	case int:
		return int64(v), true
	case int32:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint64:
		return int64(v), true
	case float64:
		return int64(v), true
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// Strs returns the list field name; a single string is returned as a list
// of one.
func (r *Record) Strs(name string) []string {
	switch v := r.Fields[name].(type) {
	case []string:
		return v
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// Summary is a short human line for a record, used in tables and timelines.
func (r *Record) Summary() string {
	switch r.Kind {
	case KindProcess:
		return fmt.Sprintf("pid %v %s: %s", r.Fields["pid"], r.Str("name"), r.Str("cmdline"))
	case KindConnection:
		return fmt.Sprintf("%s %s:%v -> %s:%v %s (pid %v %s)", r.Str("protocol"),
			r.Str("local_address"), r.Fields["local_port"], r.Str("remote_address"),
			r.Fields["remote_port"], r.Str("state"), r.Fields["pid"], r.Str("process_name"))
	case KindFile, KindPersistence:
		return r.Str("path")
	}
	if m := r.Str("message"); m != "" {
		return m
	}
	return r.Kind
}
