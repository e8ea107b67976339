package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// openTest opens a store in a fresh temp dir, adjusted by mod, and closes
// it when the test ends.
func openTest(t *testing.T, mod func(*Config)) (*Store, Config) {
	t.Helper()
	cfg := DefaultConfig(t.TempDir())
	if mod != nil {
		mod(&cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, cfg
}

// reopen closes s and opens cfg again.
func reopen(t *testing.T, s *Store, cfg Config) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s2, err := Open(cfg)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	return s2
}

var base = time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)

// sampleRecord builds a record with every field type collectors use.
func sampleRecord(i int) tasks.Record {
	return tasks.Record{
		Kind:      tasks.KindProcess,
		Time:      base.Add(time.Duration(i) * time.Second),
		Host:      "web-1",
		Collector: "processes",
		Source:    "live",
		Fields: map[string]any{
			"i":       int64(i),
			"pid":     int64(4000 + i),
			"name":    "kworkerds",
			"cmdline": "/tmp/.x/kworkerds -o pool.example:3333",
			"cpu":     12.5,
			"deleted": true,
			"groups":  []string{"root", "wheel"},
		},
	}
}

func allRecords(t *testing.T, s *Store, f Filter) []tasks.Record {
	t.Helper()
	var out []tasks.Record
	err := s.Records(context.Background(), f, func(r tasks.Record) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatalf("Records(%+v): %v", f, err)
	}
	return out
}

