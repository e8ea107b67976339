package logs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

func TestBadInputIsCounted(t *testing.T) {
	long := `{"message":"` + strings.Repeat("x", MaxLine) + `"}`
	tests := []struct {
		name    string
		content string
		format  string
		records int
		reason  string
		sample  string // suffix of the skip sample
	}{
		{"bad json line", `{"time":"2024-08-05T08:00:00Z","message":"a"}` + "\n\n" +
			`{"time":"2024-08-05T08:00:01Z",` + "\n" +
			`{"time":"2024-08-05T08:00:02Z","message":"c"}` + "\n",
			"ndjson", 2, "bad json", ".log:3"},
		{"trailing garbage", `{"time":"2024-08-05T08:00:00Z","message":"a"} x` + "\n" +
			`{"time":"2024-08-05T08:00:02Z","message":"c"}` + "\n",
			"ndjson", 1, "bad json", ".log:1"},
		{"line over the cap", `{"time":"2024-08-05T08:00:00Z","message":"a"}` + "\n" +
			long + "\n" + `{"time":"2024-08-05T08:00:02Z","message":"c"}`,
			"ndjson", 2, "line too long", ".log:2"},
		{"long syslog line", "Feb 21 21:54:44 h sshd[1]: " + strings.Repeat("y", MaxLine) +
			"\nFeb 21 21:54:45 h cron[2]: ok\n", "auth", 1, "line too long", ".log:1"},
		{"unparsed text", "garbage here\nFeb 21 21:54:45 h cron[2]: ok\n", "auth", 1,
			"unparsed line", ".log:1"},
		{"no time", `{"message":"a"}` + "\n", "ndjson", 0, "no time", ".log:1"},
		{"broken document", `{"records":[{"time":"2024-08-05T08:00:00Z","operationName":"x",` +
			`"resourceId":"/subscriptions/s"}, {"time": ]}`, "azure-activity", 1, "bad json", ""},
		{"not an object", `[1, {"time":"2024-08-05T08:00:00Z","message":"a"}]`, "json", 1,
			"not an object", ":#1"},
		{"bad xml", `<Event><System><EventID>1</EventID></System></Ev`, "sysmon-xml", 0,
			"bad xml", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, dir, "in.log", tc.content)
			recs, sum, err := run(t, dir, Params{Sources: []Source{{Path: path,
				Format: tc.format}}, Year: 2024}, collectors.Budget{})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != tc.records {
				t.Errorf("%d records, want %d: %v", len(recs), tc.records, recs)
			}
			if sum.Skipped[tc.reason] != 1 {
				t.Fatalf("skips %v, want one %q", sum.Skipped, tc.reason)
			}
			if s := sum.Samples[tc.reason]; len(s) != 1 || !strings.Contains(s[0], tc.sample) {
				t.Errorf("sample %v, want it to name %q", s, tc.sample)
			}
			checkTypes(t, recs)
		})
	}
}

func TestTimeWindow(t *testing.T) {
	since := time.Date(2024, 8, 5, 8, 15, 0, 0, time.UTC)
	until := time.Date(2024, 8, 5, 8, 20, 0, 0, time.UTC)
	recs, sum, err := run(t, testdata, Params{Since: since, Until: until,
		Sources: []Source{{Path: "/cryptominer/app-01/sysmon.ndjson"}}}, collectors.Budget{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || sum.Skipped["outside window"] != 4 {
		t.Fatalf("%d records, skips %v; want 2 inside and 4 outside", len(recs), sum.Skipped)
	}
	for _, r := range recs {
		if r.Time.Before(since) || r.Time.After(until) {
			t.Errorf("record at %v outside the window", r.Time)
		}
	}
}

func TestSyslogYear(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "var/log/auth.log",
		"Dec 31 23:59:58 h sshd[9]: Failed password for root from 192.0.2.1 port 22 ssh2\n"+
			"Jan  1 00:00:02 h sshd[9]: Accepted password for root from 192.0.2.1 port 22 ssh2\n")
	mtime := time.Date(2025, 1, 1, 0, 5, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, path), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		year   int
		first  time.Time
		second time.Time
	}{
		{"from mtime with rollover", 0, time.Date(2024, 12, 31, 23, 59, 58, 0, time.UTC),
			time.Date(2025, 1, 1, 0, 0, 2, 0, time.UTC)},
		{"from param", 2019, time.Date(2019, 12, 31, 23, 59, 58, 0, time.UTC),
			time.Date(2019, 1, 1, 0, 0, 2, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, _, err := run(t, dir, Params{Sources: []Source{{Path: path}}, Year: tc.year},
				collectors.Budget{})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 2 || !recs[0].Time.Equal(tc.first) || !recs[1].Time.Equal(tc.second) {
				t.Fatalf("times %v", recs)
			}
		})
	}
}

