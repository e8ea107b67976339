package node

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/load"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/mesh"
	"github.com/huntmesh/huntmesh/store"
	"github.com/huntmesh/huntmesh/tasks"
)

// Wire names of the node's topics and protocols.
const (
	TopicTasks     = "/huntmesh/tasks/1"
	ProtoResults   = "/huntmesh/results/1"
	Version        = "0.1.0"
	resultMaxBytes = 4 << 20
)

// Node is one running huntmesh daemon.
type Node struct {
	cfg     Config
	log     *slog.Logger
	mesh    *mesh.Mesh
	store   *store.Store
	trust   *tasks.Trust
	reg     *collectors.Registry
	started time.Time
	key     ed25519.PrivateKey

	// slots bounds how many hunts run at once, and querySlots how many
	// queries: a query reads the store for milliseconds and should not
	// wait behind a long file scan.
	slots      chan struct{}
	querySlots chan struct{}

	// wg tracks task goroutines so Close can wait for them.
	wg sync.WaitGroup

	// ctx ends when the node closes; task runs derive from it.
	ctx    context.Context
	cancel context.CancelFunc

	mu sync.Mutex
	// watchers receive results for tasks this node issued, per task ID.
	watchers map[string][]chan *tasks.Result
	// running holds cancel functions of tasks running here, per task ID.
	running map[string]context.CancelFunc
	// counters count refusals and other events by name.
	counters map[string]uint64
	// cancelled holds the reason of every task cancelled here, by base ID,
	// until its deadline (cancel.go).
	cancelled map[string]cancelMark
	// receipts hold the last receipt of each node, per task this node
	// issued, until the task's deadline (cancel.go).
	receipts map[string]map[string]receipt
	// pulls marks the answers being pulled in pages, by task and node
	// (results.go).
	pulls map[string]bool

	// chainLim rate limits chained rules (chain.go); it has its own lock.
	chainLim chainLimits

	// nice holds the niceness running hunts asked for (priority_linux.go).
	nice niceHolds

	// intel is the shared IoC set and its sync (intel.go).
	intel *intelNode

	closeOnce sync.Once
	closeErr  error
}

// New starts a node: it opens the store, starts the mesh and joins the
// task topic. Call Close to stop it.
func New(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	log := cfg.Logger

	trust, err := loadTrust(cfg.TrustFile)
	if err != nil {
		return nil, err
	}
	if trust.Len() == 0 {
		log.Warn("no trusted analyst keys: this node will refuse every task", "trust_file", cfg.TrustFile)
	}

	scfg := store.DefaultConfig(cfg.DataDir + "/store")
	scfg.Logger = log
	if cfg.Sim.InMemory {
		scfg.Dir, scfg.InMemory = "", true
	}
	st, err := store.Open(scfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}

	n := &Node{
		cfg:        cfg,
		log:        log,
		store:      st,
		trust:      trust,
		reg:        defaultRegistry(),
		started:    time.Now(),
		slots:      make(chan struct{}, cfg.Concurrency),
		querySlots: make(chan struct{}, queryConcurrency),
		watchers:   map[string][]chan *tasks.Result{},
		running:    map[string]context.CancelFunc{},
		counters:   map[string]uint64{},

		cancelled: map[string]cancelMark{},
		receipts:  map[string]map[string]receipt{},
		pulls:     map[string]bool{},
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())

	mcfg := mesh.DefaultConfig()
	mcfg.DataDir = cfg.DataDir
	mcfg.ListenAddrs = cfg.Listen
	mcfg.StaticPeers = cfg.Peers
	mcfg.MDNS = cfg.MDNS
	mcfg.PSK = cfg.PSK
	mcfg.MaxMessageSize = cfg.Policy.MaxSize
	mcfg.Logger = log
	mcfg.Presence = n.presence
	m, err := cfg.Sim.newMesh(ctx, mcfg)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("start mesh: %w", err)
	}
	n.mesh = m
	n.key = m.SigningKey()
	n.log = log.With("node", shortID(m.ID()))

	m.Handle(ProtoResults, n.handleResult)
	m.Handle(ProtoPage, n.servePage)
	m.Handle(ProtoTaskSync, n.serveTaskSync)
	if err := m.Join(TopicTasks, n.validateTask, n.handleTask); err != nil {
		n.Close()
		return nil, fmt.Errorf("join task topic: %w", err)
	}
	if err := n.startIntel(); err != nil {
		n.Close()
		return nil, fmt.Errorf("start intel: %w", err)
	}
	n.reportInterrupted()
	m.OnConnect(n.pullOnConnect("task catch-up", n.pullTasks))
	n.startPullLoop("task catch-up", cmp.Or(cfg.TaskSyncInterval, DefaultTaskSyncInterval),
		n.pullTasks)
	n.log.Info("node started", "host", cfg.Host, "addrs", m.Addrs(), "labels", cfg.Labels,
		"trusted_keys", trust.Len())
	return n, nil
}

