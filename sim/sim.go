package sim

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/huntmesh/huntmesh/mesh"
	"github.com/huntmesh/huntmesh/node"
	"github.com/huntmesh/huntmesh/tasks"
)

// Sim is a running simulated mesh. Create it with New and stop it with
// Close. Its methods are safe for concurrent use.
type Sim struct {
	cfg     Config
	log     *slog.Logger
	nodeLog *slog.Logger
	mn      mocknet.Mocknet
	dir     string // trust file, snapshots and node data dirs
	analyst ed25519.PrivateKey
	trust   string
	scen    *scenario

	// Startup cost, measured once by New.
	heapPerNode  uint64
	startup      time.Duration
	goroutinesPN int
	startTraffic Traffic

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the link-conditions loop

	mu sync.Mutex
	// Fields below are guarded by mu.
	rng   *rand.Rand
	nodes []*Node      // by index; an index is never reused
	links []*linkState // every link ever made, cut ones included
	cut   map[*linkState]bool
	group map[*Node]int            // partition group while partitioned, else nil
	gates map[string]chan struct{} // task ID → closed when its work may run
}

// Node is one simulated node.
type Node struct {
	// Index is the node's position in start order.
	Index int
	// Name is the node's host name: a scenario host's, or node-NNNN.
	Name string

	node    *node.Node
	host    host.Host
	traffic *traffic

	mu sync.Mutex
	// Fields below are guarded by mu.
	up      bool
	arrived map[string]time.Time // task ID → first arrival at the handler
}

// ID is the node's peer ID.
func (n *Node) ID() string { return n.host.ID().String() }

// Up reports whether the node is running.
func (n *Node) Up() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.up
}

// Node gives access to the real node, for tests and scenarios.
func (n *Node) Node() *node.Node { return n.node }

// arrivedAt returns when task id reached this node's handler.
func (n *Node) arrivedAt(id string) (time.Time, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t, ok := n.arrived[id]
	return t, ok
}

// onTask is the node's SimHooks.OnTask.
func (n *Node) onTask(id, _ string) {
	now := time.Now()
	n.mu.Lock()
	if _, ok := n.arrived[id]; !ok {
		n.arrived[id] = now
	}
	n.mu.Unlock()
}