func TestDefaultSources(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "var/log/secure",
		"Feb 21 21:54:44 h sshd[3]: Accepted publickey for a from 10.0.0.1 port 1 ssh2\n")
	writeFile(t, dir, "var/log/messages", "Feb 21 21:54:45 h kernel: hello\n")
	recs, sum, err := run(t, dir, nil, collectors.Budget{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Source != "/var/log/secure" ||
		recs[1].Source != "/var/log/messages" || recs[1].Str("program") != "kernel" {
		t.Fatalf("records %v (skips %v)", recs, sum.Skipped)
	}
	if len(sum.Skipped) != 0 {
		t.Errorf("absent default files counted: %v", sum.Skipped)
	}
}

func TestUnsafeFilesAreNotRead(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "real.log", "Feb 21 21:54:45 h cron[2]: ok\n")
	if err := os.Symlink(filepath.Join(dir, "real.log"), filepath.Join(dir, "link.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "escape.log")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.log"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, path, reason string }{
		{"symlink", "/link.log", "not regular file"},
		{"symlink out of root", "/escape.log", "not regular file"},
		{"fifo", "/fifo.log", "not regular file"},
		{"directory", "/", "not regular file"},
		{"dot-dot stays in root", "/../../../../etc/passwd", "missing"},
		{"missing", "/nope.log", "missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			var recs []tasks.Record
			var sum collectors.Summary
			go func() {
				defer close(done)
				recs, sum, _ = run(t, dir, Params{Sources: []Source{{Path: tc.path}}},
					collectors.Budget{})
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("collector blocked on the file")
			}
			if len(recs) != 0 || sum.Skipped[tc.reason] != 1 {
				t.Fatalf("records %v skips %v, want one %q", recs, sum.Skipped, tc.reason)
			}
		})
	}
}

func TestExclude(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "data/node.log", "Feb 21 21:54:45 h cron[2]: ok\n")
	env := collectors.NewEnv(Name, dir, "h", collectors.Budget{}, nil,
		func(tasks.Record) error { return nil })
	env.Exclude = []string{"/data"}
	raw, _ := json.Marshal(Params{Sources: []Source{{Path: path}}})
	if err := New().Collect(context.Background(), env, raw); err != nil {
		t.Fatal(err)
	}
	if s := env.Stats.Summary(); s.Emitted != 0 || s.Skipped["excluded"] != 1 {
		t.Fatalf("summary %+v", s)
	}
}

func TestRecordCapStops(t *testing.T) {
	recs, sum, err := run(t, testdata, Params{Sources: []Source{
		{Path: "/cryptominer/app-01/sysmon.ndjson"},
		{Path: "/cryptominer/ops-01/azure-activity.json"}}}, collectors.Budget{MaxRecords: 7})
	if !errors.Is(err, collectors.ErrRecordCap) {
		t.Fatalf("err %v, want the record cap", err)
	}
	if len(recs) != 7 || sum.CutBy != "record cap" {
		t.Fatalf("%d records, cut by %q", len(recs), sum.CutBy)
	}
}

