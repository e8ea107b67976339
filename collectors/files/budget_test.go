package files

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
)

// TestFilesReadBudgetAndWallTime runs a scan whose read budget cannot
// cover the tree within its wall time: the run must end near the wall
// time, say it was cut short, and count the files it did not read rather
// than report them as read errors.
func TestFilesReadBudgetAndWallTime(t *testing.T) {
	root := t.TempDir()
	for i := range 20 {
		writeFile(t, filepath.Join(root, fmt.Sprintf("f%02d", i)), strings.Repeat("x", 1000), 0o644)
	}
	start := time.Now()
	recs, sum, err := collect(t, NewFiles(nil), runOpts{root: root,
		budget: collectors.Budget{ReadBytesPerSec: 2000, WallTime: 1500 * time.Millisecond}}, nil)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records in %v, summary %+v", len(recs), took, sum)
	if sum.CutBy != "wall time" {
		t.Errorf("cut by %q, want wall time", sum.CutBy)
	}
	if sum.Skipped["error"] != 0 {
		t.Errorf("budget waits counted as read errors: %v", sum.Skipped)
	}
	// 2000 bytes of burst and 2000 B/s for 1.5 s: about five files.
	if len(recs) < 3 || len(recs) > 7 {
		t.Errorf("%d files read, want about 5", len(recs))
	}
	if took > 3*time.Second {
		t.Errorf("run took %v past a 1.5 s wall time", took)
	}
}
