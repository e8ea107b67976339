package mesh

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// Errors callers may branch on.
var (
	// ErrTooLarge reports a message or stream body over the configured cap.
	ErrTooLarge = errors.New("message too large")

	// ErrIgnore, returned by a topic validator, drops a message silently
	// without penalising the peer that forwarded it.
	ErrIgnore = errors.New("ignore message")

	// ErrClosed reports use of a Mesh after Close.
	ErrClosed = errors.New("mesh closed")

	// ErrNotJoined reports a publish to a topic the mesh has not joined.
	ErrNotJoined = errors.New("topic not joined")

	// ErrNoHandler reports a call on a protocol the peer does not serve.
	ErrNoHandler = errors.New("no handler for protocol")
)

// mdnsService is the mDNS service name huntmesh nodes look for.
const mdnsService = "huntmesh"

// Mesh is one node's presence on the network. Create it with New and stop it
// with Close.
type Mesh struct {
	cfg    Config
	log    *slog.Logger
	key    crypto.PrivKey
	host   host.Host
	ps     *pubsub.PubSub
	mdns   mdns.Service
	cancel context.CancelFunc
	ctx    context.Context
	wg     sync.WaitGroup // every goroutine the mesh starts
	once   sync.Once

	// stats counts drops and traffic; it has its own lock.
	stats *counters

	// tracer follows gossipsub's mesh per topic.
	tracer *meshTracer

	// limits holds per-originator token buckets for incoming messages.
	limits *limiter

	// presenceKick asks the presence loop to announce now.
	presenceKick chan struct{}

	// dialKick asks the dialer loop to look at its targets now.
	dialKick chan struct{}

	// psExtra are gossipsub options added by NewWithHost (see inject.go).
	psExtra []pubsub.Option

	mu sync.Mutex
	// Fields below are guarded by mu.
	closed   bool
	topics   map[string]*joined       // by topic name
	handlers map[string]streamHandler // by protocol ID
	hooks    []func(peer string)      // OnConnect callbacks
	conns    map[peer.ID]int          // open connections per peer
	view     map[peer.ID]*member      // presence view, excluding self
	targets  map[peer.ID]*dialTarget  // peers to keep connected
}

// New starts a libp2p host, gossipsub and the mesh's background loops, then
// returns at once: static and remembered peers are dialled in the
// background. It fails early if ctx is already done. The mesh runs until
// Close.
func New(ctx context.Context, cfg Config) (*Mesh, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start mesh: %w", err)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}

	key, err := loadIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}

	// Build the host, keeping it from ever dialling the public internet on
	// its own: no relay service, no NAT port mapping, no DHT.
	listen := cfg.ListenAddrs
	if len(cfg.PSK) > 0 {
		listen = withoutQUIC(cfg.ListenAddrs)
		if len(listen) < len(cfg.ListenAddrs) {
			log.Info("private network: QUIC listen addresses dropped",
				"dropped", len(cfg.ListenAddrs)-len(listen))
		}
		if len(listen) == 0 {
			return nil, fmt.Errorf("%w: ListenAddrs: no TCP address left for a private network",
				errConfig)
		}
	}
	cm, err := connmgr.NewConnManager(64, 192, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("create connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(listen...),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent("huntmesh"),
		libp2p.DisableMetrics(),
	}
	if len(cfg.PSK) > 0 {
		opts = append(opts, libp2p.PrivateNetwork(pnet.PSK(cfg.PSK)))
	} else {
		opts = append(opts, libp2p.Transport(libp2pquic.NewTransport))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("start host: %w", err)
	}
	return startOn(cfg, log, key, h, nil)
}

// startOn builds a Mesh around a running host and starts it; extra options
// are appended to gossipsub's. The Mesh owns h from here on.
func startOn(cfg Config, log *slog.Logger, key crypto.PrivKey, h host.Host,
	extra []pubsub.Option) (*Mesh, error) {
	runCtx, cancel := context.WithCancel(context.Background())
	stats := newCounters()
	m := &Mesh{
		cfg:          cfg,
		log:          log.With("node", h.ID().String()),
		key:          key,
		host:         h,
		ctx:          runCtx,
		cancel:       cancel,
		stats:        stats,
		tracer:       newMeshTracer(stats),
		limits:       newLimiter(cfg.TopicRate, cfg.TopicBurst),
		presenceKick: make(chan struct{}, 1),
		dialKick:     make(chan struct{}, 1),
		topics:       make(map[string]*joined),
		handlers:     make(map[string]streamHandler),
		conns:        make(map[peer.ID]int),
		view:         make(map[peer.ID]*member),
		targets:      make(map[peer.ID]*dialTarget),
		psExtra:      extra,
	}
	if err := m.start(); err != nil {
		m.Close()
		return nil, err
	}
	m.log.Info("mesh started", "addrs", strings.Join(m.Addrs(), ","))
	return m, nil
}

