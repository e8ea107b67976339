package host

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

func TestProcessesFindsMiner(t *testing.T) {
	p := newPool(t)
	cmd := startMiner(t, minerBin, p)
	pid := int64(cmd.Process.Pid)
	wantCmd := fmt.Sprintf("%s --url stratum+tcp://127.0.0.1:%d --donate-level 1", minerBin, p.port)
	wantSum := fileSHA256(t, minerBin)
	selfComm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		params string
	}{
		{"by pid", fmt.Sprintf(`{"pids":[%d]}`, pid)},
		{"by name", `{"names":["mine?"]}`},
		{"whole table", ``},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			recs, sum := run(t, NewProcesses(nil), "/", collectors.Budget{}, tc.params)
			rec, ok := byInt(recs, "pid", pid)
			if !ok {
				t.Fatalf("pid %d not among %d records (stats %+v)", pid, len(recs), sum)
			}
			if rec.Kind != tasks.KindProcess || rec.Source != "live" {
				t.Errorf("kind %q source %q", rec.Kind, rec.Source)
			}
			want := map[string]any{
				"name":        "miner",
				"exe":         minerBin,
				"cmdline":     wantCmd,
				"exe_sha256":  wantSum,
				"exe_deleted": false,
				"cwd":         filepath.Dir(minerBin),
				"user":        "root",
				"ppid":        int64(os.Getpid()),
				"parent_name": strings.TrimSpace(string(selfComm)),
			}
			if os.Geteuid() != 0 {
				delete(want, "user")
			}
			for k, v := range want {
				if rec.Fields[k] != v {
					t.Errorf("%s = %#v, want %#v", k, rec.Fields[k], v)
				}
			}
			started, err := time.Parse(time.RFC3339, rec.Str("started"))
			if err != nil || started.After(start) || start.Sub(started) > time.Minute {
				t.Errorf("started %q, scan began %s", rec.Str("started"), start)
			}
			key := rec.Str("process_key")
			if !strings.HasPrefix(key, strconv.FormatInt(pid, 10)+"@") {
				t.Errorf("process_key %q", key)
			}
			// Other tests on this host may run miners too: check the
			// filter kept only what it names.
			for _, r := range recs {
				if tc.name == "by pid" && r.Str("process_key") != key ||
					tc.name == "by name" && r.Str("name") != "miner" {
					t.Errorf("filter kept %s", r.Summary())
				}
			}
		})
	}
}

func TestProcessKeyStable(t *testing.T) {
	p := newPool(t)
	pid := int64(startMiner(t, minerBin, p).Process.Pid)
	params := fmt.Sprintf(`{"pids":[%d],"hash":false}`, pid)

	var keys []string
	for range 3 {
		recs, _ := run(t, NewProcesses(nil), "/", collectors.Budget{}, params)
		if len(recs) != 1 {
			t.Fatalf("got %d records", len(recs))
		}
		if _, has := recs[0].Fields["exe_sha256"]; has {
			t.Error("hash:false still hashed")
		}
		keys = append(keys, recs[0].Str("process_key"))
	}
	if keys[0] != keys[1] || keys[1] != keys[2] {
		t.Errorf("process key changed between scans: %v", keys)
	}
}

func TestProcessesDeletedExe(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "kworkerd")
	copyFile(t, minerBin, bin)
	wantSum := fileSHA256(t, bin)
	pid := int64(startMiner(t, bin, newPool(t)).Process.Pid)
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}

	recs, _ := run(t, NewProcesses(nil), "/", collectors.Budget{},
		fmt.Sprintf(`{"pids":[%d]}`, pid))
	if len(recs) != 1 {
		t.Fatalf("got %d records", len(recs))
	}
	f := recs[0].Fields
	if f["exe_deleted"] != true {
		t.Errorf("exe_deleted = %v", f["exe_deleted"])
	}
	if f["exe"] != bin {
		t.Errorf("exe = %q, want %q without the deleted marker", f["exe"], bin)
	}
	if f["exe_sha256"] != wantSum {
		t.Errorf("exe_sha256 = %v, want %s", f["exe_sha256"], wantSum)
	}
}

func TestProcessesHashCacheShared(t *testing.T) {
	pid := int64(startMiner(t, minerBin, newPool(t)).Process.Pid)
	cache := NewHashCache(0)
	params := fmt.Sprintf(`{"pids":[%d]}`, pid)

	first, _ := run(t, NewProcesses(cache), "/", collectors.Budget{}, params)
	if cache.Hits() != 0 || cache.Len() != 1 {
		t.Fatalf("after first run: hits %d len %d", cache.Hits(), cache.Len())
	}
	second, _ := run(t, NewProcesses(cache), "/", collectors.Budget{}, params)
	if cache.Hits() != 1 {
		t.Errorf("second run hits = %d, want 1", cache.Hits())
	}
	if first[0].Str("exe_sha256") != second[0].Str("exe_sha256") {
		t.Error("cached digest differs")
	}
}

func TestHashCacheEvicts(t *testing.T) {
	c := NewHashCache(2)
	for i := range 3 {
		c.put(fileKey{path: strconv.Itoa(i)}, "x")
	}
	if c.Len() != 2 {
		t.Fatalf("len %d", c.Len())
	}
	if _, ok := c.get(fileKey{path: "0"}); ok {
		t.Error("oldest entry kept")
	}
	if _, ok := c.get(fileKey{path: "2"}); !ok {
		t.Error("newest entry dropped")
	}
}

