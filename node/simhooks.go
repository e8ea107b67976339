package node

import (
	"context"

	"github.com/huntmesh/huntmesh/mesh"
)

// SimHooks let the simulator (package sim) run many real nodes in one
// process. Production nodes leave them zero.
type SimHooks struct {
	// InMemory keeps the store in memory with small tables instead of under
	// DataDir; nothing survives Close.
	InMemory bool

	// NewMesh, when set, starts the node's mesh instead of mesh.New, for
	// example with mesh.NewWithHost on libp2p's mock network.
	NewMesh func(ctx context.Context, cfg mesh.Config) (*mesh.Mesh, error)

	// OnTask, when set, is called once per task when it first reaches this
	// node's handler, before selection, with the task's ID and type. It runs
	// on the topic's reader and must return quickly.
	OnTask func(id, taskType string)

	// BeforeRun, when set, is called before a selected task runs and may
	// block until ctx ends: on one machine, the simulator holds the work
	// of nodes already reached so that it does not slow the forwarding to
	// the rest, which on real hosts runs on other CPUs.
	BeforeRun func(ctx context.Context, id string)
}

// newMesh starts the mesh the hooks ask for.
func (s SimHooks) newMesh(ctx context.Context, cfg mesh.Config) (*mesh.Mesh, error) {
	if s.NewMesh != nil {
		return s.NewMesh(ctx, cfg)
	}
	return mesh.New(ctx, cfg)
}

// TopicPeers returns how many connected peers subscribe to a gossip topic,
// so the simulator can wait until a node can hear tasks.
func (n *Node) TopicPeers(topic string) int { return n.mesh.TopicPeers(topic) }

// MeshPeers returns how many peers sit in this node's gossip mesh for a
// topic, so the simulator can wait until the mesh has formed.
func (n *Node) MeshPeers(topic string) int { return n.mesh.MeshPeers(topic) }