// start brings up gossipsub, presence, discovery and the dialer.
func (m *Mesh) start() error {
	ps, err := pubsub.NewGossipSub(m.ctx, m.host, append([]pubsub.Option{
		pubsub.WithLogger(m.log.With("component", "gossipsub")),
		pubsub.WithPeerExchange(true),
		pubsub.WithPeerScore(scoreParams(), scoreThresholds()),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithMaxMessageSize(maxGossipSize + gossipOverhead),
		// Our own messages (hunts, cancels) are rare and matter: send them to
		// every topic peer at once rather than only to the mesh, which is
		// empty until the first heartbeat after a peer joins.
		pubsub.WithFloodPublish(true),
		pubsub.WithRawTracer(m.tracer),
		// Room for a burst (a healed partition, a fleet restarting): with
		// gossipsub's 32, a burst of presence filled the validation queue and
		// a hunt arriving then was refused at the first hop.
		pubsub.WithValidateQueueSize(256),
		pubsub.WithPeerOutboundQueueSize(256),
	}, m.psExtra...)...)
	if err != nil {
		return fmt.Errorf("start gossipsub: %w", err)
	}
	m.ps = ps

	// Track connections before anything dials out.
	m.host.Network().Notify(&network.NotifyBundle{
		ConnectedF:    m.onConnected,
		DisconnectedF: m.onDisconnected,
	})

	if err := m.startPresence(); err != nil {
		return err
	}

	// Static peers and the peers remembered from the last run.
	for _, a := range m.cfg.StaticPeers {
		info, err := parsePeerAddr(a)
		if err != nil {
			return fmt.Errorf("static peer %q: %w", a, err)
		}
		m.addTarget(*info, true)
	}
	for _, info := range m.loadKnownPeers() {
		m.addTarget(info, false)
	}
	m.wg.Add(1)
	go m.dialLoop()

	if m.cfg.MDNS {
		m.mdns = mdns.NewMdnsService(m.host, mdnsService, mdnsNotifee{m})
		if err := m.mdns.Start(); err != nil {
			return fmt.Errorf("start mdns: %w", err)
		}
	}
	return nil
}

// ID returns this node's peer ID.
func (m *Mesh) ID() string { return m.host.ID().String() }

// Addrs returns the addresses peers can dial, each ending in /p2p/ID.
func (m *Mesh) Addrs() []string {
	suffix := "/p2p/" + m.host.ID().String()
	var out []string
	for _, a := range m.host.Addrs() {
		out = append(out, a.String()+suffix)
	}
	return out
}

// SigningKey returns the node identity as a raw ed25519 private key, for
// signing results that peers verify against the sender's peer ID.
func (m *Mesh) SigningKey() ed25519.PrivateKey {
	raw, err := m.key.Raw()
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		// loadIdentity only yields ed25519 keys, whose Raw never fails.
		return nil
	}
	return ed25519.PrivateKey(raw)
}

// Connect dials a peer given a multiaddr ending in /p2p/ID and waits for the
// connection or ctx.
func (m *Mesh) Connect(ctx context.Context, addr string) error {
	info, err := parsePeerAddr(addr)
	if err != nil {
		return fmt.Errorf("connect %q: %w", addr, err)
	}
	if m.isClosed() {
		return ErrClosed
	}
	if err := m.host.Connect(ctx, *info); err != nil {
		return fmt.Errorf("connect %s: %w", info.ID, err)
	}
	return nil
}

// OnConnect registers fn to run, in its own goroutine, each time a peer goes
// from no connection to one. Use it for anti-entropy and catch-up.
func (m *Mesh) OnConnect(fn func(peer string)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hooks = append(m.hooks, fn)
}

// Counters returns a snapshot of the mesh's counters, such as
// "drop/<topic>/<reason>" (too-large, rate-limit, rejected, ignored),
// "refused/<topic>/too-large", "publish/<topic>", "deliver/<topic>",
// "call/in/<proto>", "call/out/<proto>" and "call/fail/<proto>".
func (m *Mesh) Counters() map[string]uint64 { return m.stats.snapshot() }

