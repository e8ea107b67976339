package node

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

func TestBuildTimeline(t *testing.T) {
	at := func(s string) time.Time {
		v, _ := time.Parse(time.RFC3339, "2024-08-05T"+s+"Z")
		return v
	}
	proc := tasks.Record{Kind: tasks.KindProcess, Host: "b", Time: at("09:00:00"),
		Collector: "processes", Fields: map[string]any{"pid": int64(7), "name": "miner",
			"started": "2024-08-05T08:30:00Z"}}
	alert := tasks.Record{Kind: tasks.KindAlert, Host: "a", Time: at("08:10:00"),
		Collector: "logs", Fields: map[string]any{"message": "alert"}}
	late := tasks.Record{Kind: tasks.KindLog, Host: "a", Time: at("10:00:00"),
		Collector: "logs", Fields: map[string]any{"message": "late"}}
	results := []*tasks.Result{
		{Host: "a", Records: []tasks.Record{alert, late},
			Detections: []tasks.Detection{{IoCType: "ip", IoCValue: "1.2.3.4",
				Severity: "high", Record: alert}}},
		{Host: "b", Records: []tasks.Record{proc}},
	}
	tests := []struct {
		name string
		f    TimelineFilter
		want []string
	}{
		{"all, by event time, process at start", TimelineFilter{},
			[]string{"a alert", "b pid 7 miner: ", "a late"}},
		{"time range", TimelineFilter{From: at("08:20:00"), To: at("09:30:00")},
			[]string{"b pid 7 miner: "}},
		{"detections only", TimelineFilter{DetectionsOnly: true}, []string{"a alert"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tl := BuildTimeline(results, tc.f)
			var got []string
			for _, e := range tl {
				got = append(got, e.Host+" "+e.Message[len("["+e.Host+"] "):])
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
			}
		})
	}
	// The alert that matched appears once, carrying its detection.
	tl := BuildTimeline(results, TimelineFilter{})
	if len(tl[0].Detection) != 1 || tl[0].Severity != "high" {
		t.Errorf("merged alert %+v", tl[0])
	}
	if tl[1].TimestampDesc != "Process Start" {
		t.Errorf("process placed by %q", tl[1].TimestampDesc)
	}
}

func TestRankHosts(t *testing.T) {
	det := func(host, typ, val, sev string, tags ...string) tasks.Detection {
		return tasks.Detection{Host: host, IoCType: typ, IoCValue: val, Severity: sev, Tags: tags}
	}
	dets := []tasks.Detection{
		det("noisy", "ip", "1.1.1.1", "low"), det("noisy", "ip", "1.1.1.1", "low"),
		det("noisy", "ip", "1.1.1.1", "low"), det("noisy", "ip", "1.1.1.1", "low"),
		det("actor", "ip", "2.2.2.2", "medium", "actor:X", "T1496"),
		det("plain", "ip", "2.2.2.2", "medium"),
	}
	rank := RankHosts(dets, []string{"clean", "actor", "plain", "noisy"})
	var order []string
	for _, r := range rank {
		order = append(order, r.Host)
	}
	want := []string{"actor", "plain", "noisy", "clean"}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("order %v, want %v", order, want)
		}
	}
	if rank[0].Score != 5.4 || len(rank[0].Reasons) != 1 || rank[3].Score != 0 {
		t.Errorf("ranking %+v", rank)
	}
	if r := rank[0].Reasons[0]; r != "ip 2.2.2.2 (medium, actor X, technique T1496)" {
		t.Errorf("reason %q", r)
	}
	// Several techniques weigh once, and the reason says there are more.
	many := RankHosts([]tasks.Detection{det("h", "ip", "3.3.3.3", "medium", "T1496",
		"T1037.004", "T1496")}, nil)
	if many[0].Score != 3.6 || many[0].Reasons[0] != "ip 3.3.3.3 (medium, technique T1496 +1)" {
		t.Errorf("many techniques: %+v", many[0])
	}
}

// TestTimelineSelectAndExport checks the host selector over answers and
// the Timesketch shape of an event: message, datetime (RFC 3339) and
// timestamp_desc, then our fields.
func TestTimelineSelectAndExport(t *testing.T) {
	at, _ := time.Parse(time.RFC3339, "2024-08-05T08:12:34Z")
	rec := func(host string) tasks.Record {
		return tasks.Record{Kind: tasks.KindAlert, Host: host, Time: at, Collector: "logs",
			Source: "/var/log/edr.ndjson", Fields: map[string]any{"message": "alert"}}
	}
	results := []*tasks.Result{
		{TaskID: "T", Node: "n1", Host: "app-01", Labels: map[string]string{"role": "app"},
			Records: []tasks.Record{rec("app-01")}},
		{TaskID: "T/run/2", Node: "n2", Host: "web-01", Labels: map[string]string{"role": "web"},
			Records: []tasks.Record{rec("web-01")}},
		{TaskID: "T", Node: "n3", Host: "ops-01", Labels: map[string]string{"role": "ops"},
			Records: []tasks.Record{rec("ops-01")}},
	}
	for _, tc := range []struct{ expr, want string }{
		{"role=app or host=WEB-01", "app-01,web-01"},
		{"not role=app", "web-01,ops-01"},
		{"node=n3", "ops-01"},
	} {
		got, err := SelectResults(results, tasks.Selector{Expr: tc.expr})
		if err != nil {
			t.Fatal(err)
		}
		var hosts []string
		for _, r := range got {
			hosts = append(hosts, r.Host)
		}
		if strings.Join(hosts, ",") != tc.want {
			t.Errorf("%s: hosts %v, want %s", tc.expr, hosts, tc.want)
		}
	}
	if _, err := SelectResults(results, tasks.Selector{Expr: "role=("}); err == nil {
		t.Error("a bad selector was accepted")
	}

	tl := BuildTimeline(results[:1], TimelineFilter{})
	raw, err := json.Marshal(tl[0])
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	first := rec("app-01")
	want := map[string]any{"message": "[app-01] " + first.Summary(),
		"datetime": "2024-08-05T08:12:34Z", "timestamp_desc": "Alert Time",
		"timestamp": float64(at.UnixMicro()), "host": "app-01", "kind": "alert",
		"collector": "logs", "source": "/var/log/edr.ndjson"}
	for k, v := range want {
		if ev[k] != v {
			t.Errorf("%s = %v, want %v (event %s)", k, ev[k], v, raw)
		}
	}
}
