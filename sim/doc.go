// Package sim runs many real huntmesh nodes in one process on libp2p's mock
// network (p2p/net/mock), with link latency, jitter, loss, bandwidth,
// partitions and churn, and measures how a hunt spreads: delivery latency
// percentiles, completeness over time, answers, messages and bytes per node,
// and heap per node.
//
// Every node is a real node.Node: the same validators, store, collectors and
// result streams as the daemon. Only the transport differs: the mesh runs on
// a mock host (mesh.NewWithHost), the store lives in memory with small tables,
// and a hook (node.SimHooks.OnTask) timestamps each task's first arrival.
//
// Production code never imports sim; the CLI's "huntmesh sim" and tests do.
package sim
