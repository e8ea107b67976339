package node

import (
	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/collectors/host"
)

// defaultRegistry holds every collector a node offers.
func defaultRegistry() *collectors.Registry {
	var all []collectors.Collector
	all = append(all, host.All(host.NewHashCache(0))...)
	return collectors.NewRegistry(all...)
}