func TestProcessesHashHonoursReadBudget(t *testing.T) {
	pid := int64(startMiner(t, minerBin, newPool(t)).Process.Pid)
	fi, err := os.Stat(minerBin)
	if err != nil {
		t.Fatal(err)
	}

	// At half the binary's size a second, the second half waits ~1 s.
	budget := collectors.Budget{ReadBytesPerSec: fi.Size() / 2}
	start := time.Now()
	recs, _ := run(t, NewProcesses(nil), "/", budget, fmt.Sprintf(`{"pids":[%d]}`, pid))
	if took := time.Since(start); took < 600*time.Millisecond {
		t.Errorf("hash of %d bytes at %d B/s took %s", fi.Size(), budget.ReadBytesPerSec, took)
	}
	if len(recs) != 1 || recs[0].Str("exe_sha256") == "" {
		t.Errorf("no hash under budget: %+v", recs)
	}
}

func TestProcessesRecordCap(t *testing.T) {
	recs, sum := run(t, NewProcesses(nil), "/", collectors.Budget{MaxRecords: 2}, `{"hash":false}`)
	if len(recs) != 2 || sum.Emitted != 2 {
		t.Errorf("emitted %d records (summary %d), want 2", len(recs), sum.Emitted)
	}
	if sum.CutBy != "record cap" {
		t.Errorf("cut by %q", sum.CutBy)
	}
}

// TestProcessesVanishing kills processes between the two passes of a scan
// (from the emit hook, which runs before the victims are reached in pid
// order) and checks they are counted, not fatal.
func TestProcessesVanishing(t *testing.T) {
	t.Run("killed mid-scan", func(t *testing.T) {
		var victims []*exec.Cmd
		pids := []string{strconv.Itoa(os.Getpid())}
		for range 3 {
			c := exec.Command("/bin/sleep", "30")
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			victims = append(victims, c)
			pids = append(pids, strconv.Itoa(c.Process.Pid))
			if c.Process.Pid < os.Getpid() {
				t.Skip("pid wrapped around; victims would be scanned first")
			}
		}
		var once sync.Once
		kill := func(tasks.Record) {
			once.Do(func() {
				for _, c := range victims {
					_ = c.Process.Kill()
					_ = c.Wait()
				}
			})
		}
		params := `{"hash":false,"pids":[` + strings.Join(pids, ",") + `]}`
		recs, sum, err := runErr(NewProcesses(nil), "/", collectors.Budget{}, params, kill)
		if err != nil {
			t.Fatalf("scan failed: %v", err)
		}
		if len(recs) != 1 {
			t.Errorf("emitted %d records, want only the test process", len(recs))
		}
		if sum.Skipped["vanished"] != len(victims) {
			t.Errorf("vanished = %d, want %d (%+v)", sum.Skipped["vanished"], len(victims), sum)
		}
	})

	t.Run("churn during scans", func(t *testing.T) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c := exec.Command("/bin/sleep", "5")
				if c.Start() == nil {
					_ = c.Process.Signal(syscall.SIGKILL)
					_ = c.Wait()
				}
			}
		}()
		defer func() { close(stop); wg.Wait() }()
		for range 10 {
			recs, _, err := runErr(NewProcesses(nil), "/", collectors.Budget{}, `{"hash":false}`, nil)
			if err != nil {
				t.Fatalf("scan failed during churn: %v", err)
			}
			if _, ok := byInt(recs, "pid", int64(os.Getpid())); !ok {
				t.Fatal("test process missing from scan")
			}
		}
	})
}

func TestProcessesValidate(t *testing.T) {
	cases := []struct {
		name   string
		params string
		ok     bool
	}{
		{"empty", ``, true},
		{"null", `null`, true},
		{"full", `{"names":["x*"],"pids":[1],"hash":false,"snapshot":"a.json"}`, true},
		{"bad pattern", `{"names":["[x"]}`, false},
		{"unknown field", `{"nmes":["x"]}`, false},
		{"bad time", `{"time":"yesterday"}`, false},
		{"negative size", `{"max_hash_bytes":-1}`, false},
		{"wrong type", `{"pids":"1"}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := NewProcesses(nil).Validate([]byte(tc.params))
			if (err == nil) != tc.ok {
				t.Errorf("Validate(%s) = %v, want ok=%v", tc.params, err, tc.ok)
			}
		})
	}
}

func TestProcessesHashSizeBound(t *testing.T) {
	pid := int64(startMiner(t, minerBin, newPool(t)).Process.Pid)
	recs, sum := run(t, NewProcesses(nil), "/", collectors.Budget{},
		fmt.Sprintf(`{"pids":[%d],"max_hash_bytes":1000}`, pid))
	if len(recs) != 1 {
		t.Fatalf("got %d records", len(recs))
	}
	if _, ok := recs[0].Fields["exe_sha256"]; ok || sum.Skipped["size"] != 1 {
		t.Errorf("oversized exe hashed or not counted: %+v %+v", recs[0].Fields, sum.Skipped)
	}
}

// TestNoProcTableIsASkip checks that a root with no proc file system and
// no snapshot (a host replayed from its files and logs only) is reported
// as a skip by the processes and connections collectors, not a failure.
func TestNoProcTableIsASkip(t *testing.T) {
	root := t.TempDir()
	for _, c := range []collectors.Collector{&Processes{}, &Connections{}} {
		env := collectors.NewEnv(c.Name(), root, "replayed", collectors.Budget{}, nil,
			func(tasks.Record) error { t.Fatalf("%s emitted a record", c.Name()); return nil })
		if err := collectors.Run(context.Background(), c, env, nil); err != nil {
			t.Fatalf("%s: %v, want a skip", c.Name(), err)
		}
		if got := env.Stats.Summary().Skipped["no-process-table"]; got != 1 {
			t.Errorf("%s: skips %v, want no-process-table", c.Name(), env.Stats.Summary().Skipped)
		}
	}
}
