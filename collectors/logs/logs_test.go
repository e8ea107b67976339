package logs

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

// testdata is the repository's shared test data, used as env.Root.
const testdata = "../../testdata"

// run executes the collector once and returns what it emitted.
func run(t testing.TB, root string, params any, budget collectors.Budget) (
	[]tasks.Record, collectors.Summary, error) {
	t.Helper()
	raw, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	var recs []tasks.Record
	env := collectors.NewEnv(Name, root, "test-host", budget, nil, func(r tasks.Record) error {
		recs = append(recs, r)
		return nil
	})
	c := New()
	if err := c.Validate(raw); err != nil {
		t.Fatalf("validate %s: %v", raw, err)
	}
	err = c.Collect(context.Background(), env, raw)
	return recs, env.Stats.Summary(), err
}

// one ingests a single source.
func one(t testing.TB, path, format string) ([]tasks.Record, collectors.Summary) {
	t.Helper()
	recs, sum, err := run(t, testdata, Params{Sources: []Source{{Path: path, Format: format}},
		Year: 2024}, collectors.Budget{})
	if err != nil {
		t.Fatalf("collect %s: %v", path, err)
	}
	return recs, sum
}

// skipped adds up the skip counters.
func skipped(s collectors.Summary) int {
	n := 0
	for _, v := range s.Skipped {
		n += v
	}
	return n
}

// checkTypes asserts that every field value has a schema type and every
// field name belongs to the record's kind.
func checkTypes(t testing.TB, recs []tasks.Record) {
	t.Helper()
	for _, r := range recs {
		kind, ok := schema[r.Kind]
		if !ok {
			t.Fatalf("record of unknown kind %q", r.Kind)
		}
		if r.Time.IsZero() || r.Time.Location() != time.UTC {
			t.Errorf("%s record time %v is not a UTC event time", r.Kind, r.Time)
		}
		if r.Source == "" || r.Collector != Name {
			t.Errorf("record without source or collector: %+v", r)
		}
		for k, v := range r.Fields {
			if _, ok := kind[k]; !ok {
				if _, ok := common[k]; !ok {
					t.Errorf("%s record has field %q outside the schema", r.Kind, k)
				}
			}
			switch v.(type) {
			case string, int64, float64, bool, []string:
			default:
				t.Errorf("%s.%s has type %T", r.Kind, k, v)
			}
		}
		if r.Str("message") == "" {
			t.Errorf("%s record without message: %v", r.Kind, r.Fields)
		}
	}
}

func TestEveryFileIngests(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		format string
		events int            // events in the file, counted by hand
		kinds  map[string]int // records by kind
		skips  map[string]int
	}{
		{"edr alerts", "/cryptominer/app-01/edr-alerts.ndjson", "auto", 2,
			map[string]int{"alert": 2}, nil},
		{"sysmon ecs", "/cryptominer/app-01/sysmon.ndjson", "auto", 6,
			map[string]int{"process": 4, "connection": 1, "file": 1}, nil},
		{"azure export", "/cryptominer/ops-01/azure-activity.json", "auto", 5,
			map[string]int{"cloud-activity": 5}, nil},
		{"flows", "/cryptominer/vm-miner01/flows.ndjson", "auto", 3,
			map[string]int{"flow": 3}, nil},
		{"azure rest", "/real/azure/azure-docs_activitylog_administrative_rest.json", "auto", 1,
			map[string]int{"cloud-activity": 1}, nil},
		{"azure records", "/real/azure/azure-docs_activitylog_storage_records.json",
			"azure-activity", 1, map[string]int{"cloud-activity": 1}, nil},
		{"otrf windows", "/real/sysmon/otrf_cmd_discover_iexplorer_version_registry.ndjson",
			"sysmon", 68, map[string]int{"process": 2, "file": 1, "log": 65}, nil},
		{"linux sysmon xml", "/real/sysmon/grapl_linux-sysmon_process_creation.xml", "auto", 1,
			map[string]int{"process": 1}, nil},
		{"elastic auth", "/real/linux-logs/elastic-beats_system_auth_test.log", "auto", 10,
			map[string]int{"auth": 9, "log": 1}, nil},
		{"elastic rfc3339", "/real/linux-logs/elastic-beats_system_auth_timestamp.log", "auth", 2,
			map[string]int{"auth": 1, "log": 1}, nil},
		{"auditd", "/real/linux-logs/otrf_auditd_sh_arp_cache.log", "auto", 2,
			map[string]int{"process": 2}, nil},
		{"evtx", "/real/sysmon/evtx-attack-samples_sysmon_10_1_memdump_comsvcs_minidump.evtx",
			"auto", 6, map[string]int{"process": 2, "log": 3, "file": 1}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, sum := one(t, tc.path, tc.format)
			if got := len(recs) + skipped(sum); got != tc.events {
				t.Errorf("records %d + skips %d = %d, want %d events (skips %v)",
					len(recs), skipped(sum), got, tc.events, sum.Skipped)
			}
			got := map[string]int{}
			for _, r := range recs {
				got[r.Kind]++
				if r.Source != tc.path {
					t.Errorf("source %q, want %q", r.Source, tc.path)
				}
			}
			for k, n := range tc.kinds {
				if got[k] != n {
					t.Errorf("%d %s records, want %d (all %v)", got[k], k, n, got)
				}
			}
			for k, n := range tc.skips {
				if sum.Skipped[k] != n {
					t.Errorf("skips %v, want %s=%d", sum.Skipped, k, n)
				}
			}
			checkTypes(t, recs)
		})
	}
}

