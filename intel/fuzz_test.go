package intel

import (
	"bytes"
	"os"
	"testing"

	"github.com/huntmesh/huntmesh/tasks"
)

func addFileSeed(f *testing.F, name string) {
	if b, err := os.ReadFile(name); err == nil {
		f.Add(b)
	}
}

func FuzzSTIXPattern(f *testing.F) {
	for _, s := range []string{
		"[ipv4-addr:value = '192.0.2.1']",
		"[network-traffic:dst_ref.value = '192.0.2.25' AND network-traffic:dst_port = 3333]",
		"[file:hashes.'SHA-256' = 'ab'] OR ([x:y IN ('a', 'b')] FOLLOWEDBY [a:b[*].c MATCHES 'x'])",
		"[a:b = t'2020-01-01T00:00:00Z'] START t'2020' STOP t'2021' WITHIN 5 SECONDS",
		`[process:command_line MATCHES '^remote\\.exe']`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pattern string) {
		c := newCollector("stix")
		c.indicator(&stixObject{Type: "indicator", ID: "indicator--f", Pattern: pattern},
			nil, "fuzz", testNow)
		for _, ioc := range c.imp.IoCs {
			if _, err := Normalize(ioc, Limits{}); err != nil {
				t.Fatalf("took an invalid IoC %+v: %v", ioc, err)
			}
		}
	})
}

func FuzzImportSTIX(f *testing.F) {
	addFileSeed(f, scenario+"cryptominersgroup.stix.json")
	addFileSeed(f, "../testdata/real/stix/oasis_indicators-for-C2-with-COA.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		imp, err := ImportSTIX(bytes.NewReader(data), testNow)
		if err != nil && len(imp.IoCs) != 0 {
			t.Fatal("IoCs returned with an error")
		}
	})
}

func FuzzImportMISP(f *testing.F) {
	addFileSeed(f, scenario+"cryptominersgroup.misp.json")
	addFileSeed(f, "../testdata/real/misp/pymisp_circl-feed-event_57c4445b.json")
	f.Add([]byte(`{"response":[{"Event":{"Object":[{"name":"ip-port","Attribute":[
{"type":"ip-dst","object_relation":"ip","value":"192.0.2.1","to_ids":"1"},
{"type":"port","object_relation":"dst-port","value":"80","to_ids":1}]}]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		imp, err := ImportMISP(bytes.NewReader(data))
		if err != nil && len(imp.IoCs) != 0 {
			t.Fatal("IoCs returned with an error")
		}
		checkCompiles(t, imp.IoCs)
	})
}

func FuzzImportCSV(f *testing.F) {
	addFileSeed(f, scenario+"iocs.csv")
	addFileSeed(f, "../testdata/real/miner/derived_miner_iocs.csv")
	f.Fuzz(func(t *testing.T, data []byte) {
		imp, err := ImportCSV(bytes.NewReader(data))
		if err != nil && len(imp.IoCs) != 0 {
			t.Fatal("IoCs returned with an error")
		}
		checkCompiles(t, imp.IoCs)
	})
}

// checkCompiles fails when imported IoCs do not compile: importers must
// only hand out valid indicators.
func checkCompiles(t *testing.T, iocs []tasks.IoC) {
	t.Helper()
	if _, err := Compile(iocs, CompileOptions{Now: testNow}); err != nil {
		t.Fatalf("imported IoCs do not compile: %v", err)
	}
}
