package files

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/collectors/yarascan"
	"github.com/huntmesh/huntmesh/tasks"
)

// benchFiles is the size of the benchmark tree.
const benchFiles = 10_000

// benchTree writes benchFiles small files (0.5 to 8 KiB, 1% of them
// miner-like) in 100 directories, and a NUL-separated list of their paths.
func benchTree(b *testing.B) (root, list string) {
	b.Helper()
	root = b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("alpha bravo charlie delta echo foxtrot golf hotel india " +
		"juliet kilo lima mike november oscar papa quebec romeo sierra tango")
	var names []string
	for i := range benchFiles {
		var sb strings.Builder
		size := 512 + rng.IntN(8<<10-512)
		for sb.Len() < size {
			sb.WriteString(words[rng.IntN(len(words))])
			sb.WriteByte(' ')
		}
		if i%100 == 0 {
			sb.WriteString(`"pools": [{"url": "stratum+tcp://pool.example.net:3333"}]`)
		}
		p := filepath.Join(root, "tree", fmt.Sprintf("d%02d", i%100), fmt.Sprintf("f%05d.txt", i))
		writeFile(b, p, sb.String(), 0o644)
		names = append(names, p)
	}
	list = filepath.Join(root, "list")
	if err := os.WriteFile(list, []byte(strings.Join(names, "\x00")), 0o644); err != nil {
		b.Fatal(err)
	}
	return filepath.Join(root, "tree"), list
}

// BenchmarkFiles compares the files collector with the stock tools on one
// tree. Run with: go test -run ^$ -bench Files -benchtime 5x ./collectors/files
func BenchmarkFiles(b *testing.B) {
	root, list := benchTree(b)
	ruleFile := filepath.Join(scenario, "intel/miner.yar")
	rules := minerRules(b)
	sha256Only := map[string]any{"hashes": []string{"sha256"}}

	scan := func(f *Files, params map[string]any, workers int) func(b *testing.B) {
		return func(b *testing.B) {
			p := map[string]any{"workers": workers}
			for k, v := range params {
				p[k] = v
			}
			for b.Loop() {
				benchRun(b, f, root, p)
			}
		}
	}
	shell := func(script string) func(b *testing.B) {
		return func(b *testing.B) {
			for b.Loop() {
				out, err := exec.Command("sh", "-c", script).CombinedOutput()
				if err != nil {
					b.Fatalf("%s: %v\n%s", script, err, out)
				}
			}
		}
	}

	b.Run("sha256/files-w1", scan(NewFiles(nil), sha256Only, 1))
	b.Run("sha256/files-w2", scan(NewFiles(nil), sha256Only, 2))
	b.Run("sha256/sha256sum-P1", shell("xargs -0 -n 2000 -a "+list+" sha256sum >/dev/null"))
	b.Run("sha256/sha256sum-P2",
		shell("xargs -0 -n 2000 -P 2 -a "+list+" sha256sum >/dev/null"))

	yaraOnly := map[string]any{"hashes": []string{}, "yara": rules}
	yaraAll := map[string]any{"yara": rules}
	b.Run("yara/files-w1", scan(NewFiles(nil), yaraOnly, 1))
	b.Run("yara/files-w2", scan(NewFiles(nil), yaraOnly, 2))
	streamer := NewFiles(nil)
	streamer.streamAll = true
	b.Run("yara/files-w1-fd-scan", scan(streamer, yaraOnly, 1))
	b.Run("yara/yara-cli-p1", shell("yara -p 1 -r "+ruleFile+" "+root+" >/dev/null"))
	b.Run("yara/yara-cli-p2", shell("yara -p 2 -r "+ruleFile+" "+root+" >/dev/null"))
	b.Run("yara/yara-cli-default", shell("yara -r "+ruleFile+" "+root+" >/dev/null"))
	b.Run("yara+hashes/files-w1", scan(NewFiles(nil), yaraAll, 1))
	b.Run("yara+hashes/files-w2", scan(NewFiles(nil), yaraAll, 2))

	// A re-scan with a warm cache against the same first scan.
	warm := NewFiles(NewHashCache(0))
	benchRun(b, warm, root, yaraAll)
	// Each first scan gets an empty cache of its own; reusing one Files
	// across iterations would turn every iteration after the first into a
	// cached re-scan.
	b.Run("rescan/first-w1", func(b *testing.B) {
		p := map[string]any{"workers": 1, "yara": rules}
		for b.Loop() {
			benchRun(b, NewFiles(NewHashCache(0)), root, p)
		}
	})
	b.Run("rescan/cached-w1", scan(warm, yaraAll, 1))
}

// BenchmarkCompile measures compiling the real public rule sets.
func BenchmarkCompile(b *testing.B) {
	paths, _ := filepath.Glob("../../testdata/real/yara/*.yar")
	var srcs []yarascan.Source
	for _, p := range paths {
		t, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		srcs = append(srcs, yarascan.Source{Name: filepath.Base(p), Text: string(t)})
	}
	for b.Loop() {
		r, err := yarascan.Compile(srcs)
		if err != nil {
			b.Fatal(err)
		}
		r.Destroy()
	}
}

