package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/mesh"
	"github.com/huntmesh/huntmesh/tasks"
)

// analyst is a key pair that the test mesh trusts with the hunt role.
type analyst struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

func newAnalyst(t *testing.T) analyst {
	t.Helper()
	pub, priv, err := tasks.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return analyst{pub, priv}
}

func writeTrust(t *testing.T, roles string, keys ...analyst) string {
	t.Helper()
	var b strings.Builder
	for i, k := range keys {
		fmt.Fprintf(&b, "%s %s\n", roles, tasks.FormatPublicKey(k.pub, fmt.Sprintf("analyst-%d", i)))
	}
	path := filepath.Join(t.TempDir(), "trust")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startNode starts a node on 127.0.0.1 with a fresh data dir and closes it
// when the test ends.
func startNode(t *testing.T, host, trust string, edit func(*Config)) *Node {
	t.Helper()
	cfg := DefaultConfig(t.TempDir())
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.MDNS = false
	cfg.Host = host
	cfg.TrustFile = trust
	cfg.Labels = map[string]string{"role": "test"}
	if os.Getenv("HUNTMESH_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if edit != nil {
		edit(&cfg)
	}
	n, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start node %s: %v", host, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// waitLive waits until every node counts every other as live.
func waitLive(t *testing.T, nodes ...*Node) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range nodes {
		for len(n.LivePeers()) < len(nodes) {
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %d live nodes, want %d", n.cfg.Host, len(n.LivePeers()), len(nodes))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// threeNodes starts a hub and two spokes that know only the hub.
func threeNodes(t *testing.T, trust string, edit func(*Config)) (a, b, c *Node) {
	t.Helper()
	a = startNode(t, "node-a", trust, nil)
	spoke := func(cfg *Config) {
		cfg.Peers = a.Addrs()[:1]
		if edit != nil {
			edit(cfg)
		}
	}
	b = startNode(t, "node-b", trust, spoke)
	c = startNode(t, "node-c", trust, spoke)
	waitLive(t, a, b, c)
	return a, b, c
}

func newHunt(replyTo string, iocs ...tasks.IoC) *tasks.Hunt {
	now := time.Now().UTC()
	return &tasks.Hunt{
		Header: tasks.Header{
			ID: tasks.NewID(now), Type: tasks.TypeHunt, IssuedAt: now,
			NotAfter: now.Add(time.Minute), ReplyTo: replyTo,
		},
		Collectors: []tasks.CollectorSpec{{Name: "processes"}, {Name: "connections"}},
		IoCs:       iocs,
	}
}

func seal(t *testing.T, key ed25519.PrivateKey, h *tasks.Hunt) []byte {
	t.Helper()
	raw, err := tasks.SealTask(key, tasks.TypeHunt, h, tasks.DefaultPolicy().MaxSize)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// startStandinMiner builds the demo's stand-in miner, starts a listener for
// it on a free loopback port, and runs it under the name "miner".
func startStandinMiner(t *testing.T) (pid, port int) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "miner")
	build := exec.Command("go", "build", "-o", bin, "../demo/standin")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build stand-in miner: %v\n%s", err, out)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := lis.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	port = lis.Addr().(*net.TCPAddr).Port
	cmd := exec.Command(bin, "--url", fmt.Sprintf("stratum+tcp://127.0.0.1:%d", port), "--donate-level", "1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	select {
	case c := <-accepted:
		t.Cleanup(func() { c.Close() })
	case <-time.After(20 * time.Second):
		t.Fatal("stand-in miner never connected")
	}
	return cmd.Process.Pid, port
}

func TestHuntAcrossThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes and a process")
	}
	who := newAnalyst(t)
	trust := writeTrust(t, "hunt", who)
	web := "../testdata/cryptominer/web-01"
	a, b, c := threeNodes(t, trust, func(cfg *Config) {
		// The spokes stand for other hosts: they answer from a saved clean
		// host, so only node-a, on this real host, sees the miner.
		cfg.ReplayProcesses = web + "/processes.json"
		cfg.ReplayConnections = web + "/connections.json"
	})
	pid, port := startStandinMiner(t)

	// Issue from a spoke, so results travel back through the hub's links.
	h := newHunt(c.ID(),
		tasks.IoC{Type: tasks.IoCProcess, Value: "miner", Severity: "high"},
		tasks.IoC{Type: tasks.IoCPort, Value: fmt.Sprint(port), Severity: "high"})
	raw := seal(t, who.priv, h)
	expected := c.LivePeers()
	if _, err := c.IssueTask(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	got := map[string]*tasks.Result{}
	var dets []tasks.Detection
	comp := c.Await(context.Background(), h.ID, expected, 60*time.Second, func(r *tasks.Result) {
		dets = append(dets, r.Detections...)
		if r.Final {
			got[r.Host] = r
		}
	})

	if comp.Answered != 3 || comp.Expected != 3 || len(comp.Silent) != 0 {
		t.Fatalf("completeness %+v", comp)
	}
	for _, host := range []string{"node-b", "node-c"} {
		r := got[host]
		if r == nil || r.Status != tasks.StatusFinished || r.TotalDetections != 0 || r.TotalRecords == 0 {
			t.Errorf("%s answered %+v, want a clean finished result with records", host, r)
		}
	}
	if r := got["node-a"]; r == nil || r.TotalDetections == 0 {
		t.Fatalf("node-a answered %+v, want detections", r)
	}
	var sawProcess, sawConn bool
	for _, d := range dets {
		if d.Host != "node-a" {
			t.Errorf("detection on %s: %+v", d.Host, d)
		}
		p, _ := d.Record.Int("pid")
		switch {
		case d.Record.Kind == tasks.KindProcess && d.IoCType == tasks.IoCProcess && p == int64(pid):
			sawProcess = true
			if !strings.Contains(d.Record.Str("cmdline"), "stratum+tcp://") {
				t.Errorf("process record lacks the command line: %+v", d.Record)
			}
		case d.Record.Kind == tasks.KindConnection && d.IoCType == tasks.IoCPort && p == int64(pid):
			sawConn = true
		}
	}
	if !sawProcess || !sawConn {
		t.Fatalf("want the miner's process and connection detected (pid %d), got %+v", pid, dets)
	}

	// The hub did not issue the task: it must not hold others' answers,
	// but it keeps its own, and so does every node.
	for _, n := range []*Node{a, b} {
		rs, err := n.Store().Results(h.ID)
		if err != nil || len(rs) == 0 || rs[0].Node != n.ID() {
			t.Errorf("%s stored results %+v, %v; want its own answer only", n.cfg.Host, rs, err)
		}
	}
}

func TestNodeRefusesBadTasks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nodes")
	}
	who := newAnalyst(t)
	stranger := newAnalyst(t)
	trust := writeTrust(t, "hunt", who)
	target := startNode(t, "target", trust, nil)

	// The attacker is a bare mesh that validates nothing, so every bad
	// task reaches the target's own validator.
	attacker := newAttacker(t, target)

	valid := newHunt(target.ID())
	validRaw := seal(t, who.priv, valid)
	expired := newHunt(target.ID())
	expired.IssuedAt = time.Now().Add(-2 * time.Hour)
	expired.NotAfter = time.Now().Add(-time.Hour)
	future := newHunt(target.ID())
	future.IssuedAt = time.Now().Add(time.Hour)
	future.NotAfter = future.IssuedAt.Add(time.Minute)
	forged := seal(t, who.priv, newHunt(target.ID()))
	forged[len(forged)-3] ^= 0x20

	cases := []struct {
		name   string
		raw    []byte
		reason string
	}{
		{"valid first", validRaw, ""},
		{"forged", forged, "bad-signature"},
		{"untrusted", seal(t, stranger.priv, newHunt(target.ID())), "untrusted"},
		{"expired", seal(t, who.priv, expired), "expired"},
		{"not yet valid", seal(t, who.priv, future), "not-yet-valid"},
		{"garbage", []byte("not an envelope at all"), "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			counter := "refused/" + tc.reason
			before := target.Counters()[counter]
			if tc.reason == "" {
				done, stop := target.watch(valid.ID)
				defer stop()
				publish(t, attacker, tc.raw)
				select {
				case <-done:
				case <-time.After(30 * time.Second):
					t.Fatal("valid task was not answered")
				}
				return
			}
			publish(t, attacker, tc.raw)
			waitCounter(t, target, counter, before+1)
		})
	}

	// Gossip drops a repeat of the same bytes in its seen-cache, so a
	// replay that reaches the validator is one sent after that cache
	// forgot it (minutes later, or after a restart): call it directly.
	if err := target.validateTask(attacker.ID(), validRaw); !errors.Is(err, tasks.ErrReplay) {
		t.Fatalf("replayed task: %v, want ErrReplay", err)
	}
	if target.Counters()["refused/replay"] != 1 {
		t.Fatalf("replay not counted: %v", target.Counters())
	}

	// After all that, the node still serves.
	h := newHunt(target.ID(), tasks.IoC{Type: tasks.IoCProcess, Value: "no-such-process"})
	if _, err := target.IssueTask(context.Background(), seal(t, who.priv, h)); err != nil {
		t.Fatalf("node stopped serving after bad input: %v", err)
	}
}