func TestRoundTripAndReopen(t *testing.T) {
	s, cfg := openTest(t, nil)

	recs := []tasks.Record{sampleRecord(0), sampleRecord(1), sampleRecord(2)}
	if err := s.PutRecords("T1", recs); err != nil {
		t.Fatal(err)
	}
	det := tasks.Detection{
		Host: "web-1", Time: recs[1].Time, IoCType: "process_name",
		IoCValue: "kworkerds", Severity: "high", Tags: []string{"miner"},
		Field: "name", Record: recs[1],
	}
	if err := s.PutDetections("T1", []tasks.Detection{det}); err != nil {
		t.Fatal(err)
	}
	res := tasks.Result{
		TaskID: "T1", Node: "12D3KooWA", Host: "web-1", Status: tasks.StatusFinished,
		Final: true, Records: recs[:1], Detections: []tasks.Detection{det},
		TotalRecords: 3, TotalDetections: 1, SentAt: base,
	}
	if err := s.PutResult(res); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMeta("intel/state", []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	task := StoredTask{ID: "T1", Type: tasks.TypeHunt, NotAfter: time.Now().Add(time.Hour).UTC(),
		Envelope: []byte(`{"signed":true}`), Issued: true}
	if err := s.PutTask(task); err != nil {
		t.Fatal(err)
	}

	// Everything must read back equal, before and after a reopen.
	det.TaskID = "T1"
	check := func(t *testing.T, s *Store) {
		if got := allRecords(t, s, Filter{}); !reflect.DeepEqual(got, recs) {
			t.Errorf("records:\n got %+v\nwant %+v", got, recs)
		}
		var dets []tasks.Detection
		err := s.Detections(context.Background(), Filter{TaskID: "T1"},
			func(d tasks.Detection) error { dets = append(dets, d); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(dets, []tasks.Detection{det}) {
			t.Errorf("detections:\n got %+v\nwant %+v", dets, det)
		}
		got, err := s.Results("T1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, []tasks.Result{res}) {
			t.Errorf("results:\n got %+v\nwant %+v", got, res)
		}
		meta, ok, err := s.GetMeta("intel/state")
		if err != nil || !ok || !bytes.Equal(meta, []byte{0, 1, 2}) {
			t.Errorf("meta = %v %v %v", meta, ok, err)
		}
		gt, ok, err := s.Task("T1")
		if err != nil || !ok || !gt.NotAfter.Equal(task.NotAfter) ||
			!bytes.Equal(gt.Envelope, task.Envelope) || !gt.Issued {
			t.Errorf("task = %+v %v %v", gt, ok, err)
		}
	}
	t.Run("open", func(t *testing.T) { check(t, s) })
	s = reopen(t, s, cfg)
	t.Run("reopened", func(t *testing.T) { check(t, s) })
}

func TestMissing(t *testing.T) {
	s, _ := openTest(t, nil)
	if _, ok, err := s.GetMeta("nope"); ok || err != nil {
		t.Errorf("GetMeta(nope) = %v, %v", ok, err)
	}
	if _, ok, err := s.Task("nope"); ok || err != nil {
		t.Errorf("Task(nope) = %v, %v", ok, err)
	}
	if got, err := s.Results("nope"); len(got) != 0 || err != nil {
		t.Errorf("Results(nope) = %v, %v", got, err)
	}
}

// TestFilters checks that each filter returns exactly the right rows.
// Rows i = 0..11 sit at base+i minutes; task A holds 0..5, task B 6..11,
// row 12 has no task; even rows are processes, odd ones connections;
// rows with i%3 == 0 come from host h1, the rest from h2.
func TestFilters(t *testing.T) {
	s, _ := openTest(t, nil)
	byTask := map[string][]tasks.Record{}
	for _, i := range []int{7, 3, 11, 0, 5, 9, 1, 12, 6, 2, 10, 4, 8} { // out of order
		r := tasks.Record{
			Kind:   tasks.KindConnection,
			Time:   base.Add(time.Duration(i) * time.Minute),
			Host:   "h2",
			Fields: map[string]any{"i": int64(i)},
		}
		if i%2 == 0 {
			r.Kind = tasks.KindProcess
		}
		if i%3 == 0 {
			r.Host = "h1"
		}
		task := "A"
		switch {
		case i == 12:
			task = ""
		case i >= 6:
			task = "B"
		}
		byTask[task] = append(byTask[task], r)
	}
	for task, recs := range byTask {
		if err := s.PutRecords(task, recs); err != nil {
			t.Fatal(err)
		}
	}

	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	cases := []struct {
		name string
		f    Filter
		want []int64
	}{
		{"all", Filter{}, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{"range", Filter{Since: at(3), Until: at(7)}, []int64{3, 4, 5, 6}},
		{"since inclusive", Filter{Since: at(11)}, []int64{11, 12}},
		{"until exclusive", Filter{Until: at(2)}, []int64{0, 1}},
		{"between rows", Filter{Since: at(3).Add(time.Second), Until: at(4)}, nil},
		{"after all", Filter{Since: at(13)}, nil},
		{"task A", Filter{TaskID: "A"}, []int64{0, 1, 2, 3, 4, 5}},
		{"task B since", Filter{TaskID: "B", Since: at(8)}, []int64{8, 9, 10, 11}},
		{"task B range", Filter{TaskID: "B", Since: at(2), Until: at(8)}, []int64{6, 7}},
		{"task A kind", Filter{TaskID: "A", Kind: tasks.KindConnection}, []int64{1, 3, 5}},
		{"host", Filter{Host: "h1"}, []int64{0, 3, 6, 9, 12}},
		{"kind and host", Filter{Kind: tasks.KindProcess, Host: "h1"}, []int64{0, 6, 12}},
		{"limit", Filter{Limit: 3}, []int64{0, 1, 2}},
		{"limit after filter", Filter{TaskID: "B", Kind: tasks.KindProcess, Limit: 2},
			[]int64{6, 8}},
		{"unknown task", Filter{TaskID: "C"}, nil},
		{"task prefix is not a task", Filter{TaskID: "A\x01"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []int64
			for _, r := range allRecords(t, s, tc.f) {
				n, _ := r.Int("i")
				got = append(got, n)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestScanStopAndCancel(t *testing.T) {
	s, _ := openTest(t, nil)
	recs := make([]tasks.Record, 3000)
	for i := range recs {
		recs[i] = sampleRecord(i)
	}
	if err := s.PutRecords("T", recs); err != nil {
		t.Fatal(err)
	}

	t.Run("ErrStop", func(t *testing.T) {
		n := 0
		err := s.Records(context.Background(), Filter{}, func(tasks.Record) error {
			n++
			if n == 5 {
				return ErrStop
			}
			return nil
		})
		if err != nil || n != 5 {
			t.Errorf("n = %d, err = %v", n, err)
		}
	})
	t.Run("callback error", func(t *testing.T) {
		boom := errors.New("boom")
		err := s.Records(context.Background(), Filter{}, func(tasks.Record) error { return boom })
		if !errors.Is(err, boom) {
			t.Errorf("err = %v, want boom", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		n := 0
		err := s.Records(ctx, Filter{TaskID: "T"}, func(tasks.Record) error {
			n++
			cancel()
			return nil
		})
		if !errors.Is(err, context.Canceled) || n >= len(recs) {
			t.Errorf("n = %d, err = %v", n, err)
		}
	})
}

func TestMarkSeen(t *testing.T) {
	s, cfg := openTest(t, nil)
	notAfter := time.Now().Add(time.Hour)

	// Concurrent marks of one ID: exactly one is fresh.
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh := 0
	for range 8 {
		wg.Go(func() {
			ok, err := s.MarkSeen("01JTASK", notAfter)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				fresh++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if fresh != 1 {
		t.Fatalf("fresh %d times, want 1", fresh)
	}

	s = reopen(t, s, cfg)
	if ok, err := s.MarkSeen("01JTASK", notAfter); ok || err != nil {
		t.Errorf("after reopen MarkSeen = %v, %v; want false", ok, err)
	}
	if seen, err := s.Seen("01JTASK"); !seen || err != nil {
		t.Errorf("Seen = %v, %v", seen, err)
	}
	if seen, err := s.Seen("01JOTHER"); seen || err != nil {
		t.Errorf("Seen(other) = %v, %v", seen, err)
	}
}

func TestActiveTasks(t *testing.T) {
	s, _ := openTest(t, nil)
	now := time.Now()
	for _, st := range []StoredTask{
		{ID: "01A", Type: tasks.TypeHunt, NotAfter: now.Add(time.Hour)},
		{ID: "01B", Type: tasks.TypeQuery, NotAfter: now.Add(-time.Minute)},
		{ID: "01C", Type: tasks.TypeHunt, NotAfter: now.Add(2 * time.Hour), Issued: true},
		{ID: "01D", Type: tasks.TypeHunt, NotAfter: now},
	} {
		if err := s.PutTask(st); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ActiveTasks(now)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, st := range got {
		ids = append(ids, st.ID)
	}
	if want := []string{"01A", "01C"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("active = %v, want %v", ids, want)
	}
}

func TestResultsOrderAndIdempotence(t *testing.T) {
	s, _ := openTest(t, nil)
	for _, p := range []struct {
		node string
		seq  int
	}{{"n2", 1}, {"n1", 0}, {"n2", 0}, {"n1", 1}, {"n1", 0}, {"n10", 0}} {
		r := tasks.Result{TaskID: "T", Node: p.node, Seq: p.seq, Status: tasks.StatusRunning}
		if err := s.PutResult(r); err != nil {
			t.Fatal(err)
		}
	}
	// A result of another task whose ID extends this one must not leak in.
	if err := s.PutResult(tasks.Result{TaskID: "TT", Node: "n1"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Results("T")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range got {
		order = append(order, fmt.Sprintf("%s/%d", r.Node, r.Seq))
	}
	want := []string{"n1/0", "n1/1", "n10/0", "n2/0", "n2/1"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("order = %v, want %v", order, want)
	}
}

func TestInvalidArguments(t *testing.T) {
	s, _ := openTest(t, nil)
	cases := []struct {
		name string
		err  error
	}{
		{"empty task", s.PutResult(tasks.Result{Node: "n"})},
		{"nul task", s.PutRecords("a\x00b", []tasks.Record{sampleRecord(0)})},
		{"long task", s.PutTask(StoredTask{ID: strings.Repeat("x", 300)})},
		{"negative seq", s.PutResult(tasks.Result{TaskID: "T", Node: "n", Seq: -1})},
		{"empty meta", s.PutMeta("", nil)},
		{"bad filter", s.Records(context.Background(), Filter{TaskID: "a\x00"},
			func(tasks.Record) error { return nil })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", tc.err)
			}
		})
	}
	bad := sampleRecord(0)
	bad.Fields["ch"] = make(chan int)
	if err := s.PutRecords("T", []tasks.Record{sampleRecord(1), bad}); err == nil {
		t.Error("unencodable record accepted")
	}
	if n := len(allRecords(t, s, Filter{})); n != 0 {
		t.Errorf("a failed batch wrote %d records", n)
	}
}

func TestCloseIdempotentAndClosedErrors(t *testing.T) {
	s, _ := openTest(t, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.PutRecords("T", []tasks.Record{sampleRecord(0)}); !errors.Is(err, ErrClosed) {
		t.Errorf("PutRecords after Close: %v", err)
	}
	if _, err := s.MarkSeen("T", time.Time{}); !errors.Is(err, ErrClosed) {
		t.Errorf("MarkSeen after Close: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	s, cfg := openTest(t, func(c *Config) { c.EncryptionKey = key })
	if err := s.PutRecords("T", []tasks.Record{sampleRecord(0)}); err != nil {
		t.Fatal(err)
	}

	t.Run("locked", func(t *testing.T) {
		_, err := Open(cfg)
		if !errors.Is(err, ErrLocked) {
			t.Errorf("second Open: %v, want ErrLocked", err)
		}
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		key  []byte
	}{
		{"no key", nil},
		{"wrong key", bytes.Repeat([]byte{8}, 32)},
		{"shorter key", bytes.Repeat([]byte{7}, 16)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.EncryptionKey = tc.key
			s, err := Open(c)
			if err == nil {
				_ = s.Close()
			}
			if !errors.Is(err, ErrEncryptionKey) {
				t.Errorf("Open: %v, want ErrEncryptionKey", err)
			}
		})
	}

	t.Run("right key", func(t *testing.T) {
		s, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if n := len(allRecords(t, s, Filter{})); n != 1 {
			t.Errorf("%d records, want 1", n)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"no dir", func(c *Config) { c.Dir = "" }, "Dir"},
		{"dir in memory", func(c *Config) { c.InMemory = true }, "Dir"},
		{"retention", func(c *Config) { c.Retention = -1 }, "Retention"},
		{"size", func(c *Config) { c.MaxSizeBytes = -1 }, "MaxSizeBytes"},
		{"gc", func(c *Config) { c.GCInterval = -time.Second }, "GCInterval"},
		{"blob cap", func(c *Config) { c.MaxBlobBytes = -1 }, "MaxBlobBytes"},
		{"key", func(c *Config) { c.EncryptionKey = []byte("short") }, "EncryptionKey"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig("/nonexistent/huntmesh")
			tc.mod(&cfg)
			_, err := Open(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Open: %v, want an error naming %s", err, tc.field)
			}
		})
	}
	t.Run("in memory ok", func(t *testing.T) {
		s, err := Open(Config{InMemory: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.PutRecords("T", []tasks.Record{sampleRecord(0)}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestBadgerLogger(t *testing.T) {
	var buf bytes.Buffer
	l := badgerLogger{slog.New(slog.NewTextHandler(&buf, nil))}
	l.Infof("noise %d\n", 1)
	l.Debugf("noise %d\n", 2)
	l.Warningf("disk %s\n", "slow")
	out := buf.String()
	if strings.Contains(out, "noise") || !strings.Contains(out, "level=WARN") ||
		!strings.Contains(out, `msg="disk slow"`) {
		t.Errorf("log output %q", out)
	}
}
