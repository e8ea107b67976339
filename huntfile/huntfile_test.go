package huntfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/node"
	"github.com/huntmesh/huntmesh/tasks"
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

// TestForward checks chains that forward a second hunt file: it is built
// from its own file, sealed with the hunt's issuer, checked as a node
// would, and refused when it would forward again or refers to itself.
func TestForward(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const outer = "name: outer\ncollectors: [{name: connections}]\nchains:\n" +
		"  - name: fwd\n    when: {ioc_types: [ip]}\n    forward: %s\n"
	write("sweep.yaml", "name: sweep\nselector: site=cloud-eastus\ndeadline: 2m\n"+
		"collectors: [{name: persistence}]\n")
	write("bad-collector.yaml", "name: badc\ncollectors: [{name: nope}]\n")
	write("again.yaml", fmt.Sprintf(outer, "sweep.yaml"))

	t.Run("built, sealed and checked", func(t *testing.T) {
		f, err := Load(write("ok.yaml", fmt.Sprintf(outer, "sweep.yaml")))
		if err != nil {
			t.Fatal(err)
		}
		var sealed []*tasks.Hunt
		seal := func(h *tasks.Hunt) ([]byte, error) {
			sealed = append(sealed, h)
			return []byte("sealed " + h.ID), nil
		}
		h, err := f.Hunt(Options{ReplyTo: "issuer", Seal: seal})
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != 1 || len(h.Chains) != 1 ||
			string(h.Chains[0].Forward) != "sealed "+sealed[0].ID {
			t.Fatalf("forward not sealed into the chain: %+v", h.Chains)
		}
		fh := sealed[0]
		if fh.ReplyTo != "issuer" || fh.Selector.Expr != "site=cloud-eastus" ||
			len(fh.Collectors) != 1 || fh.Collectors[0].Name != "persistence" ||
			fh.NotAfter.Sub(fh.IssuedAt) != 2*time.Minute || fh.ID == h.ID {
			t.Errorf("forwarded hunt %+v, want sweep.yaml's, replying to the issuer", fh)
		}
		if _, err := f.Validate(5, node.ValidateHunt); err != nil {
			t.Errorf("validate: %v", err)
		}
	})
	for _, tc := range []struct{ name, target, want string }{
		{"forwarded hunt checked as a node would", "bad-collector.yaml",
			`forwarded hunt: unknown collector "nope"`},
		{"forwarded hunt forwards again", "again.yaml", "may not forward again"},
		{"chain forwards its own file", "t.yaml", "may not forward again"},
		{"forward file missing", "missing.yaml", "chain fwd: forward"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Load(write("t.yaml", fmt.Sprintf(outer, tc.target)))
			if err == nil {
				_, err = f.Validate(5, node.ValidateHunt)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestYaraFilesAreIndicators checks that a collector's YARA files reach
// both its parameters and the hunt's indicators, once each, so that their
// matches are reported as detections.
func TestYaraFilesAreIndicators(t *testing.T) {
	f, err := Load("../hunts/webshell.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h, err := f.Hunt(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var yara []tasks.IoC
	for _, ioc := range h.IoCs {
		if ioc.Type == tasks.IoCYARA {
			yara = append(yara, ioc)
		}
	}
	if len(yara) != 1 || !strings.Contains(yara[0].Value, "rule webshell_exec_request_param") ||
		yara[0].Severity != "high" || yara[0].Source != "hunt:webshell:webshell.yar" {
		t.Fatalf("yara indicators %+v, want webshell.yar once, high", yara)
	}
	for _, c := range h.Collectors {
		if c.Name == "files" && !strings.Contains(string(c.Params), "webshell_exec_request_param") {
			t.Errorf("files collector params lack the rules: %s", c.Params)
		}
	}
	// Building twice does not pile them up.
	if h2, _ := f.Hunt(Options{}); len(h2.IoCs) != len(h.IoCs) {
		t.Errorf("second build has %d indicators, first %d", len(h2.IoCs), len(h.IoCs))
	}
}

// TestLoadFiles checks how hunt files are read: through a symlink, but
// not from a folder or a pipe, and never past MaxFileBytes.
func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target.yaml")
	if err := os.WriteFile(target, []byte("name: x\ncollectors: [{name: system}]\n"),
		0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if f, err := Load(link); err != nil || f.Name != "x" {
		t.Fatalf("load through a symlink: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, MaxFileBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{dir, "not a regular file"},
		{fifo, "not a regular file"},
		{big, "over"},
		{filepath.Join(dir, "none.yaml"), "no such file"},
	} {
		if _, err := Load(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("load %s: %v, want an error with %q", filepath.Base(tc.path), err, tc.want)
		}
	}
}

// TestIntelIncludes checks that intel files named by a hunt file join its
// indicators, and that a bad one is refused naming it.
func TestIntelIncludes(t *testing.T) {
	const text = "name: with-intel\ncollectors: [{name: connections}]\n" +
		"iocs: [{type: port, value: \"4444\"}]\nintel: [%s]\n"
	dir := "../testdata/cryptominer/intel"
	f, err := Parse([]byte(fmt.Sprintf(text, "iocs.csv")), dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := f.Validate(5, node.ValidateHunt)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, ioc := range h.IoCs {
		got[ioc.Type+":"+ioc.Value] = true
	}
	for _, want := range []string{"port:4444", "ip:192.0.2.25", "filename:deploy-vm.ps1"} {
		if !got[want] {
			t.Errorf("indicators %v lack %s", got, want)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(bad, []byte("no,header,here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{bad, "missing.csv"} {
		if _, err := Parse([]byte(fmt.Sprintf(text, p)), dir); err == nil ||
			!strings.Contains(err.Error(), "intel") {
			t.Errorf("intel %s: %v, want a refusal naming intel", p, err)
		}
	}
}