// New starts cfg.Nodes nodes, links them into a random graph and waits
// until every node has a gossip peer on the task topic. It measures the
// heap and goroutines each node costs.
func New(ctx context.Context, cfg Config) (*Sim, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "huntmesh-sim-")
	if err != nil {
		return nil, fmt.Errorf("create sim dir: %w", err)
	}
	s := &Sim{
		cfg:     cfg,
		log:     cfg.Logger,
		nodeLog: slog.New(levelFloor{cfg.Logger.Handler(), slog.LevelWarn}),
		mn:      mocknet.New(),
		dir:     dir,
		rng:     rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed)),
		cut:     map[*linkState]bool{},
		gates:   map[string]chan struct{}{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mn.SetLinkDefaults(mocknet.LinkOptions{Latency: cfg.Latency, Bandwidth: cfg.Bandwidth})
	if err := s.prepare(); err != nil {
		s.Close()
		return nil, err
	}

	// Measure what the nodes cost: heap in use after a GC, before and after.
	before := heapInUse()
	g0 := runtime.NumGoroutine()
	start := time.Now()
	// Wire the graph before any node runs: a node whose mesh starts on
	// connections it already has announces itself once or twice, where one
	// that sees its links come up one by one announces on each, and every
	// announcement reaches every node.
	hosts := make([]*Node, cfg.Nodes)
	for i := range hosts {
		if hosts[i], err = s.newHost(i); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := s.connectAll(hosts); err != nil {
		s.Close()
		return nil, err
	}
	s.log.Info("sim hosts linked", "hosts", len(hosts), "links", len(s.links),
		"dur", since(start))
	for _, sn := range hosts {
		if err := s.startNode(ctx, sn); err != nil {
			s.Close()
			return nil, err
		}
	}
	nodes := s.Nodes()
	s.log.Info("sim nodes started", "nodes", len(nodes), "dur", since(start))
	if err := s.waitMeshed(ctx, nodes); err != nil {
		s.Close()
		return nil, err
	}
	s.log.Info("sim gossip meshes formed", "dur", since(start))
	s.settle(ctx, nodes)
	s.startup = time.Since(start)
	s.startTraffic = trafficSince(nodes, nil)
	after := heapInUse()
	if after > before {
		s.heapPerNode = (after - before) / uint64(cfg.Nodes)
	}
	s.goroutinesPN = (runtime.NumGoroutine() - g0) / cfg.Nodes

	if cfg.Jitter > 0 || cfg.Loss > 0 {
		s.wg.Add(1)
		go s.conditionLinks()
	}
	s.log.Info("sim started", "nodes", cfg.Nodes, "dur", s.startup.Round(time.Millisecond),
		"heap_per_node", s.heapPerNode, "goroutines_per_node", s.goroutinesPN)
	return s, nil
}

// prepare writes the analyst's trust file and loads the scenario.
func (s *Sim) prepare() error {
	pub, priv, err := tasks.GenerateKey()
	if err != nil {
		return fmt.Errorf("generate analyst key: %w", err)
	}
	s.analyst = priv
	s.trust = filepath.Join(s.dir, "trust")
	line := "hunt,query,intel " + tasks.FormatPublicKey(pub, "sim-analyst") + "\n"
	if err := os.WriteFile(s.trust, []byte(line), 0o600); err != nil {
		return fmt.Errorf("write trust file: %w", err)
	}
	s.scen, err = loadScenario(s.cfg.Scenario, s.dir)
	return err
}

// newHost makes node i's mock host, not yet running a node.
func (s *Sim) newHost(i int) (*Node, error) {
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("node %d key: %w", i, err)
	}
	// 100::/64 is the discard-only prefix: these addresses exist only inside
	// the mock network.
	addr, err := ma.NewMultiaddr(fmt.Sprintf("/ip6/100::%x/tcp/4242", i+1))
	if err != nil {
		return nil, fmt.Errorf("node %d address: %w", i, err)
	}
	h, err := s.mn.AddPeer(sk, addr)
	if err != nil {
		return nil, fmt.Errorf("node %d mock host: %w", i, err)
	}
	return &Node{Index: i, host: h, traffic: newTraffic(), arrived: map[string]time.Time{}}, nil
}

// startNode starts a real node on sn's host and adds it to the sim.
func (s *Sim) startNode(ctx context.Context, sn *Node) error {
	i, h := sn.Index, sn.host
	addr := h.Addrs()[0]
	cfg := node.DefaultConfig(filepath.Join(s.dir, "nodes"))
	cfg.Listen = []string{addr.String()}
	cfg.MDNS = false
	cfg.TrustFile = s.trust
	cfg.Concurrency = 1
	cfg.Logger = s.nodeLog
	cfg.TaskSyncInterval = s.cfg.SyncInterval
	cfg.IntelSyncInterval = s.cfg.SyncInterval
	// A peer stays live for three announcement intervals, as with the
	// daemon's 5 s and 15 s, whatever interval the sim runs.
	cfg.SilentAfter = 3 * s.cfg.PresenceInterval
	cfg.GoneAfter = max(cfg.SilentAfter, 10*time.Minute)
	s.scen.apply(i, &cfg)
	sn.Name = cfg.Host

	gsp := pubsub.DefaultGossipSubParams()
	gsp.HeartbeatInterval = s.cfg.Heartbeat
	cfg.Sim = node.SimHooks{
		InMemory:  true,
		OnTask:    sn.onTask,
		BeforeRun: s.hold,
		NewMesh: func(ctx context.Context, mc mesh.Config) (*mesh.Mesh, error) {
			mc.PresenceInterval = s.cfg.PresenceInterval
			return mesh.NewWithHost(ctx, mc, h,
				pubsub.WithGossipSubParams(gsp), pubsub.WithRawTracer(sn.traffic),
				pubsub.WithValidateQueueSize(s.cfg.ValidateQueue),
				pubsub.WithPeerOutboundQueueSize(s.cfg.PeerQueue))
		},
	}
	n, err := node.New(ctx, cfg)
	if err != nil {
		h.Close()
		return fmt.Errorf("start node %d: %w", i, err)
	}
	sn.mu.Lock()
	sn.node, sn.up = n, true
	sn.mu.Unlock()
	if err := s.scen.seed(n, i, s.cfg.BackgroundRecords); err != nil {
		n.Close()
		return fmt.Errorf("seed node %d: %w", i, err)
	}
	s.mu.Lock()
	s.nodes = append(s.nodes, sn)
	s.mu.Unlock()
	return nil
}

