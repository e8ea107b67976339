package mesh

import (
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// meshTracer follows gossipsub's events to know which peers sit in our mesh
// for each topic, and counts messages gossipsub itself refused (a full
// validation queue, a blacklisted peer) that our validator never saw. Its
// methods are called from gossipsub's event loop and must stay quick.
type meshTracer struct {
	stats *counters

	mu   sync.Mutex
	mesh map[string]map[peer.ID]struct{} // topic → mesh peers; guarded by mu
}

func newMeshTracer(stats *counters) *meshTracer {
	return &meshTracer{stats: stats, mesh: make(map[string]map[peer.ID]struct{})}
}

// meshPeers returns the number of peers in our mesh for topic.
func (t *meshTracer) meshPeers(topic string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.mesh[topic])
}

// Graft implements pubsub.RawTracer: p joined our mesh for topic.
func (t *meshTracer) Graft(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mesh[topic] == nil {
		t.mesh[topic] = make(map[peer.ID]struct{})
	}
	t.mesh[topic][p] = struct{}{}
}

// Prune implements pubsub.RawTracer: p left our mesh for topic.
func (t *meshTracer) Prune(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mesh[topic], p)
}

// RemovePeer implements pubsub.RawTracer: p is gone from every mesh.
func (t *meshTracer) RemovePeer(p peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, peers := range t.mesh {
		delete(peers, p)
	}
}

// Leave implements pubsub.RawTracer: we left topic.
func (t *meshTracer) Leave(topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mesh, topic)
}

// RejectMessage implements pubsub.RawTracer. Rejections by our own
// validator are counted by it; this counts the ones gossipsub made alone.
func (t *meshTracer) RejectMessage(msg *pubsub.Message, reason string) {
	switch reason {
	case pubsub.RejectValidationFailed, pubsub.RejectValidationIgnored:
		return
	}
	t.stats.add("gossip-reject/" + msg.GetTopic() + "/" + reason)
}

// DropRPC implements pubsub.RawTracer: an outgoing RPC was dropped because a
// peer's queue was full or closed.
func (t *meshTracer) DropRPC(*pubsub.RPC, peer.ID) { t.stats.add("gossip-drop-rpc") }

// ThrottlePeer implements pubsub.RawTracer.
func (t *meshTracer) ThrottlePeer(peer.ID) { t.stats.add("gossip-throttle") }

// The remaining pubsub.RawTracer events are of no interest.

func (t *meshTracer) AddPeer(peer.ID, protocol.ID)                         {}
func (t *meshTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (t *meshTracer) OnClosedOutboundStream(peer.ID)                       {}
func (t *meshTracer) Join(string)                                          {}
func (t *meshTracer) ValidateMessage(*pubsub.Message)                      {}
func (t *meshTracer) DeliverMessage(*pubsub.Message)                       {}
func (t *meshTracer) DuplicateMessage(*pubsub.Message)                     {}
func (t *meshTracer) RecvRPC(*pubsub.RPC)                                  {}
func (t *meshTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (t *meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (t *meshTracer) UndeliverableMessage(*pubsub.Message)                 {}
