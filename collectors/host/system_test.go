package host

import (
	"os"
	"reflect"
	"testing"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

func TestSystemLive(t *testing.T) {
	recs, _ := run(t, NewSystem(), "/", collectors.Budget{},
		`{"labels":{"site":"dc1","role":"web"}}`)
	if len(recs) != 1 {
		t.Fatalf("got %d records", len(recs))
	}
	r := recs[0]
	host, _ := os.Hostname()
	want := map[string]any{"hostname": host, "os": "linux"}
	for k, v := range want {
		if r.Fields[k] != v {
			t.Errorf("%s = %#v, want %#v", k, r.Fields[k], v)
		}
	}
	if r.Kind != tasks.KindSystem || r.Str("kernel") == "" || r.Str("boot_time") == "" {
		t.Errorf("incomplete record: %+v", r.Fields)
	}
	if got := r.Strs("labels"); !reflect.DeepEqual(got, []string{"role=web", "site=dc1"}) {
		t.Errorf("labels %q", got)
	}
	if len(r.Strs("interfaces")) == 0 || len(r.Strs("addresses")) == 0 {
		t.Errorf("no interfaces or addresses: %+v", r.Fields)
	}
	found := false
	for _, a := range r.Strs("addresses") {
		found = found || a == "127.0.0.1"
	}
	if !found {
		t.Errorf("loopback address missing from %q", r.Strs("addresses"))
	}
}

func TestSystemFixtureRoot(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"etc/hostname":              "vm-miner01\n",
		"etc/os-release":            "ID=ubuntu\nVERSION_ID=\"22.04\"\n",
		"proc/stat":                 "cpu  1 2 3\nbtime 1722846121\n",
		"proc/sys/kernel/osrelease": "6.5.0-1025-azure\n",
	})
	recs, _ := run(t, NewSystem(), root, collectors.Budget{}, ``)
	if len(recs) != 1 {
		t.Fatalf("got %d records", len(recs))
	}
	want := map[string]any{
		"hostname":         "vm-miner01",
		"kernel":           "6.5.0-1025-azure",
		"platform":         "ubuntu",
		"platform_version": "22.04",
		"boot_time":        "2024-08-05T08:22:01Z",
	}
	for k, v := range want {
		if recs[0].Fields[k] != v {
			t.Errorf("%s = %#v, want %#v", k, recs[0].Fields[k], v)
		}
	}
	if _, ok := recs[0].Fields["interfaces"]; ok {
		t.Error("fixture run reported the live host's interfaces")
	}
}

func TestSystemValidate(t *testing.T) {
	cases := []struct {
		name, params string
		ok           bool
	}{
		{"empty", ``, true},
		{"labels", `{"labels":{"a":"b"}}`, true},
		{"labels not a map", `{"labels":["a=b"]}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := NewSystem().Validate([]byte(tc.params)); (err == nil) != tc.ok {
				t.Errorf("Validate(%s) = %v", tc.params, err)
			}
		})
	}
}

func TestAllNames(t *testing.T) {
	var names []string
	for _, c := range All(NewHashCache(0)) {
		names = append(names, c.Name())
	}
	want := []string{"processes", "connections", "system", "accounts"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("names %q, want %q", names, want)
	}
}