// find returns the records of kind for which match holds.
func find(recs []tasks.Record, kind string, match func(r tasks.Record) bool) []tasks.Record {
	var out []tasks.Record
	for _, r := range recs {
		if r.Kind == kind && match(r) {
			out = append(out, r)
		}
	}
	return out
}

func intField(r tasks.Record, k string) int64 {
	n, _ := r.Int(k)
	return n
}

func TestSysmonScenario(t *testing.T) {
	recs, _ := one(t, "/cryptominer/app-01/sysmon.ndjson", "auto")

	t.Run("cmd.exe child of remote.exe", func(t *testing.T) {
		got := find(recs, "process", func(r tasks.Record) bool { return intField(r, "pid") == 6720 })
		if len(got) != 1 {
			t.Fatalf("want one process 6720, got %d", len(got))
		}
		r := got[0]
		want := map[string]any{"name": "cmd.exe", "ppid": int64(5504),
			"exe": `C:\Windows\System32\cmd.exe`, "user": `CLOUD\cloud-admin`,
			"parent_exe":  `C:\Program Files\RemoteAccessTool\remote.exe`,
			"parent_name": "remote.exe",
			"cmdline":     "cmd.exe /c powershell -ExecutionPolicy Bypass -File deploy-vm.ps1",
			"exe_sha256":  "b99d114b267f2a0a1e3b44d0f6e3c2a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6",
			"event_id":    int64(1), "provider": "Microsoft-Windows-Sysmon"}
		for k, v := range want {
			if r.Fields[k] != v {
				t.Errorf("%s = %#v, want %#v", k, r.Fields[k], v)
			}
		}
		if !r.Time.Equal(time.Date(2024, 8, 5, 8, 15, 20, 118e6, time.UTC)) {
			t.Errorf("time %v", r.Time)
		}
		if m := r.Str("message"); !strings.HasPrefix(m, "Process Create: cmd.exe /c powershell") ||
			!strings.HasSuffix(m, "(pid 6720, parent 5504)") {
			t.Errorf("message %q", m)
		}
	})
	t.Run("connection to the attacker", func(t *testing.T) {
		got := find(recs, "connection", func(r tasks.Record) bool {
			return r.Str("remote_address") == "203.0.113.77" && intField(r, "remote_port") == 443
		})
		if len(got) != 1 || intField(got[0], "pid") != 5504 ||
			got[0].Str("process_name") != "remote.exe" || got[0].Str("protocol") != "tcp" ||
			got[0].Str("local_address") != "10.20.1.15" || intField(got[0], "local_port") != 50122 {
			t.Fatalf("connection records %v", got)
		}
	})
	t.Run("script dropped", func(t *testing.T) {
		got := find(recs, "file", func(r tasks.Record) bool {
			return r.Str("path") == `C:\Windows\Temp\deploy-vm.ps1`
		})
		if len(got) != 1 || got[0].Str("name") != "deploy-vm.ps1" ||
			got[0].Str("process_exe") != `C:\Program Files\RemoteAccessTool\remote.exe` {
			t.Fatalf("file records %v", got)
		}
	})
}

