package huntfile

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/huntmesh/huntmesh/node"
)

// TestLibrary validates every hunt shipped under hunts/ as a node would.
func TestLibrary(t *testing.T) {
	files, err := filepath.Glob("../hunts/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("hunts/ holds %d hunt files, want at least 5", len(files))
	}
	for _, p := range files {
		t.Run(filepath.Base(p), func(t *testing.T) {
			f, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			h, err := f.Validate(10, node.ValidateHunt)
			if err != nil {
				t.Fatal(err)
			}
			if f.Name == "" || len(h.Collectors) == 0 {
				t.Errorf("hunt %s: no name or no collectors", p)
			}
		})
	}
}

// TestRefused checks that bad hunt files are refused with a reason.
func TestRefused(t *testing.T) {
	const base = "name: bad\ncollectors: [{name: processes}]\n"
	tests := []struct {
		name  string
		yaml  string
		fleet int
		want  string
	}{
		{"unknown collector", "name: bad\ncollectors: [{name: procs}]\n", 5,
			`unknown collector "procs"`},
		{"bad selector", base + "selector: \"role=web and (\"\n", 5, "selector"},
		{"dangling selector op", base + "selector: \"role=web or\"\n", 5, "ends early"},
		{"chain after itself", base + `chains:
  - name: loop
    when: {after: loop}
    collect: [{name: persistence}]
`, 5, "triggers after itself"},
		{"chain on its own collector", base + `chains:
  - name: loop
    when: {collectors: [persistence]}
    collect: [{name: persistence}]
`, 5, "runs itself"},
		{"chains in a cycle", base + `chains:
  - name: a
    when: {after: b}
    collect: [{name: persistence}]
  - name: b
    when: {after: a}
    collect: [{name: accounts}]
`, 5, "loop"},
		{"sample above fleet", base + "selector: {expr: all, sample: \"9\"}\n", 5,
			"larger than the fleet of 5"},
		{"unknown chain collector", base + `chains:
  - name: c
    collect: [{name: nope}]
`, 5, `unknown collector "nope"`},
		{"bad rule", base + "rules: [{name: r, when: 'kind == '}]\n", 5, "rule r"},
		{"unknown key", base + "colectors: []\n", 5, "colectors"},
		{"every longer than deadline", base + "deadline: 1m\nevery: 5m\n", 5,
			"not shorter than the deadline"},
		{"bad collector params", "name: bad\ncollectors: [{name: files, params: {roots: 3}}]\n",
			5, "collector files"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse([]byte(tc.yaml), t.TempDir())
			if err == nil {
				_, err = f.Validate(tc.fleet, node.ValidateHunt)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
