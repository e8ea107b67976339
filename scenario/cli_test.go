package scenario

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cliFleet is the scenario run as real huntmesh processes, driven through
// the command line as an analyst would.
type cliFleet struct {
	t    *testing.T
	bin  string
	work string
	key  string
	// data maps a host to its node's data folder.
	data map[string]string
}

// hm runs the huntmesh binary and returns stdout, stderr and the error.
func (f *cliFleet) hm(args ...string) (string, string, error) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.bin, args...)
	cmd.Env = append(os.Environ(), "HUNTMESH_DATA_DIR=", "HUNTMESH_KEY=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// must runs huntmesh and fails the test when it fails.
func (f *cliFleet) must(args ...string) string {
	f.t.Helper()
	out, errOut, err := f.hm(args...)
	if err != nil {
		f.t.Fatalf("huntmesh %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// startCLIFleet builds the binary, stages the scenario's hosts and starts
// one node process per host on 127.0.0.1, trusting one analyst key.
func startCLIFleet(t *testing.T) *cliFleet {
	t.Helper()
	s, err := Load(scenarioDir)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	f := &cliFleet{t: t, bin: filepath.Join(work, "huntmesh"), work: work,
		data: map[string]string{}}
	build := exec.Command("go", "build", "-o", f.bin, ".")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build huntmesh: %v\n%s", err, out)
	}
	f.must("keygen", "--out", filepath.Join(work, "analyst"), "--name", "cli-test")
	f.key = filepath.Join(work, "analyst.key")
	pub, err := os.ReadFile(filepath.Join(work, "analyst.pub"))
	if err != nil {
		t.Fatal(err)
	}
	trust := filepath.Join(work, "trust")
	line := "hunt,query,intel " + strings.TrimSpace(string(pub)) + "\n"
	if err := os.WriteFile(trust, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}

	var hub string
	for _, h := range s.Hosts {
		rep, err := s.Stage(h, filepath.Join(work, "hosts", h.Name))
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(work, "data", h.Name)
		f.data[h.Name] = dir
		args := []string{"node", "--data-dir", dir, "--trust", trust, "--mdns=false",
			"--nice", "0", "--listen", "/ip4/127.0.0.1/tcp/0", "--host", h.Name,
			"--root", rep.Root}
		keys := make([]string, 0, len(h.Labels))
		for k := range h.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			args = append(args, "--label", k+"="+h.Labels[k])
		}
		for _, l := range rep.Logs {
			args = append(args, "--log", l.Path+",format="+l.Format)
		}
		if rep.Processes != "" {
			args = append(args, "--replay-processes", rep.Processes)
		}
		if rep.Connections != "" {
			args = append(args, "--replay-connections", rep.Connections)
		}
		if hub != "" {
			args = append(args, "--peer", hub)
		}
		logf, err := os.Create(filepath.Join(work, h.Name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(f.bin, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			logf.Close()
		})
		if err := waitFile(filepath.Join(dir, "control.sock"), 20*time.Second); err != nil {
			t.Fatalf("node %s: %v; log in %s", h.Name, err, logf.Name())
		}
		if hub == "" {
			hub = strings.TrimSpace(strings.SplitN(f.must("status", "--data-dir", dir, "--addr"),
				"\n", 2)[0])
		}
	}
	// Every node sees the other four as live.
	deadline := time.Now().Add(30 * time.Second)
	for _, h := range s.Hosts {
		for {
			out, _, _ := f.hm("peers", "--data-dir", f.data[h.Name])
			if strings.Count(out, " live ") >= len(s.Hosts)-1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s sees too few live peers:\n%s", h.Name, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return f
}

// waitFile waits until path exists.
func waitFile(path string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %s", path, wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// huntLine is one line of 'hunt run -o ndjson'.
type huntLine struct {
	Type         string `json:"type"`
	TaskID       string `json:"task_id"`
	Host         string `json:"host"`
	IoC          string `json:"ioc"`
	Kind         string `json:"kind"`
	Summary      string `json:"summary"`
	Status       string `json:"status"`
	Completeness struct {
		Expected int            `json:"expected"`
		Answered int            `json:"answered"`
		ByStatus map[string]int `json:"by_status"`
	} `json:"completeness"`
}

// TestCLI runs the cryptominer scenario through the huntmesh command line
// against five real node processes: hunt validate on the library and on
// bad files, intel import, hunt run FILE from two nodes with the same
// findings, timeline in its three formats, and hosts --rank.
func TestCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds huntmesh and starts five node processes")
	}
	f := startCLIFleet(t)

	files, _ := filepath.Glob("../hunts/*.yaml")
	for _, p := range files {
		out := f.must("hunt", "validate", "--data-dir", f.data["app-01"], p)
		if !strings.HasPrefix(out, "ok ") {
			t.Errorf("validate %s: %q", p, out)
		}
	}
	bad := t.TempDir()
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown-collector.yaml": {"name: b\ncollectors: [{name: procs}]\n",
			`unknown collector "procs"`},
		"bad-selector.yaml": {"name: b\ncollectors: [{name: system}]\nselector: \"role=(\"\n",
			"selector"},
		"self-chain.yaml": {"name: b\ncollectors: [{name: system}]\nchains:\n" +
			"  - {name: loop, when: {after: loop}, collect: [{name: persistence}]}\n",
			"triggers after itself"},
		"self-forward.yaml": {"name: b\ncollectors: [{name: system}]\nchains:\n" +
			"  - {name: fwd, forward: self-forward.yaml}\n", "may not forward again"},
		"sample-count.yaml": {"name: b\ncollectors: [{name: system}]\n" +
			"selector: {sample: \"6\"}\n", "larger than the fleet of 5"},
	} {
		p := filepath.Join(bad, name)
		if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		// The live fleet (5 nodes) comes from the local node.
		for _, verb := range [][]string{{"hunt", "validate"},
			{"hunt", "run", "--key", f.key, "--timeout", "5s"}} {
			args := append(append(verb, "--data-dir", f.data["ops-01"]), p)
			_, errOut, err := f.hm(args...)
			if err == nil || !strings.Contains(errOut, tc.want) {
				t.Errorf("%s %s: %v %q, want a refusal with %q", strings.Join(verb[:2], " "),
					name, err, errOut, tc.want)
			}
		}
	}

	intel := scenarioDir + "/intel/"
	f.must("intel", "import", "--data-dir", f.data["ops-01"], "--key", f.key,
		intel+"cryptominersgroup.stix.json", intel+"miner.yar")
	digests := func() []string {
		var out []string
		for _, dir := range f.data {
			st, _, _ := f.hm("intel", "status", "--data-dir", dir)
			line, _, _ := strings.Cut(st, "\n")
			out = append(out, line)
		}
		return slices.Compact(slices.Sorted(slices.Values(out)))
	}
	for deadline := time.Now().Add(20 * time.Second); len(digests()) != 1; {
		if time.Now().After(deadline) {
			t.Fatalf("intel sets differ: %q", digests())
		}
		time.Sleep(200 * time.Millisecond)
	}

	var findings [][]string
	var task string
	for _, from := range []string{"app-01", "web-01"} {
		out := f.must("hunt", "run", "--data-dir", f.data[from], "--key", f.key,
			"--timeout", "60s", "-o", "ndjson", "../hunts/cryptominer.yaml")
		var got []string
		complete := false
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l huntLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("hunt run output %q: %v", sc.Text(), err)
			}
			switch l.Type {
			case "detection":
				got = append(got, l.Host+"|"+l.IoC+"|"+l.Kind+"|"+l.Summary)
				task = l.TaskID
			case "completeness":
				c := l.Completeness
				complete = c.Expected == 5 && c.Answered == 5 && c.ByStatus["finished"] == 5
			}
		}
		if !complete {
			t.Errorf("hunt from %s: not all five nodes finished:\n%s", from, out)
		}
		sort.Strings(got)
		findings = append(findings, slices.Compact(got))
	}
	if !slices.Equal(findings[0], findings[1]) || len(findings[0]) == 0 {
		t.Errorf("findings differ by issuing node:\n%q\n%q", findings[0], findings[1])
	}
	for _, host := range []string{"app-01", "ops-01", "vm-miner01", "vm-miner02"} {
		if !slices.ContainsFunc(findings[1], func(s string) bool {
			return strings.HasPrefix(s, host+"|")
		}) {
			t.Errorf("%s: no detection", host)
		}
	}

	// The timeline of the last hunt, read on the node that issued it.
	web := f.data["web-01"]
	jsonl := f.must("timeline", "--data-dir", web, task, "-o", "jsonl")
	var clocks []string
	for _, line := range strings.Split(strings.TrimSpace(jsonl), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("timeline line %q: %v", line, err)
		}
		dt, _ := ev["datetime"].(string)
		at, err := time.Parse(time.RFC3339Nano, dt)
		if err != nil || ev["message"] == "" || ev["timestamp_desc"] == "" || ev["host"] == "" {
			t.Fatalf("timeline event lacks Timesketch fields: %s", line)
		}
		clocks = append(clocks, ev["host"].(string)+" "+at.Format(time.TimeOnly))
	}
	last := -1
	for _, step := range []string{"app-01 08:11:58", "app-01 08:12:34", "app-01 08:14:02",
		"app-01 08:15:20", "ops-01 08:18:11", "ops-01 08:20:45", "ops-01 08:21:30",
		"vm-miner01 08:24:41", "vm-miner01 08:25:00"} {
		at := slices.Index(clocks, step)
		if at <= last {
			t.Errorf("timeline: %s missing or out of order in %q", step, clocks)
		}
		last = max(last, at)
	}
	rows, err := csv.NewReader(strings.NewReader(f.must("timeline", "--data-dir", web, task,
		"-o", "csv"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(clocks)+1 || !slices.Equal(rows[0][:3],
		[]string{"message", "datetime", "timestamp_desc"}) {
		t.Errorf("csv timeline: %d rows, header %q; want %d rows after the header", len(rows)-1,
			rows[0], len(clocks))
	}
	table := f.must("timeline", "--data-dir", web, task, "--target", "site=cloud-eastus",
		"--from", "2024-08-05T08:24:00Z", "--to", "2024-08-05T08:30:00Z")
	if !strings.Contains(table, "50000000 bytes out") || strings.Contains(table, "app-01") {
		t.Errorf("selected timeline:\n%s", table)
	}

	var ranked []struct {
		Host    string   `json:"host"`
		Score   float64  `json:"score"`
		Reasons []string `json:"reasons"`
	}
	if err := json.Unmarshal([]byte(f.must("hosts", "--data-dir", web, "--rank", task, "-o",
		"json")), &ranked); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range ranked {
		order = append(order, r.Host)
	}
	if len(order) != 5 || !slices.Equal(order[2:], []string{"app-01", "ops-01", "web-01"}) ||
		!strings.HasPrefix(order[0], "vm-miner") || !strings.HasPrefix(order[1], "vm-miner") ||
		ranked[4].Score != 0 || len(ranked[0].Reasons) == 0 {
		t.Errorf("hosts --rank: %+v", ranked)
	}

	checkCLIQueries(t, f, task)
}

// checkCLIQueries drives query, status TASK-ID, results and task through
// the binary, on the evidence the hunts stored.
func checkCLIQueries(t *testing.T, f *cliFleet, task string) {
	ops := f.data["ops-01"]

	// A stacking query in CSV: the pool on exactly the two miner VMs.
	rows, err := csv.NewReader(strings.NewReader(f.must("query", "--data-dir", ops, "--key",
		f.key, "--group-by", "remote_address,remote_port", "-o", "csv",
		`kind == "connection"`))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var pool []string
	for _, r := range rows {
		if len(r) == 5 && r[0] == "192.0.2.25" && r[1] == "3333" {
			pool = r
		}
	}
	if pool == nil || pool[3] != "2" || pool[4] != "vm-miner01 vm-miner02" {
		t.Errorf("stacked csv: pool row %q in %q", pool, rows)
	}

	// Detections over a time range, as NDJSON; the query's own status.
	out := f.must("query", "--data-dir", ops, "--key", f.key, "--detections", "-o", "ndjson",
		"--since", "2024-08-05T08:24:00Z", "--until", "2024-08-05T08:26:00Z",
		`host == "vm-miner01" && ioc_value == "192.0.2.25"`)
	var qid string
	hits := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l huntLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("query output %q: %v", line, err)
		}
		if l.Type == "detection" {
			hits++
			qid = l.TaskID
			if l.Host != "vm-miner01" {
				t.Errorf("detection query row from %s", l.Host)
			}
		}
	}
	if hits == 0 {
		t.Fatalf("no stored detection of the pool address on vm-miner01:\n%s", out)
	}
	st := f.must("status", "--data-dir", ops, qid)
	if !strings.Contains(st, "finished 5") || !strings.Contains(st, "silent 0") {
		t.Errorf("status %s:\n%s", qid, st)
	}

	// A query that does not compile is refused with its position.
	if _, errOut, err := f.hm("query", "--data-dir", ops, "--key", f.key,
		`kind == "connection" && remote_prot == 3333`); err == nil ||
		!strings.Contains(errOut, "1:25") || !strings.Contains(errOut, "remote_port") {
		t.Errorf("bad query: %v %q", err, errOut)
	}

	// The hunt's stored answers, its status and a cancel after the fact.
	if res := f.must("results", "--data-dir", f.data["web-01"], task); !strings.Contains(res,
		"answered 5/5") {
		t.Errorf("results %s:\n%s", task, res)
	}
	list := f.must("task", "list", "--data-dir", f.data["web-01"])
	if !strings.Contains(list, task) {
		t.Errorf("task list lacks %s:\n%s", task, list)
	}
	cancel := f.must("task", "cancel", "--data-dir", f.data["web-01"], "--key", f.key, task)
	if !strings.Contains(cancel, "answered 5/5") || !strings.Contains(cancel, "not running here") {
		t.Errorf("cancel of a finished hunt:\n%s", cancel)
	}
}
