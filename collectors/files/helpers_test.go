package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/collectors/yarascan"
	"github.com/huntmesh/huntmesh/tasks"
)

const scenario = "../../testdata/cryptominer"

// runOpts shapes one collector run in a test.
type runOpts struct {
	root    string
	budget  collectors.Budget
	exclude []string
	blobs   collectors.BlobSink
}

// collect runs c under collectors.Run and returns its records by path.
func collect(t testing.TB, c collectors.Collector, o runOpts, params any) (
	[]tasks.Record, collectors.Summary, error) {
	t.Helper()
	raw, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(raw); err != nil {
		return nil, collectors.Summary{}, err
	}
	var mu sync.Mutex
	var recs []tasks.Record
	env := collectors.NewEnv(c.Name(), o.root, "test-host", o.budget, nil,
		func(r tasks.Record) error {
			mu.Lock()
			defer mu.Unlock()
			recs = append(recs, r)
			return nil
		})
	env.Exclude = o.exclude
	env.Blobs = o.blobs
	err = collectors.Run(context.Background(), c, env, raw)
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Str("path") < recs[j].Str("path") })
	return recs, env.Stats.Summary(), err
}

// byPath indexes file records by path.
func byPath(recs []tasks.Record) map[string]tasks.Record {
	m := map[string]tasks.Record{}
	for _, r := range recs {
		m[r.Str("path")] = r
	}
	return m
}

// minerRules returns the scenario's YARA rules as hunt parameters.
func minerRules(t testing.TB) []yarascan.Source {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(scenario, "intel/miner.yar"))
	if err != nil {
		t.Fatal(err)
	}
	return []yarascan.Source{{Name: "miner.yar", Text: string(b)}}
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// memBlobs is an in-memory BlobSink.
type memBlobs struct {
	mu    sync.Mutex
	blobs map[string][]byte
}

func (m *memBlobs) PutBlob(r io.Reader) (string, int64, error) {
	var buf bytes.Buffer
	n, err := io.Copy(&buf, r)
	if err != nil {
		return "", 0, err
	}
	sum := sha256.Sum256(buf.Bytes())
	key := hex.EncodeToString(sum[:])
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.blobs == nil {
		m.blobs = map[string][]byte{}
	}
	m.blobs[key] = buf.Bytes()
	return key, n, nil
}
