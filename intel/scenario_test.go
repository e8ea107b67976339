package intel

import (
	"encoding/json"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/huntmesh/huntmesh/tasks"
)

// scenarioRecords builds process and connection records of one scenario
// host the way the live collectors fill the schema.
func scenarioRecords(t *testing.T, host string) []*tasks.Record {
	t.Helper()
	dir := "../testdata/cryptominer/" + host + "/"
	var procs []struct {
		PID, PPID                int64
		Name, Exe, Cmdline, User string
	}
	var conns []struct {
		Proto, Local, Remote, State string
		PID                         int64
	}
	for name, v := range map[string]any{"processes.json": &procs, "connections.json": &conns} {
		b, err := os.ReadFile(dir + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	var out []*tasks.Record
	names := map[int64]string{}
	for _, p := range procs {
		names[p.PID] = p.Name
		out = append(out, &tasks.Record{Kind: tasks.KindProcess, Host: host,
			Fields: map[string]any{"pid": p.PID, "ppid": p.PPID, "name": p.Name,
				"exe": p.Exe, "cmdline": p.Cmdline, "user": p.User}})
	}
	for _, c := range conns {
		l := netip.MustParseAddrPort(c.Local)
		r := netip.MustParseAddrPort(c.Remote)
		out = append(out, &tasks.Record{Kind: tasks.KindConnection, Host: host,
			Fields: map[string]any{"protocol": c.Proto, "state": c.State, "pid": c.PID,
				"local_address": l.Addr().String(), "local_port": int64(l.Port()),
				"remote_address": r.Addr().String(), "remote_port": int64(r.Port()),
				"process_name": names[c.PID]}})
	}
	return out
}

// scenarioIntel imports one of the scenario's intel files.
func scenarioIntel(t *testing.T, which string) []tasks.IoC {
	t.Helper()
	var imp Import
	var err error
	switch which {
	case "stix":
		imp, err = ImportSTIX(openT(t, scenario+"cryptominersgroup.stix.json"), testNow)
	case "misp":
		imp, err = ImportMISP(openT(t, scenario+"cryptominersgroup.misp.json"))
	case "csv":
		imp, err = ImportCSV(openT(t, scenario+"iocs.csv"))
	}
	if err != nil {
		t.Fatal(err)
	}
	return imp.IoCs
}

func TestScenarioHosts(t *testing.T) {
	tests := []struct {
		intel string
		host  string
		want  []string // "pid type:value@field"
	}{
		{"stix", "vm-miner01", []string{"4242 ip:192.0.2.25@remote_address",
			"4242 port:192.0.2.25:3333@remote_address:remote_port"}},
		{"misp", "vm-miner01", []string{"4242 ip:192.0.2.25@remote_address",
			"4242 port:192.0.2.25:3333@remote_address:remote_port"}},
		{"csv", "vm-miner01", []string{"4242 ip:192.0.2.25@remote_address",
			"4242 port:3333@remote_port"}},
		{"csv", "vm-miner02", []string{"3110 ip:192.0.2.25@remote_address",
			"3110 port:3333@remote_port", "3110 process:kworkerd@exe",
			"3110 process:kworkerd@name", "3110 process:kworkerd@process_name"}},
		{"all", "web-01", nil},
	}
	for _, tc := range tests {
		t.Run(tc.intel+" on "+tc.host, func(t *testing.T) {
			var iocs []tasks.IoC
			if tc.intel == "all" {
				for _, w := range []string{"stix", "misp", "csv"} {
					iocs = append(iocs, scenarioIntel(t, w)...)
				}
			} else {
				iocs = scenarioIntel(t, tc.intel)
			}
			m, err := Compile(iocs, CompileOptions{Now: testNow})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range scenarioRecords(t, tc.host) {
				for _, d := range m.Match(r) {
					pid, _ := d.Record.Int("pid")
					got = append(got, strconv.FormatInt(pid, 10)+" "+d.IoCType+":"+d.IoCValue+"@"+d.Field)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}
