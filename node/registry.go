package node

import (
	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/collectors/files"
	"github.com/huntmesh/huntmesh/collectors/host"
	"github.com/huntmesh/huntmesh/collectors/logs"
	"github.com/huntmesh/huntmesh/collectors/memory"
)

// defaultRegistry holds every collector a node offers. The hash caches
// live as long as the node, so re-scans skip unchanged executables and
// files.
func defaultRegistry() *collectors.Registry {
	var all []collectors.Collector
	all = append(all, host.All(host.NewHashCache(0))...)
	all = append(all, files.All(files.NewHashCache(0))...)
	all = append(all, logs.New())
	all = append(all, memory.All()...)
	return collectors.NewRegistry(all...)
}
