package scenario

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/huntfile"
	"github.com/huntmesh/huntmesh/node"
	"github.com/huntmesh/huntmesh/tasks"
)

const (
	scenarioDir = "../testdata/cryptominer"
	chainName   = "pool-connection-persistence"
)

// TestCryptominer runs the cryptominer scenario end to end, once for each
// of the three intel files: five real nodes on loopback, each replaying
// one host; the intel file and miner.yar loaded into the shared intel
// set; the library's cryptominer hunt sent from one node, then another. Every numbered line of
// expected.md is checked on both runs, and the findings must be equal.
func TestCryptominer(t *testing.T) {
	intelFiles := []struct{ name, file, from1, from2 string }{
		{"stix", "cryptominersgroup.stix.json", "app-01", "web-01"},
		{"misp", "cryptominersgroup.misp.json", "ops-01", "vm-miner02"},
		{"csv", "iocs.csv", "vm-miner01", "app-01"},
	}
	for _, in := range intelFiles {
		t.Run(in.name, func(t *testing.T) {
			ctx := context.Background()
			f := Start(t, scenarioDir, Options{})
			err := f.LoadIntel(ctx, in.from2, 20*time.Second,
				scenarioDir+"/intel/"+in.file, scenarioDir+"/intel/miner.yar")
			if err != nil {
				t.Fatal(err)
			}
			var runs [][]string
			for _, from := range []string{in.from1, in.from2} {
				t.Run("from "+from, func(t *testing.T) {
					runs = append(runs, checkScenario(t, f, from))
				})
			}
			if len(runs) == 2 && !slices.Equal(runs[0], runs[1]) {
				t.Errorf("findings differ by issuing node:\nfrom %s: %q\nfrom %s: %q",
					in.from1, runs[0], in.from2, runs[1])
			}
			if in.name == "stix" {
				t.Run("sample count met with the membership view", func(t *testing.T) {
					checkSampleCount(t, f)
				})
			}
		})
	}
}