func loadTrust(path string) (*tasks.Trust, error) {
	if path == "" {
		return &tasks.Trust{}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open trust file: %w", err)
	}
	defer f.Close()
	t, err := tasks.ParseTrust(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ID is the node's peer ID.
func (n *Node) ID() string { return n.mesh.ID() }

// Addrs are the node's full listen multiaddrs.
func (n *Node) Addrs() []string { return n.mesh.Addrs() }

// Store gives tests and the control API read access to the evidence.
func (n *Node) Store() *store.Store { return n.store }

// Info describes the node for selectors and the CLI.
func (n *Node) Info() tasks.NodeInfo {
	return tasks.NodeInfo{ID: n.mesh.ID(), Host: n.cfg.Host, Labels: n.cfg.Labels}
}

// Close stops the node: running tasks are cancelled, the mesh and the
// store are closed. It is safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel()
		n.wg.Wait()
		var errs []error
		if n.mesh != nil {
			errs = append(errs, n.mesh.Close())
		}
		errs = append(errs, n.store.Close())
		n.closeErr = errors.Join(errs...)
		n.log.Info("node stopped")
	})
	return n.closeErr
}

// count increments a named counter.
func (n *Node) count(name string) {
	n.mu.Lock()
	n.counters[name]++
	n.mu.Unlock()
}

// Counters returns a copy of the node's counters merged with the mesh's.
func (n *Node) Counters() map[string]uint64 {
	n.mu.Lock()
	out := make(map[string]uint64, len(n.counters))
	for k, v := range n.counters {
		out[k] = v
	}
	n.mu.Unlock()
	for k, v := range n.mesh.Counters() {
		out["mesh/"+k] = v
	}
	return out
}

// presenceInfo is what a node announces about itself on the mesh.
type presenceInfo struct {
	Host    string            `json:"host"`
	Labels  map[string]string `json:"labels,omitempty"`
	Version string            `json:"version"`
	Started time.Time         `json:"started"`

	// Load is the host's one-minute load average; Tasks counts the tasks
	// running on the node. An analyst reads them before sending a heavy hunt.
	Load  float64 `json:"load,omitempty"`
	Tasks int     `json:"tasks,omitempty"`
}

func (n *Node) presence() []byte {
	info := presenceInfo{
		Host:    n.cfg.Host,
		Labels:  n.cfg.Labels,
		Version: Version,
		Started: n.started,
	}
	if avg, err := load.Avg(); err == nil {
		info.Load = math.Round(avg.Load1*100) / 100
	}
	n.mu.Lock()
	info.Tasks = len(n.running)
	n.mu.Unlock()
	b, _ := json.Marshal(info)
	return b
}

// Membership states of a peer, by the time since its last presence.
const (
	PeerLive   = "live"   // announced within SilentAfter, or connected
	PeerSilent = "silent" // quiet for SilentAfter: tasks still count it
	PeerGone   = "gone"   // quiet for GoneAfter: kept for the record only
)

// PeerView is a peer as the node sees it.
type PeerView struct {
	ID        string            `json:"id"`
	Host      string            `json:"host"`
	Labels    map[string]string `json:"labels,omitempty"`
	Version   string            `json:"version,omitempty"`
	Addrs     []string          `json:"addrs,omitempty"`
	LastSeen  time.Time         `json:"last_seen"`
	Connected bool              `json:"connected"`
	Live      bool              `json:"live"`

	// State is PeerLive, PeerSilent or PeerGone.
	State string `json:"state"`

	// Started, Load and Tasks are what the peer last announced.
	Started time.Time `json:"started,omitzero"`
	Load    float64   `json:"load,omitempty"`
	Tasks   int       `json:"tasks,omitempty"`
}

// Peers lists the peers the node knows, with what they announced and
// their membership state.
func (n *Node) Peers() []PeerView {
	now := time.Now()
	var out []PeerView
	for _, p := range n.mesh.Peers() {
		v := PeerView{ID: p.ID, Addrs: p.Addrs, LastSeen: p.LastSeen, Connected: p.Connected}
		var info presenceInfo
		if len(p.Presence) > 0 && json.Unmarshal(p.Presence, &info) == nil {
			v.Host, v.Labels, v.Version = info.Host, info.Labels, info.Version
			v.Started, v.Load, v.Tasks = info.Started, info.Load, info.Tasks
		}
		quiet := now.Sub(p.LastSeen)
		v.Live = v.Host != "" && (p.Connected || quiet < n.cfg.SilentAfter)
		switch {
		case v.Live:
			v.State = PeerLive
		case p.LastSeen.IsZero() || quiet >= n.cfg.GoneAfter:
			v.State = PeerGone
		default:
			v.State = PeerSilent
		}
		out = append(out, v)
	}
	return out
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[len(id)-8:]
	}
	return id
}
