// Package mesh owns huntmesh's libp2p host and everything that crosses the
// network: the node identity, transports (TCP and QUIC with Noise and yamux),
// discovery (static peers, mDNS, the last-known peers from a previous run,
// gossipsub peer exchange), gossipsub topics with validators, peer scoring and
// per-peer rate limits, size-capped request/response streams, and a presence
// view of the membership.
//
// The package carries opaque bytes only: it knows nothing of tasks, records or
// collectors. Callers (the node) decide what a topic message or a stream body
// means; mesh guarantees who sent it, that it is within the configured size,
// and that a validator saw it before any handler did.
//
// A Mesh is safe for concurrent use. Every goroutine it starts is stopped by
// Close, which may be called more than once.
package mesh
