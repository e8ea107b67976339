package yarascan

import (
	"slices"
	"testing"
	"time"
)

// TestScanShortcutsFollowTheRules checks what Compile learns from the
// sources to make small scans cheaper: which external variables a scan
// must set, and whether a byte scan may drop libyara's fault guard (only
// when no module is imported). Scans must give the same verdicts either
// way.
func TestScanShortcutsFollowTheRules(t *testing.T) {
	tests := []struct {
		name      string
		text      string
		noImports bool
		vars      []string
		data      string
		vals      map[string]string
		match     bool
	}{
		{"plain strings", `rule s { strings: $a = "needle" condition: $a }`, true, nil,
			"hay needle hay", nil, true},
		{"module import keeps the guard", "import \"hash\"\nrule h { condition: " +
			`hash.md5(0, filesize) == "5d41402abc4b2a76b9719d911017c592" }`, false, nil,
			"hello", nil, true},
		{"import in a comment is taken as one", "// import \"pe\" was here\n" +
			`rule c { condition: true }`, false, nil, "x", nil, true},
		{"import after a rule", `rule a { condition: true } import "hash"`, false, nil,
			"x", nil, true},
		{"variables used", `rule v { condition: filename == "a.sh" and filetype == "SCRIPT" }`,
			true, []string{"filename", "filetype"}, "#!/bin/sh",
			map[string]string{"filename": "a.sh", "filetype": "SCRIPT"}, true},
		{"variable differs", `rule v { condition: filename == "a.sh" }`, true,
			[]string{"filename"}, "x", map[string]string{"filename": "b.sh"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Compile([]Source{{Name: "t", Text: tt.text}})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Destroy()
			if r.noImports != tt.noImports || !slices.Equal(r.vars, tt.vars) {
				t.Fatalf("noImports %v vars %v, want %v %v", r.noImports, r.vars,
					tt.noImports, tt.vars)
			}
			ms, err := r.ScanBytes([]byte(tt.data), tt.vals, time.Second)
			if err != nil || (len(ms) == 1) != tt.match {
				t.Fatalf("matches %v err %v, want match %v", ms, err, tt.match)
			}
		})
	}
}
