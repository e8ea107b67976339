package host

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

func TestProcessesSnapshot(t *testing.T) {
	scen := filepath.Join("..", "..", "testdata", "cryptominer")
	cases := []struct {
		name    string
		host    string
		params  string
		count   int
		pid     int64
		want    map[string]any
		started string
	}{
		{
			name:  "vm-miner01 miner",
			host:  "vm-miner01",
			count: 4,
			pid:   4242,
			want: map[string]any{
				"name":        "miner",
				"exe":         "/usr/local/bin/miner",
				"exe_deleted": false,
				"cmdline":     "/usr/local/bin/miner --config /etc/miner.conf",
				"user":        "root",
				"ppid":        int64(1),
				"parent_name": "systemd",
				"process_key": "4242@1722846281000",
			},
			started: "2024-08-05T08:24:41Z",
		},
		{
			name:  "vm-miner02 deleted kworkerd",
			host:  "vm-miner02",
			count: 3,
			pid:   3110,
			want: map[string]any{
				"name":        "kworkerd",
				"exe":         "/opt/.cache/kworkerd",
				"exe_deleted": true,
				"parent_name": "systemd",
				"parent_exe":  "/usr/lib/systemd/systemd",
			},
			started: "2024-08-05T08:26:02Z",
		},
		{
			name:    "vm-miner02 filtered by name",
			host:    "vm-miner02",
			params:  `,"names":["kworker*"]`,
			count:   1,
			pid:     3110,
			want:    map[string]any{"exe_deleted": true},
			started: "2024-08-05T08:26:02Z",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap := filepath.Join(scen, tc.host, "processes.json")
			recs, _ := run(t, NewProcesses(nil), "/", collectors.Budget{},
				`{"snapshot":"`+snap+`"`+tc.params+`}`)
			if len(recs) != tc.count {
				t.Fatalf("got %d records, want %d", len(recs), tc.count)
			}
			rec, ok := byInt(recs, "pid", tc.pid)
			if !ok {
				t.Fatalf("pid %d missing", tc.pid)
			}
			for k, v := range tc.want {
				if rec.Fields[k] != v {
					t.Errorf("%s = %#v, want %#v", k, rec.Fields[k], v)
				}
			}
			if rec.Kind != tasks.KindProcess || rec.Source != snap {
				t.Errorf("kind %q source %q", rec.Kind, rec.Source)
			}
			if got := rec.Time.Format(time.RFC3339); got != tc.started {
				t.Errorf("time %s, want the start %s", got, tc.started)
			}
			if rec.Str("started") != tc.started {
				t.Errorf("started %q", rec.Str("started"))
			}
		})
	}
}

func TestSnapshotRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "processes.json")
	target, err := filepath.Abs(filepath.Join("..", "..", "testdata", "cryptominer",
		"vm-miner01", "processes.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, path string }{
		{"symlink", link},
		{"folder", dir},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runErr(NewProcesses(nil), "/", collectors.Budget{},
				`{"snapshot":"`+tc.path+`"}`, nil)
			if err == nil {
				t.Error("non-regular snapshot accepted")
			}
		})
	}
}
