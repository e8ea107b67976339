package memory

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

func TestMemdumpChild(t *testing.T) {
	c := startChild(t, 0)
	blobs := &memBlobs{}
	recs, sum, err := run(t, &Memdump{}, collectors.Budget{}, blobs,
		fmt.Sprintf(`{"pid": %d}`, c.pid))
	if err != nil {
		t.Fatalf("memdump: %v", err)
	}
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	rec := recs[0]
	if rec.Kind != tasks.KindBlob || rec.Str("what") != "memdump" {
		t.Errorf("kind %q what %q, want blob memdump", rec.Kind, rec.Str("what"))
	}
	if pid, _ := rec.Int("pid"); pid != int64(c.pid) {
		t.Errorf("pid %d, want %d", pid, c.pid)
	}
	if rec.Str("process_name") != childName {
		t.Errorf("process_name %q, want %q", rec.Str("process_name"), childName)
	}

	// The blob is what the record says it is.
	blob := blobs.get(rec.Str("blob_sha256"))
	if blob == nil {
		t.Fatalf("blob %s not stored", rec.Str("blob_sha256"))
	}
	hash := sha256.Sum256(blob)
	if hex.EncodeToString(hash[:]) != rec.Str("blob_sha256") {
		t.Error("blob hash does not match the record")
	}
	if size, _ := rec.Int("size"); size != int64(len(blob)) {
		t.Errorf("size %d, blob has %d bytes", size, len(blob))
	}

	// The marker lives in the heap only, and the map says at which address.
	if bin, err := os.ReadFile(buildChild(t)); err != nil || bytes.Contains(bin, []byte(marker)) {
		t.Fatalf("child binary holds the marker in clear (or is unreadable: %v)", err)
	}
	at := bytes.Index(blob, []byte(marker))
	if at < 0 {
		t.Fatal("marker not in the dump")
	}
	entries := parseEntries(t, rec.Strs("map"))
	var covering *mapEntry
	total := uint64(0)
	for i, e := range entries {
		total += e.end - e.start
		if uint64(at) >= e.off && uint64(at) < e.off+(e.end-e.start) {
			covering = &entries[i]
		}
	}
	if total != uint64(len(blob)) {
		t.Errorf("map covers %d bytes, blob has %d", total, len(blob))
	}
	if covering == nil {
		t.Fatal("no map entry covers the marker's offset")
	}
	addr := covering.start + uint64(at) - covering.off
	if got := readChild(t, c.pid, addr, len(marker)); string(got) != marker {
		t.Errorf("memory at %#x is %q, want the marker", addr, got)
	}
	if sum.CutBy != "" {
		t.Errorf("cut by %q, want no cut", sum.CutBy)
	}
}

// mapEntry is one parsed "start-end perms offset path" map entry.
type mapEntry struct {
	start, end, off uint64
	perms, path     string
}

func parseEntries(t *testing.T, lines []string) []mapEntry {
	t.Helper()
	if len(lines) == 0 {
		t.Fatal("record has no map")
	}
	var out []mapEntry
	for _, l := range lines {
		f := strings.SplitN(l, " ", 4)
		if len(f) < 3 {
			t.Fatalf("map entry %q malformed", l)
		}
		var e mapEntry
		lo, hi, _ := strings.Cut(f[0], "-")
		var err1, err2, err3 error
		e.start, err1 = strconv.ParseUint(lo, 16, 64)
		e.end, err2 = strconv.ParseUint(hi, 16, 64)
		e.off, err3 = strconv.ParseUint(f[2], 16, 64)
		if err := errors.Join(err1, err2, err3); err != nil || e.end <= e.start {
			t.Fatalf("map entry %q malformed: %v", l, err)
		}
		e.perms = f[1]
		if len(f) == 4 {
			e.path = f[3]
		}
		out = append(out, e)
	}
	return out
}

func readChild(t *testing.T, pid int, addr uint64, n int) []byte {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, int64(addr)); err != nil {
		t.Fatalf("read child memory at %#x: %v", addr, err)
	}
	return buf
}