func TestEDRScenario(t *testing.T) {
	recs, _ := one(t, "/cryptominer/app-01/edr-alerts.ndjson", "edr")
	got := find(recs, "alert", func(r tasks.Record) bool { return intField(r, "event_id") == 1001 })
	if len(got) != 1 {
		t.Fatalf("alerts %v", recs)
	}
	a := got[0]
	want := map[string]any{"severity": "high", "remote_address": "203.0.113.77",
		"remote_port": int64(443), "pid": int64(5504), "user": `CLOUD\cloud-admin`,
		"source": "edr", "cmdline": "remote.exe -silent -connect 203.0.113.77 -port 443"}
	for k, v := range want {
		if a.Fields[k] != v {
			t.Errorf("%s = %#v, want %#v", k, a.Fields[k], v)
		}
	}
	if !a.Time.Equal(time.Date(2024, 8, 5, 8, 12, 34, 0, time.UTC)) {
		t.Errorf("time %v", a.Time)
	}
}

func TestAzureScenario(t *testing.T) {
	recs, _ := one(t, "/cryptominer/ops-01/azure-activity.json", "auto")
	byAdmin := find(recs, "cloud-activity", func(r tasks.Record) bool {
		return r.Str("caller") == "cloud-admin" && r.Str("caller_address") == "10.20.1.15"
	})
	tests := []struct {
		name, resource, typ, message string
	}{
		{"resource group", "MinersGroup", "Microsoft.Resources/resourceGroups",
			"Create resource group MinersGroup in eastus by cloud-admin from 10.20.1.15"},
		{"vm 1", "VM-Miner01", "Microsoft.Compute/virtualMachines",
			"Create VM VM-Miner01 in eastus by cloud-admin from 10.20.1.15"},
		{"vm 2", "VM-Miner02", "Microsoft.Compute/virtualMachines",
			"Create VM VM-Miner02 in eastus by cloud-admin from 10.20.1.15"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := find(byAdmin, "cloud-activity", func(r tasks.Record) bool {
				return r.Str("resource") == tc.resource
			})
			if len(got) != 1 {
				t.Fatalf("want one record for %s among %d by cloud-admin", tc.resource, len(byAdmin))
			}
			r := got[0]
			if r.Str("location") != "eastus" || r.Str("resource_group") != "MinersGroup" ||
				r.Str("resource_type") != tc.typ || r.Str("status") != "Success" ||
				r.Str("subscription") != "1234abcd-5678-4ef0-9012-3456789abcde" {
				t.Errorf("fields %v", r.Fields)
			}
			if r.Str("message") != tc.message {
				t.Errorf("message %q, want %q", r.Str("message"), tc.message)
			}
		})
	}
	if len(byAdmin) != 3 {
		t.Errorf("cloud-admin has %d events from 10.20.1.15, want 3", len(byAdmin))
	}
	other := find(recs, "cloud-activity", func(r tasks.Record) bool {
		return r.Str("caller") == "ops-deploy"
	})
	if len(other) != 2 || other[0].Str("location") != "westeurope" {
		t.Errorf("ops-deploy events %v", other)
	}
}

func TestAzureReal(t *testing.T) {
	t.Run("rest shape", func(t *testing.T) {
		recs, _ := one(t, "/real/azure/azure-docs_activitylog_administrative_rest.json", "auto")
		if len(recs) != 1 {
			t.Fatalf("%d records", len(recs))
		}
		r := recs[0]
		want := map[string]string{"operation": "Microsoft.Network/networkSecurityGroups/write",
			"caller": "rob@contoso.com", "status": "Succeeded", "category": "Administrative",
			"resource_group": "myResourceGroup", "resource": "myNSG",
			"resource_type":  "Microsoft.Network/networkSecurityGroups",
			"caller_address": "111.111.1.111"}
		for k, v := range want {
			if r.Str(k) != v {
				t.Errorf("%s = %q, want %q", k, r.Str(k), v)
			}
		}
	})
	t.Run("records shape", func(t *testing.T) {
		recs, _ := one(t, "/real/azure/azure-docs_activitylog_storage_records.json", "auto")
		if len(recs) != 1 {
			t.Fatalf("%d records", len(recs))
		}
		r := recs[0]
		if r.Str("caller") != "John Smith" || r.Str("caller_address") != "111.111.111.11" ||
			r.Str("resource_group") != "MSSupportGroup" || r.Str("location") != "global" ||
			r.Str("resource") != "123456112305841" {
			t.Errorf("fields %v", r.Fields)
		}
		if !r.Time.Equal(time.Date(2019, 1, 21, 22, 14, 26, 979277600, time.UTC)) {
			t.Errorf("time %v", r.Time)
		}
	})
}