// checkScenario issues the cryptominer hunt from host from, checks every
// line of expected.md, and returns the findings in a comparable form.
func checkScenario(t *testing.T, f *Fleet, from string) []string {
	hf, err := huntfile.Load("../hunts/cryptominer.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h, err := hf.Hunt(huntfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The timeline and the stacking need the records, not only matches.
	h.ReturnRecords = true
	ans := hunt(t, f, from, h)
	dets := ans.Detections()

	t.Run("1 detections per host", func(t *testing.T) { checkDetections(t, dets) })
	t.Run("2 nothing on web-01, revoked and expired match nothing", func(t *testing.T) {
		checkClean(t, ans.Results, dets)
	})
	t.Run("3 stacking", func(t *testing.T) { checkStacking(t, ans.Results) })
	t.Run("4 timeline", func(t *testing.T) { checkTimeline(t, ans.Results) })
	t.Run("5 risk ranking", func(t *testing.T) { checkRisk(t, f, dets) })
	t.Run("6 chained rule", func(t *testing.T) { checkChain(t, f, from, hf, dets) })

	var out []string
	for _, d := range dets {
		out = append(out, strings.Join([]string{d.Host, d.IoCType, d.IoCValue, d.Record.Kind,
			d.Record.Summary(), strings.Join(d.Tags, ",")}, "|"))
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// hunt issues h from host from and checks that all five nodes finished.
func hunt(t *testing.T, f *Fleet, from string, h *tasks.Hunt) *Answer {
	t.Helper()
	ans, err := f.Hunt(context.Background(), from, h, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := ans.Completeness
	if c.Answered != len(f.Nodes) || c.ByStatus[tasks.StatusFinished] != len(f.Nodes) {
		t.Fatalf("completeness %+v, want %d finished", c, len(f.Nodes))
	}
	return ans
}

// want is one expected detection: a host and a test on it.
type want struct {
	host string
	what string
	ok   func(d *tasks.Detection) bool
}

func kind(k string) func(*tasks.Detection) bool {
	return func(d *tasks.Detection) bool { return d.Record.Kind == k }
}

func and(ps ...func(*tasks.Detection) bool) func(*tasks.Detection) bool {
	return func(d *tasks.Detection) bool {
		for _, p := range ps {
			if !p(d) {
				return false
			}
		}
		return true
	}
}

func field(name string, v any) func(*tasks.Detection) bool {
	return func(d *tasks.Detection) bool {
		if s, ok := v.(string); ok {
			return strings.EqualFold(d.Record.Str(name), s)
		}
		got, ok := d.Record.Int(name)
		return ok && got == int64(v.(int))
	}
}

func ioc(typ, value string) func(*tasks.Detection) bool {
	return func(d *tasks.Detection) bool { return d.IoCType == typ && d.IoCValue == value }
}

func checkDetections(t *testing.T, dets []tasks.Detection) {
	const pool, c2 = "192.0.2.25", "203.0.113.77"
	cloud := func(resource string) func(*tasks.Detection) bool {
		return and(kind(tasks.KindCloudActivity),
			ioc("rule", "cloud-resources-outside-home-regions"),
			field("resource", resource), field("caller", "cloud-admin"),
			field("caller_address", "10.20.1.15"), field("location", "eastus"))
	}
	wants := []want{
		{"app-01", "EDR alert to 203.0.113.77", and(kind(tasks.KindAlert), ioc("ip", c2))},
		{"app-01", "Sysmon network event to 203.0.113.77",
			and(kind(tasks.KindConnection), ioc("ip", c2), field("pid", 5504))},
		{"app-01", "deploy-vm.ps1 created", and(kind(tasks.KindFile),
			ioc("filename", "deploy-vm.ps1"))},
		{"app-01", "deploy-vm.ps1 executed by powershell.exe 6788",
			and(kind(tasks.KindProcess), ioc("filename", "deploy-vm.ps1"), field("pid", 6788),
				field("ppid", 6720))},
		{"app-01", "cmd.exe 6720 child of remote.exe 5504",
			and(kind(tasks.KindProcess), field("pid", 6720), field("ppid", 5504))},
		{"app-01", "remote.exe 5504", and(kind(tasks.KindProcess), field("pid", 5504),
			field("name", "remote.exe"))},
		{"ops-01", "resource group MinersGroup in eastus", cloud("MinersGroup")},
		{"ops-01", "VM-Miner01 in eastus", cloud("VM-Miner01")},
		{"ops-01", "VM-Miner02 in eastus", cloud("VM-Miner02")},
		{"vm-miner01", "miner 4242 to 192.0.2.25:3333", and(kind(tasks.KindConnection),
			field("pid", 4242), field("process_name", "miner"), field("remote_address", pool),
			field("remote_port", 3333), ioc("ip", pool))},
		{"vm-miner01", "50,000,000 bytes out to the pool", and(kind(tasks.KindFlow),
			field("dst_address", pool), field("bytes_out", 50_000_000))},
		{"vm-miner01", "/etc/rc.local starts the miner", and(kind(tasks.KindPersistence),
			field("path", "/etc/rc.local"), func(d *tasks.Detection) bool {
				return strings.Contains(d.Record.Str("command"), "/usr/local/bin/miner")
			})},
		{"vm-miner01", "/usr/local/bin/miner SHA-256", and(field("path", "/usr/local/bin/miner"),
			func(d *tasks.Detection) bool { return d.IoCType == "sha256" })},
		{"vm-miner01", "/usr/local/bin/miner coinminer_cpu_binary", and(field("path",
			"/usr/local/bin/miner"), ioc("yara", "coinminer_cpu_binary"))},
		{"vm-miner01", "/usr/local/bin/miner coinminer_stratum_config", and(field("path",
			"/usr/local/bin/miner"), ioc("yara", "coinminer_stratum_config"))},
		{"vm-miner01", "/etc/miner.conf coinminer_stratum_config", and(field("path",
			"/etc/miner.conf"), ioc("yara", "coinminer_stratum_config"))},
		{"vm-miner02", "kworkerd 3110 from a deleted binary", and(kind(tasks.KindProcess),
			field("pid", 3110), ioc("rule", "process-from-deleted-binary"))},
		{"vm-miner02", "kworkerd 3110 to 192.0.2.25:3333", and(kind(tasks.KindConnection),
			field("pid", 3110), field("remote_address", pool), field("remote_port", 3333),
			ioc("ip", pool))},
		{"vm-miner02", "dbus-helper.service starts /opt/.cache/kworkerd",
			and(kind(tasks.KindPersistence), field("name", "dbus-helper.service"),
				func(d *tasks.Detection) bool {
					return strings.Contains(d.Record.Str("command"), "/opt/.cache/kworkerd")
				})},
		{"vm-miner02", "/opt/.cache/kworkerd YARA", and(kind(tasks.KindFile),
			field("path", "/opt/.cache/kworkerd"), func(d *tasks.Detection) bool {
				return d.IoCType == "yara"
			})},
		{"vm-miner02", "/opt/.cache/config.json YARA", and(kind(tasks.KindFile),
			field("path", "/opt/.cache/config.json"), func(d *tasks.Detection) bool {
				return d.IoCType == "yara"
			})},
	}
	for _, w := range wants {
		if !slices.ContainsFunc(dets, func(d tasks.Detection) bool {
			return d.Host == w.host && w.ok(&d)
		}) {
			t.Errorf("%s: no detection for %s", w.host, w.what)
		}
	}
	// The account's ordinary activity in westeurope is not flagged.
	for _, d := range dets {
		if d.Record.Kind == tasks.KindCloudActivity && d.Record.Str("location") == "westeurope" {
			t.Errorf("ops-01: westeurope activity flagged: %s", d.Record.Summary())
		}
	}
}

// checkClean checks that web-01 and the vendor update check on app-01
// were collected and matched nothing, and that the revoked and expired
// indicators matched nothing anywhere.
func checkClean(t *testing.T, results []*tasks.Result, dets []tasks.Detection) {
	var webRecords, updateChecks int
	for _, r := range results {
		if r.Host == "web-01" && r.Final {
			webRecords = r.TotalRecords
		}
		for _, rec := range r.Records {
			if rec.Host == "app-01" && strings.Contains(rec.Str("cmdline"), "updater.exe") &&
				rec.Str("remote_address") == "198.51.100.200" {
				updateChecks++
			}
		}
	}
	// Without the records, "nothing matched" would prove nothing.
	if webRecords == 0 {
		t.Error("web-01 collected no records")
	}
	if updateChecks == 0 {
		t.Error("app-01: the vendor update check to 198.51.100.200 was not collected")
	}
	for _, d := range dets {
		switch {
		case d.Host == "web-01":
			t.Errorf("web-01: detection %s:%s on %s", d.IoCType, d.IoCValue, d.Record.Summary())
		case d.IoCValue == "198.51.100.200" || d.IoCValue == "198.51.100.99":
			t.Errorf("%s: revoked or expired indicator %s matched", d.Host, d.IoCValue)
		case strings.Contains(d.Record.Str("cmdline"), "updater.exe") ||
			d.Record.Str("remote_address") == "198.51.100.200":
			t.Errorf("%s: vendor update check flagged: %s", d.Host, d.Record.Summary())
		}
	}
}

// checkStacking groups every connection record by remote address and
// port across the fleet (least frequency of occurrence).
func checkStacking(t *testing.T, results []*tasks.Result) {
	hosts := map[string]map[string]bool{}
	for _, r := range results {
		for _, rec := range r.Records {
			if rec.Kind != tasks.KindConnection {
				continue
			}
			port, _ := rec.Int("remote_port")
			key := fmt.Sprintf("%s:%d", rec.Str("remote_address"), port)
			if hosts[key] == nil {
				hosts[key] = map[string]bool{}
			}
			hosts[key][rec.Host] = true
		}
	}
	var got []string
	for h := range hosts["192.0.2.25:3333"] {
		got = append(got, h)
	}
	sort.Strings(got)
	if !slices.Equal(got, []string{"vm-miner01", "vm-miner02"}) {
		t.Errorf("192.0.2.25:3333 seen on %v, want exactly the two miner VMs", got)
	}
}

func checkTimeline(t *testing.T, results []*tasks.Result) {
	tl := node.BuildTimeline(results, node.TimelineFilter{})
	steps := []struct {
		clock, host, what string
		ok                func(e node.TimelineEvent) bool
	}{
		{"08:11:58", "app-01", "remote.exe starts", msgHas("remote.exe -silent")},
		{"08:12:34", "app-01", "EDR alert", kindIs(tasks.KindAlert)},
		{"08:14:02", "app-01", "script dropped", msgHas("deploy-vm.ps1")},
		{"08:15:20", "app-01", "cmd.exe", msgHas("cmd.exe")},
		{"08:18:11", "ops-01", "resource group", msgHas("MinersGroup")},
		{"08:20:45", "ops-01", "VM-Miner01", msgHas("VM-Miner01")},
		{"08:21:30", "ops-01", "VM-Miner02", msgHas("VM-Miner02")},
		{"08:24:41", "vm-miner01", "miner starts", msgHas("/usr/local/bin/miner --config")},
		{"08:25:00", "vm-miner01", "50 MB to the pool", msgHas("50000000 bytes out")},
	}
	last := -1
	for _, s := range steps {
		at := slices.IndexFunc(tl, func(e node.TimelineEvent) bool {
			return e.Host == s.host && e.Time.Format(time.TimeOnly) == s.clock && s.ok(e)
		})
		if at < 0 {
			t.Errorf("timeline has no %s at %s on %s", s.what, s.clock, s.host)
			continue
		}
		if at < last {
			t.Errorf("timeline puts %s (%s) before the step that precedes it", s.what, s.clock)
		}
		last = at
		if e := tl[at]; e.Datetime == "" || e.TimestampDesc == "" || e.Message == "" {
			t.Errorf("timeline event %s lacks Timesketch fields: %+v", s.what, e)
		}
	}

	// A selector over the answering hosts and a time range: the app tier
	// and the eastus VMs from 08:12 to 08:22 leave app-01's part of the
	// story, without ops-01 (westeurope, role ops) or the later miner.
	sel, err := node.SelectResults(results, tasks.Selector{Expr: "site=cloud-eastus or role=app"})
	if err != nil {
		t.Fatal(err)
	}
	from, _ := time.Parse(time.RFC3339, "2024-08-05T08:12:00Z")
	to, _ := time.Parse(time.RFC3339, "2024-08-05T08:22:00Z")
	part := node.BuildTimeline(sel, node.TimelineFilter{From: from, To: to})
	var clocks []string
	for _, e := range part {
		if e.Host != "app-01" || e.Time.Before(from) || e.Time.After(to) {
			t.Errorf("filtered timeline holds %s at %s", e.Host, e.Datetime)
		}
		clocks = append(clocks, e.Time.Format(time.TimeOnly))
	}
	for _, c := range []string{"08:12:34", "08:14:02", "08:15:20"} {
		if !slices.Contains(clocks, c) {
			t.Errorf("filtered timeline lacks app-01's event at %s: %v", c, clocks)
		}
	}
}

func msgHas(s string) func(node.TimelineEvent) bool {
	return func(e node.TimelineEvent) bool { return strings.Contains(e.Message, s) }
}

func kindIs(k string) func(node.TimelineEvent) bool {
	return func(e node.TimelineEvent) bool { return e.Kind == k }
}

func checkRisk(t *testing.T, f *Fleet, dets []tasks.Detection) {
	var hosts []string
	for _, h := range f.Scenario.Hosts {
		hosts = append(hosts, h.Name)
	}
	rank := node.RankHosts(dets, hosts)
	var order []string
	for _, r := range rank {
		order = append(order, r.Host)
	}
	if len(order) != 5 {
		t.Fatalf("ranking %v, want 5 hosts", order)
	}
	top := []string{order[0], order[1]}
	sort.Strings(top)
	if !slices.Equal(top, []string{"vm-miner01", "vm-miner02"}) ||
		!slices.Equal(order[2:], []string{"app-01", "ops-01", "web-01"}) {
		t.Errorf("ranking %v, want the miner VMs, then app-01, ops-01, web-01", order)
	}
	if last := rank[4]; last.Score != 0 || last.Detections != 0 {
		t.Errorf("web-01 ranked with score %v and %d detections, want none", last.Score,
			last.Detections)
	}
	for _, r := range rank[:4] {
		if len(r.Reasons) == 0 || r.Score <= 0 {
			t.Errorf("%s: score %v with reasons %q", r.Host, r.Score, r.Reasons)
		}
	}
}

// checkChain checks that the chained rule found the persistence on both
// miner VMs: in the full hunt, the persistence detections came from the
// chain; and in a hunt that asks only for processes, connections and logs
// the chain still collects persistence there, and nowhere else.
func checkChain(t *testing.T, f *Fleet, from string, hf *huntfile.File,
	dets []tasks.Detection) {
	tag := "chain:" + chainName
	for _, host := range []string{"vm-miner01", "vm-miner02"} {
		if !slices.ContainsFunc(dets, func(d tasks.Detection) bool {
			return d.Host == host && d.Record.Kind == tasks.KindPersistence &&
				slices.Contains(d.Tags, tag)
		}) {
			t.Errorf("%s: no persistence detection tagged %s in the full hunt", host, tag)
		}
	}

	h, err := hf.Hunt(huntfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h.Collectors = slices.DeleteFunc(h.Collectors, func(c tasks.CollectorSpec) bool {
		return !slices.Contains([]string{"processes", "connections", "logs"}, c.Name)
	})
	ans := hunt(t, f, from, h)
	ran := map[string]bool{}
	for _, r := range ans.Results {
		for _, c := range r.Collectors {
			if strings.HasPrefix(c.Name, "chain "+chainName+": persistence") {
				ran[r.Host] = true
			}
		}
	}
	for _, host := range []string{"app-01", "ops-01", "vm-miner01", "vm-miner02", "web-01"} {
		isVM := strings.HasPrefix(host, "vm-")
		if ran[host] != isVM {
			t.Errorf("%s: chained persistence ran %v, want %v", host, ran[host], isVM)
		}
	}
	found := map[string]string{}
	for _, d := range ans.Detections() {
		if d.Record.Kind == tasks.KindPersistence && slices.Contains(d.Tags, tag) {
			found[d.Host] = d.Record.Str("path")
		}
	}
	wantFound := map[string]string{"vm-miner01": "/etc/rc.local",
		"vm-miner02": "/etc/systemd/system/dbus-helper.service"}
	for host, path := range wantFound {
		if found[host] != path {
			t.Errorf("%s: chain found persistence %q, want %q", host, found[host], path)
		}
	}
	if len(found) != len(wantFound) {
		t.Errorf("chain found persistence on %v, want only the miner VMs", found)
	}
}

// checkSampleCount sends hunts sampled to two nodes: each node decides
// alone, from the membership view, and exactly two run each hunt.
func checkSampleCount(t *testing.T, f *Fleet) {
	for i := range 3 {
		now := time.Now().UTC()
		h := &tasks.Hunt{Header: tasks.Header{ID: tasks.NewID(now), Type: tasks.TypeHunt,
			IssuedAt: now, NotAfter: now.Add(time.Minute),
			Selector: tasks.Selector{Sample: "2"}},
			Collectors: []tasks.CollectorSpec{{Name: "system"}}}
		ans, err := f.Hunt(context.Background(), f.Scenario.Hosts[i].Name, h, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c := ans.Completeness
		if c.Answered != 5 || c.ByStatus[tasks.StatusFinished] != 2 ||
			c.ByStatus[tasks.StatusDeclined] != 3 {
			t.Errorf("hunt %d: completeness %+v, want 2 finished and 3 declined", i, c)
		}
	}
}

// TestChainForward checks that a chained rule's forwarded hunt, signed
// with the hunt that carries it, runs on the peers it selects when the
// rule triggers elsewhere, and that its answers reach the issuer.
func TestChainForward(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five nodes")
	}
	ctx := context.Background()
	f := Start(t, scenarioDir, Options{})
	if err := f.LoadIntel(ctx, "web-01", 20*time.Second,
		scenarioDir+"/intel/iocs.csv"); err != nil {
		t.Fatal(err)
	}
	hf, err := huntfile.Load("testdata/c2-contact.yaml")
	if err != nil {
		t.Fatal(err)
	}
	issuer := f.Node("web-01")
	seal := func(fh *tasks.Hunt) ([]byte, error) {
		return tasks.SealTask(f.Key, tasks.TypeHunt, fh, tasks.DefaultPolicy().MaxSize)
	}
	h, err := hf.Hunt(huntfile.Options{ReplyTo: issuer.ID(), Seal: seal})
	if err != nil {
		t.Fatal(err)
	}
	env, err := tasks.Open(h.Chains[0].Forward, tasks.DefaultPolicy().MaxSize)
	if err != nil {
		t.Fatal(err)
	}
	fh, err := tasks.DecodeHunt(env.Payload)
	if err != nil {
		t.Fatal(err)
	}

	ans, err := f.Hunt(ctx, "web-01", h, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ans.Completeness.ByStatus[tasks.StatusFinished] != 1 {
		t.Fatalf("c2 hunt ran on %+v, want app-01 only", ans.Completeness)
	}
	// The forwarded hunt runs on the two eastus VMs and declines elsewhere.
	var got []string
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		rs, err := issuer.Store().Results(fh.ID)
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, r := range rs {
			if r.Final && r.Status == tasks.StatusFinished && len(r.Records) > 0 {
				got = append(got, r.Host)
			}
		}
	}
	sort.Strings(got)
	if !slices.Equal(got, []string{"vm-miner01", "vm-miner02"}) {
		t.Errorf("forwarded hunt answered with persistence by %v, want the eastus VMs", got)
	}
	if c := f.Node("app-01").Counters()["chain/forward"]; c != 1 {
		t.Errorf("app-01 forwarded %d times, want 1", c)
	}
}

// TestChainForwardFromTwoNodes checks that a forwarded hunt runs once per
// node however many nodes trigger the chain: both miner VMs see the pool,
// each forwards the app-tier hunt at most once, and app-01 answers it
// once, while the other nodes decline it.
func TestChainForwardFromTwoNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five nodes")
	}
	ctx := context.Background()
	f := Start(t, scenarioDir, Options{})
	if err := f.LoadIntel(ctx, "ops-01", 20*time.Second,
		scenarioDir+"/intel/iocs.csv"); err != nil {
		t.Fatal(err)
	}
	hf, err := huntfile.Load("testdata/pool-contact.yaml")
	if err != nil {
		t.Fatal(err)
	}
	issuer := f.Node("ops-01")
	seal := func(fh *tasks.Hunt) ([]byte, error) {
		return tasks.SealTask(f.Key, tasks.TypeHunt, fh, tasks.DefaultPolicy().MaxSize)
	}
	h, err := hf.Hunt(huntfile.Options{ReplyTo: issuer.ID(), Seal: seal})
	if err != nil {
		t.Fatal(err)
	}
	fwd := hf.Forwards()[0].ID
	ans, err := f.Hunt(ctx, "ops-01", h, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c := ans.Completeness; c.ByStatus[tasks.StatusFinished] != 2 {
		t.Fatalf("pool hunt %+v, want the two eastus VMs finished", c)
	}

	// Every node answers the forwarded hunt once: app-01 ran it, the
	// others declined it.
	byHost := map[string][]tasks.Status{}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		rs, err := issuer.Store().Results(fwd)
		if err != nil {
			t.Fatal(err)
		}
		clear(byHost)
		for _, r := range rs {
			if r.Final {
				byHost[r.Host] = append(byHost[r.Host], r.Status)
			}
		}
		if len(byHost) == len(f.Nodes) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, n := range f.Nodes {
		host := n.Info().Host
		want := tasks.StatusDeclined
		if host == "app-01" {
			want = tasks.StatusFinished
		}
		if got := byHost[host]; len(got) != 1 || got[0] != want {
			t.Errorf("%s answered the forwarded hunt %v, want once %s", host, got, want)
		}
	}
	// Each VM tried to forward it once, and at least one did: the other
	// may find its copy already on the mesh (or, in a close race, have
	// its own publish refused as a replay by its validator).
	var sent uint64
	for _, host := range []string{"vm-miner01", "vm-miner02"} {
		c := f.Node(host).Counters()
		tries := c["chain/forward"] + c["chain/forward-spread"] + c["chain/forward-failed"]
		if tries != 1 {
			t.Errorf("%s: forward counters %d sent, %d spread, %d failed; want one try",
				host, c["chain/forward"], c["chain/forward-spread"], c["chain/forward-failed"])
		}
		sent += c["chain/forward"]
	}
	if sent == 0 {
		t.Error("no VM published the forwarded hunt")
	}
}