func TestReadBudget(t *testing.T) {
	// 3 KiB at 1 KiB/s with a one-second burst takes about two seconds.
	dir := t.TempDir()
	var b strings.Builder
	for i := range 40 {
		fmt.Fprintf(&b, "Feb 21 21:54:%02d h cron[2]: %s\n", i, strings.Repeat("z", 40))
	}
	path := writeFile(t, dir, "slow.log", b.String())
	start := time.Now()
	recs, _, err := run(t, dir, Params{Sources: []Source{{Path: path}}},
		collectors.Budget{ReadBytesPerSec: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 40 {
		t.Fatalf("%d records", len(recs))
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("read %d bytes in %v despite a 1 KiB/s budget", b.Len(), d)
	}
}

func TestMappings(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "fw.ndjson",
		`{"ts":1722845100,"conn":{"from":"10.0.0.5","to":"192.0.2.25","dport":"3333"},"n":7}`+"\n")
	inline := `{"kind":"flow","time":"ts","fields":{"src_address":"conn.from",` +
		`"dst_address":"conn.to","dst_port":"conn.dport","bytes_out":"n"}}`
	tests := []struct {
		name    string
		mapping json.RawMessage
	}{
		{"inline object", json.RawMessage(inline)},
		{"inline string", mustJSON(t, inline)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, sum, err := run(t, dir, Params{Sources: []Source{{Path: path,
				Mapping: tc.mapping}}}, collectors.Budget{})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 {
				t.Fatalf("records %v skips %v", recs, sum.Skipped)
			}
			r := recs[0]
			if r.Kind != "flow" || r.Str("dst_address") != "192.0.2.25" ||
				intField(r, "dst_port") != 3333 || intField(r, "bytes_out") != 7 ||
				!r.Time.Equal(time.Unix(1722845100, 0)) {
				t.Errorf("record %+v", r)
			}
		})
	}
}

