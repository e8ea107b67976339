package mesh

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
)

// PresenceTopic is the gossipsub topic on which nodes announce themselves.
const PresenceTopic = "/huntmesh/presence/1"

// maxPresenceAddrs bounds the addresses one announcement may carry.
const maxPresenceAddrs = 16

// maxViewPeers bounds the presence view, so that a peer minting identities
// cannot grow it without end; the longest-silent member makes room.
const maxViewPeers = 4096

// presenceMsg is the wire form of one announcement. Gossipsub signs it with
// the originator's key, so From is never part of the payload.
type presenceMsg struct {
	Seq   int64    `json:"seq"`   // sender's clock in ns; older ones are ignored
	Addrs []string `json:"addrs"` // where the sender listens
	Data  []byte   `json:"data"`  // the node's opaque presence bytes
}

// member is what the view knows of one peer.
type member struct {
	seq       int64
	data      []byte
	addrs     []string
	firstSeen time.Time
	lastSeen  time.Time
}

// Peer is one entry of the membership view.
type Peer struct {
	// ID is the peer ID.
	ID string

	// Addrs are the peer's known multiaddrs (without /p2p/ID).
	Addrs []string

	// Presence is the last presence payload the peer announced, nil if none
	// has been heard.
	Presence []byte

	// FirstSeen and LastSeen bracket the presence announcements heard; both
	// are zero for peers known only from the peerstore.
	FirstSeen time.Time
	LastSeen  time.Time

	// Connected is true while this node has a connection to the peer.
	Connected bool
}

// startPresence joins the presence topic and starts the announcer.
func (m *Mesh) startPresence() error {
	j, err := m.join(PresenceTopic, m.validatePresence, m.handlePresence, true)
	if err != nil {
		return err
	}
	m.wg.Add(2)
	go m.presenceLoop()
	go m.watchPresencePeers(j.events)
	return nil
}

// minKickGap is the least time between two announcements that kicks
// asked for: a node that sees many peers join at once (its own start, a
// healed partition) announces once for them, not once each.
const minKickGap = time.Second

// presenceLoop announces this node every PresenceInterval and when kicked.
func (m *Mesh) presenceLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.PresenceInterval)
	defer t.Stop()
	last := time.Time{}
	for {
		m.announce()
		last = time.Now()
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		case <-m.presenceKick:
			// Gather the kicks of a burst into one announcement.
			if wait := minKickGap - time.Since(last); wait > 0 {
				select {
				case <-m.ctx.Done():
					return
				case <-time.After(wait):
				}
				select {
				case <-m.presenceKick:
				default:
				}
			}
		}
	}
}

// watchPresencePeers kicks an announcement whenever a peer subscribes to
// the presence topic, which is when it can first hear us.
func (m *Mesh) watchPresencePeers(events *pubsub.TopicEventHandler) {
	defer m.wg.Done()
	for {
		ev, err := events.NextPeerEvent(m.ctx)
		if err != nil {
			return
		}
		if ev.Type == pubsub.PeerJoin {
			m.kickPresenceFor(ev.Peer)
		}
	}
}

// kickPresence asks for an announcement soon.
func (m *Mesh) kickPresence() { kick(m.presenceKick) }

// kickPresenceFor asks for an announcement soon for the sake of peer p,
// which just connected or joined the topic, unless p is a live member of
// the view: a node that has been announcing has heard us announce too. An
// announcement reaches every node, so one per new connection would cost
// the fleet N² deliveries each time every node answers one issuer.
func (m *Mesh) kickPresenceFor(p peer.ID) {
	m.mu.Lock()
	mem := m.view[p]
	known := mem != nil && time.Since(mem.lastSeen) < 3*m.cfg.PresenceInterval
	m.mu.Unlock()
	if known {
		m.stats.add("presence/kick-skipped")
		return
	}
	m.kickPresence()
}

// announce publishes this node's presence once.
func (m *Mesh) announce() {
	var data []byte
	if m.cfg.Presence != nil {
		data = m.cfg.Presence()
	}
	addrs := make([]string, 0, maxPresenceAddrs)
	for _, a := range m.host.Addrs() {
		if len(addrs) == maxPresenceAddrs {
			break
		}
		addrs = append(addrs, a.String())
	}
	raw, err := json.Marshal(presenceMsg{Seq: time.Now().UnixNano(), Addrs: addrs, Data: data})
	if err != nil {
		m.log.Error("encode presence", "err", err)
		return
	}
	err = m.Publish(m.ctx, PresenceTopic, raw)
	if err != nil && m.ctx.Err() == nil {
		m.log.Warn("announce presence", "err", err)
	}
}

