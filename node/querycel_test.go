package node

import (
	"strings"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

func TestCompiledQueryMatches(t *testing.T) {
	at := time.Date(2026, 5, 3, 8, 24, 41, 0, time.UTC)
	miner := tasks.Record{Kind: tasks.KindFile, Host: "vm-miner01", Time: at, Collector: "files",
		Fields: map[string]any{"path": "/usr/local/bin/miner", "size": int64(2048),
			"yara":  []string{"coinminer_xmrig_strings", "coinminer_stratum_config"},
			"extra": "kept"}}
	unit := tasks.Record{Kind: tasks.KindPersistence, Host: "vm-miner02", Time: at,
		Fields: map[string]any{"type": "systemd-unit", "command": "/opt/.cache/kworkerd"}}
	for _, tc := range []struct {
		expr string
		rec  tasks.Record
		want bool
	}{
		{`kind == "file" && "coinminer_stratum_config" in yara`, miner, true},
		{`size > 1024 && path.startsWith("/usr/local/")`, miner, true},
		{`fields["extra"] == "kept"`, miner, true},
		{`time > timestamp("2026-05-03T08:00:00Z") && host.endsWith("01")`, miner, true},
		// A field the record lacks reads as its zero value: no has() needed.
		{`remote_port == 0 && cmdline == "" && yara.size() == 2`, miner, true},
		{`type == "systemd-unit" && command.contains("kworkerd")`, unit, true},
		{`kind == "file"`, unit, false},
		{`size > 1024`, unit, false},
	} {
		cq, err := CompileQuery(tc.expr, nil, false)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		got, _, err := cq.Match(&tc.rec, nil)
		if err != nil || got != tc.want {
			t.Errorf("%s on %s: %v, %v; want %v", tc.expr, tc.rec.Kind, got, err, tc.want)
		}
	}

	// Detection queries see the indicator besides the record.
	d := tasks.Detection{Record: miner, IoCType: "yara", IoCValue: "coinminer_xmrig_strings",
		Severity: "high", Tags: []string{"actor:CryptoMinersGroup"}}
	cq, err := CompileQuery(`severity == "high" && "actor:CryptoMinersGroup" in tags`, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, err := cq.Match(&d.Record, &d); !ok || err != nil {
		t.Errorf("detection query: %v, %v", ok, err)
	}
	if _, err := CompileQuery(`ioc_type == "yara"`, nil, false); err == nil {
		t.Error("a record query may not name detection fields")
	}
}

func TestRequiredEqualities(t *testing.T) {
	for expr, want := range map[string][2]string{
		`kind == "connection" && remote_port == 3333`:         {"connection", ""},
		`remote_port == 3333 && ("web-01" == host && true)`:   {"", "web-01"},
		`kind == "connection" || kind == "flow"`:              {"", ""},
		`!(kind == "file")`:                                   {"", ""},
		`kind == "file" && host == "a" && size > 0`:           {"file", "a"},
		`kind != "file"`:                                      {"", ""},
		`(kind == "process" || pid == 1) && host == "app-01"`: {"", "app-01"},
	} {
		cq, err := CompileQuery(expr, nil, false)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if got := [2]string{cq.kind, cq.host}; got != want {
			t.Errorf("%s: pushed down %q, want %q", expr, got, want)
		}
	}
}

// TestRuleConditionsMustBeConditions checks that a rule or chain
// condition that can never be true or false is refused when compiled,
// not left to match nothing on every node.
func TestRuleConditionsMustBeConditions(t *testing.T) {
	for src, want := range map[string]string{
		`remote_port`:                    "the bare field remote_port",
		`"miner"`:                        "yields string",
		`size(cmdline)`:                  "yields int",
		`[remote_port]`:                  "yields list",
		`fields["pid"]`:                  "is a value",
		`cmdline.matches("(")`:           "missing closing )",
		`pid == 1 ? remote_port : 1 > 0`: "the bare field remote_port",
	} {
		if _, err := compileCondition(src); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want it to say %q", src, err, want)
		}
	}
	for _, ok := range []string{`remote_port == 3333`, `has(fields.x)`, `"a" in tags`,
		`cmdline.matches("xmrig|stratum")`, `exe_deleted`} {
		if _, err := compileCondition(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
}
