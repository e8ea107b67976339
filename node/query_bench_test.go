package node

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/store"
	"github.com/huntmesh/huntmesh/tasks"
)

// queryFixture is a store of 1,000,000 records, one a second, built once
// per benchmark run: a tenth are connections, one in a hundred of those to
// the pool port.
var queryFixture struct {
	once  sync.Once
	dir   string
	node  *Node
	built time.Duration
	err   error
}

const queryFixtureRecords = 1_000_000

var queryFixtureBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func queryBenchNode(b *testing.B) *Node {
	b.Helper()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		b.Skip("the 1M-record fixture is only built under -bench")
	}
	queryFixture.once.Do(func() {
		start := time.Now()
		queryFixture.dir, queryFixture.err = os.MkdirTemp("", "huntmesh-query-bench-")
		if queryFixture.err != nil {
			return
		}
		st, err := store.Open(store.DefaultConfig(queryFixture.dir))
		if err != nil {
			queryFixture.err = err
			return
		}
		queryFixture.node = &Node{store: st, counters: map[string]uint64{}}
		batch := make([]tasks.Record, 0, 10_000)
		for i := range queryFixtureRecords {
			batch = append(batch, queryBenchRecord(i))
			if len(batch) == cap(batch) {
				if queryFixture.err = st.PutRecords("01QUERYBENCH", batch); queryFixture.err != nil {
					return
				}
				batch = batch[:0]
			}
		}
		// Close and reopen, as a node that stored this over days would find
		// it: memtables flushed, no compaction of the load running.
		if queryFixture.err = st.Close(); queryFixture.err != nil {
			return
		}
		if st, queryFixture.err = store.Open(store.DefaultConfig(queryFixture.dir)); queryFixture.err != nil {
			return
		}
		queryFixture.node.store = st
		queryFixture.built = time.Since(start)
	})
	if queryFixture.err != nil {
		b.Fatal(queryFixture.err)
	}
	return queryFixture.node
}

func queryBenchRecord(i int) tasks.Record {
	r := tasks.Record{Kind: tasks.KindProcess, Time: queryFixtureBase.Add(time.Duration(i) * time.Second),
		Host: fmt.Sprintf("host-%d", i%8), Collector: "bench", Source: "live",
		Fields: map[string]any{"pid": int64(1000 + i%30000), "name": "sshd",
			"cmdline": "/usr/sbin/sshd -D"}}
	if i%10 == 0 {
		port := int64(443)
		if i%1000 == 0 {
			port = 3333
		}
		r.Kind, r.Collector = tasks.KindConnection, "connections"
		r.Fields = map[string]any{"protocol": "tcp", "remote_address": "192.0.2.25",
			"remote_port": port, "pid": int64(1000 + i%30000), "process_name": "miner"}
	}
	return r
}

// BenchmarkQuery1M evaluates a selective CEL query over the 1M-record
// store with a one-day time range, beside the same query over the whole
// store (the full scan it saves), with and without a kind equality the
// store can check before decoding. matched/op says how many rows matched.
func BenchmarkQuery1M(b *testing.B) {
	n := queryBenchNode(b)
	b.Logf("fixture: %d records built in %s", queryFixtureRecords, queryFixture.built)
	mid := queryFixtureBase.Add(queryFixtureRecords / 2 * time.Second)
	const expr = `kind == "connection" && remote_port == 3333`
	day := mid.Add(24 * time.Hour)
	cases := []struct {
		name string
		q    tasks.Query
	}{
		{"selective,range=1d", tasks.Query{Expr: expr, Since: mid, Until: day}},
		{"selective,full-scan", tasks.Query{Expr: expr}},
		// Without a kind equality nothing is checked on the value header:
		// every row in the range is decoded and evaluated.
		{"no-pushdown,range=1d", tasks.Query{Expr: `remote_port == 3333`, Since: mid, Until: day}},
		{"no-pushdown,full-scan", tasks.Query{Expr: `remote_port == 3333`}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			matched := 0
			for b.Loop() {
				matched = 0
				err := n.QueryLocal(context.Background(), &tc.q,
					func(*tasks.Record, *tasks.Detection) error {
						matched++
						return nil
					})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(matched), "matched/op")
		})
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if queryFixture.node != nil {
		queryFixture.node.store.Close()
	}
	if queryFixture.dir != "" {
		os.RemoveAll(queryFixture.dir)
	}
	os.Exit(code)
}
