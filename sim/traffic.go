package sim

import (
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

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
	}
}

// SendRPC implements pubsub.RawTracer.
func (t *traffic) SendRPC(rpc *pubsub.RPC, _ peer.ID) {
	size := uint64(proto.Size(&rpc.RPC))
	var taskMsgs, taskBytes uint64
	for _, m := range rpc.Publish {
		if m.GetTopic() == node.TopicTasks {
			taskMsgs++
			taskBytes += uint64(proto.Size(m))
		}
	}
	t.mu.Lock()
	t.c.RPCs++
	t.c.Bytes += size
	t.c.Msgs += uint64(len(rpc.Publish))
	t.c.TaskMsgs += taskMsgs
	t.c.TaskBytes += taskBytes
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
func (*traffic) DeliverMessage(*pubsub.Message)                       {}
func (*traffic) RejectMessage(*pubsub.Message, string)                {}
func (*traffic) DuplicateMessage(*pubsub.Message)                     {}
func (*traffic) ThrottlePeer(peer.ID)                                 {}
func (*traffic) RecvRPC(*pubsub.RPC)                                  {}
func (*traffic) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (*traffic) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (*traffic) UndeliverableMessage(*pubsub.Message)                 {}
