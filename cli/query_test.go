package cli

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestQueryRefusedBeforeSending checks that a query the nodes could not
// run is refused by the command itself, with the position or the field,
// before any key is read or node dialled.
func TestQueryRefusedBeforeSending(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"syntax", []string{"query", `kind == `}, "1:9"},
		{"unknown field", []string{"query", `remote_prot == 3333`}, "did you mean 'remote_port'"},
		{"not bool", []string{"query", `remote_port`}, "want a condition"},
		{"group by", []string{"query", "--group-by", "nope", `true`}, `"nope": unknown field`},
		{"since", []string{"query", "--since", "yesterday", `true`}, `"yesterday"`},
		{"until before since", []string{"query", "--since", "2026-05-03", "--until",
			"2026-05-02", "--key", "/nonexistent", `true`}, "is not after --since"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newRootCmd()
			root.SetArgs(append(tc.args, "--data-dir", t.TempDir()))
			root.SetOut(io.Discard)
			root.SetErr(io.Discard)
			err := root.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 5, 3, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                     {},
		"2026-05-03T08:11:58Z": time.Date(2026, 5, 3, 8, 11, 58, 0, time.UTC),
		"2026-05-02":           time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC),
		"90m":                  now.Add(-90 * time.Minute),
	} {
		got, err := parseWhen(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1h", "tomorrow", "2026-13-01"} {
		if _, err := parseWhen(bad, now); err == nil {
			t.Errorf("parseWhen(%q) accepted", bad)
		}
	}
}