// Close stops discovery, gossip, streams and the host, saves the known
// peers, and waits for every goroutine the mesh started. It is safe to call
// more than once; later calls return nil.
func (m *Mesh) Close() error {
	var err error
	m.once.Do(func() {
		m.mu.Lock()
		m.closed = true
		topics := make([]*joined, 0, len(m.topics))
		for _, j := range m.topics {
			topics = append(topics, j)
		}
		m.mu.Unlock()

		// Remember who we knew while the peerstore is still there.
		m.saveKnownPeers()

		m.cancel()
		if m.mdns != nil {
			err = errors.Join(err, m.mdns.Close())
		}
		for _, j := range topics {
			j.close()
		}
		err = errors.Join(err, m.host.Close())
		m.wg.Wait()
		m.log.Info("mesh stopped")
	})
	if err != nil {
		return fmt.Errorf("close mesh: %w", err)
	}
	return nil
}

// isClosed reports whether Close has begun.
func (m *Mesh) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// onConnected counts connections and, on a peer's first, kicks presence and
// runs the OnConnect hooks. It is called synchronously by the swarm.
func (m *Mesh) onConnected(_ network.Network, c network.Conn) {
	p := c.RemotePeer()
	m.mu.Lock()
	m.conns[p]++
	first := m.conns[p] == 1 && !m.closed
	hooks := append([]func(string){}, m.hooks...)
	if t := m.targets[p]; t != nil {
		t.connected()
	}
	m.mu.Unlock()
	if !first {
		return
	}
	m.log.Debug("peer connected", "peer", p.String())
	m.kickPresenceFor(p)
	for _, fn := range hooks {
		m.goHook(fn, p.String())
	}
}

// goHook runs one OnConnect hook in a tracked goroutine.
func (m *Mesh) goHook(fn func(string), p string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		fn(p)
	}()
}

// onDisconnected forgets a closed connection and wakes the dialer.
func (m *Mesh) onDisconnected(_ network.Network, c network.Conn) {
	p := c.RemotePeer()
	m.mu.Lock()
	m.conns[p]--
	last := m.conns[p] <= 0
	if last {
		delete(m.conns, p)
	}
	m.mu.Unlock()
	if last {
		m.log.Debug("peer disconnected", "peer", p.String())
		kick(m.dialKick)
	}
}

// kick wakes a loop without blocking; a pending wake-up is enough.
func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// parsePeerAddr parses a multiaddr that must end in /p2p/ID.
func parsePeerAddr(s string) (*peer.AddrInfo, error) {
	addr, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, err
	}
	info, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("want a multiaddr ending in /p2p/ID: %w", err)
	}
	return info, nil
}

// withoutQUIC drops UDP-based listen addresses.
func withoutQUIC(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		if strings.Contains(a, "/quic") || strings.Contains(a, "/udp/") {
			continue
		}
		out = append(out, a)
	}
	return out
}

// mdnsNotifee connects to peers found on the LAN.
type mdnsNotifee struct{ m *Mesh }

// HandlePeerFound implements mdns.Notifee; mdns calls it in its own goroutine.
func (n mdnsNotifee) HandlePeerFound(info peer.AddrInfo) {
	if info.ID == n.m.host.ID() || n.m.isClosed() {
		return
	}
	ctx, cancel := context.WithTimeout(n.m.ctx, 10*time.Second)
	defer cancel()
	if err := n.m.host.Connect(ctx, info); err != nil {
		n.m.log.Debug("mdns dial failed", "peer", info.ID.String(), "err", err)
	}
}

// counters is a small set of named monotonic counters.
type counters struct {
	mu sync.Mutex
	n  map[string]uint64 // guarded by mu
}

func newCounters() *counters { return &counters{n: make(map[string]uint64)} }

// add increments counter name by one.
func (c *counters) add(name string) {
	c.mu.Lock()
	c.n[name]++
	c.mu.Unlock()
}

// snapshot copies the counters.
func (c *counters) snapshot() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// connectedTo reports whether this node has a connection to peer id.
func (m *Mesh) connectedTo(id string) bool {
	pid, err := peer.Decode(id)
	if err != nil {
		return false
	}
	return m.host.Network().Connectedness(pid) == network.Connected
}