func TestFlowScenario(t *testing.T) {
	recs, _ := one(t, "/cryptominer/vm-miner01/flows.ndjson", "auto")
	got := find(recs, "flow", func(r tasks.Record) bool {
		return intField(r, "bytes_out") == 50000000
	})
	if len(got) != 1 {
		t.Fatalf("flows %v", recs)
	}
	r := got[0]
	if r.Str("dst_address") != "192.0.2.25" || intField(r, "dst_port") != 3333 ||
		r.Str("src_address") != "10.20.30.40" || r.Str("protocol") != "tcp" ||
		r.Str("action") != "allow" || intField(r, "bytes_in") != 2100000 {
		t.Errorf("fields %v", r.Fields)
	}
	if !r.Time.Equal(time.Date(2024, 8, 5, 8, 25, 0, 0, time.UTC)) {
		t.Errorf("time %v", r.Time)
	}
}

func TestElasticAuth(t *testing.T) {
	recs, _ := one(t, "/real/linux-logs/elastic-beats_system_auth_test.log", "auth")
	tests := []struct {
		name, event, user, method, addr string
		port                            int64
		when                            time.Time
	}{
		{"publickey", "accepted", "vagrant", "publickey", "10.0.2.2", 63673,
			time.Date(2024, 2, 21, 21, 54, 44, 0, time.UTC)},
		{"password", "accepted", "vagrant", "password", "192.168.33.1", 58803,
			time.Date(2024, 2, 23, 0, 13, 35, 0, time.UTC)},
		{"failed root", "failed", "root", "password", "216.160.83.57", 29160,
			time.Date(2024, 2, 20, 8, 35, 22, 0, time.UTC)},
		{"invalid", "invalid-user", "test", "", "10.0.2.2", 0,
			time.Date(2024, 2, 21, 21, 56, 12, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := find(recs, "auth", func(r tasks.Record) bool {
				return r.Str("event") == tc.event && r.Str("user") == tc.user &&
					r.Str("source_address") == tc.addr
			})
			if len(got) != 1 {
				t.Fatalf("want one %s for %s from %s", tc.event, tc.user, tc.addr)
			}
			r := got[0]
			if r.Str("method") != tc.method || intField(r, "source_port") != tc.port ||
				r.Str("program") != "sshd" || !r.Time.Equal(tc.when) {
				t.Errorf("fields %v time %v", r.Fields, r.Time)
			}
		})
	}
	t.Run("sudo", func(t *testing.T) {
		got := find(recs, "auth", func(r tasks.Record) bool {
			return r.Str("event") == "sudo" && r.Str("command") == "/bin/cat /var/log/secure"
		})
		if len(got) != 1 || got[0].Str("user") != "vagrant" {
			t.Fatalf("sudo records %v", got)
		}
	})
	t.Run("useradd", func(t *testing.T) {
		got := find(recs, "auth", func(r tasks.Record) bool {
			return r.Str("event") == "useradd" && r.Str("user") == "apache"
		})
		if len(got) != 1 || intField(got[0], "pid") != 6995 {
			t.Fatalf("useradd records %v", got)
		}
	})
}

func TestRFC3339Auth(t *testing.T) {
	recs, _ := one(t, "/real/linux-logs/elastic-beats_system_auth_timestamp.log", "auth")
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	sess := find(recs, "auth", func(r tasks.Record) bool { return r.Str("event") == "session" })
	if len(sess) != 1 || sess[0].Str("user") != "root" ||
		!sess[0].Time.Equal(time.Date(2019, 6, 14, 10, 40, 20, 912134000, time.UTC)) {
		t.Errorf("session %v", sess)
	}
	logs := find(recs, "log", func(r tasks.Record) bool { return r.Str("program") == "pam" })
	// 13:01:15.412 at +01:30 is 11:31:15.412 UTC.
	if len(logs) != 1 || !logs[0].Time.Equal(time.Date(2019, 6, 14, 11, 31, 15, 412e6, time.UTC)) {
		t.Errorf("pam line %v", logs)
	}
}

func TestWindowsReal(t *testing.T) {
	recs, _ := one(t, "/real/sysmon/otrf_cmd_discover_iexplorer_version_registry.ndjson", "auto")
	t.Run("sysmon process create", func(t *testing.T) {
		got := find(recs, "process", func(r tasks.Record) bool {
			return intField(r, "event_id") == 1
		})
		if len(got) != 1 || intField(got[0], "pid") != 2200 || intField(got[0], "ppid") != 10308 ||
			got[0].Str("name") != "reg.exe" || got[0].Str("exe_sha256") !=
			"4ed2a27860fa154415f65452ff1f94bd6af762982e2f3470030c504dc3c8a354" {
			t.Fatalf("process %v", got)
		}
	})
	t.Run("security 4688 hex pids", func(t *testing.T) {
		got := find(recs, "process", func(r tasks.Record) bool {
			return intField(r, "event_id") == 4688
		})
		if len(got) != 1 || intField(got[0], "pid") != 0x898 || intField(got[0], "ppid") != 0x2844 ||
			got[0].Str("user") != `WORKSTATION5\wardog` {
			t.Fatalf("process %v", got)
		}
	})
	t.Run("process access as log", func(t *testing.T) {
		got := find(recs, "log", func(r tasks.Record) bool { return intField(r, "event_id") == 10 })
		if len(got) != 33 {
			t.Fatalf("%d event 10 logs", len(got))
		}
		if m := got[0].Str("message"); !strings.HasPrefix(m, "Process accessed: ") ||
			!strings.Contains(m, "access 0x") {
			t.Errorf("message %q", m)
		}
	})
}

