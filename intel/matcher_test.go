package intel

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

var testNow = time.Date(2024, 8, 6, 12, 0, 0, 0, time.UTC)

// hitsOf renders detections as "type:value@field" for comparison.
func hitsOf(ds []tasks.Detection) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.IoCType+":"+d.IoCValue+"@"+d.Field)
	}
	slices.Sort(out)
	return out
}

func ioc(typ, value string) tasks.IoC {
	return tasks.IoC{Type: typ, Value: value, Severity: "high", Tags: []string{"t"}}
}

func rec(kind string, fields map[string]any) *tasks.Record {
	return &tasks.Record{Kind: kind, Host: "h1", Time: testNow, Fields: fields}
}

func TestMatch(t *testing.T) {
	miner := "/usr/local/bin/miner -o stratum+tcp://Pool.MineXMR.example:3333 " +
		"--donate-level=0 -u 4AbC"
	iocs := []tasks.IoC{
		ioc(tasks.IoCSHA256, "E86BBAF6FC9D8DFE57EF9E4EDC973A5F0880F02EEC2FA4819EE824C0C7EF51EC"),
		ioc(tasks.IoCMD5, "b39c449933dff5c8b7f39b9dcd9d8368"),
		ioc(tasks.IoCSHA1, "70B21E3AC69F0220784228375BA6BEF37FE0C488"),
		ioc(tasks.IoCIP, "192.0.2.25"),
		ioc(tasks.IoCIP, "2001:db8::dead"),
		ioc(tasks.IoCCIDR, "198.18.0.0/15"),
		ioc(tasks.IoCCIDR, "2001:db8:aa::/48"),
		ioc(tasks.IoCPort, "3333"),
		ioc(tasks.IoCPort, "203.0.113.77:443"),
		ioc(tasks.IoCDomain, "minexmr.example"),
		ioc(tasks.IoCURL, "HTTP://Evil.example:80/drop.sh#frag"),
		ioc(tasks.IoCFileName, "deploy-vm.ps1"),
		ioc(tasks.IoCFileName, "my invoice*.pdf"),
		ioc(tasks.IoCPath, "/opt/.cache/*"),
		ioc(tasks.IoCPath, `C:\Windows\Temp\*.ps1`),
		ioc(tasks.IoCProcess, "KWorkerd"),
		ioc(tasks.IoCProcess, "remote.exe"),
		ioc(tasks.IoCCmdline, "--donate-level=0"),
		ioc(tasks.IoCCmdline, " --algo=rx/0 "),
		ioc(tasks.IoCCmdlineRE, `^remote\.exe -silent -connect `),
		{Type: tasks.IoCYARA, Value: "rule coinminer_cpu_binary { condition: true }\n" +
			"rule coinminer_stratum_config { condition: false }"},
		{Type: tasks.IoCIP, Value: "198.51.100.99", Expires: testNow.Add(-time.Hour)},
		{Type: tasks.IoCIP, Value: "198.51.100.98", Expires: testNow.Add(time.Hour)},
	}
	m, err := Compile(iocs, CompileOptions{Now: testNow})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}

	tests := []struct {
		name string
		rec  *tasks.Record
		want []string
	}{
		{"connection to pool", rec(tasks.KindConnection, map[string]any{
			"local_address": "192.0.2.25", "remote_address": "192.0.2.25",
			"remote_port": int64(3333), "process_name": "miner",
		}), []string{"ip:192.0.2.25@remote_address", "port:3333@remote_port"}},
		{"address and port pair", rec(tasks.KindConnection, map[string]any{
			"remote_address": "203.0.113.77", "remote_port": float64(443),
		}), []string{"port:203.0.113.77:443@remote_address:remote_port"}},
		{"same address other port", rec(tasks.KindConnection, map[string]any{
			"remote_address": "203.0.113.77", "remote_port": int64(80),
		}), []string{}},
		{"local address alone is ours", rec(tasks.KindConnection, map[string]any{
			"local_address": "192.0.2.25", "local_port": int64(3333),
		}), []string{}},
		{"cidr v4 and mapped v6", rec(tasks.KindFlow, map[string]any{
			"src_address": "::ffff:198.19.4.4", "dst_address": "2001:db8:aa:1::9",
		}), []string{"cidr:198.18.0.0/15@src_address", "cidr:2001:db8:aa::/48@dst_address"}},
		{"ipv6 exact", rec(tasks.KindAuth, map[string]any{
			"source_address": "2001:DB8::DEAD",
		}), []string{"ip:2001:db8::dead@source_address"}},
		{"expired indicator is inactive", rec(tasks.KindConnection, map[string]any{
			"remote_address": "198.51.100.99",
		}), []string{}},
		{"indicator expiring later is active", rec(tasks.KindConnection, map[string]any{
			"remote_address": "198.51.100.98",
		}), []string{"ip:198.51.100.98@remote_address"}},
		{"miner process", rec(tasks.KindProcess, map[string]any{
			"name": "miner", "exe": "/usr/local/bin/miner", "cmdline": miner,
			"exe_sha256": "e86bbaf6fc9d8dfe57ef9e4edc973a5f0880f02eec2fa4819ee824c0c7ef51ec",
		}), []string{
			"cmdline:--donate-level=0@cmdline", "domain:minexmr.example@cmdline",
			"sha256:e86bbaf6fc9d8dfe57ef9e4edc973a5f0880f02eec2fa4819ee824c0c7ef51ec@exe_sha256",
		}},
		{"substring twice is one detection", rec(tasks.KindProcess, map[string]any{
			"cmdline": "x --DONATE-LEVEL=0 y --donate-level=0",
		}), []string{"cmdline:--donate-level=0@cmdline"}},
		{"leading space is significant", rec(tasks.KindProcess, map[string]any{
			"cmdline": "xmrig--algo=rx/0 -o x", "name": "xmrig",
		}), []string{}},
		{"disguised kernel worker from deleted exe", rec(tasks.KindProcess, map[string]any{
			"name": "kworkerd", "exe": "/opt/.cache/kworkerd (deleted)",
			"parent_name": "systemd",
		}), []string{"path:/opt/.cache/*@exe", "process:kworkerd@exe", "process:kworkerd@name"}},
		{"windows image and regex", rec(tasks.KindProcess, map[string]any{
			"name": "remote.exe", "exe": `C:\Program Files\RemoteAccessTool\REMOTE.EXE`,
			"cmdline": "remote.exe -silent -connect 203.0.113.77 -port 443",
		}), []string{
			`cmdline-re:^remote\.exe -silent -connect @cmdline`,
			"process:remote.exe@exe", "process:remote.exe@name",
		}},
		{"script executed by name", rec(tasks.KindProcess, map[string]any{
			"cmdline": `powershell.exe -File "C:\Windows\Temp\deploy-vm.ps1" -Force`,
		}), []string{"filename:deploy-vm.ps1@cmdline"}},
		{"file dropped on windows", rec(tasks.KindFile, map[string]any{
			"path": `C:\Windows\Temp\Deploy-VM.ps1`,
		}), []string{"filename:deploy-vm.ps1@path", "path:c:/windows/temp/*.ps1@path"}},
		{"file name with a space", rec(tasks.KindFile, map[string]any{
			"path": "/home/a/My Invoice 2024.pdf", "name": "My Invoice 2024.pdf",
		}), []string{"filename:my invoice*.pdf@name"}},
		{"file hashes in upper case", rec(tasks.KindFile, map[string]any{
			"path": "/tmp/x", "md5": "B39C449933DFF5C8B7F39B9DCD9D8368",
			"sha1": "70b21e3ac69f0220784228375ba6bef37fe0c488",
		}), []string{
			"md5:b39c449933dff5c8b7f39b9dcd9d8368@md5",
			"sha1:70b21e3ac69f0220784228375ba6bef37fe0c488@sha1",
		}},
		{"yara rule names", rec(tasks.KindFile, map[string]any{
			"path": "/usr/local/bin/miner",
			"yara": []any{"coinminer_cpu_binary", "other", "coinminer_stratum_config"},
		}), []string{"yara:coinminer_cpu_binary@yara", "yara:coinminer_stratum_config@yara"}},
		{"subdomain and url", rec(tasks.KindLog, map[string]any{
			"message": "fetched http://EVIL.example/drop.sh then resolved a.b.minexmr.example.",
			"url":     "http://user@evil.example:80/drop.sh",
		}), []string{
			"domain:minexmr.example@message", "url:http://evil.example/drop.sh@message",
			"url:http://evil.example/drop.sh@url",
		}},
		{"no look-alike domain", rec(tasks.KindLog, map[string]any{
			"domain": "notminexmr.example",
		}), []string{}},
		{"process name field only on process records", rec(tasks.KindPersistence, map[string]any{
			"name": "kworkerd", "command": "/opt/.cache/kworkerd --donate-level=0",
		}), []string{"cmdline:--donate-level=0@command"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := hitsOf(m.Match(tc.rec))
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestMatchDetectionFields(t *testing.T) {
	m, err := Compile([]tasks.IoC{ioc(tasks.IoCIP, "192.0.2.25")}, CompileOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	r := rec(tasks.KindConnection, map[string]any{"remote_address": "192.0.2.25"})
	ds := m.Match(r)
	if len(ds) != 1 {
		t.Fatalf("got %d detections, want 1", len(ds))
	}
	d := ds[0]
	if d.Host != "h1" || !d.Time.Equal(testNow) || d.Severity != "high" ||
		!slices.Equal(d.Tags, []string{"t"}) || d.Record.Kind != tasks.KindConnection {
		t.Errorf("detection not filled from record and indicator: %+v", d)
	}
}

func TestCompileRefuses(t *testing.T) {
	tests := []struct {
		name string
		ioc  tasks.IoC
		want string
	}{
		{"short hash", ioc(tasks.IoCSHA256, "abc"), "want 64 hex digits"},
		{"non-hex", ioc(tasks.IoCMD5, strings.Repeat("z", 32)), "non-hex"},
		{"bad ip", ioc(tasks.IoCIP, "300.1.1.1"), "ip"},
		{"bad cidr", ioc(tasks.IoCCIDR, "10.0.0.0/40"), "cidr"},
		{"port range", ioc(tasks.IoCPort, "70000"), "outside 1..65535"},
		{"bad glob", ioc(tasks.IoCFileName, "[abc"), "bad glob"},
		{"slash in file name", ioc(tasks.IoCFileName, "a/b"), "cannot hold"},
		{"bad regex", ioc(tasks.IoCCmdlineRE, "(unclosed"), "missing closing"},
		{"regex too long", ioc(tasks.IoCCmdlineRE, strings.Repeat("a", 2000)), "over the limit"},
		{"regex program too big", ioc(tasks.IoCCmdlineRE,
			"(?:ab|cd){1000}(?:ef|gh){1000}(?:ij|kl){1000}"),
			"instructions, over the limit"},
		{"value too long", ioc(tasks.IoCCmdline, strings.Repeat("a", 5000)), "over the limit"},
		{"yara without rule", ioc(tasks.IoCYARA, "import \"pe\""), "no rule"},
		{"unknown type", ioc("mutex", "x"), "unknown type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile([]tasks.IoC{tc.ioc}, CompileOptions{Now: testNow})
			if !errors.Is(err, ErrInvalidIoC) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidIoC with %q", err, tc.want)
			}
			m, err := Compile([]tasks.IoC{tc.ioc, ioc(tasks.IoCPort, "1")},
				CompileOptions{Now: testNow, SkipInvalid: true})
			if err != nil || m.Len() != 1 || len(m.Rejected()) != 1 {
				t.Fatalf("skip invalid: err %v, len %d, rejected %d", err, m.Len(),
					len(m.Rejected()))
			}
		})
	}
}

func TestCompileBoundsExpressions(t *testing.T) {
	iocs := []tasks.IoC{ioc(tasks.IoCCmdlineRE, "a+b"), ioc(tasks.IoCCmdlineRE, "c+d"),
		ioc(tasks.IoCCmdlineRE, "e+f")}
	_, err := Compile(iocs, CompileOptions{Now: testNow, Limits: Limits{MaxRegexes: 2}})
	if !errors.Is(err, ErrInvalidIoC) || !strings.Contains(err.Error(), "over 2 expressions") {
		t.Fatalf("got %v", err)
	}
}

func TestCompileBoundsYARA(t *testing.T) {
	rule := func(name string) tasks.IoC {
		return ioc(tasks.IoCYARA, "rule "+name+" { strings: $a = \"stratum+tcp\" condition: $a }")
	}
	iocs := []tasks.IoC{rule("one"), rule("two"), rule("three")}
	lim := Limits{MaxYARABytes: 2*len(iocs[0].Value) + 1}
	_, err := Compile(iocs, CompileOptions{Now: testNow, Limits: lim})
	if !errors.Is(err, ErrInvalidIoC) || !strings.Contains(err.Error(), "bytes of YARA") {
		t.Fatalf("got %v", err)
	}
	// With SkipInvalid the sources past the cap are left out and listed;
	// the rest still map their rule names.
	m, err := Compile(iocs, CompileOptions{Now: testNow, Limits: lim, SkipInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.YARASources()) != 2 || len(m.Rejected()) != 1 ||
		!strings.Contains(m.Rejected()[0].IoC.Value, "three") {
		t.Fatalf("sources %d, rejected %+v", len(m.YARASources()), m.Rejected())
	}
	r := rec(tasks.KindFile, map[string]any{"yara": []string{"one", "three"}})
	if got := hitsOf(m.Match(r)); len(got) != 1 || !strings.Contains(got[0], "one") {
		t.Fatalf("hits %q", got)
	}
}

func TestCompileMergesDuplicates(t *testing.T) {
	a := tasks.IoC{Type: tasks.IoCIP, Value: "192.0.2.1", Severity: "low", Tags: []string{"a"}}
	b := tasks.IoC{Type: tasks.IoCIP, Value: "::ffff:192.0.2.1", Severity: "critical",
		Tags: []string{"b", "a"}}
	m, err := Compile([]tasks.IoC{a, b}, CompileOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	got := m.IoCs()
	if len(got) != 1 || got[0].Severity != "critical" || !slices.Equal(got[0].Tags,
		[]string{"a", "b"}) {
		t.Fatalf("got %+v", got)
	}
	if len(a.Tags) != 1 {
		t.Fatalf("input tags changed: %v", a.Tags)
	}
}

func TestYARARuleNames(t *testing.T) {
	src := `// rule commented_out
import "pe"
/* rule also_not */
private rule helper { strings: $a = "rule fake" condition: $a }
global rule g1 : tag1 tag2 { condition: helper }
rule miner_x
{
	strings: $u = /stratum\+tcp:\/\// nocase
	condition: $u
}
rule quoted { strings: $q = /say "hi/ condition: $q } rule after_q { condition: true }
rule m { condition: filesize \ 2 > 1 and pe.number_of_sections == 1 and
  pe.sections[0].name matches /"rule no/ } rule after_m { condition: true }`
	// The source is real YARA: libyara takes it.
	if err := validateYARA("names", src); err != nil {
		t.Fatal(err)
	}
	got := yaraRuleNames(src)
	want := []string{"helper", "g1", "miner_x", "quoted", "after_q", "m", "after_m"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestAhoCorasick(t *testing.T) {
	pats := []string{"he", "she", "his", "hers", "a", "abcd", "bc"}
	ac := newACMatcher(pats)
	tests := []struct {
		text string
		want []string
	}{
		{"ushers", []string{"he", "hers", "she"}},
		{"ABCD", []string{"a", "abcd", "bc"}},
		{"xyz", nil},
		{"abc", []string{"a", "bc"}},
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			var got []string
			ac.scan(tc.text, func(id int32) {
				if !slices.Contains(got, pats[id]) {
					got = append(got, pats[id])
				}
			})
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEachWordSplitsAsFieldsFunc(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	alphabet := []string{"a", "Z", "/", ".", " ", "\t", "=", "'", "\"", "é", "日本", "\xff", ";",
		"(", "://", "x.y", "{", "|"}
	for range 2000 {
		var b strings.Builder
		for range r.IntN(20) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		s := b.String()
		var got []string
		eachWord(s, func(w string) { got = append(got, w) })
		if want := strings.FieldsFunc(s, wordSep); !slices.Equal(got, want) {
			t.Fatalf("%q: got %q, want %q", s, got, want)
		}
	}
}
