package logs

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

// TestReadBudgetMeetsWallTime ingests a log the read budget cannot cover
// within the wall time: the run ends near the wall time with what it read
// and says the budget cut it short, rather than failing.
func TestReadBudgetMeetsWallTime(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	const lines = 5000 // about 400 KB, far more than one read's buffer
	for i := range lines {
		fmt.Fprintf(&b, "Feb 21 21:54:%02d h cron[2]: %s\n", i%60, strings.Repeat("z", 40))
	}
	path := writeFile(t, dir, "slow.log", b.String())
	raw, err := json.Marshal(Params{Sources: []Source{{Path: path}}, Year: 2024})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	env := collectors.NewEnv(Name, dir, "test-host",
		collectors.Budget{ReadBytesPerSec: 64 << 10, WallTime: 700 * time.Millisecond}, nil,
		func(tasks.Record) error { n++; return nil })
	start := time.Now()
	err = collectors.Run(context.Background(), New(), env, raw)
	took := time.Since(start)
	sum := env.Stats.Summary()
	if err != nil || sum.CutBy != "wall time" {
		t.Fatalf("err %v, cut by %q after %v; want a wall-time cut", err, sum.CutBy, took)
	}
	if n == 0 || n >= lines || took > 3*time.Second {
		t.Fatalf("%d of %d records in %v", n, lines, took)
	}
	t.Logf("%d of %d records in %v", n, lines, took)
}
