package memory

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/collectors/yarascan"
	"github.com/huntmesh/huntmesh/tasks"
)

// markerRule needs two strings of the marker, so it also shows that a
// condition combines strings as in a file scan.
const markerRule = `rule huntmesh_test_marker {
  strings:
    $a = "HUNTMESH-TEST-MARKER"
    $b = /stratum\+tcp:\/\/[a-z.]+:3333/
  condition:
    $a and $b
}`

// yaraParams renders yara-memory params with the marker rule added.
func yaraParams(t *testing.T, extra map[string]any) string {
	t.Helper()
	p := map[string]any{"yara": []yarascan.Source{{Name: "test", Text: markerRule}}}
	for k, v := range extra {
		p[k] = v
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// byPid returns the records of process pid.
func byPid(recs []tasks.Record, pid int) []tasks.Record {
	var out []tasks.Record
	for _, r := range recs {
		if got, _ := r.Int("pid"); got == int64(pid) {
			out = append(out, r)
		}
	}
	return out
}

func TestYaraMemoryFindsMarker(t *testing.T) {
	c := startChild(t, 0)
	for _, tc := range []struct {
		name  string
		extra map[string]any
	}{
		{"by pid", map[string]any{"pids": []int{c.pid}}},
		{"by name", map[string]any{"names": []string{childName}}},
		{"all processes", map[string]any{"all": true, "max_per_process": 64 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, _, err := run(t, &YaraMemory{}, collectors.Budget{}, nil, yaraParams(t, tc.extra))
			if err != nil {
				t.Fatalf("yara-memory: %v", err)
			}
			mine := byPid(recs, c.pid)
			if len(mine) != 1 {
				t.Fatalf("got %d records for the child, want 1 (all: %v)", len(mine), recs)
			}
			checkHit(t, c, mine[0])
			if len(byPid(recs, os.Getpid())) != 0 {
				t.Error("the node's own process was scanned")
			}
		})
	}
}

// checkHit checks a hit's fields and that its region holds the marker.
func checkHit(t *testing.T, c *child, rec tasks.Record) {
	t.Helper()
	if rec.Kind != tasks.KindMemory || rec.Str("rule") != "huntmesh_test_marker" {
		t.Errorf("kind %q rule %q", rec.Kind, rec.Str("rule"))
	}
	if rec.Str("process_name") != childName {
		t.Errorf("process_name %q, want %q", rec.Str("process_name"), childName)
	}
	addr, ok1 := rec.Int("address")
	off, ok2 := rec.Int("offset")
	size, ok3 := rec.Int("region_size")
	if !ok1 || !ok2 || !ok3 || size <= 0 || off < 0 || off >= size {
		t.Fatalf("location address %d offset %d region_size %d", addr, off, size)
	}
	from := uint64(addr + off)
	n := min(size-off, maxBlock)
	got := readChild(t, c.pid, from, int(n))
	if !strings.Contains(string(got), marker) {
		t.Errorf("block at %#x (+%d bytes) does not hold the marker", from, n)
	}
	if _, ok := rec.Fields["exited"]; ok {
		t.Error("record says exited for a live process")
	}
}

func TestYaraMemoryIncludeSelf(t *testing.T) {
	// The test binary holds the rule text, so its own memory matches.
	recs, _, err := run(t, &YaraMemory{}, collectors.Budget{}, nil,
		yaraParams(t, map[string]any{"pids": []int{os.Getpid()}, "include_self": true}))
	if err != nil {
		t.Fatalf("yara-memory: %v", err)
	}
	if len(byPid(recs, os.Getpid())) != 1 {
		t.Errorf("got %v, want one hit in this process", recs)
	}
}

func TestYaraMemoryInjectedRules(t *testing.T) {
	c := startChild(t, 0)
	rs, err := yarascan.Compile([]yarascan.Source{{Name: "intel", Text: markerRule}})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Destroy()
	col := &YaraMemory{Rules: func() *yarascan.Rules { return rs }}
	if err := col.Validate(nil); err != nil {
		t.Fatalf("validate with injected rules: %v", err)
	}
	recs, _, err := run(t, col, collectors.Budget{}, nil, fmt.Sprintf(`{"pids": [%d]}`, c.pid))
	if err != nil {
		t.Fatalf("yara-memory: %v", err)
	}
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	checkHit(t, c, recs[0])
}

func TestYaraMemoryExitDuringScan(t *testing.T) {
	// 64 MiB of heap at 4 MiB/s takes many seconds to scan; the child is
	// killed well before the scan can finish, and well after it began.
	c := startChild(t, 64)
	go func() {
		<-timeAfter(1000)
		c.kill()
	}()
	recs, sum, err := run(t, &YaraMemory{}, collectors.Budget{ReadBytesPerSec: 4 << 20}, nil,
		yaraParams(t, map[string]any{"pids": []int{c.pid}}))
	if err != nil {
		t.Fatalf("scan of an exiting process failed: %v", err)
	}
	want := fmt.Sprintf("pid %d %s", c.pid, childName)
	if s := sum.Samples["exited"]; sum.Skipped["exited"] != 1 || len(s) != 1 || s[0] != want {
		t.Errorf("skipped %v samples %q, want one exited %q", sum.Skipped, s, want)
	}
	for _, r := range recs {
		if exited, _ := r.Fields["exited"].(bool); !exited {
			t.Errorf("hit %v does not say the process exited", r.Fields)
		}
	}
}

func TestYaraMemorySkips(t *testing.T) {
	c := startChild(t, 0)
	for _, tc := range []struct {
		name       string
		extra      map[string]any
		wantReason string
		wantSample string
	}{
		{"missing pid", map[string]any{"pids": []int{maxPID}}, "vanished", fmt.Sprintf("pid %d", maxPID)},
		{"size cap", map[string]any{"pids": []int{c.pid}, "max_per_process": 4096},
			"size cap", fmt.Sprintf("pid %d %s", c.pid, childName)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, sum, err := run(t, &YaraMemory{}, collectors.Budget{}, nil, yaraParams(t, tc.extra))
			if err != nil {
				t.Fatalf("yara-memory: %v", err)
			}
			if len(recs) != 0 {
				t.Errorf("got %d records, want none", len(recs))
			}
			if s := sum.Samples[tc.wantReason]; len(s) != 1 || s[0] != tc.wantSample {
				t.Errorf("skipped %v samples %v, want %s: %q", sum.Skipped, sum.Samples,
					tc.wantReason, tc.wantSample)
			}
		})
	}
}

func TestYaraMemoryValidate(t *testing.T) {
	rule := `{"name": "t", "text": "rule r { condition: true }"}`
	for _, tc := range []struct {
		name, params, wantErr string
	}{
		{"rules only", `{"yara": [` + rule + `]}`, ""},
		{"everything", `{"pids": [1], "names": ["xmrig"], "all": true, "max_per_process": 4096,
			"include_file_backed": false, "include_self": true, "yara": [` + rule + `]}`, ""},
		{"no rules anywhere", `{"pids": [1]}`, "no yara rules"},
		{"empty and no rules", ``, "no yara rules"},
		{"bad rule", `{"yara": [{"name": "bad", "text": "rule { condition: }"}]}`, "bad"},
		{"pid out of range", `{"pids": [0], "yara": [` + rule + `]}`, "out of range"},
		{"empty name", `{"names": [""], "yara": [` + rule + `]}`, "empty or too long"},
		{"cap over ceiling", `{"max_per_process": 99999999999999, "yara": [` + rule + `]}`,
			"out of range"},
		{"unknown field", `{"pid": 1, "yara": [` + rule + `]}`, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := (&YaraMemory{}).Validate([]byte(tc.params))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("err %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestAll(t *testing.T) {
	want := map[string]bool{"yara-memory": true, "memdump": true}
	for _, c := range All() {
		if !want[c.Name()] {
			t.Errorf("unexpected collector %q", c.Name())
		}
		delete(want, c.Name())
	}
	if len(want) != 0 {
		t.Errorf("missing collectors %v", want)
	}
}
