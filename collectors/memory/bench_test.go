package memory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"testing"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

// hashSink is a BlobSink that only hashes, so benchmarks measure reading.
type hashSink struct{}

func (hashSink) PutBlob(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// readableBytes is how many bytes of pid the collectors would read.
func readableBytes(b *testing.B, pid int) int64 {
	p, err := openProc(DefaultProcRoot, pid)
	if err != nil {
		b.Fatal(err)
	}
	regs, err := p.regions()
	if err != nil {
		b.Fatal(err)
	}
	blocks, _ := planBlocks(regs, MaxPerProcessCeiling, true, collectors.NewStats())
	var n int64
	for _, blk := range blocks {
		n += int64(blk.len)
	}
	return n
}

func benchRun(b *testing.B, c collectors.Collector, sink collectors.BlobSink, params string) {
	env := collectors.NewEnv(c.Name(), "/", "bench", collectors.Budget{}, nil,
		func(tasks.Record) error { return nil })
	env.Blobs = sink
	if err := c.Collect(context.Background(), env, []byte(params)); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkMemdump dumps a child holding 128 MiB of heap into a sink that
// only hashes; the throughput is that of reading /proc/PID/mem.
func BenchmarkMemdump(b *testing.B) {
	c := startChild(b, 128)
	b.SetBytes(readableBytes(b, c.pid))
	params := fmt.Sprintf(`{"pid": %d, "max_size": %d}`, c.pid, int64(MaxDumpCeiling))
	for b.Loop() {
		benchRun(b, &Memdump{}, hashSink{}, params)
	}
}

// BenchmarkYaraMemory scans the same child with the marker rule: one pass
// over the process, then one more to locate the hit.
func BenchmarkYaraMemory(b *testing.B) {
	c := startChild(b, 128)
	b.SetBytes(readableBytes(b, c.pid))
	params := fmt.Sprintf(`{"pids": [%d], "max_per_process": %d, "yara": [{"name": "b", "text": %q}]}`,
		c.pid, int64(MaxPerProcessCeiling), markerRule)
	for b.Loop() {
		benchRun(b, &YaraMemory{}, nil, params)
	}
}