func mustJSON(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		params string
		ok     bool
	}{
		{"empty", ``, true},
		{"empty object", `{}`, true},
		{"full", `{"sources":[{"path":"/var/log/auth.log","format":"auth","host":"x"}],` +
			`"since":"2024-08-05T00:00:00Z","until":"2024-08-06T00:00:00Z","journal":false}`, true},
		{"named mapping", `{"sources":[{"path":"/a","mapping":"edr"}]}`, true},
		{"unknown mapping", `{"sources":[{"path":"/a","mapping":"nope"}]}`, false},
		{"unknown format", `{"sources":[{"path":"/a","format":"csv"}]}`, false},
		{"empty path", `{"sources":[{"path":" "}]}`, false},
		{"until before since", `{"since":"2024-08-06T00:00:00Z","until":"2024-08-05T00:00:00Z"}`,
			false},
		{"bad time", `{"since":"yesterday"}`, false},
		{"unknown param", `{"sorces":[]}`, false},
		{"bad timezone", `{"timezone":"Mars/Olympus"}`, false},
		{"mapping field outside schema", `{"sources":[{"path":"/a","mapping":` +
			`{"kind":"flow","fields":{"srcip":"a"}}}]}`, false},
		{"mapping unknown kind", `{"sources":[{"path":"/a","mapping":` +
			`{"kind":"netflow","fields":{"src_address":"a"}}}]}`, false},
		{"mapping without fields", `{"sources":[{"path":"/a","mapping":{"kind":"flow"}}]}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := New().Validate(json.RawMessage(tc.params))
			if (err == nil) != tc.ok {
				t.Fatalf("Validate(%s) = %v, want ok=%v", tc.params, err, tc.ok)
			}
		})
	}
}

// fakeJournal writes a script that prints journal entries like
// journalctl -o json, records its arguments, and then runs tail.
func fakeJournal(t *testing.T, lines []string, tail string) (bin, argsFile string) {
	t.Helper()
	dir := t.TempDir()
	argsFile = filepath.Join(dir, "args")
	var b strings.Builder
	b.WriteString("#!/bin/sh\necho \"$@\" > " + argsFile + "\n")
	for _, l := range lines {
		b.WriteString("printf '%s\\n' '" + l + "'\n")
	}
	b.WriteString(tail + "\n")
	bin = filepath.Join(dir, "journalctl")
	if err := os.WriteFile(bin, []byte(b.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, argsFile
}

func TestJournal(t *testing.T) {
	lines := []string{
		`{"__REALTIME_TIMESTAMP":"1722845521000000","SYSLOG_IDENTIFIER":"sshd","_PID":"812",` +
			`"MESSAGE":"Accepted publickey for ops from 203.0.113.77 port 50122 ssh2"}`,
		`{"__REALTIME_TIMESTAMP":"1722845522000000","SYSLOG_IDENTIFIER":"kernel",` +
			`"PRIORITY":"4","_SYSTEMD_UNIT":"k.service","MESSAGE":[104,105]}`,
		`not json`,
	}
	bin, argsFile := fakeJournal(t, lines, "exit 0")
	since := time.Date(2024, 8, 5, 8, 0, 0, 0, time.UTC)
	yes := true
	raw, _ := json.Marshal(Params{Journal: &yes, Since: since,
		Sources: []Source{{Path: "/nonexistent/huntmesh-test.log"}}})

	var recs []tasks.Record
	env := collectors.NewEnv(Name, "/", "h", collectors.Budget{}, nil, func(r tasks.Record) error {
		recs = append(recs, r)
		return nil
	})
	c := &Collector{JournalCmd: bin}
	if err := c.Collect(context.Background(), env, raw); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("records %v", recs)
	}
	auth, log := recs[0], recs[1]
	if auth.Kind != "auth" || auth.Str("event") != "accepted" || auth.Str("user") != "ops" ||
		auth.Str("source_address") != "203.0.113.77" || intField(auth, "pid") != 812 ||
		auth.Source != journalSource || !auth.Time.Equal(time.Unix(1722845521, 0)) {
		t.Errorf("auth %+v", auth)
	}
	if log.Kind != "log" || log.Str("message") != "hi" || log.Str("priority") != "warning" ||
		log.Str("unit") != "k.service" {
		t.Errorf("log %+v", log)
	}
	sum := env.Stats.Summary()
	if sum.Skipped["bad json"] != 1 || sum.Skipped["missing"] != 1 {
		t.Errorf("skips %v", sum.Skipped)
	}
	args, _ := os.ReadFile(argsFile)
	if want := fmt.Sprintf("--since @%d", since.Unix()); !strings.Contains(string(args), want) ||
		!strings.Contains(string(args), "-o json") {
		t.Errorf("journalctl args %q, want %q", args, want)
	}
}

func TestJournalCancel(t *testing.T) {
	line := `{"__REALTIME_TIMESTAMP":"1722845522000000","MESSAGE":"one"}`
	bin, _ := fakeJournal(t, []string{line}, "exec sleep 30")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env := collectors.NewEnv(Name, "/", "h", collectors.Budget{}, nil, func(tasks.Record) error {
		cancel() // the analyst gives up after the first record
		return nil
	})
	yes := true
	raw, _ := json.Marshal(Params{Journal: &yes, Sources: []Source{{Path: "/nonexistent/x"}}})
	start := time.Now()
	err := (&Collector{JournalCmd: bin}).Collect(ctx, env, raw)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("journalctl outlived the cancel by %v", d)
	}
}

func TestJournalNotOnFixtureRoot(t *testing.T) {
	bin, argsFile := fakeJournal(t, nil, "exit 0")
	yes := true
	raw, _ := json.Marshal(Params{Journal: &yes})
	env := collectors.NewEnv(Name, t.TempDir(), "h", collectors.Budget{}, nil,
		func(tasks.Record) error { return nil })
	if err := (&Collector{JournalCmd: bin}).Collect(context.Background(), env, raw); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(argsFile); err == nil {
		t.Fatal("journalctl ran for a fixture root")
	}
}

func TestDamagedEVTX(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join(testdata,
		"real/sysmon/evtx-attack-samples_sysmon_10_1_memdump_comsvcs_minidump.evtx"))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := func(off int, b ...byte) []byte {
		out := append([]byte(nil), orig...)
		copy(out[off:], b)
		return out
	}
	tests := []struct {
		name    string
		data    []byte
		records int
		reason  string
		skips   int
	}{
		{"truncated chunk", orig[:4096+1000], 0, "bad evtx", 1},
		{"short header", orig[:100], 0, "bad evtx", 1},
		// The first record's template offset pointing past the chunk.
		{"bad template offset", corrupt(4096+0x222, 0xff, 0xff, 0, 0), 5, "bad evtx record", 1},
		// The second record's size running off the chunk: the rest is lost.
		{"bad record size", corrupt(4096+0x200+0xef0+4, 0xff, 0xff, 0, 0), 1,
			"bad evtx record", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "x.evtx"), tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			recs, sum, err := run(t, dir, Params{Sources: []Source{{Path: "/x.evtx",
				Format: "evtx"}}}, collectors.Budget{})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != tc.records || sum.Skipped[tc.reason] != tc.skips {
				t.Fatalf("%d records, skips %v; want %d and %s=%d", len(recs), sum.Skipped,
					tc.records, tc.reason, tc.skips)
			}
		})
	}
}