func TestMemdumpSizeCap(t *testing.T) {
	c := startChild(t, 0)
	blobs := &memBlobs{}
	const limit = 100_000
	recs, sum, err := run(t, &Memdump{}, collectors.Budget{}, blobs,
		fmt.Sprintf(`{"pid": %d, "max_size": %d}`, c.pid, limit))
	if err != nil {
		t.Fatalf("memdump: %v", err)
	}
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	if size, _ := recs[0].Int("size"); size != limit {
		t.Errorf("size %d, want %d", size, limit)
	}
	if got := len(blobs.get(recs[0].Str("blob_sha256"))); got != limit {
		t.Errorf("blob has %d bytes, want %d", got, limit)
	}
	if sum.CutBy != "size cap" {
		t.Errorf("cut by %q, want size cap", sum.CutBy)
	}
}

func TestMemdumpFileBacked(t *testing.T) {
	c := startChild(t, 0)
	for _, tc := range []struct {
		name    string
		include bool
	}{
		{"included", true},
		{"left out", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, _, err := run(t, &Memdump{}, collectors.Budget{}, &memBlobs{},
				fmt.Sprintf(`{"pid": %d, "include_file_backed": %t}`, c.pid, tc.include))
			if err != nil || len(recs) != 1 {
				t.Fatalf("memdump: %d records, err %v", len(recs), err)
			}
			sawExe := false
			for _, e := range parseEntries(t, recs[0].Strs("map")) {
				if filepath.Base(e.path) == childName {
					sawExe = true
				}
			}
			if sawExe != tc.include {
				t.Errorf("executable's mapping in map: %t, want %t", sawExe, tc.include)
			}
		})
	}
}

func TestMemdumpNoProcess(t *testing.T) {
	// PID_MAX_LIMIT itself is never handed out.
	_, _, err := run(t, &Memdump{}, collectors.Budget{}, &memBlobs{},
		fmt.Sprintf(`{"pid": %d}`, maxPID))
	if !errors.Is(err, ErrNoProcess) {
		t.Fatalf("err %v, want ErrNoProcess", err)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(maxPID)) {
		t.Errorf("error %q does not name the pid", err)
	}
}

func TestMemdumpNoBlobSink(t *testing.T) {
	_, _, err := run(t, &Memdump{}, collectors.Budget{}, nil, fmt.Sprintf(`{"pid": %d}`, os.Getpid()))
	if err == nil || !strings.Contains(err.Error(), "no blob store") {
		t.Fatalf("err %v, want no blob store", err)
	}
}

func TestMemdumpExitDuringDump(t *testing.T) {
	c := startChild(t, 8)
	blobs := &memBlobs{afterFirst: c.kill}
	recs, sum, err := run(t, &Memdump{}, collectors.Budget{}, blobs,
		fmt.Sprintf(`{"pid": %d}`, c.pid))
	if err != nil {
		t.Fatalf("memdump of an exiting process failed: %v", err)
	}
	if sum.Skipped["exited"] != 1 {
		t.Fatalf("skipped %v, want one exited", sum.Skipped)
	}
	want := fmt.Sprintf("pid %d %s", c.pid, childName)
	if s := sum.Samples["exited"]; len(s) != 1 || s[0] != want {
		t.Errorf("exited samples %q, want %q", s, want)
	}

	// What was read before the exit is kept and marked.
	if len(recs) != 1 {
		t.Fatalf("got %d records, want the partial dump", len(recs))
	}
	if exited, _ := recs[0].Fields["exited"].(bool); !exited {
		t.Error("record does not say the process exited")
	}
	if size, _ := recs[0].Int("size"); size < 4096 || size > 8<<20 {
		t.Errorf("partial dump of %d bytes, want at least the first 4 KiB, not all", size)
	}
}

func TestMemdumpValidate(t *testing.T) {
	for _, tc := range []struct {
		name, params, wantErr string
	}{
		{"pid only", `{"pid": 1}`, ""},
		{"all fields", `{"pid": 1, "max_size": 1024, "include_file_backed": false}`, ""},
		{"empty", ``, "pid is required"},
		{"negative pid", `{"pid": -3}`, "out of range"},
		{"pid too large", `{"pid": 99999999}`, "out of range"},
		{"negative size", `{"pid": 1, "max_size": -1}`, "out of range"},
		{"size over ceiling", `{"pid": 1, "max_size": 99999999999999}`, "out of range"},
		{"unknown field", `{"pid": 1, "pids": [2]}`, "unknown field"},
		{"not json", `{"pid": `, "decode params"},
		{"trailing data", `{"pid": 1} {}`, "trailing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := (&Memdump{}).Validate([]byte(tc.params))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("err %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
