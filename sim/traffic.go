package sim

import (
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"github.com/huntmesh/huntmesh/mesh"
	"github.com/huntmesh/huntmesh/node"
)

// traffic counts what one node's gossipsub sends. It is a pubsub.RawTracer;
// gossipsub calls it from its event loop, so it only adds numbers.
type traffic struct {
	mu sync.Mutex
	c  counts // guarded by mu
}

// counts are cumulative send counters of one node.
type counts struct {
	// RPCs and Bytes count every gossip RPC queued to a peer, and its
	// encoded size: messages, control (IHAVE, IWANT, GRAFT, PRUNE) and
	// subscriptions, on every topic.
	RPCs  uint64
	Bytes uint64
	// Msgs counts messages forwarded or published on any topic.
	Msgs uint64
	// TaskMsgs and TaskBytes count messages on the task topic only.
	TaskMsgs  uint64
	TaskBytes uint64
	// PresenceMsgs and PresenceBytes count messages sent on the presence
	// topic; PresenceIn counts the other nodes' announcements delivered
	// here, each once.
	PresenceMsgs  uint64
	PresenceBytes uint64
	PresenceIn    uint64
	// MaxMsg is the largest message sent (encoded, any topic) and MaxRPC
	// the largest RPC; minus keeps the later snapshot's.
	MaxMsg uint64
	MaxRPC uint64
	// Drops: messages refused because this node's validation queue was
	// full or throttled, and RPCs dropped because a peer's outbound queue
	// was full or not open (a peer connecting or gone).
	QueueDrops uint64
	SendDrops  uint64
}

func newTraffic() *traffic { return &traffic{} }

// snapshot returns the counters so far.
func (t *traffic) snapshot() counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.c
}

// minus returns c less an earlier snapshot.
func (c counts) minus(o counts) counts {
	return counts{
		RPCs: c.RPCs - o.RPCs, Bytes: c.Bytes - o.Bytes, Msgs: c.Msgs - o.Msgs,
		TaskMsgs: c.TaskMsgs - o.TaskMsgs, TaskBytes: c.TaskBytes - o.TaskBytes,
		PresenceMsgs:  c.PresenceMsgs - o.PresenceMsgs,
		PresenceBytes: c.PresenceBytes - o.PresenceBytes, PresenceIn: c.PresenceIn - o.PresenceIn,
		MaxMsg: c.MaxMsg, MaxRPC: c.MaxRPC,
		QueueDrops: c.QueueDrops - o.QueueDrops, SendDrops: c.SendDrops - o.SendDrops,
	}
}

// SendRPC implements pubsub.RawTracer.
func (t *traffic) SendRPC(rpc *pubsub.RPC, _ peer.ID) {
	size := uint64(proto.Size(&rpc.RPC))
	var d counts
	for _, m := range rpc.Publish {
		ms := uint64(proto.Size(m))
		d.MaxMsg = max(d.MaxMsg, ms)
		switch m.GetTopic() {
		case node.TopicTasks:
			d.TaskMsgs++
			d.TaskBytes += ms
		case mesh.PresenceTopic:
			d.PresenceMsgs++
			d.PresenceBytes += ms
		}
	}
	t.mu.Lock()
	t.c.RPCs++
	t.c.Bytes += size
	t.c.Msgs += uint64(len(rpc.Publish))
	t.c.TaskMsgs += d.TaskMsgs
	t.c.TaskBytes += d.TaskBytes
	t.c.PresenceMsgs += d.PresenceMsgs
	t.c.PresenceBytes += d.PresenceBytes
	t.c.MaxMsg = max(t.c.MaxMsg, d.MaxMsg)
	t.c.MaxRPC = max(t.c.MaxRPC, size)
	t.mu.Unlock()
}

// DeliverMessage implements pubsub.RawTracer: gossipsub calls it once per
// message from another node that passed validation.
func (t *traffic) DeliverMessage(m *pubsub.Message) {
	if m.GetTopic() == mesh.PresenceTopic {
		t.mu.Lock()
		t.c.PresenceIn++
		t.mu.Unlock()
	}
}

// RejectMessage implements pubsub.RawTracer; it counts the refusals that
// overload causes, not those of invalid or ignored messages.
func (t *traffic) RejectMessage(_ *pubsub.Message, reason string) {
	if reason == pubsub.RejectValidationQueueFull || reason == pubsub.RejectValidationThrottled {
		t.mu.Lock()
		t.c.QueueDrops++
		t.mu.Unlock()
	}
}

// DropRPC implements pubsub.RawTracer.
func (t *traffic) DropRPC(*pubsub.RPC, peer.ID) {
	t.mu.Lock()
	t.c.SendDrops++
	t.mu.Unlock()
}

// The rest of pubsub.RawTracer is not needed.

func (*traffic) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (*traffic) OnClosedOutboundStream(peer.ID)                       {}
func (*traffic) Join(string)                                          {}
func (*traffic) Leave(string)                                         {}
func (*traffic) Graft(peer.ID, string)                                {}
func (*traffic) Prune(peer.ID, string)                                {}
func (*traffic) ValidateMessage(*pubsub.Message)                      {}
func (*traffic) DuplicateMessage(*pubsub.Message)                     {}
func (*traffic) ThrottlePeer(peer.ID)                                 {}
func (*traffic) RecvRPC(*pubsub.RPC)                                  {}
func (*traffic) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (*traffic) UndeliverableMessage(*pubsub.Message)                 {}
