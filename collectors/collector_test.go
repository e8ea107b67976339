package collectors

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

func TestTighterNodeCeilingWins(t *testing.T) {
	node := Budget{ReadBytesPerSec: 1000, MaxRecords: 100, WallTime: time.Minute, Nice: 10}
	tests := []struct {
		name string
		node Budget
		hunt Budget
		want Budget
	}{
		{"hunt asks for nothing", node, Budget{}, node},
		{"hunt asks for more than the ceiling", node,
			Budget{ReadBytesPerSec: 5000, MaxRecords: 1000, WallTime: time.Hour, Nice: 1}, node},
		{"hunt asks for less", node,
			Budget{ReadBytesPerSec: 10, MaxRecords: 5, WallTime: time.Second, Nice: 19},
			Budget{ReadBytesPerSec: 10, MaxRecords: 5, WallTime: time.Second, Nice: 19}},
		{"node without limits takes the hunt's", Budget{},
			Budget{ReadBytesPerSec: 10, MaxRecords: 5, WallTime: time.Second, Nice: 3},
			Budget{ReadBytesPerSec: 10, MaxRecords: 5, WallTime: time.Second, Nice: 3}},
		{"mixed", node, Budget{MaxRecords: 7, WallTime: time.Hour},
			Budget{ReadBytesPerSec: 1000, MaxRecords: 7, WallTime: time.Minute, Nice: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.node.Tighter(tt.hunt); got != tt.want {
				t.Fatalf("Tighter = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// stub is a collector that emits until told to stop, optionally waiting
// for read budget before each record.
type stub struct {
	n    int
	read int
}

func (stub) Name() string                   { return "stub" }
func (stub) Validate(json.RawMessage) error { return nil }
func (s stub) Collect(ctx context.Context, env *Env, _ json.RawMessage) error {
	for i := 0; s.n == 0 || i < s.n; i++ {
		if err := env.WaitRead(ctx, s.read); err != nil {
			return err
		}
		if err := env.Emit(tasks.Record{Kind: tasks.KindFile}); err != nil {
			return err
		}
	}
	return nil
}

func TestRunSaysWhatCutItShort(t *testing.T) {
	tests := []struct {
		name    string
		c       stub
		budget  Budget
		cut     string
		records func(n int) bool
	}{
		{"record cap", stub{}, Budget{MaxRecords: 3}, "record cap",
			func(n int) bool { return n == 3 }},
		{"wall time while waiting for read budget", stub{read: 500},
			Budget{ReadBytesPerSec: 1000, WallTime: 300 * time.Millisecond}, "wall time",
			func(n int) bool { return n >= 2 && n <= 3 }},
		{"not cut", stub{n: 4}, Budget{MaxRecords: 10}, "", func(n int) bool { return n == 4 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			env := NewEnv("stub", "/", "h", tt.budget, nil, func(tasks.Record) error {
				n++
				return nil
			})
			start := time.Now()
			if err := Run(context.Background(), tt.c, env, nil); err != nil {
				t.Fatalf("Run: %v", err)
			}
			sum := env.Stats.Summary()
			if sum.CutBy != tt.cut || !tt.records(n) || sum.Emitted != n {
				t.Fatalf("cut by %q with %d records (summary %+v) after %v", sum.CutBy, n, sum,
					time.Since(start))
			}
		})
	}
}

func TestWaitReadPacesAndStops(t *testing.T) {
	env := NewEnv("stub", "/", "h", Budget{ReadBytesPerSec: 1000}, nil,
		func(tasks.Record) error { return nil })
	start := time.Now()
	// One second of burst, then 1500 bytes more at 1000 B/s.
	if err := env.WaitRead(context.Background(), 2500); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 1200*time.Millisecond || d > 3*time.Second {
		t.Fatalf("2500 bytes at 1000 B/s took %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	start = time.Now()
	err := env.WaitRead(ctx, 5000)
	if !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Fatalf("cancelled wait: %v after %v", err, time.Since(start))
	}
}
