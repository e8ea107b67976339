package store

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// The 1M-record fixture is built once per test binary run, only when
// benchmarks were asked for, and removed by TestMain.
const (
	fixtureRecords = 1_000_000
	fixtureTasks   = 100
	fixtureBatch   = 10_000
)

var fixture struct {
	once  sync.Once
	dir   string
	store *Store
	err   error
	built time.Duration
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixture.store != nil {
		_ = fixture.store.Close()
	}
	if fixture.dir != "" {
		_ = os.RemoveAll(fixture.dir)
	}
	os.Exit(code)
}

// benchRecord is record i of the fixture: one per second from base,
// rotating over four kinds and four hosts.
func benchRecord(i int) tasks.Record {
	kinds := [...]string{tasks.KindProcess, tasks.KindConnection, tasks.KindFile, tasks.KindLog}
	return tasks.Record{
		Kind:      kinds[i%4],
		Time:      base.Add(time.Duration(i) * time.Second),
		Host:      fmt.Sprintf("host-%d", i/7%4),
		Collector: "bench",
		Source:    "live",
		Fields: map[string]any{
			"i":       int64(i),
			"pid":     int64(1000 + i%30000),
			"name":    "sshd",
			"cmdline": "/usr/sbin/sshd -D -o PermitRootLogin=no",
			"remote":  "203.0.113.7",
		},
	}
}

// benchStore returns the shared 1M-record store, building it on first use.
func benchStore(b *testing.B) *Store {
	b.Helper()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		b.Skip("the 1M-record fixture is only built under -bench")
	}
	fixture.once.Do(func() {
		start := time.Now()
		fixture.dir, fixture.err = os.MkdirTemp("", "huntmesh-store-bench-")
		if fixture.err != nil {
			return
		}
		fixture.store, fixture.err = Open(DefaultConfig(fixture.dir))
		if fixture.err != nil {
			return
		}
		for off := 0; off < fixtureRecords; off += fixtureBatch {
			for task := range fixtureTasks {
				var part []tasks.Record
				for i := off + task; i < off+fixtureBatch; i += fixtureTasks {
					part = append(part, benchRecord(i))
				}
				if fixture.err = fixture.store.PutRecords(benchTask(task), part); fixture.err != nil {
					return
				}
			}
		}
		fixture.built = time.Since(start)
	})
	if fixture.err != nil {
		b.Fatal(fixture.err)
	}
	return fixture.store
}

func benchTask(n int) string { return fmt.Sprintf("01BENCHTASK%03d", n) }

func BenchmarkPutRecords(b *testing.B) {
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, err := Open(DefaultConfig(b.TempDir()))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			recs := make([]tasks.Record, batch)
			for i := range recs {
				recs[i] = benchRecord(i)
			}
			for b.Loop() {
				if err := s.PutRecords("01BENCH", recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkRecords1M scans the 1M-record fixture with filters of different
// selectivity; rows/op says how many records each returned.
func BenchmarkRecords1M(b *testing.B) {
	s := benchStore(b)
	b.Logf("fixture: %d records built in %s", fixtureRecords, fixture.built)
	mid := base.Add(fixtureRecords / 2 * time.Second)
	cases := []struct {
		name string
		f    Filter
	}{
		{"range=1h", Filter{Since: mid, Until: mid.Add(time.Hour)}},
		{"range=1h,kind,host", Filter{Since: mid, Until: mid.Add(time.Hour),
			Kind: tasks.KindConnection, Host: "host-1"}},
		{"range=1d", Filter{Since: mid, Until: mid.Add(24 * time.Hour)}},
		{"task", Filter{TaskID: benchTask(42)}},
		{"task,range=1h", Filter{TaskID: benchTask(42), Since: mid, Until: mid.Add(time.Hour)}},
		{"kind=full-scan", Filter{Kind: tasks.KindConnection, Host: "host-1"}},
		{"full", Filter{}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			rows := 0
			for b.Loop() {
				rows = 0
				err := s.Records(context.Background(), tc.f, func(tasks.Record) error {
					rows++
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows), "rows/op")
		})
	}
}