// BenchmarkFilesRatios runs each Measure comparison of the files collector
// as a pair, alternating the two sides inside every iteration so that load
// from other work on the machine falls on both alike, and reports the
// ratio of their times: the "x-" metric is the left side's speed relative
// to the right (above 1 is faster), "left/right-time" its inverse, and
// "left/right-cpu" the ratio of the CPU time each side used (the fairer
// figure on a loaded machine; it cannot show gains from parallelism).
// Run with: go test -run ^$ -bench FilesRatios -benchtime 3x ./collectors/files
func BenchmarkFilesRatios(b *testing.B) {
	root, list := benchTree(b)
	ruleFile := filepath.Join(scenario, "intel/miner.yar")
	rules := minerRules(b)

	files := func(params map[string]any, workers int) func(b *testing.B) {
		return func(b *testing.B) {
			p := map[string]any{"workers": workers}
			for k, v := range params {
				p[k] = v
			}
			benchRun(b, NewFiles(nil), root, p)
		}
	}
	shell := func(script string) func(b *testing.B) {
		return func(b *testing.B) {
			if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
				b.Fatalf("%s: %v\n%s", script, err, out)
			}
		}
	}
	// pair times left and right alternately and reports right/left as
	// metric (left's speed relative to right).
	pair := func(name, metric string, left, right func(b *testing.B)) {
		b.Run(name, func(b *testing.B) {
			var lt, rt, lc, rc time.Duration
			for b.Loop() {
				c0, t0 := cpuTime(), time.Now()
				left(b)
				c1, t1 := cpuTime(), time.Now()
				right(b)
				lt += t1.Sub(t0)
				rt += time.Since(t1)
				lc += c1 - c0
				rc += cpuTime() - c1
			}
			b.ReportMetric(rt.Seconds()/lt.Seconds(), metric)
			b.ReportMetric(lt.Seconds()/rt.Seconds(), "left/right-time")
			b.ReportMetric(lc.Seconds()/rc.Seconds(), "left/right-cpu")
			b.ReportMetric(float64(lt.Nanoseconds())/float64(b.N)/benchFiles, "left-ns/file")
			b.ReportMetric(float64(rt.Nanoseconds())/float64(b.N)/benchFiles, "right-ns/file")
		})
	}

	sha := map[string]any{"hashes": []string{"sha256"}}
	yaraOnly := map[string]any{"hashes": []string{}, "yara": rules}
	yaraAll := map[string]any{"yara": rules}
	pair("sha256-w1-vs-sha256sum", "x-sha256sum", files(sha, 1),
		shell("xargs -0 -n 2000 -a "+list+" sha256sum >/dev/null"))
	pair("sha256-w2-vs-sha256sum-P2", "x-sha256sum", files(sha, 2),
		shell("xargs -0 -n 2000 -P 2 -a "+list+" sha256sum >/dev/null"))
	pair("sha256-w2-vs-w1", "x-one-worker", files(sha, 2), files(sha, 1))
	pair("yara-w1-vs-yara-cli-p1", "x-yara-cli", files(yaraOnly, 1),
		shell("yara -p 1 -r "+ruleFile+" "+root+" >/dev/null"))
	pair("yara-w2-vs-yara-cli-p2", "x-yara-cli", files(yaraOnly, 2),
		shell("yara -p 2 -r "+ruleFile+" "+root+" >/dev/null"))
	pair("yara+hashes-vs-yara-w1", "x-yara-only", files(yaraAll, 1), files(yaraOnly, 1))

	// A re-scan of the unchanged tree against a first scan with an empty
	// cache, both with YARA and the three hashes.
	warm := NewFiles(NewHashCache(0))
	benchRun(b, warm, root, yaraAll)
	pair("rescan-cached-vs-first", "x-first-scan", func(b *testing.B) {
		benchRun(b, warm, root, yaraAll)
	}, func(b *testing.B) {
		benchRun(b, NewFiles(NewHashCache(0)), root, yaraAll)
	})
}

// cpuTime is the CPU time (user and system) used so far by this process
// and the children it has waited for, so that a pair can also be compared
// by the work each side did, which load from elsewhere on the machine
// skews far less than wall time.
func cpuTime() time.Duration {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

// benchRun runs f over root as a node would, handing each record to a sink
// that only counts (the yardsticks print to /dev/null), and checks that
// every file of the tree came out.
func benchRun(b *testing.B, f *Files, root string, params map[string]any) {
	b.Helper()
	raw, err := json.Marshal(params)
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Validate(raw); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	env := collectors.NewEnv("files", root, "bench", collectors.Budget{}, nil,
		func(tasks.Record) error { n.Add(1); return nil })
	if err := collectors.Run(context.Background(), f, env, raw); err != nil || n.Load() != benchFiles {
		b.Fatalf("records %d err %v", n.Load(), err)
	}
}