func TestLinuxSysmonXML(t *testing.T) {
	recs, _ := one(t, "/real/sysmon/grapl_linux-sysmon_process_creation.xml", "sysmon-xml")
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	want := map[string]any{"pid": int64(49570), "ppid": int64(49568), "exe": "/usr/bin/tr",
		"name": "tr", "cmdline": "tr [:upper:][:lower:]", "user": "root", "cwd": "/root",
		"provider": "Linux-Sysmon", "event_id": int64(1)}
	for k, v := range want {
		if r.Fields[k] != v {
			t.Errorf("%s = %#v, want %#v", k, r.Fields[k], v)
		}
	}
	if _, ok := r.Fields["parent_exe"]; ok {
		t.Errorf("placeholder parent image kept: %v", r.Fields["parent_exe"])
	}
}

func TestAuditd(t *testing.T) {
	recs, _ := one(t, "/real/linux-logs/otrf_auditd_sh_arp_cache.log", "auto")
	got := find(recs, "process", func(r tasks.Record) bool { return intField(r, "pid") == 1632 })
	if len(got) != 1 {
		t.Fatalf("records %v", recs)
	}
	r := got[0]
	if r.Str("cmdline") != "grep -v ^?" || r.Str("exe") != "/bin/grep" ||
		intField(r, "ppid") != 29002 || r.Str("cwd") != "/home/wardog" ||
		!r.Time.Equal(time.Date(2020, 11, 10, 7, 48, 16, 155e6, time.UTC)) {
		t.Errorf("fields %v time %v", r.Fields, r.Time)
	}
}

// writeFile creates a file under dir and returns its host path (relative
// to dir as root).
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return "/" + name
}

func TestEVTX(t *testing.T) {
	const path = "/real/sysmon/evtx-attack-samples_sysmon_10_1_memdump_comsvcs_minidump.evtx"
	recs, _ := one(t, path, "evtx")
	t.Run("minidump process", func(t *testing.T) {
		got := find(recs, "process", func(r tasks.Record) bool { return intField(r, "pid") == 2888 })
		if len(got) != 1 {
			t.Fatalf("records %v", recs)
		}
		r := got[0]
		want := map[string]any{"name": "rundll32.exe", "ppid": int64(1144),
			"parent_name": "WmiPrvSE.exe", "user": `MSEDGEWIN10\IEUser`,
			"exe_sha256": "01b407af0200b66a34d9b1fa6d9eaab758efa36a36bb99b554384f59f8690b1a",
			"provider":   "Microsoft-Windows-Sysmon"}
		for k, v := range want {
			if r.Fields[k] != v {
				t.Errorf("%s = %#v, want %#v", k, r.Fields[k], v)
			}
		}
		if !strings.Contains(r.Str("cmdline"), "comsvcs.dll, MiniDump 4868") {
			t.Errorf("cmdline %q", r.Str("cmdline"))
		}
		if !r.Time.Equal(time.Date(2019, 8, 30, 12, 54, 8, 354049500, time.UTC)) {
			t.Errorf("time %v", r.Time)
		}
	})
	t.Run("process access", func(t *testing.T) {
		got := find(recs, "log", func(r tasks.Record) bool { return intField(r, "event_id") == 10 })
		if len(got) != 1 || intField(got[0], "pid") != 2888 || !strings.Contains(got[0].Str("message"),
			`-> C:\Windows\system32\notepad.exe (pid 4868), access 0x1fffff`) {
			t.Fatalf("event 10 %v", got)
		}
	})
	t.Run("dump file", func(t *testing.T) {
		got := find(recs, "file", func(r tasks.Record) bool {
			return r.Str("path") == `C:\Windows\System32\notepad.bin`
		})
		if len(got) != 1 {
			t.Fatalf("file records %v", recs)
		}
	})
}
