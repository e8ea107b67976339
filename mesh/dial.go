package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
)

const (
	// knownPeersFile holds the last-known peers under DataDir.
	knownPeersFile = "peers.json"

	// maxKnownPeersFile bounds what we read back from it.
	maxKnownPeersFile = 256 << 10

	// maxAddrsPerPeer bounds the addresses kept per remembered peer.
	maxAddrsPerPeer = 8

	// Redial backoff: first retry after minBackoff, doubling to a cap that
	// is short for static peers (they are meant to be up) and longer for
	// peers remembered from a past run (they may be gone for good).
	minBackoff       = time.Second
	maxStaticBackoff = time.Minute
	maxKnownBackoff  = 5 * time.Minute

	// dialTimeout bounds one dial attempt.
	dialTimeout = 10 * time.Second

	// saveEvery is how often the known peers are written while running.
	saveEvery = time.Minute
)

// dialTarget is a peer the dialer keeps connected.
type dialTarget struct {
	info    peer.AddrInfo
	static  bool
	backoff time.Duration
	next    time.Time // no attempt before this
}

// connected resets the backoff after a success. The caller holds m.mu.
func (t *dialTarget) connected() { t.backoff, t.next = 0, time.Time{} }

// failed schedules the next attempt. The caller holds m.mu.
func (t *dialTarget) failed(now time.Time) {
	limit := maxKnownBackoff
	if t.static {
		limit = maxStaticBackoff
	}
	t.backoff = min(max(2*t.backoff, minBackoff), limit)
	// Up to 20% jitter keeps restarted nodes from dialling in lock-step.
	jitter := time.Duration(rand.Int64N(int64(t.backoff/5) + 1))
	t.next = now.Add(t.backoff + jitter)
}

// addTarget keeps info connected from now on. Static peers are also
// protected from the connection manager's trimming.
func (m *Mesh) addTarget(info peer.AddrInfo, static bool) {
	if info.ID == m.host.ID() {
		return
	}
	m.host.Peerstore().AddAddrs(info.ID, info.Addrs, peerstore.PermanentAddrTTL)
	if static {
		m.host.ConnManager().Protect(info.ID, "static")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.targets[info.ID]; t != nil {
		t.static = t.static || static
		return
	}
	m.targets[info.ID] = &dialTarget{info: info, static: static}
}

// dialLoop dials targets that are due, and saves the known peers now and
// then, until the mesh closes.
func (m *Mesh) dialLoop() {
	defer m.wg.Done()
	tick := time.NewTicker(minBackoff)
	defer tick.Stop()
	lastSave := time.Now()
	for {
		m.dialDue()
		if time.Since(lastSave) >= saveEvery {
			m.saveKnownPeers()
			lastSave = time.Now()
		}
		select {
		case <-m.ctx.Done():
			return
		case <-tick.C:
		case <-m.dialKick:
		}
	}
}

// dialDue starts one dial for each disconnected target whose backoff has
// passed, and waits for them all.
func (m *Mesh) dialDue() {
	now := time.Now()
	var due []peer.AddrInfo
	m.mu.Lock()
	for id, t := range m.targets {
		if m.host.Network().Connectedness(id) == network.Connected || now.Before(t.next) {
			continue
		}
		// Count the attempt as failed until it succeeds, so a dial still in
		// flight is not started twice.
		t.failed(now)
		due = append(due, t.info)
	}
	m.mu.Unlock()

	done := make(chan struct{}, len(due))
	for _, info := range due {
		go func() {
			defer func() { done <- struct{}{} }()
			// Our own backoff paces these dials; libp2p's (5 s and up
			// after any failure) would otherwise stack on top of it.
			ctx, cancel := context.WithTimeout(m.ctx, dialTimeout)
			defer cancel()
			ctx = network.WithForceDirectDial(ctx, "redial")
			if err := m.host.Connect(ctx, info); err != nil {
				m.log.Debug("redial failed", "peer", info.ID.String(), "err", err)
			}
		}()
	}
	for range due {
		<-done
	}
}

// knownPeer is one entry of peers.json.
type knownPeer struct {
	ID       string    `json:"id"`
	Addrs    []string  `json:"addrs"`
	LastSeen time.Time `json:"last_seen"`
}

// loadKnownPeers reads peers.json. A missing or unreadable file is not an
// error: the node simply starts without memories.
func (m *Mesh) loadKnownPeers() []peer.AddrInfo {
	if m.cfg.DataDir == "" || m.cfg.MaxKnownPeers == 0 {
		return nil
	}
	path := filepath.Join(m.cfg.DataDir, knownPeersFile)
	raw, err := readBounded(path, maxKnownPeersFile)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("read known peers", "err", err)
		}
		return nil
	}
	infos, err := decodeKnownPeers(raw, m.cfg.MaxKnownPeers)
	if err != nil {
		m.log.Warn("read known peers", "err", err)
		return nil
	}
	m.log.Info("known peers loaded", "peers", len(infos))
	return infos
}

// decodeKnownPeers parses peers.json, skipping bad entries and keeping at
// most limit peers and maxAddrsPerPeer addresses each.
func decodeKnownPeers(raw []byte, limit int) ([]peer.AddrInfo, error) {
	var list []knownPeer
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, err
	}
	var out []peer.AddrInfo
	for _, k := range list {
		if len(out) == limit {
			break
		}
		id, err := peer.Decode(k.ID)
		if err != nil {
			continue
		}
		info := peer.AddrInfo{ID: id}
		for _, a := range k.Addrs {
			if len(info.Addrs) == maxAddrsPerPeer {
				break
			}
			if addr, err := ma.NewMultiaddr(a); err == nil {
				info.Addrs = append(info.Addrs, addr)
			}
		}
		if len(info.Addrs) > 0 {
			out = append(out, info)
		}
	}
	return out, nil
}

// saveKnownPeers writes the peers worth redialling after a restart: those
// connected now or heard from, most recent first, bounded by MaxKnownPeers.
func (m *Mesh) saveKnownPeers() {
	if m.cfg.DataDir == "" || m.cfg.MaxKnownPeers == 0 {
		return
	}
	now := time.Now()
	var list []knownPeer
	for _, p := range m.Peers() {
		if !p.Connected && p.LastSeen.IsZero() {
			continue // known only second-hand: not worth remembering
		}
		k := knownPeer{ID: p.ID, LastSeen: p.LastSeen}
		if p.Connected {
			k.LastSeen = now
		}
		for _, a := range p.Addrs {
			if len(k.Addrs) < maxAddrsPerPeer && !isCircuit(a) {
				k.Addrs = append(k.Addrs, a)
			}
		}
		if len(k.Addrs) > 0 {
			list = append(list, k)
		}
	}
	slices.SortStableFunc(list, func(a, b knownPeer) int {
		return b.LastSeen.Compare(a.LastSeen)
	})
	if len(list) > m.cfg.MaxKnownPeers {
		list = list[:m.cfg.MaxKnownPeers]
	}
	raw, err := json.MarshalIndent(list, "", " ")
	if err != nil {
		m.log.Error("encode known peers", "err", err)
		return
	}
	path := filepath.Join(m.cfg.DataDir, knownPeersFile)
	if err := writeFileAtomic(path, raw, 0o600); err != nil {
		m.log.Error("save known peers", "err", err)
	}
}

// isCircuit reports a relayed address, which goes stale with its relay.
func isCircuit(addr string) bool {
	a, err := ma.NewMultiaddr(addr)
	if err != nil {
		return true
	}
	_, err = a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}
