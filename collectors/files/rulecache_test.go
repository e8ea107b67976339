package files

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/collectors/yarascan"
)

func ruleSrc(i int) []yarascan.Source {
	return []yarascan.Source{{Name: "r", Text: fmt.Sprintf(
		`rule r%d { strings: $a = "needle%d" condition: $a }`, i, i)}}
}

func TestRuleCacheReusesAndOutlivesEviction(t *testing.T) {
	c := newRuleCache()
	first, release, err := c.acquire(ruleSrc(0))
	if err != nil {
		t.Fatal(err)
	}
	again, release2, err := c.acquire(ruleSrc(0))
	if err != nil || again != first {
		t.Fatalf("second acquire %p (err %v), want the cached %p", again, err, first)
	}
	release2()

	// Push the first set out while it is still held: it must keep working.
	for i := 1; i <= ruleCacheSize; i++ {
		_, rel, err := c.acquire(ruleSrc(i))
		if err != nil {
			t.Fatal(err)
		}
		rel()
	}
	if c.len() != ruleCacheSize {
		t.Fatalf("%d cached, want %d", c.len(), ruleCacheSize)
	}
	ms, err := first.ScanBytes([]byte("a needle0 here"), nil, time.Second)
	if err != nil || len(ms) != 1 {
		t.Fatalf("evicted but held rules: %v %v", ms, err)
	}
	release()
	release() // a second call is harmless
	if _, err := first.ScanBytes([]byte("x"), nil, time.Second); !errors.Is(err,
		yarascan.ErrDestroyed) {
		t.Fatalf("evicted and released rules still scan: %v", err)
	}

	// A bad source is not cached and reports the compiler's error.
	if _, _, err := c.acquire([]yarascan.Source{{Name: "bad", Text: "rule {"}}); err == nil {
		t.Fatal("bad rule compiled")
	}
}

func TestRuleCacheConcurrent(t *testing.T) {
	c := newRuleCache()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				n := (g + i) % (ruleCacheSize + 3)
				r, rel, err := c.acquire(ruleSrc(n))
				if err != nil {
					t.Error(err)
					return
				}
				ms, err := r.ScanBytes([]byte(fmt.Sprintf("needle%d", n)), nil, time.Second)
				if err != nil || len(ms) != 1 {
					t.Errorf("scan with set %d: %v %v", n, ms, err)
				}
				rel()
			}
		}()
	}
	wg.Wait()
}

// TestFilesCompilesOncePerRuleSet checks that Validate and the runs after
// it share one compiled rule set.
func TestFilesCompilesOncePerRuleSet(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root+"/a", "needle7", 0o644)
	f := NewFiles(nil)
	params := map[string]any{"yara": ruleSrc(7)}
	for range 3 {
		recs, _, err := collect(t, f, runOpts{root: root}, params)
		if err != nil || len(recs) != 1 || recs[0].Fields["yara"].([]string)[0] != "r7" {
			t.Fatalf("recs %v err %v", recs, err)
		}
	}
	if n := f.compiled.len(); n != 1 {
		t.Fatalf("%d compiled sets after three validated runs of one hunt", n)
	}
}