// connectAll links and connects every host to its picks, a few at a time.
func (s *Sim) connectAll(nodes []*Node) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		work  = make(chan *Node)
	)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				if err := s.connect(n, nodes); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, n := range nodes {
		work <- n
	}
	close(work)
	wg.Wait()
	return first
}

// connect links n to its ring successor among peers and to Degree-1 random
// others, then dials them. The ring keeps the graph connected.
func (s *Sim) connect(n *Node, peers []*Node) error {
	var up []*Node
	for _, p := range peers {
		if p != n {
			up = append(up, p)
		}
	}
	if len(up) == 0 {
		return nil
	}
	pick := map[*Node]bool{}
	for i, p := range peers {
		if p == n {
			next := peers[(i+1)%len(peers)]
			if next != n {
				pick[next] = true
			}
		}
	}
	s.mu.Lock()
	for tries := 0; len(pick) < min(s.cfg.Degree, len(up)) && tries < 10*s.cfg.Degree; tries++ {
		pick[up[s.rng.IntN(len(up))]] = true
	}
	s.mu.Unlock()
	for p := range pick {
		if err := s.link(n, p); err != nil {
			return err
		}
	}
	return nil
}

// waitMeshed waits until every node has a peer in its gossip mesh for the
// task topic, and for a while until it has meshWant of them (or all its
// topic peers): before the heartbeats grafted them, a task spreads only by
// gossip, a heartbeat at a time.
func (s *Sim) waitMeshed(ctx context.Context, nodes []*Node) error {
	scale := time.Duration(len(nodes)) * 50 * time.Millisecond
	soft := time.Now().Add(10*time.Second + scale)
	hard := time.Now().Add(60*time.Second + scale)
	for _, n := range nodes {
		for {
			mp, tp := n.node.MeshPeers(node.TopicTasks), n.node.TopicPeers(node.TopicTasks)
			now := time.Now()
			if mp > 0 && (mp >= min(meshWant, tp) || now.After(soft)) {
				break
			}
			if now.After(hard) {
				return fmt.Errorf("node %s has %d task-topic peers and none in its mesh "+
					"after start", n.Name, tp)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// meshWant is how many mesh peers a node should have before a run: four,
// under gossipsub's Dlo of five, is enough to forward at once rather than
// wait for gossip on the next heartbeat.
const meshWant = 4

// settle waits until the start-up burst is over: every joining node
// announces its presence to all, several times as its links come up. A
// heartbeat with fewer gossip messages sent than there are nodes counts as
// quiet; two in a row end the wait, as does a minute.
func (s *Sim) settle(ctx context.Context, nodes []*Node) {
	total := func() uint64 {
		var sum uint64
		for _, n := range nodes {
			sum += n.traffic.snapshot().Msgs
		}
		return sum
	}
	deadline := time.Now().Add(time.Minute)
	last, quiet := total(), 0
	for quiet < 2 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.Heartbeat):
		}
		now := total()
		s.log.Debug("sim settling", "msgs", now-last)
		if now-last < uint64(len(nodes)) {
			quiet++
		} else {
			quiet = 0
		}
		last = now
	}
}

// hold is every node's SimHooks.BeforeRun: it blocks while the task's gate
// is shut.
func (s *Sim) hold(ctx context.Context, id string) {
	s.mu.Lock()
	gate := s.gates[id]
	s.mu.Unlock()
	if gate == nil {
		return
	}
	select {
	case <-gate:
	case <-ctx.Done():
	}
}

// shut makes the work of task id wait until release.
func (s *Sim) shut(id string) {
	s.mu.Lock()
	s.gates[id] = make(chan struct{})
	s.mu.Unlock()
}

// release lets the work of task id run.
func (s *Sim) release(id string) {
	s.mu.Lock()
	if g := s.gates[id]; g != nil {
		close(g)
		delete(s.gates, id)
	}
	s.mu.Unlock()
}

// analystPub is the analyst's public key.
func (s *Sim) analystPub() ed25519.PublicKey {
	return s.analyst.Public().(ed25519.PublicKey)
}

// Nodes returns every node started so far, running or not, in start order.
func (s *Sim) Nodes() []*Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Node(nil), s.nodes...)
}