func newAttacker(t *testing.T, target *Node) *mesh.Mesh {
	t.Helper()
	cfg := mesh.DefaultConfig()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.StaticPeers = target.Addrs()[:1]
	m, err := mesh.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.Join(TopicTasks, func(string, []byte) error { return nil }, func(string, []byte) {}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for m.TopicPeers(TopicTasks) == 0 || target.mesh.TopicPeers(TopicTasks) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("attacker never joined the task topic mesh")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return m
}

func publish(t *testing.T, m *mesh.Mesh, raw []byte) {
	t.Helper()
	if err := m.Publish(context.Background(), TopicTasks, raw); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func waitCounter(t *testing.T, n *Node, name string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for n.Counters()[name] < want {
		if time.Now().After(deadline) {
			t.Fatalf("counter %s = %d, want %d (all: %v)", name, n.Counters()[name], want, n.Counters())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNodeRefusesUnaskedResults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nodes")
	}
	issuer := startNode(t, "issuer", "", nil)
	attacker := newAttacker(t, issuer)
	key := attacker.SigningKey()

	cases := []struct {
		name    string
		result  tasks.Result
		key     ed25519.PrivateKey
		counter string
	}{
		{"task never issued", tasks.Result{TaskID: "01NOSUCHTASK", Node: attacker.ID(), Final: true},
			key, "result-refused/not-ours"},
		{"claims another node", tasks.Result{TaskID: "01NOSUCHTASK", Node: issuer.ID(), Final: true},
			key, "result-refused/signer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := tasks.SealResult(tc.key, &tc.result)
			if err != nil {
				t.Fatal(err)
			}
			_, err = attacker.Call(context.Background(), issuer.ID(), ProtoResults, raw)
			if err == nil {
				t.Fatal("unasked result was accepted")
			}
			waitCounter(t, issuer, tc.counter, 1)
		})
	}
	t.Run("garbage", func(t *testing.T) {
		if _, err := attacker.Call(context.Background(), issuer.ID(), ProtoResults, []byte("junk")); err == nil {
			t.Fatal("junk result was accepted")
		}
		waitCounter(t, issuer, "result-refused/malformed", 1)
	})
}

func TestResultsSurviveRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nodes")
	}
	who := newAnalyst(t)
	trust := writeTrust(t, "hunt", who)
	dir := t.TempDir()
	edit := func(cfg *Config) { cfg.DataDir = dir }
	n := startNode(t, "solo", trust, edit)
	id := n.ID()

	h := newHunt(n.ID(), tasks.IoC{Type: tasks.IoCProcess, Value: "no-such-process"})
	if _, err := n.IssueTask(context.Background(), seal(t, who.priv, h)); err != nil {
		t.Fatal(err)
	}
	comp := n.Await(context.Background(), h.ID, n.LivePeers(), 30*time.Second, func(*tasks.Result) {})
	if comp.Answered != 1 {
		t.Fatalf("completeness %+v", comp)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	again := startNode(t, "solo", trust, edit)
	if again.ID() != id {
		t.Fatalf("identity changed across restart: %s then %s", id, again.ID())
	}
	rs, err := again.Store().Results(h.ID)
	if err != nil || len(rs) != 1 || rs[0].Status != tasks.StatusFinished || rs[0].TotalRecords == 0 {
		t.Fatalf("results after restart: %+v, %v", rs, err)
	}
	seen, err := again.Store().Seen(h.ID)
	if err != nil || !seen {
		t.Fatalf("task not remembered as seen after restart: %v", err)
	}
}

func TestControlSocketBadRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	n := startNode(t, "ctl", "", nil)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- n.ServeControl(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-served
	})
	var client *Client
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if client, err = Dial(n.cfg.DataDir); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	info, err := os.Stat(SocketPath(n.cfg.DataDir))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("control socket mode %v, %v; want 0600", info.Mode().Perm(), err)
	}

	raw := func(line string) string {
		conn, err := net.Dial("unix", SocketPath(n.cfg.DataDir))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintln(conn, line)
		buf := make([]byte, 4096)
		k, _ := conn.Read(buf)
		return string(buf[:k])
	}
	for name, line := range map[string]string{
		"not json":   "{{{",
		"unknown op": `{"op":"format-disk"}`,
		"bad task":   `{"op":"hunt","envelope":"aGVsbG8="}`,
		"no task id": `{"op":"results"}`,
	} {
		t.Run(name, func(t *testing.T) {
			if got := raw(line); !strings.Contains(got, `"error"`) {
				t.Fatalf("response %q, want an error", got)
			}
		})
	}
	err = client.Call(ctx, Request{Op: "results", TaskID: "01UNKNOWN"}, func(Response) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "no task") {
		t.Fatalf("results of an unknown task: %v", err)
	}
	if _, err := client.Info(ctx); err != nil {
		t.Fatalf("node stopped serving after bad requests: %v", err)
	}
}
