package intel

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

const scenario = "../testdata/cryptominer/intel/"

func openT(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// find returns the imported IoC of type typ and value, if any.
func find(imp Import, typ, value string) (tasks.IoC, bool) {
	for _, c := range imp.IoCs {
		if c.Type == typ && c.Value == value {
			return c, true
		}
	}
	return tasks.IoC{}, false
}

// skippedFor reports whether a skip names what with a reason containing
// reason.
func skippedFor(imp Import, what, reason string) bool {
	for _, s := range imp.Skipped {
		if s.What == what && strings.Contains(s.Reason, reason) {
			return true
		}
	}
	return false
}

type wantIoC struct{ typ, value string }

func checkHas(t *testing.T, imp Import, want []wantIoC) {
	t.Helper()
	for _, w := range want {
		if _, ok := find(imp, w.typ, w.value); !ok {
			t.Errorf("missing %s %q; got %v", w.typ, w.value, imp.IoCs)
		}
	}
}

func TestImportSTIXScenario(t *testing.T) {
	imp, err := ImportSTIX(openT(t, scenario+"cryptominersgroup.stix.json"), testNow)
	if err != nil {
		t.Fatal(err)
	}
	checkHas(t, imp, []wantIoC{
		{tasks.IoCIP, "192.0.2.25"}, {tasks.IoCIP, "203.0.113.77"},
		{tasks.IoCPort, "192.0.2.25:3333"},
		{tasks.IoCSHA256, "e86bbaf6fc9d8dfe57ef9e4edc973a5f0880f02eec2fa4819ee824c0c7ef51ec"},
		{tasks.IoCMD5, "b39c449933dff5c8b7f39b9dcd9d8368"},
		{tasks.IoCFileName, "deploy-vm.ps1"},
		{tasks.IoCCmdlineRE, `^remote\.exe -silent -connect `},
		{tasks.IoCDomain, "pool.minexmr.example"},
	})
	if len(imp.IoCs) != 8 {
		t.Errorf("got %d IoCs, want 8: %v", len(imp.IoCs), imp.IoCs)
	}

	t.Run("revoked and expired are not taken", func(t *testing.T) {
		for _, v := range []string{"198.51.100.200", "198.51.100.99"} {
			if _, ok := find(imp, tasks.IoCIP, v); ok {
				t.Errorf("%s taken", v)
			}
		}
		if !skippedFor(imp, "indicator", "revoked") || !skippedFor(imp, "indicator", "expired") {
			t.Errorf("skips do not say revoked and expired: %v", imp.Skipped)
		}
		// They are withdrawn, so a set holding them from an earlier copy
		// of the feed drops them.
		var withdrawn []string
		for _, w := range imp.Withdrawn {
			withdrawn = append(withdrawn, w.Type+" "+w.Value)
		}
		slices.Sort(withdrawn)
		if !slices.Equal(withdrawn, []string{"ip 198.51.100.200", "ip 198.51.100.99"}) {
			t.Errorf("withdrawn %q", withdrawn)
		}
		m, err := Compile(imp.IoCs, CompileOptions{Now: testNow})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"198.51.100.200", "198.51.100.99"} {
			r := rec(tasks.KindConnection, map[string]any{"remote_address": v,
				"remote_port": int64(443)})
			if d := m.Match(r); len(d) != 0 {
				t.Errorf("%s matched %v", v, hitsOf(d))
			}
		}
	})
	t.Run("tags from actor and techniques", func(t *testing.T) {
		c, _ := find(imp, tasks.IoCIP, "192.0.2.25")
		for _, tag := range []string{"actor:CryptoMinersGroup", "T1496", "T1190"} {
			if !slices.Contains(c.Tags, tag) {
				t.Errorf("tags %v lack %s", c.Tags, tag)
			}
		}
		if c.Source != "stix:bundle--6acc583d-cb2c-5b68-84d4-f8d74d982784" ||
			c.FirstSeen.IsZero() || c.Severity != DefaultSeverity {
			t.Errorf("source, first seen or severity not set: %+v", c)
		}
	})
	t.Run("meta counts per property", func(t *testing.T) {
		if imp.Meta.Taken["ipv4-addr:value"] != 2 || imp.Meta.Skipped["indicator"] != 2 {
			t.Errorf("meta: %s", imp.Meta)
		}
	})
}