// decodePresence parses and checks one announcement.
func decodePresence(raw []byte) (*presenceMsg, error) {
	var p presenceMsg
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("decode presence: %w", err)
	}
	if len(p.Addrs) > maxPresenceAddrs {
		return nil, fmt.Errorf("decode presence: %d addresses over %d",
			len(p.Addrs), maxPresenceAddrs)
	}
	for _, a := range p.Addrs {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return nil, fmt.Errorf("decode presence: address %q: %w", a, err)
		}
	}
	return &p, nil
}

// validatePresence rejects malformed announcements and ignores stale ones.
func (m *Mesh) validatePresence(from string, raw []byte) error {
	p, err := decodePresence(raw)
	if err != nil {
		return err
	}
	id, err := peer.Decode(from)
	if err != nil {
		return fmt.Errorf("presence from %q: %w", from, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.view[id]; old != nil && p.Seq <= old.seq {
		return ErrIgnore
	}
	return nil
}

// handlePresence records an accepted announcement in the view.
func (m *Mesh) handlePresence(from string, raw []byte) {
	id, err := peer.Decode(from)
	if err != nil || id == m.host.ID() {
		return
	}
	p, err := decodePresence(raw)
	if err != nil {
		return // validated already; cannot happen
	}
	now := time.Now()
	m.mu.Lock()
	mem := m.view[id]
	if mem == nil {
		if len(m.view) >= maxViewPeers {
			m.evictOldestLocked()
		}
		mem = &member{firstSeen: now}
		m.view[id] = mem
	}
	if p.Seq > mem.seq {
		mem.seq, mem.data, mem.addrs = p.Seq, p.Data, p.Addrs
	}
	mem.lastSeen = now
	m.mu.Unlock()

	// Remember where the peer says it listens, for a while, so that a node
	// heard only through gossip can still be dialled.
	var addrs []ma.Multiaddr
	for _, a := range p.Addrs {
		if addr, err := ma.NewMultiaddr(a); err == nil {
			addrs = append(addrs, addr)
		}
	}
	m.host.Peerstore().AddAddrs(id, addrs, peerstore.RecentlyConnectedAddrTTL)
}

// evictOldestLocked drops the view member heard from longest ago. The
// caller holds m.mu.
func (m *Mesh) evictOldestLocked() {
	var oldest peer.ID
	var when time.Time
	for id, mem := range m.view {
		if oldest == "" || mem.lastSeen.Before(when) {
			oldest, when = id, mem.lastSeen
		}
	}
	delete(m.view, oldest)
}

// Peers returns the membership view sorted by ID, excluding this node: every
// peer heard on the presence topic, connected now, or known to the
// peerstore.
func (m *Mesh) Peers() []Peer {
	self := m.host.ID()
	ps := m.host.Peerstore()
	ids := map[peer.ID]bool{}
	for _, id := range ps.PeersWithAddrs() {
		ids[id] = true
	}
	for _, id := range m.host.Network().Peers() {
		ids[id] = true
	}

	m.mu.Lock()
	byID := make(map[peer.ID]member, len(m.view))
	for id, mem := range m.view {
		ids[id] = true
		byID[id] = *mem
	}
	m.mu.Unlock()

	out := make([]Peer, 0, len(ids))
	for id := range ids {
		if id == self {
			continue
		}
		mem := byID[id]
		p := Peer{
			ID:        id.String(),
			Presence:  mem.data,
			FirstSeen: mem.firstSeen,
			LastSeen:  mem.lastSeen,
			Connected: m.host.Network().Connectedness(id) == network.Connected,
		}
		for _, a := range ps.Addrs(id) {
			p.Addrs = append(p.Addrs, a.String())
		}
		if len(p.Addrs) == 0 {
			p.Addrs = slices.Clone(mem.addrs)
		}
		slices.Sort(p.Addrs)
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Peer) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}
