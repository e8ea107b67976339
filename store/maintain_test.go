package store

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

func TestRetentionTTL(t *testing.T) {
	s, _ := openTest(t, func(c *Config) { c.Retention = time.Second })
	if err := s.PutRecords("T", []tasks.Record{sampleRecord(0)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMeta("k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if n := len(allRecords(t, s, Filter{TaskID: "T"})); n != 1 {
		t.Fatalf("%d records before expiry", n)
	}

	// Badger's TTL has one-second resolution.
	time.Sleep(2100 * time.Millisecond)
	if n := len(allRecords(t, s, Filter{})); n != 0 {
		t.Errorf("%d records after expiry", n)
	}
	if n := len(allRecords(t, s, Filter{TaskID: "T"})); n != 0 {
		t.Errorf("%d records via the task index after expiry", n)
	}
	if v, ok, err := s.GetMeta("k"); !ok || err != nil || !bytes.Equal(v, []byte("v")) {
		t.Errorf("meta expired: %q %v %v", v, ok, err)
	}
}

func TestSizeCap(t *testing.T) {
	const limit = 200 << 10
	s, _ := openTest(t, func(c *Config) { c.MaxSizeBytes = limit })

	// About 2,000 records of ~400 bytes: several times the cap.
	const total = 2000
	for b := range 4 {
		recs := make([]tasks.Record, total/4)
		for i := range recs {
			recs[i] = sampleRecord(b*total/4 + i)
		}
		if err := s.PutRecords("T", recs); err != nil {
			t.Fatal(err)
		}
	}
	det := tasks.Detection{Host: "web-1", Time: base, Record: sampleRecord(0)}
	if err := s.PutDetections("T", []tasks.Detection{det}); err != nil {
		t.Fatal(err)
	}
	live, err := s.liveBytes()
	if err != nil || live <= limit {
		t.Fatalf("live %d (%v), want over the cap %d", live, err, limit)
	}

	dropped, err := s.enforceSizeCap(true)
	if err != nil {
		t.Fatal(err)
	}
	live, _ = s.liveBytes()
	if live > limit || dropped == 0 {
		t.Errorf("after cap: live %d, dropped %d", live, dropped)
	}

	// The newest records remain, oldest first gone, and the task index
	// agrees with the primary keys.
	recs := allRecords(t, s, Filter{})
	if len(recs) != total-dropped {
		t.Errorf("%d records left, dropped %d of %d", len(recs), dropped, total)
	}
	if first, _ := recs[0].Int("i"); first != int64(dropped) {
		t.Errorf("oldest left is %d, want %d", first, dropped)
	}
	if last, _ := recs[len(recs)-1].Int("i"); last != total-1 {
		t.Errorf("newest left is %d, want %d", last, total-1)
	}
	if n := len(allRecords(t, s, Filter{TaskID: "T"})); n != len(recs) {
		t.Errorf("task index yields %d, primary %d", n, len(recs))
	}
	n := 0
	_ = s.Detections(context.Background(), Filter{}, func(tasks.Detection) error { n++; return nil })
	if n != 1 {
		t.Errorf("detection dropped while records remained")
	}

	// Under the cap, nothing more goes.
	if again, err := s.enforceSizeCap(true); again != 0 || err != nil {
		t.Errorf("second pass dropped %d (%v)", again, err)
	}
}

func TestMaintainLoopStopsOnClose(t *testing.T) {
	s, _ := openTest(t, func(c *Config) {
		c.GCInterval = 10 * time.Millisecond
		c.MaxSizeBytes = 1 << 30
	})
	if err := s.PutRecords("T", []tasks.Record{sampleRecord(0)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // several ticks
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung with the maintenance loop running")
	}
	select {
	case <-s.done:
	default:
		t.Error("maintenance goroutine still running after Close")
	}
}
