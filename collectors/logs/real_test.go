package logs

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// realDirs are the folders of testdata/real that hold logs.
var realDirs = []string{"sysmon", "linux-logs", "azure"}

// eventsIn counts the events in a real log file by a rule of its format
// that does not share code with the parsers: lines for line formats, the
// record signature for EVTX, opening tags for XML, serial numbers for
// auditd (one event spans several lines) and array length for JSON
// documents. ok is false for a file no rule covers.
func eventsIn(t *testing.T, path string, b []byte) (n int, ok bool) {
	t.Helper()
	nonEmptyLines := func() int {
		c := 0
		for _, l := range bytes.Split(b, []byte("\n")) {
			if len(bytes.TrimSpace(l)) > 0 {
				c++
			}
		}
		return c
	}
	switch name := filepath.Base(path); {
	case strings.HasSuffix(name, ".evtx"):
		// Each event record starts with "**\0\0" in a chunk; the file
		// header starts with "ElfFile" and chunk headers with "ElfChnk".
		return bytes.Count(b, []byte("**\x00\x00")), true
	case strings.HasSuffix(name, ".xml"):
		return len(regexp.MustCompile(`<Event[ >]`).FindAll(b, -1)), true
	case strings.HasSuffix(name, ".ndjson"):
		return nonEmptyLines(), true
	case strings.Contains(name, "auditd"):
		serials := map[string]bool{}
		for _, m := range regexp.MustCompile(`msg=audit\([0-9.]+:([0-9]+)\)`).FindAllSubmatch(b,
			-1) {
			serials[string(m[1])] = true
		}
		return len(serials), true
	case strings.HasSuffix(name, ".log"):
		return nonEmptyLines(), true
	case strings.HasSuffix(name, ".json"):
		var doc struct {
			Records []json.RawMessage `json:"records"`
			Value   []json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if n := len(doc.Records) + len(doc.Value); n > 0 {
			return n, true
		}
		return 1, true // one activity-log event object
	}
	return 0, false
}

// TestEveryRealEventAccounted ingests every real log file in testdata/real
// with format detection and checks that each event the file holds comes
// out as a record or as a counted skip whose reason names where it was.
// A file added to those folders without a counting rule fails the test.
func TestEveryRealEventAccounted(t *testing.T) {
	seen := 0
	for _, dir := range realDirs {
		paths, err := filepath.Glob(filepath.Join(testdata, "real", dir, "*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			if strings.HasPrefix(filepath.Base(p), "LICENSE") {
				continue
			}
			seen++
			hostPath := "/" + filepath.ToSlash(strings.TrimPrefix(p, testdata+"/"))
			t.Run(hostPath, func(t *testing.T) {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				want, ok := eventsIn(t, p, b)
				if !ok || want == 0 {
					t.Fatalf("no rule counts the events of %s", p)
				}
				recs, sum := one(t, hostPath, FormatAuto)
				if got := len(recs) + skipped(sum); got != want {
					t.Errorf("records %d + skips %d = %d, want the %d events in the file "+
						"(skips %v)", len(recs), skipped(sum), got, want, sum.Skipped)
				}
				for reason, n := range sum.Skipped {
					if len(sum.Samples[reason]) == 0 {
						t.Errorf("%d skips for %q name no place", n, reason)
					}
				}
				checkTypes(t, recs)
			})
		}
	}
	if seen < 8 {
		t.Fatalf("found %d real log files, want at least the 8 the issue names", seen)
	}
}
