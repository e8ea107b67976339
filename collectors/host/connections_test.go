package host

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

func TestConnectionsFindsMiner(t *testing.T) {
	p := newPool(t)
	pid := int64(startMiner(t, minerBin, p).Process.Pid)

	cases := []struct {
		name   string
		params string
		found  bool
	}{
		{"defaults", ``, true},
		{"tcp established", `{"kinds":"tcp","states":["established"]}`, true},
		{"tcp4", `{"kinds":"tcp4"}`, true},
		{"listen only", `{"states":["LISTEN"]}`, false},
		{"udp only", `{"kinds":"udp"}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recs, _ := run(t, NewConnections(), "/", collectors.Budget{}, tc.params)
			var got *tasks.Record
			for i, r := range recs {
				if rp, _ := r.Int("remote_port"); rp == int64(p.port) {
					got = &recs[i]
				}
			}
			if !tc.found {
				if got != nil {
					t.Errorf("filter kept %s", got.Summary())
				}
				return
			}
			if got == nil {
				t.Fatalf("no connection to port %d among %d records", p.port, len(recs))
			}
			want := map[string]any{
				"protocol":       "tcp",
				"remote_address": "127.0.0.1",
				"local_address":  "127.0.0.1",
				"state":          "ESTABLISHED",
				"pid":            pid,
				"process_name":   "miner",
				"process_exe":    minerBin,
			}
			for k, v := range want {
				if got.Fields[k] != v {
					t.Errorf("%s = %#v, want %#v", k, got.Fields[k], v)
				}
			}
		})
	}
}

func TestConnectionsSnapshot(t *testing.T) {
	scen := filepath.Join("..", "..", "testdata", "cryptominer")
	cases := []struct {
		name     string
		params   string
		count    int
		pid      int64
		procName string
		procExe  string
		when     string
	}{
		{
			name:     "vm-miner01",
			params:   `{"snapshot":"` + filepath.Join(scen, "vm-miner01", "connections.json") + `"}`,
			count:    4,
			pid:      4242,
			procName: "miner",
			procExe:  "/usr/local/bin/miner",
			when:     "2024-08-05T08:24:41Z",
		},
		{
			name:     "vm-miner02 deleted owner",
			params:   `{"snapshot":"` + filepath.Join(scen, "vm-miner02", "connections.json") + `"}`,
			count:    2,
			pid:      3110,
			procName: "kworkerd",
			procExe:  "/opt/.cache/kworkerd",
			when:     "2024-08-05T08:26:02Z",
		},
		{
			name: "explicit time and state",
			params: `{"snapshot":"` + filepath.Join(scen, "vm-miner01", "connections.json") +
				`","time":"2024-08-05T09:00:00Z","states":["established"]}`,
			count:    3,
			pid:      4242,
			procName: "miner",
			procExe:  "/usr/local/bin/miner",
			when:     "2024-08-05T09:00:00Z",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recs, _ := run(t, NewConnections(), "/", collectors.Budget{}, tc.params)
			if len(recs) != tc.count {
				t.Fatalf("got %d records, want %d", len(recs), tc.count)
			}
			rec, ok := byInt(recs, "remote_port", 3333)
			if !ok {
				t.Fatal("no connection to the pool")
			}
			want := map[string]any{
				"protocol":       "tcp",
				"remote_address": "192.0.2.25",
				"state":          "ESTABLISHED",
				"pid":            tc.pid,
				"process_name":   tc.procName,
				"process_exe":    tc.procExe,
			}
			for k, v := range want {
				if rec.Fields[k] != v {
					t.Errorf("%s = %#v, want %#v", k, rec.Fields[k], v)
				}
			}
			if got := rec.Time.Format(time.RFC3339); got != tc.when {
				t.Errorf("time %s, want %s", got, tc.when)
			}
		})
	}
}

func TestConnectionsSnapshotBadRows(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "connections.json")
	body := `[{"proto":"tcp","local":"[::1]:22","remote":"[::]:0","state":"listen","pid":7},
	{"proto":"tcp","local":"nonsense","remote":"1.2.3.4:5","state":"ESTABLISHED","pid":8}]`
	if err := os.WriteFile(snap, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	params := fmt.Sprintf(`{"snapshot":%q,"time":"2024-01-02T03:04:05Z"}`, snap)
	recs, sum := run(t, NewConnections(), "/", collectors.Budget{}, params)
	if len(recs) != 1 || sum.Skipped["malformed"] != 1 {
		t.Fatalf("records %d, skipped %+v", len(recs), sum.Skipped)
	}
	if recs[0].Str("protocol") != "tcp6" || recs[0].Str("state") != "LISTEN" {
		t.Errorf("got %s", recs[0].Summary())
	}
}

func TestConnectionsValidate(t *testing.T) {
	cases := []struct {
		name   string
		params string
		ok     bool
	}{
		{"empty", ``, true},
		{"inet6", `{"kinds":"inet6"}`, true},
		{"unix refused", `{"kinds":"unix"}`, false},
		{"unknown field", `{"kind":"tcp"}`, false},
		{"bad time", `{"time":"noon"}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := NewConnections().Validate([]byte(tc.params))
			if (err == nil) != tc.ok {
				t.Errorf("Validate(%s) = %v, want ok=%v", tc.params, err, tc.ok)
			}
		})
	}
}

func TestConnectionsMissingSnapshot(t *testing.T) {
	_, _, err := runErr(NewConnections(), "/", collectors.Budget{},
		`{"snapshot":"/nonexistent/connections.json"}`, nil)
	if err == nil {
		t.Fatal("missing snapshot accepted")
	}
}