func TestImportSTIXWithdrawsOnlyWhatNothingGives(t *testing.T) {
	bundle := `{"type":"bundle","id":"bundle--w","objects":[
{"type":"indicator","id":"indicator--old","revoked":true,
 "pattern":"[ipv4-addr:value = '192.0.2.1' OR ipv4-addr:value = '192.0.2.2']"},
{"type":"indicator","id":"indicator--new","pattern":"[ipv4-addr:value = '192.0.2.2']"}]}`
	imp, err := ImportSTIX(strings.NewReader(bundle), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.Withdrawn) != 1 || imp.Withdrawn[0].Value != "192.0.2.1" || len(imp.IoCs) != 1 ||
		imp.IoCs[0].Value != "192.0.2.2" {
		t.Fatalf("withdrawn %v, taken %v", imp.Withdrawn, imp.IoCs)
	}
	// Applied as removes after an earlier import's adds, the set drops it.
	s, clock := NewSet(), NewClock(func() time.Time { return testNow })
	earlier := []tasks.IoC{{Type: tasks.IoCIP, Value: "192.0.2.1"}}
	if _, err := s.ApplyAll(Adds(earlier, clock, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyAll(append(Adds(imp.IoCs, clock, "a"),
		Removes(imp.Withdrawn, clock, "a")...)); err != nil {
		t.Fatal(err)
	}
	if got := activeValues(s); !slices.Equal(got, []string{"ip 192.0.2.2"}) {
		t.Fatalf("active %q", got)
	}
}

func TestImportMISPScenario(t *testing.T) {
	imp, err := ImportMISP(openT(t, scenario+"cryptominersgroup.misp.json"))
	if err != nil {
		t.Fatal(err)
	}
	checkHas(t, imp, []wantIoC{
		{tasks.IoCIP, "192.0.2.25"}, {tasks.IoCIP, "203.0.113.77"},
		{tasks.IoCPort, "192.0.2.25:3333"}, {tasks.IoCDomain, "pool.minexmr.example"},
		{tasks.IoCSHA256, "e86bbaf6fc9d8dfe57ef9e4edc973a5f0880f02eec2fa4819ee824c0c7ef51ec"},
		{tasks.IoCSHA1, "f3782a9565841f31a033dcc2b113fe875ac59167"},
		{tasks.IoCFileName, "deploy-vm.ps1"},
	})
	if len(imp.IoCs) != 7 {
		t.Errorf("got %d IoCs, want 7", len(imp.IoCs))
	}
	if _, ok := find(imp, tasks.IoCPath, "/etc/rc.local"); ok {
		t.Error("attribute without to_ids taken")
	}
	if !skippedFor(imp, "filename", "to_ids") || !skippedFor(imp, "text", "to_ids") {
		t.Errorf("skips: %v", imp.Skipped)
	}
	c, _ := find(imp, tasks.IoCIP, "192.0.2.25")
	if !slices.Contains(c.Tags, "tlp:amber") || !slices.Contains(c.Tags,
		"actor:CryptoMinersGroup") || c.Severity != "medium" {
		t.Errorf("tags or severity: %+v", c)
	}
	// First seen is the event's date unless the attribute says.
	if !c.FirstSeen.Equal(time.Date(2024, 8, 6, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("first seen %v, want the event date", c.FirstSeen)
	}
	own, err := ImportMISP(strings.NewReader(`{"Event":{"date":"2024-08-06","Attribute":[
{"uuid":"a","type":"ip-dst","value":"192.0.2.7","to_ids":true,
 "first_seen":"2024-07-01T10:00:00.000000+00:00"},
{"uuid":"b","type":"ip-dst","value":"192.0.2.8","to_ids":true,"first_seen":null}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := find(own, tasks.IoCIP, "192.0.2.7")
	b, _ := find(own, tasks.IoCIP, "192.0.2.8")
	if !a.FirstSeen.Equal(time.Date(2024, 7, 1, 10, 0, 0, 0, time.UTC)) ||
		!b.FirstSeen.Equal(time.Date(2024, 8, 6, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("first seen %v and %v", a.FirstSeen, b.FirstSeen)
	}
}

func TestImportCSVScenario(t *testing.T) {
	imp, err := ImportCSV(openT(t, scenario+"iocs.csv"))
	if err != nil {
		t.Fatal(err)
	}
	checkHas(t, imp, []wantIoC{
		{tasks.IoCIP, "192.0.2.25"}, {tasks.IoCIP, "203.0.113.77"}, {tasks.IoCPort, "3333"},
		{tasks.IoCSHA256, "e86bbaf6fc9d8dfe57ef9e4edc973a5f0880f02eec2fa4819ee824c0c7ef51ec"},
		{tasks.IoCFileName, "deploy-vm.ps1"}, {tasks.IoCProcess, "kworkerd"},
	})
	if len(imp.IoCs) != 6 || len(imp.Skipped) != 0 {
		t.Errorf("got %d IoCs, skips %v", len(imp.IoCs), imp.Skipped)
	}
}

func TestImportYARAScenario(t *testing.T) {
	imp, err := ImportYARA("miner.yar", openT(t, scenario+"miner.yar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.IoCs) != 1 || imp.IoCs[0].Type != tasks.IoCYARA ||
		imp.IoCs[0].Severity != "high" || imp.Meta.Taken["rule"] != 2 {
		t.Fatalf("got %+v, meta %s", imp.IoCs, imp.Meta)
	}
	m, err := Compile(imp.IoCs, CompileOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	r := rec(tasks.KindFile, map[string]any{"path": "/etc/miner.conf",
		"yara": []string{"coinminer_stratum_config"}})
	if got := hitsOf(m.Match(r)); !slices.Equal(got,
		[]string{"yara:coinminer_stratum_config@yara"}) {
		t.Errorf("got %q", got)
	}
	if len(m.YARASources()) != 1 {
		t.Error("YARA source not exposed")
	}
}

func TestImportRealSTIX(t *testing.T) {
	tests := []struct {
		file  string
		want  []wantIoC
		skips []string
	}{
		{"oasis_indicator-for-c2-ip-address.json", []wantIoC{{tasks.IoCIP, "10.0.0.0"}}, nil},
		{"oasis_indicators-for-C2-with-COA.json", []wantIoC{{tasks.IoCSHA256,
			"ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c"}}, nil},
		{"oasis_malicious-email-indicator-with-attachment.json", nil, []string{
			"email-message:subject", "email-message:body_multipart[*].body_raw_ref.name"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			imp, err := ImportSTIX(openT(t, "../testdata/real/stix/"+tc.file), testNow)
			if err != nil {
				t.Fatal(err)
			}
			checkHas(t, imp, tc.want)
			for _, s := range tc.skips {
				if imp.Meta.Skipped[s] == 0 || !skippedFor(imp, s, "no matching record field") {
					t.Errorf("no skip for %s: %v", s, imp.Skipped)
				}
			}
		})
	}
}

func TestImportRealMISP(t *testing.T) {
	imp, err := ImportMISP(openT(t, "../testdata/real/misp/pymisp_circl-feed-event_57c4445b.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{tasks.IoCMD5, tasks.IoCSHA1, tasks.IoCSHA256,
		tasks.IoCFileName} {
		if imp.Meta.Taken[typ] != 1 {
			t.Errorf("took %d %s, want 1 (%s)", imp.Meta.Taken[typ], typ, imp.Meta)
		}
	}
	for _, what := range []string{"regkey|value", "link", "comment", "text"} {
		if imp.Meta.Skipped[what] == 0 {
			t.Errorf("no skip reported for %s: %s", what, imp.Meta)
		}
	}
	c := imp.IoCs[0]
	if !slices.Contains(c.Tags, "tlp:white") {
		t.Errorf("event tags not carried: %v", c.Tags)
	}

	t.Run("object template is not an event", func(t *testing.T) {
		_, err := ImportMISP(openT(t, "../testdata/real/misp/misp-objects_ip-port_definition.json"))
		if err == nil || !strings.Contains(err.Error(), "not a MISP event") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestImportRealCSV(t *testing.T) {
	imp, err := ImportCSV(openT(t, "../testdata/real/miner/derived_miner_iocs.csv"))
	if err != nil {
		t.Fatal(err)
	}
	checkHas(t, imp, []wantIoC{
		{tasks.IoCDomain, "pool.minexmr.com"}, {tasks.IoCDomain, "donate.v2.xmrig.com"},
		{tasks.IoCPort, "3333"}, {tasks.IoCPort, "5555"},
		{tasks.IoCCmdline, "--donate-level=0"}, {tasks.IoCCmdline, " --cpu-priority="},
		{tasks.IoCCmdline, " --algo=rx/0 "}, {tasks.IoCCmdline, "stratum+tcp://"},
		{tasks.IoCSHA1, "70b21e3ac69f0220784228375ba6bef37fe0c488"},
		{tasks.IoCFileName, "kdevtmpfsi"},
	})
	if !skippedFor(imp, "useragent_prefix", "no matching record field") {
		t.Errorf("skips: %v", imp.Skipped)
	}
	if len(imp.Meta.Skipped) != 1 {
		t.Errorf("unexpected skips: %s", imp.Meta)
	}
}

func TestImportRealYARA(t *testing.T) {
	files, _ := filepath.Glob("../testdata/real/yara/*.yar")
	if len(files) == 0 {
		t.Fatal("no yara files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			imp, err := ImportYARA(filepath.Base(f), openT(t, f))
			if err != nil {
				t.Fatal(err)
			}
			if len(imp.IoCs) != 1 || imp.Meta.Taken["rule"] == 0 {
				t.Fatalf("got %d IoCs, meta %s", len(imp.IoCs), imp.Meta)
			}
		})
	}
}

func TestImportMalformed(t *testing.T) {
	stix := `{"type":"bundle","id":"bundle--1","objects":[
{"type":"indicator","id":"indicator--a","pattern":"[ipv4-addr:value = '192.0.2.1']"},
{"type":"indicator","id":"indicator--b","revoked":"yes","pattern":"[ipv4-addr:value = '1.2.3.4']"}
]}`
	misp := `{"Event":{"uuid":"e1","Attribute":[
{"uuid":"a1","type":"ip-dst","value":"192.0.2.1","to_ids":true},
{"uuid":"a2","type":"ip-dst","value":"192.0.2.2","to_ids":"perhaps"}]}}`
	tests := []struct {
		name string
		run  func() (Import, error)
		want string
	}{
		{"stix truncated", func() (Import, error) {
			return ImportSTIX(strings.NewReader(stix[:120]), testNow)
		}, "truncated at line 2"},
		{"stix syntax", func() (Import, error) {
			return ImportSTIX(strings.NewReader("{\n\"type\": bundle}"), testNow)
		}, "line 2"},
		{"stix bad field", func() (Import, error) {
			return ImportSTIX(strings.NewReader(stix), testNow)
		}, "stix object 1 (indicator--b)"},
		{"stix not stix", func() (Import, error) {
			return ImportSTIX(strings.NewReader(`{"a":1}`), testNow)
		}, "not a STIX document"},
		{"misp truncated", func() (Import, error) {
			return ImportMISP(strings.NewReader(misp[:90]))
		}, "truncated"},
		{"misp bad to_ids", func() (Import, error) {
			return ImportMISP(strings.NewReader(misp))
		}, "attribute 1 (a2): to_ids"},
		{"misp wrong type", func() (Import, error) {
			return ImportMISP(strings.NewReader(`{"Event":{"Attribute":[{"type":"ip-dst",` +
				"\n" + `"value":7}]}}`))
		}, "decode misp event 0"},
		{"csv bad quote", func() (Import, error) {
			return ImportCSV(strings.NewReader("type,value\nipv4,192.0.2.1\nipv4,\"x\"y\n"))
		}, "line 3"},
		{"csv no header columns", func() (Import, error) {
			return ImportCSV(strings.NewReader("a,b\n1,2\n"))
		}, "lacks a type or value"},
		{"yara syntax", func() (Import, error) {
			return ImportYARA("bad.yar", strings.NewReader("rule x {\n condition: nope }"))
		}, "bad.yar line 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			imp, err := tc.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if len(imp.IoCs) != 0 {
				t.Fatalf("half-imported %d IoCs", len(imp.IoCs))
			}
		})
	}
}

func TestImportFile(t *testing.T) {
	tests := []struct {
		file   string
		format string
		n      int
	}{
		{"cryptominersgroup.stix.json", "stix", 8},
		{"cryptominersgroup.misp.json", "misp", 7},
		{"iocs.csv", "csv", 6},
		{"miner.yar", "yara", 1},
	}
	all := NewSet()
	clock := NewClock(func() time.Time { return testNow })
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			imp, err := ImportFile(scenario+tc.file, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if imp.Meta.Format != tc.format || len(imp.IoCs) != tc.n {
				t.Fatalf("format %s, %d IoCs", imp.Meta.Format, len(imp.IoCs))
			}
			if _, err := all.ApplyAll(Adds(imp.IoCs, clock, "node-a")); err != nil {
				t.Fatal(err)
			}
		})
	}
	// The three feeds overlap: the set holds each identity once.
	if n := len(all.Active(testNow)); n != 12 {
		t.Errorf("set holds %d active IoCs, want 12: %v", n, all.Active(testNow))
	}

	t.Run("symlink refused", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "x.csv")
		abs, _ := filepath.Abs(scenario + "iocs.csv")
		if err := os.Symlink(abs, link); err != nil {
			t.Fatal(err)
		}
		if _, err := ImportFile(link, testNow); err == nil ||
			!strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("unknown extension", func(t *testing.T) {
		if _, err := ImportFile("../testdata/cryptominer/README.md", testNow); err == nil {
			t.Fatal("accepted")
		}
	})
}

// TestImportRealReports pins the whole per-type report of every real file:
// each pattern property, attribute type or CSV type is either taken or
// named as skipped, none is lost silently.
func TestImportRealReports(t *testing.T) {
	const real = "../testdata/real/"
	tests := []struct {
		file           string
		taken, skipped map[string]int
	}{
		{"stix/oasis_indicator-for-c2-ip-address.json",
			map[string]int{"ipv4-addr:value": 1}, map[string]int{}},
		{"stix/oasis_indicators-for-C2-with-COA.json",
			map[string]int{"ipv4-addr:value": 1, "file:hashes.'SHA-256'": 1}, map[string]int{}},
		{"stix/oasis_malicious-email-indicator-with-attachment.json", map[string]int{},
			map[string]int{"email-message:subject": 1,
				"email-message:body_multipart[*].body_raw_ref.name": 1}},
		{"misp/pymisp_circl-feed-event_57c4445b.json",
			map[string]int{"filename": 1, "md5": 1, "sha1": 1, "sha256": 1},
			map[string]int{"comment": 1, "link": 2, "regkey|value": 1, "text": 1}},
		{"miner/derived_miner_iocs.csv",
			map[string]int{"cmdline_substring": 5, "domain": 10, "filename": 1, "md5": 1,
				"port": 2, "sha1": 1, "sha256": 1, "url_scheme": 3},
			map[string]int{"useragent_prefix": 1}},
		{"yara/signature-base_crime_crypto_miner.yar", map[string]int{"rule": 2}, map[string]int{}},
		{"yara/signature-base_pua_cryptocoin_miner.yar", map[string]int{"rule": 4},
			map[string]int{}},
		{"yara/signature-base_pua_xmrig_monero_miner.yar", map[string]int{"rule": 4},
			map[string]int{}},
		{"yara/yara-rules_MALW_XMRIG_Miner.yar", map[string]int{"rule": 1}, map[string]int{}},
	}
	for _, tc := range tests {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			imp, err := ImportFile(real+tc.file, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(imp.Meta.Taken, tc.taken) || !maps.Equal(imp.Meta.Skipped, tc.skipped) {
				t.Fatalf("report %s\nwant taken %v, skipped %v", imp.Meta, tc.taken, tc.skipped)
			}
			// Every skip names its type, a reason and a place.
			for _, sk := range imp.Skipped {
				if tc.skipped[sk.What] == 0 || sk.Reason == "" || sk.Where == "" {
					t.Errorf("skip %+v", sk)
				}
			}
			if len(imp.IoCs) == 0 && len(tc.taken) > 0 {
				t.Fatal("nothing taken")
			}
		})
	}
}

func TestImportCSVReadsExportColumns(t *testing.T) {
	// The columns 'intel export' writes, with a multi-line YARA value.
	in := "type,value,severity,tags,first_seen,expires,source\n" +
		"ip,192.0.2.25,high,actor:X;T1496,2024-08-01T00:00:00Z,2999-01-01T00:00:00Z," +
		"stix:bundle--1\n" +
		"yara,\"rule a {\n condition: true\n}\",high,,,,yara:a.yar\n" +
		"port,3333,,,not-a-time,,\n" +
		"yara,rule b { condition: nope },,,,,\n"
	imp, err := ImportCSV(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := find(imp, tasks.IoCIP, "192.0.2.25")
	if !ok || c.Source != "stix:bundle--1" || c.Severity != "high" ||
		!c.FirstSeen.Equal(time.Date(2024, 8, 1, 0, 0, 0, 0, time.UTC)) ||
		c.Expires.Year() != 2999 || !slices.Equal(c.Tags, []string{"actor:X", "T1496"}) {
		t.Fatalf("ip row read as %+v", c)
	}
	if y, ok := find(imp, tasks.IoCYARA, "rule a {\n condition: true\n}"); !ok ||
		y.Source != "yara:a.yar" {
		t.Fatalf("yara row: %+v", imp.IoCs)
	}
	if !skippedFor(imp, "port", "first_seen is not an RFC 3339 time") ||
		!skippedFor(imp, "yara", "line 1") || len(imp.IoCs) != 2 {
		t.Fatalf("skips %v", imp.Skipped)
	}
}

// bigYARA writes n independent rules after an import line; with helper,
// the last rule needs a private rule declared first.
func bigYARA(n int, helper bool) string {
	var b strings.Builder
	b.WriteString("import \"pe\"\n")
	if helper {
		b.WriteString("private rule helper { condition: filesize < 10MB }\n")
	}
	for i := range n {
		fmt.Fprintf(&b, "rule r%d : miner {\n  meta: note = \"a <b> & c\"\n  strings: $a = "+
			"\"stratum+tcp-%06d\" $h = { 4D 5A ?? } $r = /x{2}\"y/\n  condition: any of them "+
			"and pe.number_of_sections >= 0\n}\n", i, i)
	}
	if helper {
		b.WriteString("rule needs_helper { condition: helper }\n")
	}
	return b.String()
}

func TestImportYARASplitsLargeFiles(t *testing.T) {
	src := bigYARA(900, false)
	imp, err := ImportYARA("big.yar", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.IoCs) < 2 || imp.Meta.Taken["rule"] != 900 {
		t.Fatalf("%d parts, %s", len(imp.IoCs), imp.Meta)
	}
	var names []string
	whole := ""
	for i, c := range imp.IoCs {
		if jsonLen(c.Value) > yaraChunkBytes {
			t.Errorf("part %d is %d bytes encoded", i, jsonLen(c.Value))
		}
		if err := validateYARA("part", c.Value); err != nil {
			t.Errorf("part %d: %v", i, err)
		}
		names = append(names, yaraRuleNames(c.Value)...)
		v := c.Value
		if i > 0 {
			v = strings.TrimPrefix(v, "import \"pe\"\n")
		}
		whole += v
	}
	if !slices.Equal(names, yaraRuleNames(src)) || whole != strings.TrimSpace(src) {
		t.Fatal("the parts do not hold the file's rules in order")
	}
	// Each part fits one signed intel update.
	_, priv, err := tasks.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var ops []tasks.IntelOp
	for _, u := range Adds(imp.IoCs, NewClock(nil), "k") {
		ops = append(ops, tasks.IntelOp{Op: string(u.Op), IoC: u.IoC, Origin: u.Origin,
			Clock: tasks.IntelClock{Wall: u.Clock.Wall, Logical: u.Clock.Logical}})
	}
	envs, err := tasks.SealIntel(priv, ops, tasks.DefaultPolicy().MaxSize, func() tasks.Header {
		return tasks.Header{ID: tasks.NewID(testNow), IssuedAt: testNow,
			NotAfter: testNow.Add(time.Hour)}
	})
	if err != nil || len(envs) != len(imp.IoCs) {
		t.Fatalf("sealed %d updates for %d parts: %v", len(envs), len(imp.IoCs), err)
	}

	t.Run("rules that need another part stay whole", func(t *testing.T) {
		imp, err := ImportYARA("big.yar", strings.NewReader(bigYARA(900, true)))
		if err != nil {
			t.Fatal(err)
		}
		if len(imp.IoCs) != 1 || imp.Meta.Taken["rule"] != 902 {
			t.Fatalf("%d parts, %s", len(imp.IoCs), imp.Meta)
		}
	})
}
