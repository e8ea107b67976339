package memory

import (
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
)

// TestYaraMemoryWallTime scans a real child whose memory the read budget
// cannot cover within the wall time: the run must end near the wall time
// and say the budget cut it short, not fail or report the process.
func TestYaraMemoryWallTime(t *testing.T) {
	c := startChild(t, 64)
	budget := collectors.Budget{ReadBytesPerSec: 4 << 20, WallTime: time.Second}
	start := time.Now()
	_, sum, err := run(t, &YaraMemory{}, budget, nil,
		yaraParams(t, map[string]any{"pids": []int{c.pid}}))
	took := time.Since(start)
	if err != nil {
		t.Fatalf("yara-memory under a wall time: %v", err)
	}
	if sum.CutBy != "wall time" {
		t.Errorf("cut by %q after %v (summary %+v), want wall time", sum.CutBy, took, sum)
	}
	if took > 5*time.Second {
		t.Errorf("run took %v past a 1 s wall time", took)
	}
}