// UpNodes returns the running nodes in start order.
func (s *Sim) UpNodes() []*Node {
	var out []*Node
	for _, n := range s.Nodes() {
		if n.Up() {
			out = append(out, n)
		}
	}
	return out
}

// Leave stops node i, as a host that crashes or is switched off.
func (s *Sim) Leave(i int) error {
	s.mu.Lock()
	if i < 0 || i >= len(s.nodes) {
		s.mu.Unlock()
		return fmt.Errorf("leave: no node %d", i)
	}
	n := s.nodes[i]
	s.mu.Unlock()
	n.mu.Lock()
	if !n.up {
		n.mu.Unlock()
		return nil
	}
	n.up = false
	n.mu.Unlock()
	return n.node.Close()
}

// Join starts a new node and links it to Degree random running nodes.
func (s *Sim) Join(ctx context.Context) (*Node, error) {
	s.mu.Lock()
	i := len(s.nodes)
	s.mu.Unlock()
	peers := s.UpNodes()
	n, err := s.newHost(i)
	if err != nil {
		return nil, err
	}
	if err := s.startNode(ctx, n); err != nil {
		return nil, err
	}
	pick := map[*Node]bool{}
	s.mu.Lock()
	for tries := 0; len(pick) < min(s.cfg.Degree, len(peers)) && tries < 10*s.cfg.Degree; tries++ {
		pick[peers[s.rng.IntN(len(peers))]] = true
	}
	s.mu.Unlock()
	for p := range pick {
		if err := s.link(n, p); err != nil {
			return nil, err
		}
	}
	return n, s.waitMeshed(ctx, []*Node{n})
}

// Close stops every node and the mock network and removes the sim's files.
// It is safe to call more than once.
func (s *Sim) Close() error {
	s.cancel()
	s.wg.Wait()
	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, n := range s.Nodes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Leave(n.Index); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	errs = append(errs, s.mn.Close())
	if s.dir != "" {
		errs = append(errs, os.RemoveAll(s.dir))
	}
	return errors.Join(errs...)
}

// peerOf returns the node with peer ID id.
func (s *Sim) peerOf(id peer.ID) *Node {
	for _, n := range s.Nodes() {
		if n.host.ID() == id {
			return n
		}
	}
	return nil
}

// since is the time since t, rounded for logs.
func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

// heapInUse returns the heap in use after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// levelFloor passes records at or above min to the inner handler.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

// Enabled implements slog.Handler.
func (l levelFloor) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.min && l.Handler.Enabled(ctx, lv)
}

// WithAttrs implements slog.Handler. Gossipsub's own logs are raised to
// Error: mock hosts have no connection manager, so gossipsub warns on every
// message that it cannot bump a peer's tag.
func (l levelFloor) WithAttrs(a []slog.Attr) slog.Handler {
	lv := l.min
	for _, at := range a {
		if at.Key == "component" && at.Value.String() == "gossipsub" {
			lv = max(lv, slog.LevelError)
		}
	}
	return levelFloor{l.Handler.WithAttrs(a), lv}
}

// WithGroup implements slog.Handler.
func (l levelFloor) WithGroup(name string) slog.Handler {
	return levelFloor{l.Handler.WithGroup(name), l.min}
}
