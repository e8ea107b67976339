package host

import (
	"context"
	"os/exec"
	"testing"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

// BenchmarkProcesses compares a full process-table scan with ps, the
// yardstick: "ps" runs `ps -eo pid,ppid,comm,args`; "no-hash" is the
// collector with hashing off (the same facts ps shows plus exe, cwd, user
// and start time); "warm-hash" hashes with a cache filled beforehand, the
// state of a node running recurring hunts.
func BenchmarkProcesses(b *testing.B) {
	ps, err := exec.LookPath("ps")
	if err != nil {
		b.Skip("ps not installed")
	}
	b.Run("ps", func(b *testing.B) {
		for b.Loop() {
			if err := exec.Command(ps, "-eo", "pid,ppid,comm,args").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	scan := func(b *testing.B, c collectors.Collector, params string) {
		n := 0
		for b.Loop() {
			env := collectors.NewEnv(c.Name(), "/", "bench", collectors.Budget{}, nil,
				func(tasks.Record) error { n++; return nil })
			if err := c.Collect(context.Background(), env, []byte(params)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)/float64(b.N), "procs/op")
	}
	b.Run("no-hash", func(b *testing.B) { scan(b, NewProcesses(nil), `{"hash":false}`) })
	b.Run("warm-hash", func(b *testing.B) {
		c := NewProcesses(NewHashCache(0))
		env := collectors.NewEnv(c.Name(), "/", "bench", collectors.Budget{}, nil,
			func(tasks.Record) error { return nil })
		if err := c.Collect(context.Background(), env, nil); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		scan(b, c, ``)
	})
	b.Run("cold-hash", func(b *testing.B) {
		for b.Loop() {
			c := NewProcesses(NewHashCache(0))
			env := collectors.NewEnv(c.Name(), "/", "bench", collectors.Budget{}, nil,
				func(tasks.Record) error { return nil })
			if err := c.Collect(context.Background(), env, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
