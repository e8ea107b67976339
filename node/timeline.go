package node

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// TimelineEvent is one line of a cross-host timeline. Its JSON form is a
// Timesketch event: message, datetime (RFC 3339) and timestamp_desc, plus
// our own fields.
type TimelineEvent struct {
	Time          time.Time `json:"-"`
	Message       string    `json:"message"`
	Datetime      string    `json:"datetime"`
	TimestampDesc string    `json:"timestamp_desc"`
	Timestamp     int64     `json:"timestamp"`
	Host          string    `json:"host"`
	Kind          string    `json:"kind"`
	Collector     string    `json:"collector"`
	Source        string    `json:"source,omitempty"`

	// Detection is set when the record matched: "type:value" of each
	// indicator or rule, and the highest severity.
	Detection []string `json:"detection,omitempty"`
	Severity  string   `json:"severity,omitempty"`
	Tags      []string `json:"tags,omitempty"`
}

// TimelineFilter bounds a timeline.
type TimelineFilter struct {
	// From and To bound event times; zero means unbounded.
	From, To time.Time

	// DetectionsOnly keeps records that matched something.
	DetectionsOnly bool
}

// SelectResults keeps the results of the hosts that sel picks, judged by
// what each answer says of its node (ID, host name, labels). A sample in
// sel is decided per task as on the nodes.
func SelectResults(results []*tasks.Result, sel tasks.Selector) ([]*tasks.Result, error) {
	if err := sel.Validate(); err != nil {
		return nil, err
	}
	var out []*tasks.Result
	for _, r := range results {
		ok, err := sel.Matches(tasks.BaseID(r.TaskID), tasks.NodeInfo{ID: r.Node, Host: r.Host,
			Labels: r.Labels})
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// BuildTimeline merges the records and detections of results from any
// number of hosts into one list ordered by event time. A record that also
// matched appears once, carrying its detections. A process record is
// placed at its start time ("Process Start"), since the time it was seen
// in a process table says little about the story.
func BuildTimeline(results []*tasks.Result, f TimelineFilter) []TimelineEvent {
	byKey := map[string]*TimelineEvent{}
	var order []string
	add := func(rec *tasks.Record, d *tasks.Detection) {
		ev := eventOf(rec)
		if (!f.From.IsZero() && ev.Time.Before(f.From)) || (!f.To.IsZero() && ev.Time.After(f.To)) {
			return
		}
		key := rec.Host + "\x00" + rec.Kind + "\x00" + ev.Datetime + "\x00" + ev.Message
		e := byKey[key]
		if e == nil {
			e = &ev
			byKey[key] = e
			order = append(order, key)
		}
		if d != nil {
			tag := d.IoCType + ":" + d.IoCValue
			if !contains(e.Detection, tag) {
				e.Detection = append(e.Detection, tag)
			}
			if tasks.SeverityRank(d.Severity) > tasks.SeverityRank(e.Severity) {
				e.Severity = d.Severity
			}
			for _, t := range d.Tags {
				if !contains(e.Tags, t) {
					e.Tags = append(e.Tags, t)
				}
			}
		}
	}
	for _, r := range results {
		for i := range r.Detections {
			add(&r.Detections[i].Record, &r.Detections[i])
		}
		if f.DetectionsOnly {
			continue
		}
		for i := range r.Records {
			add(&r.Records[i], nil)
		}
	}
	out := make([]TimelineEvent, 0, len(order))
	for _, k := range order {
		out = append(out, *byKey[k])
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].Host < out[j].Host
	})
	return out
}

// eventOf turns a record into a timeline event at its event time.
func eventOf(rec *tasks.Record) TimelineEvent {
	t, desc := rec.Time, timeDesc(rec.Kind)
	if rec.Kind == tasks.KindProcess {
		if s, err := time.Parse(time.RFC3339, rec.Str("started")); err == nil {
			t, desc = s, "Process Start"
		}
	}
	if rec.Kind == tasks.KindFile || rec.Kind == tasks.KindPersistence {
		if s, err := time.Parse(time.RFC3339Nano, rec.Str("mtime")); err == nil &&
			rec.Source != "" && !strings.HasPrefix(rec.Collector, "logs") {
			t, desc = s, "Content Modification Time"
		}
	}
	t = t.UTC()
	msg := rec.Summary()
	if rec.Kind == tasks.KindFile && rec.Collector == "logs" {
		msg = "file created: " + msg
	}
	return TimelineEvent{
		Time: t, Datetime: t.Format(time.RFC3339Nano), Timestamp: t.UnixMicro(),
		TimestampDesc: desc, Message: fmt.Sprintf("[%s] %s", rec.Host, msg), Host: rec.Host,
		Kind: rec.Kind, Collector: rec.Collector, Source: rec.Source,
	}
}

// timeDesc names what a record's time means, in Timesketch's words.
func timeDesc(kind string) string {
	switch kind {
	case tasks.KindConnection, tasks.KindSystem, tasks.KindAccount:
		return "Observed"
	case tasks.KindAlert:
		return "Alert Time"
	case tasks.KindFlow:
		return "Flow End Time"
	}
	return "Event Time"
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
